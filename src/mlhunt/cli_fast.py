"""The bodies of ``mlhunt scan`` and ``mlhunt model``, and a start-up path that runs them
without the CLI framework.

Both run in pre-commit hooks and CI steps on every change, where start-up is much of their
time: typer builds its parameters through pydantic (~0.2 s of CPU for ``scan`` before any file
is read, ~0.06 s for ``model``). :func:`fast_main` parses their options with argparse and calls
the same :func:`run_scan` / :func:`run_model` as the typer commands in :mod:`mlhunt.cli`.
Anything it does not know (``--help``, an option only the typer command has, a malformed value)
is left to typer, which then owns the usage message and the error; a test keeps the option sets
and defaults in step.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlhunt._io import write_atomic
from mlhunt.cli_output import choose_format, emit, err, exit_code, fail_threshold, run_body
from mlhunt.errors import InputError

__all__ = [
    "fast_main",
    "file_progress",
    "model_parser",
    "run_model",
    "run_scan",
    "scan_parser",
    "write_dfd",
]


def run_model(
    system: Path,
    *,
    fmt: str | None = None,
    output: Path | None = None,
    fail_on: str | None = None,
    dfd: Path | None = None,
    rules: Sequence[Path] | None = None,
    top: int | None = None,
    assume: str = "unknown",
) -> int:
    """Threat-model ``system``, write the report (and the DFD), return the exit code.

    ``top`` keeps the N highest risks in the output (the exit code still sees every finding);
    ``assume`` is what an unstated security fact means: 'unknown' (a question) or 'absent'."""
    from mlhunt.system.loader import definition_lines, parse_system, read_text
    from mlhunt.threatmodel import build_threat_model, load_catalog

    chosen = choose_format(fmt, output)
    threshold = fail_threshold(fail_on)
    if assume not in ("unknown", "absent"):
        raise InputError(f"--assume: expected 'unknown' or 'absent', not {assume!r}")
    if top is not None and top < 1:
        raise InputError(f"--top: expected a whole number of at least 1, not {top}")
    text = read_text(system)
    parsed = parse_system(text, str(system))
    catalog = load_catalog(rules or ())
    tm = build_threat_model(parsed, catalog, assume=assume)
    doc = tm.to_document()
    code = exit_code(doc, threshold)
    if top is not None:
        doc = tm.to_document(top=top)
    for w in tm.warnings:
        err(f"warning: {system}: {w}")
    lines = definition_lines(text) if chosen == "sarif" else None
    emit(doc, chosen, output, source_path=str(system), lines=lines)
    if dfd is not None:
        write_dfd(doc, dfd)
    return code


def write_dfd(doc: dict[str, Any], path: Path) -> None:
    """The data-flow diagram of a threat-model document as .svg, .dot or .mmd (by extension)."""
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


def run_scan(
    paths: Sequence[Path],
    *,
    fmt: str | None = None,
    output: Path | None = None,
    fail_on: str | None = None,
    allow: Sequence[str] | None = None,
    policy: Sequence[Path] | None = None,
    secrets: bool = True,
    max_file_bytes: str | None = None,
    max_entry_bytes: str | None = None,
    max_seconds: float | None = None,
    max_depth: int | None = None,
) -> int:
    """Scan ``paths``, write the report, return the exit code (1 when ``fail_on`` is reached)."""
    from mlhunt.findings import document
    from mlhunt.scan import ScanResult, scan_path
    from mlhunt.scan.limits import limits_from

    limits = limits_from(
        max_file_bytes=max_file_bytes,
        max_entry_bytes=max_entry_bytes,
        max_seconds=max_seconds,
        max_depth=max_depth,
    )
    chosen = choose_format(fmt, output)
    threshold = fail_threshold(fail_on)
    for p in paths:
        if not p.exists() and not p.is_symlink():
            raise InputError("no such file or folder", file=str(p))
    for d in policy or []:
        if not d.is_dir():
            raise InputError("--policy: not a folder", file=str(d))
    total = ScanResult()
    with file_progress() as tick:
        for p in paths:
            r = scan_path(
                p,
                allow=allow or (),
                policy_dirs=policy or (),
                secrets=secrets,
                progress=tick,
                limits=limits,
            )
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


@contextmanager
def file_progress() -> Iterator[Callable[[Path], None]]:
    """A spinner with the current file on a terminal's stderr; silent otherwise."""
    import sys

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


class _NotMine(Exception):
    """The arguments are not for the fast path: typer parses them (and reports any error)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _NotMine(message)


def _common(p: argparse.ArgumentParser) -> None:
    """The report options every command shares (mlhunt.cli_common's FormatOpt ...)."""
    p.add_argument("--format", "-f", dest="fmt", default=None)
    p.add_argument("--output", "-o", type=Path, default=None)
    p.add_argument("--fail-on", default=None)
    p.add_argument("--debug", action="store_true", default=False)


def scan_parser() -> argparse.ArgumentParser:
    """The options of ``mlhunt scan`` (the typer command in :mod:`mlhunt.cli` is the reference)."""
    p = _Parser(prog="mlhunt scan", add_help=False, allow_abbrev=False)
    p.add_argument("paths", nargs="+", type=Path)
    _common(p)
    p.add_argument("--allow", action="append", default=None)
    p.add_argument("--policy", action="append", type=Path, default=None)
    p.add_argument("--secrets", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--max-file-bytes", default=None)
    p.add_argument("--max-entry-bytes", default=None)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--max-depth", type=int, default=None)
    return p


def model_parser() -> argparse.ArgumentParser:
    """The options of ``mlhunt model`` (the typer command in :mod:`mlhunt.cli` is the reference)."""
    p = _Parser(prog="mlhunt model", add_help=False, allow_abbrev=False)
    p.add_argument("system", type=Path)
    _common(p)
    p.add_argument("--dfd", type=Path, default=None)
    p.add_argument("--rules", action="append", type=Path, default=None)
    p.add_argument("--top", type=int, default=None)
    p.add_argument("--assume", default="unknown")
    return p


_COMMANDS = {"scan": (scan_parser, "paths", run_scan), "model": (model_parser, "system", run_model)}


def fast_main(argv: Sequence[str]) -> int | None:
    """Run ``mlhunt scan`` or ``mlhunt model`` from ``argv`` (without the program name) and
    return the exit code, or None when ``argv`` is not something this path understands."""
    if not argv or argv[0] not in _COMMANDS:
        return None
    make_parser, positional, run = _COMMANDS[argv[0]]
    try:
        ns = make_parser().parse_args(list(argv[1:]))
    except _NotMine:
        return None
    options = vars(ns)
    debug = options.pop("debug")
    target = options.pop(positional)
    return run_body(debug, lambda: run(target, **options), argv[0])
