"""What every ``mlhunt`` command shares: the app, option types, one-line errors and exit
codes, format choice and output. Commands live in :mod:`mlhunt.cli` and :mod:`mlhunt.cli_ops`."""

from __future__ import annotations

import io
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

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
ListOpt = Annotated[
    bool,
    typer.Option("--list", help="List what can run (id, mappings, description) and exit."),
]
WideOpt = Annotated[
    bool, typer.Option(help="Table format: add a column of key metrics (verdict, numbers).")
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
        for line in exc.lines():  # every problem found in one pass, each on its own line
            _err(f"error: {line}")
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
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
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
    wide: bool = False,
) -> None:
    """Render ``doc`` in ``fmt`` to ``output`` or stdout (atomically when writing a file);
    ``wide`` adds the key metrics column to the table format."""
    from rich.console import Console

    from mlhunt.report import print_table, render

    if fmt == "table":
        if output is None:
            print_table(doc, Console(highlight=False), wide)
            return
        buf = io.StringIO()  # rendered whole, then written atomically like every format
        width = 220 if wide else 160
        print_table(doc, Console(file=buf, width=width, color_system=None, highlight=False), wide)
        write_atomic(output, buf.getvalue())
        return
    text = render(doc, fmt, source_path=source_path, lines=lines)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        write_atomic(output, text)


def print_catalog(rows: list[tuple[str, list[str], str]]) -> None:
    """``--list``: one line per unit: id, its mappings, the first sentence of its description."""
    width = max((len(r[0]) for r in rows), default=0)
    for unit_id, mappings, description in rows:
        first = " ".join(description.split()).split(". ")[0].rstrip(".")
        if len(first) > 100:
            first = first[:97] + "..."
        sys.stdout.write(f"{unit_id:<{width}}  {', '.join(mappings) or '-'}  {first}\n")


def failing(doc: dict[str, Any], threshold: Severity) -> list[dict[str, Any]]:
    """The open findings at or above ``threshold`` (accepted/mitigated/false-positive don't
    count)."""
    found = [
        f
        for f in doc["findings"]
        if f.get("status", "open") == "open" and Severity(f["severity"]).rank >= threshold.rank
    ]
    return sorted(found, key=lambda f: -Severity(f["severity"]).rank)


def exit_code(doc: dict[str, Any], threshold: Severity | None) -> int:
    """1 when an open finding reaches ``threshold``, after a line per such finding on stderr
    (which ones crossed it: the first 10, then a count)."""
    if threshold is None:
        return 0
    crossed = failing(doc, threshold)
    if not crossed:
        return 0
    _err(
        f"--fail-on {threshold.value}: {len(crossed)} open finding"
        f"{'s' if len(crossed) != 1 else ''} at or above it"
    )
    for f in crossed[:10]:
        _err(f"  {f['severity']}: {f['id']}: {f.get('title', '')}")
    if len(crossed) > 10:
        _err(f"  ... and {len(crossed) - 10} more")
    return EXIT_FINDINGS
