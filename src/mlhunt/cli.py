"""The ``mlhunt`` command: parses options, calls the library, renders. Nothing else lives here."""

from __future__ import annotations

import io
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from mlhunt import __version__
from mlhunt._io import write_atomic
from mlhunt.errors import CatalogError, InputError
from mlhunt.findings import Severity

app = typer.Typer(
    name="mlhunt",
    help="Threat hunting for machine-learning systems: threat models, attacks, log hunts, scans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 3

FORMATS = ("table", "json", "sarif", "markdown", "html")
_EXTENSIONS = {".json": "json", ".sarif": "sarif", ".md": "markdown", ".html": "html"}

FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="table, json, sarif, markdown or html (default: table on a terminal, json "
        "otherwise, or from the extension of -o).",
    ),
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
]
FailOnOpt = Annotated[
    str | None,
    typer.Option(
        "--fail-on",
        help="Exit 1 when an open finding is at or above this severity "
        "(info, low, medium, high, critical). Default: never fail on findings.",
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
ScenarioArg = Annotated[
    str,
    typer.Argument(help="Built-in scenario: loan-approval, image-moderation, fraud-detection."),
]
ScenarioSeedOpt = Annotated[
    int, typer.Option("--scenario-seed", help="Seed of the scenario's build (data, model).")
]


def _err(message: str) -> None:
    from rich.console import Console  # imported on use: start-up counts for `scan` in CI hooks

    Console(stderr=True, highlight=False, soft_wrap=True).print(message, markup=False)


def _run(debug: bool, body: Callable[[], int]) -> None:
    """Run a command body; map errors to the exit codes of DESIGN.md."""
    try:
        code = body()
    except InputError as exc:
        if debug:
            traceback.print_exc()
        _err(f"error: {exc}")
        raise typer.Exit(EXIT_INPUT) from None
    except CatalogError as exc:
        if debug:
            traceback.print_exc()
        _err(f"error: threat catalog: {exc}")
        raise typer.Exit(EXIT_INPUT) from None
    except KeyboardInterrupt:
        _err("interrupted")
        _abandon_workers(130)
        raise typer.Exit(130) from None
    except Exception as exc:
        if debug:
            raise
        _err(f"internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)")
        raise typer.Exit(EXIT_INTERNAL) from None
    raise typer.Exit(code)


def _abandon_workers(code: int) -> None:
    """After Ctrl-C, exit without waiting for worker threads (a run's hunts and scans, HTTP
    pools): a thread can be left waiting forever on an import lock that the interrupted main
    thread held (measured: `mlhunt run` hung at exit), and everything they write is written
    atomically, so stopping them is as safe as SIGKILL; `--resume` redoes their part."""
    import threading

    main = threading.main_thread()
    if any(t.is_alive() and not t.daemon and t is not main for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@contextmanager
def _interrupt_exits(code: int = 130) -> Iterator[None]:
    """Ctrl-C ends the process at once instead of raising KeyboardInterrupt at whatever bytecode
    runs: with worker threads importing modules, an interrupt inside importlib can leave an
    import lock held and the process hung (measured on `mlhunt run`). Safe because every
    result is written atomically as it completes: like SIGKILL, and `--resume` does the rest."""
    import signal
    import threading

    # Handlers live in the main thread; an ignored SIGINT (a background job) stays ignored.
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):  # fmt: skip
        yield
        return

    def stop(_signum: int, _frame: Any) -> None:
        os.write(2, b"interrupted\n")
        os._exit(code)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _choose_format(fmt: str | None, output: Path | None) -> str:
    if fmt is None:
        if output is not None:
            return _EXTENSIONS.get(output.suffix.lower(), "json")
        return "table" if sys.stdout.isatty() else "json"
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InputError(
            f"--format: unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})"
        )
    return fmt


def _fail_threshold(value: str | None) -> Severity | None:
    if value is None:
        return None
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise InputError(f"--fail-on: {exc}") from None


def emit(
    doc: dict[str, Any],
    fmt: str,
    output: Path | None,
    *,
    source_path: str | None = None,
    lines: dict[str, int] | None = None,
) -> None:
    """Render ``doc`` in ``fmt`` to ``output`` or stdout (atomically when writing a file)."""
    from rich.console import Console

    from mlhunt.report import print_table, render

    if fmt == "table":
        if output is None:
            print_table(doc, Console(highlight=False))
            return
        buf = io.StringIO()  # rendered whole, then written atomically like every format
        print_table(doc, Console(file=buf, width=160, color_system=None, highlight=False))
        write_atomic(output, buf.getvalue())
        return
    text = render(doc, fmt, source_path=source_path, lines=lines)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        write_atomic(output, text)


def exit_code(doc: dict[str, Any], threshold: Severity | None) -> int:
    """1 when an open finding reaches ``threshold``; accepted/mitigated/false-positive don't."""
    if threshold is None:
        return 0
    for f in doc["findings"]:
        if f.get("status", "open") == "open" and Severity(f["severity"]).rank >= threshold.rank:
            return EXIT_FINDINGS
    return 0


@app.command()
def model(
    system: Annotated[Path, typer.Argument(help="System description (YAML).")],
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
    debug: DebugOpt = False,
) -> None:
    """Build the threat model of SYSTEM: DFD, STRIDE, LINDDUN, ML threats (ATLAS), risk."""

    def body() -> int:
        from mlhunt.system.loader import definition_lines, parse_system, read_text
        from mlhunt.threatmodel import build_threat_model, load_catalog

        chosen = _choose_format(fmt, output)
        threshold = _fail_threshold(fail_on)
        text = read_text(system)
        parsed = parse_system(text, str(system))
        catalog = load_catalog(rules or ())
        tm = build_threat_model(parsed, catalog)
        doc = tm.to_document()
        for w in tm.warnings:
            _err(f"warning: {system}: {w}")
        lines = definition_lines(text) if chosen == "sarif" else None
        emit(doc, chosen, output, source_path=str(system), lines=lines)
        if dfd is not None:
            write_dfd(doc, dfd)
        return exit_code(doc, threshold)

    _run(debug, body)


def write_dfd(doc: dict[str, Any], path: Path) -> None:
    from mlhunt.system import dfd as dfdmod

    suffix = path.suffix.lower()
    if suffix == ".svg":
        write_atomic(path, dfdmod.to_svg(dfdmod.to_dot(doc)))
    elif suffix == ".dot":
        write_atomic(path, dfdmod.to_dot(doc))
    elif suffix in (".mmd", ".mermaid"):
        write_atomic(path, dfdmod.to_mermaid(doc))
    else:
        raise InputError(f"--dfd: unsupported extension {suffix!r} (expected .svg, .dot or .mmd)")


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
        from mlhunt.findings import document
        from mlhunt.scan import ScanResult, scan_path
        from mlhunt.scan.limits import limits_from

        limits = limits_from(max_file_bytes=max_file_bytes, max_entry_bytes=max_entry_bytes,
                             max_seconds=max_seconds, max_depth=max_depth)  # fmt: skip
        chosen = _choose_format(fmt, output)
        threshold = _fail_threshold(fail_on)
        for p in paths:
            if not p.exists() and not p.is_symlink():
                raise InputError("no such file or folder", file=str(p))
        for d in policy or []:
            if not d.is_dir():
                raise InputError("--policy: not a folder", file=str(d))
        total = ScanResult()
        with _file_progress() as tick:
            for p in paths:
                r = scan_path(p, allow=allow or (), policy_dirs=policy or (), secrets=secrets,
                              progress=tick, limits=limits)  # fmt: skip
                total.findings.extend(r.findings)
                total.files += r.files
                total.bytes += r.bytes
                total.skipped.extend(r.skipped)
        doc = document(
            "scan",
            total.findings,
            files_scanned=total.files,
            bytes_scanned=total.bytes,
            skipped=total.skipped,
        )
        emit(doc, chosen, output)
        return exit_code(doc, threshold)

    _run(debug, body)


@app.command()
def hunt(
    paths: Annotated[
        list[str], typer.Argument(help="Log files, folders or globs (JSONL, CSV, Parquet; .gz).")
    ],
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    engine: Annotated[str, typer.Option(help="duckdb (default) or spark.")] = "duckdb",
    spark_master: Annotated[
        str | None,
        typer.Option("--spark-master", help="Spark master URL (default: local[*])."),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="Known-good inputs (.npz with x, .npy, or a log file): the baseline."),
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
    debug: DebugOpt = False,
) -> None:
    """Hunt inference-API logs for model extraction, evasion probing, membership and inversion
    probing, sybil extraction and API abuse; alerts are findings per client or source address.
    A hunt is one pass: its report and Sigma files are written whole at the end (never half a
    file), so an interrupted hunt is resumed by running it again."""

    def body() -> int:
        import importlib

        from mlhunt.hunt.api import hunt as run_hunt

        chosen = _choose_format(fmt, output)
        threshold = _fail_threshold(fail_on)
        sigma = None
        if export_sigma is not None or sigma_backend is not None:
            try:
                sigma = importlib.import_module("mlhunt.hunt.sigma")
            except ModuleNotFoundError:
                raise InputError("--export-sigma: Sigma export is not available in this "
                                 "installation") from None  # fmt: skip
        with _interrupt_exits():  # nothing is written before the end: Ctrl-C loses nothing
            result = run_hunt(paths, engine=engine, reference=reference, detectors=detector,
                              spark_master=spark_master)  # fmt: skip
        _err(result.read.summary())
        doc = result.document()
        if sigma is not None:
            if export_sigma is None:
                raise InputError("--sigma-backend: needs --export-sigma DIR")
            written = sigma.export_sigma([d.spec.model_dump() for d in result.detectors],
                                         export_sigma, backend=sigma_backend)  # fmt: skip
            doc["sigma"] = {"folder": str(export_sigma), "files": [str(p) for p in written]}
            _err(f"wrote {len(written)} Sigma files under {export_sigma}/")
        emit(doc, chosen, output)
        return exit_code(doc, threshold)

    _run(debug, body)


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

        chosen = _choose_format(fmt, output)
        threshold_ = _fail_threshold(fail_on)
        for d in catalog or []:
            if not d.is_dir():
                raise InputError("--catalog: not a folder", file=str(d))
        attacks = (
            tuple(a for d in catalog for a in load_attacks(d)) if catalog else default_attacks()
        )
        params = parse_params(param or (), attacks)
        limits = parse_thresholds(threshold or (), attacks, thresholds)
        opts = TargetOptions(
            target=target, scenario=scenario, kind=kind, factory=factory, spec=spec, data=data,
            http_config=http_config, api_key_env=api_key_env, trust=trust,
            in_process=in_process, scenario_seed=scenario_seed, seed=seed, log_dir=state,
        )  # fmt: skip
        with open_target(opts) as (tgt, dat), observer_for(sys.stderr, _err) as obs:
            report = assess(
                tgt, dat, catalog=attacks, select=attack or (), params=params,
                max_queries=max_queries, max_seconds=max_seconds, seed=seed,
                state_dir=state or default_state_dir(tgt), resume=resume, thresholds=limits,
                observer=obs, debug=debug,
            )  # fmt: skip
        doc = report.document()
        emit(doc, chosen, output)
        return exit_code(doc, threshold_)

    _run(debug, body)


@app.command()
def harden(
    project: Annotated[
        Path | None,
        typer.Argument(help="Project file (mlhunt.yaml) whose 'harden:' section to run."),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="Built-in scenario: loan-approval, image-moderation, fraud-detection."),
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

        chosen = _choose_format(fmt, output)
        threshold_ = _fail_threshold(fail_on)
        # Progress lines on a terminal (or with --debug); stdout stays the report.
        say = _err if (debug or sys.stderr.isatty()) else (lambda _m: None)
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
            scenario, select=mitigation or (), params=params, seed=seed,
            scenario_seed=scenario_seed, out_dir=state, progress=say,
        )  # fmt: skip
        doc = report.document()
        emit(doc, chosen, output)
        return exit_code(doc, threshold_)

    _run(debug, body)


@contextmanager
def _file_progress() -> Iterator[Callable[[Path], None]]:
    """A spinner with the current file on a terminal's stderr; silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda _p: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.completed} files"),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)
        yield lambda p: bar.update(task, advance=1, description=str(p)[-60:])


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

        written = run_demo(examples, output, only=scenario, quick=quick, progress=_err)
        _err(f"wrote {len(written)} reports under {output}/ (open {output}/index.html)")
        return 0

    _run(debug, body)


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

        chosen = _choose_format(fmt, output)
        proj = load_project(project)
        if out_dir is not None:
            proj.output = str(out_dir.resolve())
        threshold = _fail_threshold(fail_on) or proj.fail_on
        previous = None
        if baseline is not None:
            from mlhunt.system.loader import read_text

            try:
                previous = json.loads(read_text(baseline))
            except json.JSONDecodeError as exc:
                msg = f"not JSON ({exc.msg})"
                raise InputError(msg, file=str(baseline), line=exc.lineno) from None
        with _interrupt_exits():
            result = run_project(proj, progress=_err, resume=resume)
        if previous is not None:
            b = compare_baseline(result.document, previous)
            _err(f"baseline: {len(b['new'])} new, {len(b['unchanged'])} unchanged, "
                 f"{len(b['fixed'])} fixed")  # fmt: skip
        written = write_outputs(result)
        _err(f"wrote {', '.join(str(p) for p in written)}")
        if output is not None or fmt is not None:
            emit(result.document, chosen, output)
        return exit_code(result.document, threshold)

    _run(debug, body)


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
    """Write a commented starter project file (mlhunt.yaml) for `mlhunt run`."""

    def body() -> int:
        from mlhunt.run.init import starter

        if scenario is not None:
            from mlhunt.scenarios import get

            get(scenario)
        if output.exists() and not force:
            raise InputError("already exists (use --force to overwrite)", file=str(output))
        write_atomic(output, starter(system=system, scenario=scenario))
        _err(f"wrote {output}")
        return 0

    _run(debug, body)


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
    model: DIR/logs.jsonl (inference-log schema) and DIR/labels.json (ground truth)."""

    def body() -> int:
        from mlhunt.scenarios import ensure_built, get
        from mlhunt.scenarios.traffic import check_live_url
        from mlhunt.scenarios.traffic import simulate as run_simulation

        get(scenario)  # unknown scenario: one clear line before any work
        if live is not None:
            check_live_url(live)
        if not scale > 0:
            raise InputError(f"--scale: expected a positive number, got {scale}")
        _built, loaded = ensure_built(scenario, seed=scenario_seed, progress=_err)
        result = run_simulation(loaded, out, seed=seed, live_url=live, scale=scale, progress=_err)
        _err(result.summary())
        return 0

    _run(debug, body)


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
            scenario, seed=seed, directory=output, progress=_err, force=True, options=options
        )
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in built.metrics.items())
        _err(f"built {scenario} (seed {seed}) in {built.directory}: {metrics}")
        return 0

    _run(debug, body)


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
            _err(f"API key (client 'default'): {generated}")
        _built, loaded = ensure_built(scenario, seed=scenario_seed, progress=_err)
        store = KeyStore(keys, prefix="sim-" if practice_keys else None)
        app_ = create_app(loaded, keys=store, log_path=log, trust_forwarded=practice_keys)
        _err(f"serving {scenario} on http://{host}:{port} (log: {log}); Ctrl-C stops")
        uvicorn.run(app_, host=host, port=port, log_level="warning")
        return 0

    _run(debug, body)


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
        bool, typer.Option(help="Record a hash of the client header, not its value (API keys).")
    ] = False,
    trust_forwarded: Annotated[
        bool, typer.Option(help="Take the source address from X-Forwarded-For (trusted only).")
    ] = False,
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
    debug: DebugOpt = False,
) -> None:
    """Reverse proxy in front of a model API running the hunt detectors online: alert,
    throttle, degrade or block per policy (health: /guard/health, metrics: /guard/metrics)."""

    def body() -> int:
        if export_falco is not None:
            from mlhunt.guard.falco import export_falco as _export

            for path in _export(export_falco):
                _err(f"wrote {path}")
            return 0
        if upstream is None:
            raise InputError("--upstream: required (the model API to protect)")
        from mlhunt.guard import GuardConfig, serve

        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit():
            raise InputError(f"--listen: expected HOST:PORT, got {listen!r}")
        config = GuardConfig(
            upstream=upstream, policy=policy, http_config=http_config, reference=reference,
            redis_url=redis, log=log, alerts=alerts, webhook=webhook, fail_open=fail_open,
            client_header=client_header, strip_prefix=strip_prefix,
            hash_client_ids=hash_client_ids,
            trust_forwarded=trust_forwarded, window=window, warmup=warmup,
            scoring=scoring,  # type: ignore[arg-type]  # GuardConfig validates it
        )  # fmt: skip
        serve(
            config,
            host=host,
            port=int(port),
            announce=lambda: _err(f"guarding {upstream} on http://{listen}; Ctrl-C stops"),
        )
        return 0

    _run(debug, body)


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
