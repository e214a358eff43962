"""The index page of a multi-system run (``mlhunt demo``, several project files): one row per
system with its threat counts, what was proven and observed, and a link to its own report.

Self-contained like the per-system report (inline CSS, no script needed); every string from the
documents is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlhunt.report import run_view as rv
from mlhunt.report._common import SEVERITIES, severity_of, text
from mlhunt.report.html_report import asset, template_env


def system_row(doc: dict[str, Any], href: str) -> dict[str, Any]:
    """What the index shows of one run document."""
    system = doc.get("system") if isinstance(doc.get("system"), dict) else {}
    threats = rv.threats(doc)
    counts = dict.fromkeys(SEVERITIES, 0)
    by_status = dict.fromkeys(rv.STATUS_ORDER[:-1], 0)
    for t in threats:
        counts[severity_of(t)] += 1
        for s in rv.statuses(t):
            if s in by_status:
                by_status[s] += 1
    s = rv.summarize(doc)
    return {
        "name": text(system.get("name")) or href,
        "description": text(system.get("description")),
        "href": href,
        "counts": counts,
        "status": by_status,
        "top": [(severity_of(t), text(t.get("title"))) for t in s.top[:3]],
        "proven": [h for _, hs in s.proven for h in hs][:3],
        "alerts": s.observed.alerts,
        "clients": len(s.observed.targets),
        "scan": len(rv.evidence_findings(doc, "scan")),
        "coverage": rv.evidence_line(
            doc.get("summary") if isinstance(doc.get("summary"), dict) else {}
        ),
        "worst": next((x for x in SEVERITIES if counts[x]), "info"),
    }


def render_run_index(runs: Sequence[tuple[dict[str, Any], str]], *, title: str = "") -> str:
    """The index of several run reports: ``runs`` pairs each run document with the relative
    link to its HTML report (e.g. ``loan-approval/report.html``)."""
    rows = [system_row(doc, href) for doc, href in runs]
    version = next((text(d.get("version")) for d, _ in runs if d.get("version")), "")
    template = template_env().get_template("run_index.html.j2")
    title = title or "mlhunt run: all systems"
    return template.render(title=title, rows=rows, version=version, css=asset("run.css"))
