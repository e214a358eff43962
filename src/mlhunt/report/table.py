"""The terminal ``table`` format (rich): findings by risk, a severity summary, dimmed warnings.

Every row shows the finding's id (what ``risk_tracking`` and baselines name); ``wide`` adds the
key numbers of attack and hunt findings (verdict, impact metric, queries; detector score)."""

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


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return text(value)


def key_metrics(f: dict[str, Any]) -> str:
    """The few numbers that explain an attack or hunt finding ('' for other findings)."""
    ev = f.get("evidence") or {}
    if not isinstance(ev, dict):
        return ""
    parts: list[str] = []
    if "verdict" in ev:  # assess
        parts.append(text(ev["verdict"]))
        metric = ev.get("severity_metric")
        if isinstance(metric, str) and metric in ev:
            parts.append(f"{metric} {_number(ev[metric])}")
        if "queries" in ev:
            parts.append(f"queries {_number(ev['queries'])}")
    elif "detector" in ev:  # hunt
        if "score" in ev:
            parts.append(f"score {_number(ev['score'])} / {_number(ev.get('threshold', 1.0))}")
        for key in ("events", "scope"):
            if key in ev:
                parts.append(f"{key} {_number(ev[key])}")
    return "; ".join(parts)


def build_table(doc: dict[str, Any], wide: bool = False) -> Table:
    names = labels(doc)
    table = Table(title=title_of(doc), title_justify="left", expand=False, show_lines=False)
    table.add_column("Id", ratio=2, overflow="fold")
    table.add_column("Severity", no_wrap=True)
    table.add_column("Risk", justify="right", no_wrap=True)
    table.add_column("Framework", no_wrap=True)
    table.add_column("Title", ratio=3, overflow="fold")
    table.add_column("Target", ratio=1, overflow="fold")
    table.add_column("Mappings", ratio=2, overflow="fold")
    table.add_column("Status", no_wrap=True)
    if wide:
        table.add_column("Metrics", ratio=2, overflow="fold")
    for f in sorted_findings(doc):
        sev = severity_of(f)
        status = text(f.get("status") or "open")
        target = text(f.get("target"))
        # Text objects, never markup strings: input like '[bold]' is printed as is.
        extra = [Text(key_metrics(f))] if wide else []
        table.add_row(
            Text(text(f.get("id")), style="dim"),
            Text(sev.upper(), style=SEVERITY_STYLE[sev]),
            Text(_risk(f)),
            Text(framework_of(f)),
            Text(text(f.get("title"))),
            Text(names.get(target, target)),
            Text(mappings_compact(f), style="cyan"),
            Text(status, style="dim" if status in RESOLVED_STATUSES else ""),
            *extra,
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


def print_table(doc: dict[str, Any], console: Console, wide: bool = False) -> None:
    """Print the findings table, the severity summary and the warnings (dimmed)."""
    if sorted_findings(doc):
        console.print(build_table(doc, wide))
    else:
        console.print(Text(title_of(doc), style="bold"))
    console.print(summary_text(doc))
    for w in doc.get("warnings") or []:
        console.print(Text(f"warning: {text(w)}", style="dim"))
