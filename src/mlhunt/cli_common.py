"""What every ``mlhunt`` command shares: the app, option types, one-line errors and exit
codes, format choice and output. Commands live in :mod:`mlhunt.cli` and :mod:`mlhunt.cli_ops`;
the parts that need no typer live in :mod:`mlhunt.cli_output` and are re-exported here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from mlhunt.cli_output import (
    EXIT_FINDINGS,
    EXIT_INPUT,
    EXIT_INTERNAL,
    FORMATS,
    abandon_workers,
    choose_format,
    emit,
    err,
    exit_code,
    fail_threshold,
    failing,
    interrupt_exits,
    print_catalog,
    run_body,
)

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "FORMATS",
    "abandon_workers",
    "app",
    "choose_format",
    "emit",
    "err",
    "exit_code",
    "fail_threshold",
    "failing",
    "interrupt_exits",
    "print_catalog",
    "run_command",
]

app = typer.Typer(
    name="mlhunt",
    help="Threat hunting for machine-learning systems: threat models, attacks, log hunts, scans.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
    typer.Argument(
        help="Built-in scenario: loan-approval, image-moderation, fraud-detection, "
        "clickstream-recommender (simulate: also llm-helpdesk)."
    ),
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


def run_command(debug: bool, body: Callable[[], int]) -> None:
    """Run a command body (a function nested in the command's) and exit with its code."""
    command = body.__qualname__.split(".")[0].removesuffix("_cmd")
    raise typer.Exit(run_body(debug, body, command))
