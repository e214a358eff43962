"""The terminal ``table`` format (rich): findings by risk, a severity summary, dimmed warnings."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlhunt.report._common import (
    RESOLVED_STATUSES,
    SEVERITIES,
    counts_by_severity,
    framework_of,
    labels,
    mappings_compact,
    severity_of,
    sorted_findings,
    text,
    title_of,
)

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "green",
    "info": "blue",
}


def _risk(f: dict[str, Any]) -> str:
    if f.get("risk") is None:
        return "-"
    return f"{float(f['risk']):.1f}".removesuffix(".0")


def build_table(doc: dict[str, Any]) -> Table:
    names = labels(doc)
    table = Table(title=title_of(doc), title_justify="left", expand=False, show_lines=False)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Risk", justify="right", no_wrap=True)
    table.add_column("Framework", no_wrap=True)
    table.add_column("Title", ratio=3, overflow="fold")
    table.add_column("Target", ratio=1, overflow="fold")
    table.add_column("Mappings", ratio=2, overflow="fold")
    table.add_column("Status", no_wrap=True)
    for f in sorted_findings(doc):
        sev = severity_of(f)
        status = text(f.get("status") or "open")
        target = text(f.get("target"))
        # Text objects, never markup strings: input like '[bold]' is printed as is.
        table.add_row(
            Text(sev.upper(), style=SEVERITY_STYLE[sev]),
            Text(_risk(f)),
            Text(framework_of(f)),
            Text(text(f.get("title"))),
            Text(names.get(target, target)),
            Text(mappings_compact(f), style="cyan"),
            Text(status, style="dim" if status in RESOLVED_STATUSES else ""),
            style="dim" if status in RESOLVED_STATUSES else None,
        )
    return table


def summary_text(doc: dict[str, Any]) -> Text:
    counts = counts_by_severity(doc)
    total = sum(counts.values())
    out = Text(f"{total} finding{'s' if total != 1 else ''}: ", style="bold")
    for i, sev in enumerate(SEVERITIES):
        if i:
            out.append(", ")
        out.append(f"{counts[sev]} {sev}", style=SEVERITY_STYLE[sev] if counts[sev] else "dim")
    return out


def print_table(doc: dict[str, Any], console: Console) -> None:
    """Print the findings table, the severity summary and the warnings (dimmed)."""
    if sorted_findings(doc):
        console.print(build_table(doc))
    else:
        console.print(Text(title_of(doc), style="bold"))
    console.print(summary_text(doc))
    for w in doc.get("warnings") or []:
        console.print(Text(f"warning: {text(w)}", style="dim"))
