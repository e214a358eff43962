"""The ``mlhunt`` command: parses options, calls the library, renders. Nothing else lives here.

Analysis commands (model, scan, hunt, assess, harden) are here; project, practice-range and
guard commands in :mod:`mlhunt.cli_ops`; what they share in :mod:`mlhunt.cli_common`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mlhunt import __version__
from mlhunt.cli_common import (
    DebugOpt,
    FailOnOpt,
    FormatOpt,
    ListOpt,
    OutputOpt,
    ScenarioSeedOpt,
    WideOpt,
    app,
    choose_format,
    emit,
    err,
    exit_code,
    fail_threshold,
    interrupt_exits,
    print_catalog,
    run_command,
)
from mlhunt.errors import InputError


@app.command()
def model(
    system: Annotated[Path | None, typer.Argument(help="System description (YAML).")] = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    dfd: Annotated[
        Path | None,
        typer.Option(help="Also write the data-flow diagram: .svg, .dot or .mmd (Mermaid)."),
    ] = None,
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", help="Extra directory of threat rules (YAML); repeatable."),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(min=1, help="Show only the N highest risks (--fail-on still sees all)."),
    ] = None,
    assume: Annotated[
        str,
        typer.Option(
            help="Unstated security facts: 'unknown' (asked as questions) or 'absent' "
            "(reported as findings: the pessimistic view)."
        ),
    ] = "unknown",
    debug: DebugOpt = False,
) -> None:
    """Build the threat model of SYSTEM: DFD, STRIDE, LINDDUN, ML threats (ATLAS), risk."""

    def body() -> int:
        from mlhunt.cli_fast import run_model  # shared with the start-up path (cli_fast)

        if system is None:
            raise InputError("SYSTEM: missing (a system description YAML; see `mlhunt schema`)")
        return run_model(
            system,
            fmt=fmt,
            output=output,
            fail_on=fail_on,
            dfd=dfd,
            rules=rules,
            top=top,
            assume=assume,
        )

    run_command(debug, body)


@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to scan.")],
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            help="Extra pickle global to allow, 'module.name' or 'module.*'; repeatable.",
        ),
    ] = None,
    policy: Annotated[
        list[Path] | None,
        typer.Option("--policy", help="Extra folder of Rego policies; repeatable."),
    ] = None,
    secrets: Annotated[
        bool, typer.Option("--secrets/--no-secrets", help="Look for plaintext secrets.")
    ] = True,
    max_file_bytes: Annotated[
        str | None,
        typer.Option(help="Files larger than this are not opened (e.g. 2G; default 64G)."),
    ] = None,
    max_entry_bytes: Annotated[
        str | None,
        typer.Option(help="Archive member / decompressed stream read at most (default 512M)."),
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Time budget per file, in seconds (default 120).")
    ] = None,
    max_depth: Annotated[
        int | None, typer.Option(help="Archives / payloads nested at most (default 4).")
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Scan model artifacts (pickle, joblib, PyTorch, NumPy, Keras, ONNX, safetensors, zip)
    without executing them, deployment manifests against Rego policies, and plaintext secrets."""

    def body() -> int:
        from mlhunt.cli_fast import run_scan  # shared with the start-up path (cli_fast)

        return run_scan(
            paths,
            fmt=fmt,
            output=output,
            fail_on=fail_on,
            allow=allow,
            policy=policy,
            secrets=secrets,
            max_file_bytes=max_file_bytes,
            max_entry_bytes=max_entry_bytes,
            max_seconds=max_seconds,
            max_depth=max_depth,
        )

    run_command(debug, body)


@app.command()
def hunt(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Log files, folders or globs (JSONL, CSV, Parquet; .gz)."),
    ] = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    engine: Annotated[str, typer.Option(help="duckdb (default) or spark.")] = "duckdb",
    spark_master: Annotated[
        str | None,
        typer.Option("--spark-master", help="Spark master URL (default: local[2])."),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Known-good inputs (.npz with x, .npy, or a log file): the baseline; "
            "clickstream: earlier events, whose accounts are not new."
        ),
    ] = None,
    detector: Annotated[
        list[str] | None,
        typer.Option("--detector", help="Run only this detector (id or name); repeatable."),
    ] = None,
    export_sigma: Annotated[
        Path | None,
        typer.Option("--export-sigma", help="Write Sigma rules for the detectors here."),
    ] = None,
    sigma_backend: Annotated[
        str | None,
        typer.Option(
            "--sigma-backend", help="Also convert the Sigma rules: splunk or elasticsearch."
        ),
    ] = None,
    canary: Annotated[
        list[str] | None,
        typer.Option(
            "--canary", help="LLM logs: a string planted in the system prompt; repeatable."
        ),
    ] = None,
    tool_limits: Annotated[
        Path | None,
        typer.Option(
            "--tool-limits", help="LLM logs: YAML/JSON of tool name -> JSON Schema of its args."
        ),
    ] = None,
    list_: ListOpt = False,
    wide: WideOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Hunt inference-API logs for model extraction, evasion probing, membership and inversion
    probing, sybil extraction and API abuse; alerts are findings per client or source address.
    LLM gateway logs and OpenTelemetry GenAI traces are recognised by content and hunted for
    prompt injection, prompt leaks, sensitive output, excessive agency and over-consumption.
    Clickstream events (ts, user, item, event) are hunted for shilling groups.
    A hunt is one pass: its report and Sigma files are written whole at the end (never half a
    file), so an interrupted hunt is resumed by running it again."""

    def body() -> int:
        import importlib

        if list_:
            from mlhunt.cli_click import click_rows
            from mlhunt.cli_llm import llm_rows
            from mlhunt.hunt.detectors import load_detectors

            print_catalog(
                [
                    (d.spec.id, [*d.spec.atlas, *d.spec.owasp_ml], d.spec.description)
                    for d in load_detectors()
                ]
                + llm_rows()
                + click_rows()
            )
            return 0
        if not paths:
            raise InputError("PATHS: missing (log files, folders or globs), or use --list")
        if engine != "spark":  # LLM gateway logs and GenAI traces, told apart by content
            from mlhunt.llmhunt import llm_kind

            if llm_kind(paths) is not None:
                from mlhunt.cli_llm import run_llm_hunt

                return run_llm_hunt(
                    paths,
                    fmt=fmt,
                    output=output,
                    fail_on=fail_on,
                    canaries=canary or (),
                    tool_limits=tool_limits,
                    export_sigma=export_sigma,
                    sigma_backend=sigma_backend,
                    wide=wide,
                )
        from mlhunt.cli_click import log_kind

        click = log_kind(paths)  # shop events, or a recommender's API log
        if click == "clickstream":
            if engine == "spark":
                raise InputError(
                    "--engine spark: clickstream events are hunted with DuckDB only; "
                    "leave --engine out"
                )
            from mlhunt.cli_click import run_click_hunt

            return run_click_hunt(
                paths,
                fmt=fmt,
                output=output,
                fail_on=fail_on,
                export_sigma=export_sigma,
                sigma_backend=sigma_backend,
                wide=wide,
                reference=reference,
            )
        known, baseline = None, reference  # a recommender API log: events as the reference
        if click == "recommender-api":
            from mlhunt.cli_click import is_events

            if is_events(reference):
                known, baseline = reference, None
        from mlhunt.hunt.api import hunt as run_hunt

        chosen = choose_format(fmt, output)
        threshold = fail_threshold(fail_on)
        sigma = None
        if export_sigma is not None or sigma_backend is not None:
            try:
                sigma = importlib.import_module("mlhunt.hunt.sigma")
            except ModuleNotFoundError:
                raise InputError(
                    "--export-sigma: Sigma export is not available in this installation"
                ) from None
        with interrupt_exits():  # nothing is written before the end: Ctrl-C loses nothing
            result = run_hunt(
                paths,
                engine=engine,
                reference=baseline,
                detectors=detector,
                spark_master=spark_master,
            )
        err(result.read.summary())
        doc = result.document()
        if click == "recommender-api":
            from mlhunt.cli_click import add_api_shilling

            add_api_shilling(doc, paths, known)
        if sigma is not None:
            if export_sigma is None:
                raise InputError("--sigma-backend: needs --export-sigma DIR")
            written = sigma.export_sigma(
                [d.spec.model_dump() for d in result.detectors], export_sigma, backend=sigma_backend
            )
            doc["sigma"] = {"folder": str(export_sigma), "files": [str(p) for p in written]}
            err(f"wrote {len(written)} Sigma files under {export_sigma}/")
        emit(doc, chosen, output, wide=wide)
        return exit_code(doc, threshold)

    run_command(debug, body)


@app.command()
def assess(
    target: Annotated[
        str | None,
        typer.Argument(
            help="Model file (skops, or pickle/joblib with --trust), PyTorch state "
            "dict (with --factory), module:predict_fn, or an http(s) URL."
        ),
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="Attack a built-in scenario's model (with its data).")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="sklearn, torch, callable or http (default: guessed).")
    ] = None,
    factory: Annotated[
        str | None, typer.Option(help="module:function building the PyTorch module.")
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(help="Input spec YAML: features, ranges, mutable, shape.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help=".npz with x, y and optional x_members/x_nonmembers/x_pool."),
    ] = None,
    http_config: Annotated[
        Path | None, typer.Option(help="HTTP target: request/response mapping YAML.")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="HTTP target: environment variable holding the API key.")
    ] = None,
    trust: Annotated[
        bool, typer.Option(help="Load pickle/joblib or unsafe-looking models (runs their code).")
    ] = False,
    attack: Annotated[
        list[str] | None,
        typer.Option("--attack", help="Attack id, short name or kind; repeatable."),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="ID.key=value override; repeatable.")
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="ID.SEVERITY=VALUE severity threshold; repeatable."),
    ] = None,
    thresholds: Annotated[
        Path | None, typer.Option(help="YAML {ATTACK: {severity: value}} thresholds.")
    ] = None,
    catalog: Annotated[
        list[Path] | None,
        typer.Option(
            "--catalog",
            help="Use the attack YAMLs in this folder instead of the built-in ones; repeatable.",
        ),
    ] = None,
    max_queries: Annotated[
        int | None, typer.Option(help="Query budget for the whole run (rows sent).")
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Time budget for the whole run (seconds).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the attacks (deterministic).")] = 0,
    state: Annotated[
        Path | None,
        typer.Option(help="Folder for results and plots (default .mlhunt-assess/<target>/)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Keep finished results in --state; run only the rest.")
    ] = False,
    in_process: Annotated[
        bool, typer.Option(help="--scenario: query the model in-process, not via its API.")
    ] = False,
    scenario_seed: ScenarioSeedOpt = 0,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    list_: ListOpt = False,
    wide: WideOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Attack the real model (evasion, patch, corruptions, extraction, membership, inversion,
    poisoning) within a query and time budget; each attack becomes a finding with its numbers."""

    def body() -> int:
        from mlhunt.assess.api import TargetOptions, assess, default_state_dir, open_target
        from mlhunt.assess.catalog import default_attacks, load_attacks
        from mlhunt.assess.progress import observer_for
        from mlhunt.assess.results import parse_thresholds
        from mlhunt.assess.runner import parse_params

        chosen = choose_format(fmt, output)
        threshold_ = fail_threshold(fail_on)
        for d in catalog or []:
            if not d.is_dir():
                raise InputError("--catalog: not a folder", file=str(d))
        attacks = (
            tuple(a for d in catalog for a in load_attacks(d)) if catalog else default_attacks()
        )
        if list_:
            print_catalog(
                [
                    (a.id, [*a.spec.atlas, *a.spec.owasp_ml, *a.spec.validates], a.spec.description)
                    for a in attacks
                ]
            )
            return 0
        params = parse_params(param or (), attacks)
        limits = parse_thresholds(threshold or (), attacks, thresholds)
        opts = TargetOptions(
            target=target,
            scenario=scenario,
            kind=kind,
            factory=factory,
            spec=spec,
            data=data,
            http_config=http_config,
            api_key_env=api_key_env,
            trust=trust,
            in_process=in_process,
            scenario_seed=scenario_seed,
            seed=seed,
            log_dir=state,
        )
        with open_target(opts) as (tgt, dat), observer_for(sys.stderr, err) as obs:
            report = assess(
                tgt,
                dat,
                catalog=attacks,
                select=attack or (),
                params=params,
                max_queries=max_queries,
                max_seconds=max_seconds,
                seed=seed,
                state_dir=state or default_state_dir(tgt),
                resume=resume,
                thresholds=limits,
                observer=obs,
                debug=debug,
            )
        doc = report.document()
        emit(doc, chosen, output, wide=wide)
        return exit_code(doc, threshold_)

    run_command(debug, body)


@app.command()
def harden(
    project: Annotated[
        Path | None,
        typer.Argument(help="Project file (mlhunt.yaml) whose 'harden:' section to run."),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="Built-in scenario: loan-approval, image-moderation, fraud-detection, "
            "clickstream-recommender."
        ),
    ] = None,
    mitigation: Annotated[
        list[str] | None,
        typer.Option(
            "--mitigation",
            help="Mitigation id or short name (dp-logreg); repeatable. "
            "Default: every mitigation that applies to the scenario.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="ID.key=value override; repeatable.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of attacks and training (deterministic).")] = 0,
    state: Annotated[
        Path | None, typer.Option(help="Folder for plots (default .mlhunt-harden/<model>/).")
    ] = None,
    scenario_seed: ScenarioSeedOpt = 0,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Apply mitigations (DP training, output hardening, query limits, input preprocessing,
    adversarial training), re-run the attacks before and after, report the trade-off."""

    def body() -> int:
        from mlhunt.harden import harden as run_harden
        from mlhunt.harden import parse_params

        chosen = choose_format(fmt, output)
        threshold_ = fail_threshold(fail_on)
        # Progress lines on a terminal (or with --debug); stdout stays the report.
        say = err if (debug or sys.stderr.isatty()) else (lambda _m: None)
        if (project is None) == (scenario is None):
            raise InputError("give a project file (mlhunt.yaml) or --scenario, not both")
        if project is not None:
            from mlhunt.run.harden_part import harden_project
            from mlhunt.run.project import load_project

            if mitigation or param:
                raise InputError("--mitigation/--param: set them in the project's 'harden:'")
            emit(doc := harden_project(load_project(project), progress=say), chosen, output)
            return exit_code(doc, threshold_)
        params = parse_params(param or ())
        report = run_harden(
            scenario,
            select=mitigation or (),
            params=params,
            seed=seed,
            scenario_seed=scenario_seed,
            out_dir=state,
            progress=say,
        )
        doc = report.document()
        emit(doc, chosen, output)
        return exit_code(doc, threshold_)

    run_command(debug, body)


from mlhunt import cli_ops  # noqa: E402,F401  (registers its commands on app)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"mlhunt {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """mlhunt: threat hunting for machine-learning systems."""


def main() -> None:
    app()
