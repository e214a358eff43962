"""Report formats for every mlhunt document: json, sarif, markdown, html and the terminal table.

Formatters work on the JSON document (``document()`` / ``ThreatModel.to_document()``), never on
internal classes, so they render whatever a command produced (model, assess, hunt, scan, run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

#: Formats :func:`render` writes as text.
FORMATS = ("json", "sarif", "markdown", "html")
#: Every ``--format`` value: ``table`` goes to a terminal through :func:`print_table`.
CLI_FORMATS = ("table", *FORMATS)

__all__ = ["CLI_FORMATS", "FORMATS", "print_table", "render"]


def print_table(doc: dict[str, Any], console: Console, wide: bool = False) -> None:
    """``doc`` as tables on ``console``; ``wide`` adds a column of key metrics (rich is
    imported only for this format)."""
    from mlhunt.report.table import print_table as print_tables

    print_tables(doc, console, wide)


def render(
    doc: dict[str, Any],
    fmt: str,
    *,
    source_path: str | None = None,
    lines: dict[str, int] | None = None,
) -> str:
    """``doc`` as text in ``fmt`` (one of :data:`FORMATS`).

    ``source_path`` and ``lines`` (target id -> line in that file) give SARIF results a physical
    location, e.g. the system description and the line where each element or flow is defined.
    """
    fmt = fmt.lower()
    if fmt == "json":
        from mlhunt.report import json_report

        return json_report.render(doc)
    if fmt == "sarif":
        from mlhunt.report import sarif

        return sarif.render(doc, source_path=source_path, lines=lines)
    if doc.get("command") == "run" and fmt in ("markdown", "md", "html"):
        # A run links every part: its own layout (summary, verdicts, evidence, ATLAS view).
        if fmt == "html":
            from mlhunt.report.run_html import render_run_html

            return render_run_html(doc)
        from mlhunt.report.run_markdown import render_run_markdown

        return render_run_markdown(doc)
    if fmt in ("markdown", "md"):
        from mlhunt.report import markdown

        return markdown.render(doc)
    if fmt == "html":
        from mlhunt.report import html_report

        return html_report.render(doc)
    raise ValueError(f"unknown report format {fmt!r} (expected one of: {', '.join(FORMATS)})")
