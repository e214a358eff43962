"""``mlhunt`` commands for projects (schema, demo, run, init), the practice range (simulate,
build, serve) and ``guard``. Registered on the app of :mod:`mlhunt.cli_common`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlhunt._io import write_atomic
from mlhunt.cli_common import (
    DebugOpt,
    FailOnOpt,
    FormatOpt,
    OutputOpt,
    ScenarioArg,
    ScenarioSeedOpt,
    app,
    choose_format,
    emit,
    err,
    exit_code,
    fail_threshold,
    interrupt_exits,
    run_command,
)
from mlhunt.errors import InputError


@app.command()
def schema(
    output: OutputOpt = None,
) -> None:
    """Print the JSON Schema of the system description (for editor completion)."""
    from mlhunt.system.model import SystemDescription

    doc = SystemDescription.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "mlhunt system description"
    text = json.dumps(doc, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)


@app.command()
def demo(
    scenario: Annotated[
        str | None, typer.Argument(help="One scenario (folder name under examples/).")
    ] = None,
    examples: Annotated[
        Path, typer.Option(help="Folder holding the scenarios, one sub-folder each.")
    ] = Path("examples"),
    output: Annotated[Path, typer.Option("--output", "-o", help="Report folder.")] = Path(
        "mlhunt-report"
    ),
    quick: Annotated[
        bool, typer.Option(help="A short variant: less traffic, cheap attacks, small budgets.")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """The whole product on the seed scenarios: build each one, serve its API on 127.0.0.1,
    send benign and attacker traffic through it, then `mlhunt run` its project (threat model,
    attacks, hunt, scan, verdicts). Reports under the output folder, linked from index.html."""

    def body() -> int:
        from mlhunt.demo import run_demo

        written = run_demo(examples, output, only=scenario, quick=quick, progress=err)
        err(f"wrote {len(written)} reports under {output}/ (open {output}/index.html)")
        return 0

    run_command(debug, body)


@app.command("run")
def run_cmd(
    project: Annotated[Path, typer.Argument(help="Project file (mlhunt.yaml; see `mlhunt init`).")],
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    baseline: Annotated[
        Path | None,
        typer.Option(help="A previous run's JSON: mark findings new or unchanged, list fixed."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", help="Output folder (default: the project's 'output')."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Reuse the parts an interrupted run finished (saved under "
            "<output>/parts/) whose project, system and input files are unchanged."
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Threat-model the system, attack its models, hunt its logs, scan its artifacts, and mark
    every ML threat validated, observed, refuted or untested. Writes report.html, run.md,
    run.json and run.sarif to the project's output folder, each file whole or not at all."""

    def body() -> int:
        from mlhunt.run.api import compare_baseline, run_project, write_outputs
        from mlhunt.run.project import load_project

        chosen = choose_format(fmt, output)
        proj = load_project(project)
        if out_dir is not None:
            proj.output = str(out_dir.resolve())
        threshold = fail_threshold(fail_on) or proj.fail_on
        previous = None
        if baseline is not None:
            from mlhunt.system.loader import read_text

            try:
                previous = json.loads(read_text(baseline))
            except json.JSONDecodeError as exc:
                msg = f"not JSON ({exc.msg})"
                raise InputError(msg, file=str(baseline), line=exc.lineno) from None
        with interrupt_exits():
            result = run_project(proj, progress=err, resume=resume)
        if previous is not None:
            b = compare_baseline(result.document, previous)
            err(
                f"baseline: {len(b['new'])} new, {len(b['unchanged'])} unchanged, "
                f"{len(b['fixed'])} fixed"
            )
        from mlhunt.report.run_view import evidence_line

        if line := evidence_line(result.document["summary"]):
            err(line)
        written = write_outputs(result)
        err(f"wrote {', '.join(str(p) for p in written)}")
        if output is not None or fmt is not None:
            emit(result.document, chosen, output)
        return exit_code(result.document, threshold)

    run_command(debug, body)


@app.command()
def init(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write it.")] = Path(
        "mlhunt.yaml"
    ),
    system: Annotated[str, typer.Option(help="Path of the system description.")] = "system.yaml",
    scenario: Annotated[
        str | None, typer.Option(help="Start from a built-in scenario (runs as written).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Write a commented starter project file (mlhunt.yaml) for `mlhunt run`, and next to it the
    system description it names (with --scenario, the scenario's own and its deployment
    manifests: `mlhunt run mlhunt.yaml` then runs as written)."""

    def body() -> int:
        from mlhunt.run.init import project_files

        if scenario is not None:  # by name: importing it would need the scenarios extra
            from mlhunt.scenarios import names

            if scenario not in names():
                raise InputError(f"unknown scenario {scenario!r} (available: {', '.join(names())})")
        files = project_files(output, system=system, scenario=scenario)
        if output.exists() and not force:
            raise InputError("already exists (use --force to overwrite)", file=str(output))
        for path, text in files.items():
            if path != output and path.exists() and not force:
                err(f"kept {path} (exists; --force overwrites it)")
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text)
            err(f"wrote {path}")
        return 0

    run_command(debug, body)


@app.command()
def simulate(
    scenario: ScenarioArg,
    out: Annotated[Path, typer.Option("--out", help="Folder for logs.jsonl and labels.json.")],
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 0,
    live: Annotated[
        str | None,
        typer.Option(
            "--live",
            help="Send every query to this prediction API on 127.0.0.1 (it must accept "
            "practice-range keys 'sim-<client>' and trust X-Forwarded-For).",
        ),
    ] = None,
    scale: Annotated[float, typer.Option(help="Multiply traffic volumes by this factor.")] = 1.0,
    scenario_seed: ScenarioSeedOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Simulate a day of labelled benign and attacker traffic against a built-in scenario's real
    model: DIR/logs.jsonl (inference-log schema) and DIR/labels.json (ground truth).
    llm-helpdesk: an LLM helpdesk agent's gateway log and OpenTelemetry GenAI traces."""

    def body() -> int:
        from mlhunt.cli_llm import LLM_SCENARIO, run_llm_simulate
        from mlhunt.scenarios import ensure_built, get
        from mlhunt.scenarios.traffic import check_live_url
        from mlhunt.scenarios.traffic import simulate as run_simulation

        if scenario == LLM_SCENARIO:  # the LLM range: no model to build (docs/llmhunt.md)
            return run_llm_simulate(out, seed=seed, scale=scale, live=live)
        get(scenario)  # unknown scenario: one clear line before any work
        if live is not None:
            check_live_url(live)
        if not scale > 0:
            raise InputError(f"--scale: expected a positive number, got {scale}")
        _built, loaded = ensure_built(scenario, seed=scenario_seed, progress=err)
        result = run_simulation(loaded, out, seed=seed, live_url=live, scale=scale, progress=err)
        err(result.summary())
        return 0

    run_command(debug, body)


@app.command()
def build(
    scenario: ScenarioArg,
    seed: Annotated[int, typer.Option(help="Seed of the data and the model.")] = 0,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="loan-approval: database URL for the applicant data "
            "(default: SQLite in the build folder), e.g. postgresql+psycopg://user@host/db.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Build folder (default: the scenario cache)."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """(Re)build a scenario: generate its data, load it into its database, train and save its
    model, and print the model's measured quality."""

    def body() -> int:
        from mlhunt.scenarios import ensure_built, get

        get(scenario)
        options: dict[str, Any] = {}
        if db is not None:
            if scenario != "loan-approval":
                raise InputError("--db: only loan-approval keeps its data in a SQL database")
            options["db_url"] = db
        built, _loaded = ensure_built(
            scenario, seed=seed, directory=output, progress=err, force=True, options=options
        )
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in built.metrics.items())
        err(f"built {scenario} (seed {seed}) in {built.directory}: {metrics}")
        return 0

    run_command(debug, body)


@app.command()
def serve(
    scenario: ScenarioArg,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="KEY=CLIENT_ID accepted by the API; repeatable. Default: one random key, printed.",
        ),
    ] = None,
    practice_keys: Annotated[
        bool,
        typer.Option(
            help="Also accept 'sim-<client>' keys and trust X-Forwarded-For (for "
            "`mlhunt simulate --live`; deliberately weak, loopback only)."
        ),
    ] = False,
    log: Annotated[
        Path, typer.Option(help="Inference log to append to (JSON Lines, DESIGN.md schema).")
    ] = Path("inference-log.jsonl"),
    scenario_seed: ScenarioSeedOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Run a built-in scenario's prediction API (POST /predict, GET /health) with an inference
    log: the practice range's live target."""

    def body() -> int:
        import secrets

        import uvicorn

        from mlhunt.scenarios import ensure_built, get
        from mlhunt.scenarios.server import KeyStore, create_app

        get(scenario)
        keys: dict[str, str] = {}
        for item in api_key or []:
            key, sep, client = item.partition("=")
            if not sep or not key or not client:
                raise InputError(f"--api-key: expected KEY=CLIENT_ID, got {item!r}")
            keys[key] = client
        if practice_keys and host not in ("127.0.0.1", "localhost", "::1"):
            raise InputError("--practice-keys: only allowed on a loopback --host")
        if not keys:
            generated = secrets.token_urlsafe(18)
            keys[generated] = "default"
            err(f"API key (client 'default'): {generated}")
        _built, loaded = ensure_built(scenario, seed=scenario_seed, progress=err)
        store = KeyStore(keys, prefix="sim-" if practice_keys else None)
        app_ = create_app(loaded, keys=store, log_path=log, trust_forwarded=practice_keys)
        err(f"serving {scenario} on http://{host}:{port} (log: {log}); Ctrl-C stops")
        uvicorn.run(app_, host=host, port=port, log_level="warning")
        return 0

    run_command(debug, body)


@app.command()
def guard(
    upstream: Annotated[
        str | None, typer.Option(help="The model API to protect (http[s]://host:port).")
    ] = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "127.0.0.1:8080",
    policy: Annotated[
        Path | None, typer.Option(help="Policy YAML (default: the shipped policy).")
    ] = None,
    http_config: Annotated[
        Path | None,
        typer.Option(help="Request/response mapping YAML (the one `assess` uses for HTTP)."),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="Known-good traffic: an inference log, or .npz/.npy inputs."),
    ] = None,
    redis: Annotated[
        str | None, typer.Option("--redis", help="Share state across replicas: redis://…")
    ] = None,
    log: Annotated[
        Path | None, typer.Option(help="Write every prediction to this inference log.")
    ] = None,
    alerts: Annotated[Path | None, typer.Option(help="Append alert findings (JSONL).")] = None,
    webhook: Annotated[str | None, typer.Option(help="POST each alert finding here.")] = None,
    fail_open: Annotated[
        bool,
        typer.Option(
            "--fail-open/--fail-closed",
            help="When the detector/state path errors: pass requests or answer 503.",
        ),
    ] = True,
    client_header: Annotated[str, typer.Option(help="Header naming the client.")] = "X-API-Key",
    strip_prefix: Annotated[
        str | None, typer.Option(help="Drop this prefix from the client header's value.")
    ] = None,
    hash_client_ids: Annotated[
        bool,
        typer.Option(help="Record a keyed hash of the client header, not its value (API keys)."),
    ] = True,
    trust_forwarded: Annotated[
        bool,
        typer.Option(help="Take the source address from X-Forwarded-For (its right-most hop)."),
    ] = False,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(help="A proxy (address or CIDR) whose X-Forwarded-For hop is believed."),
    ] = None,
    input_dim: Annotated[
        int | None, typer.Option(help="Length of an input vector (else the reference's).")
    ] = None,
    admin_allow: Annotated[
        list[str] | None,
        typer.Option(help="Who may read /guard/health and /guard/metrics (default: loopback)."),
    ] = None,
    window: Annotated[int, typer.Option(help="Recent events scored per client.")] = 512,
    warmup: Annotated[
        int, typer.Option(help="Events that build the population without a log --reference.")
    ] = 2000,
    scoring: Annotated[
        str,
        typer.Option(
            help="Score in a separate 'process' (off the proxy's GIL) or a 'thread' of the proxy."
        ),
    ] = "process",
    export_falco: Annotated[
        Path | None,
        typer.Option(
            "--export-falco", help="Write Falco rules for the serving pods to DIR and exit."
        ),
    ] = None,
    llm: Annotated[
        bool,
        typer.Option(
            "--llm", help="In front of an OpenAI-compatible LLM API (the llmhunt detectors)."
        ),
    ] = False,
    canary: Annotated[
        list[str] | None,
        typer.Option(help="--llm: a string planted in the system prompt (redacted, alerted)."),
    ] = None,
    tool_limits: Annotated[
        Path | None,
        typer.Option(help="--llm: YAML/JSON of tool name -> JSON Schema of its arguments."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Reverse proxy in front of a model API running the hunt detectors online: alert,
    throttle, degrade or block per policy (health: /guard/health, metrics: /guard/metrics).
    With --llm, in front of an LLM API: alert, redact, throttle or block."""

    def body() -> int:
        if export_falco is not None:
            from mlhunt.guard.falco import export_falco as _export

            for path in _export(export_falco):
                err(f"wrote {path}")
            return 0
        if upstream is None:
            raise InputError("--upstream: required (the model API to protect)")
        if not llm and (canary or tool_limits is not None):
            raise InputError("--canary and --tool-limits: only with --llm")
        if llm and (http_config or reference or input_dim):
            raise InputError("--http-config, --reference and --input-dim: not with --llm")
        from mlhunt.cli_llm import read_tool_limits
        from mlhunt.guard import GuardConfig, serve

        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit():
            raise InputError(f"--listen: expected HOST:PORT, got {listen!r}")
        config = GuardConfig(
            upstream=upstream,
            policy=policy,
            http_config=http_config,
            reference=reference,
            redis_url=redis,
            log=log,
            alerts=alerts,
            webhook=webhook,
            fail_open=fail_open,
            client_header=client_header,
            strip_prefix=strip_prefix,
            hash_client_ids=hash_client_ids,
            trust_forwarded=trust_forwarded,
            trusted_proxies=tuple(trusted_proxy or ()),
            # the client-id hashing key: from the environment, never a flag (it is a secret)
            id_key=os.environ.get("MLHUNT_GUARD_ID_KEY") or None,
            input_dim=input_dim,
            **({"admin_allow": tuple(admin_allow)} if admin_allow else {}),
            window=window,
            warmup=warmup,
            scoring=scoring,  # type: ignore[arg-type]  # validated
            llm=llm,
            canaries=tuple(canary or ()),
            tool_limits=read_tool_limits(tool_limits),
        )
        serve(
            config,
            host=host,
            port=int(port),
            announce=lambda: err(f"guarding {upstream} on http://{listen}; Ctrl-C stops"),
        )
        return 0

    run_command(debug, body)
