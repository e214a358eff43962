"""``mlhunt demo``: run mlhunt on the seed scenarios and write one report folder per scenario.

Today the demo threat-models each scenario; attacks, hunts and scans join it as they land.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from mlhunt.errors import InputError

_INDEX = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlhunt demo</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2330}
table{border-collapse:collapse;width:100%}th,td{padding:.4rem .6rem;border-bottom:1px solid #ddd;
text-align:left}.critical{color:#8b0000;font-weight:600}.high{color:#c0392b}.medium{color:#b9770e}
.low{color:#1f618d}.info{color:#566573}
</style></head><body>
<h1>mlhunt demo</h1>
<p>Threat models of the seed scenarios. Open a system for its data-flow diagram, threats,
risks and mitigations.</p>
<table><thead><tr><th>System</th><th>Threats</th>
{% for s in severities %}<th class="{{ s }}">{{ s }}</th>{% endfor %}
<th>Deployment scan</th><th>Other formats</th></tr></thead><tbody>
{% for r in rows %}<tr><td><a href="{{ r.dir }}/threat-model.html">{{ r.name }}</a></td>
<td>{{ r.total }}</td>{% for s in severities %}<td class="{{ s }}">{{ r.counts[s] }}</td>
{% endfor %}<td>{% if r.scan is not none %}<a href="{{ r.dir }}/scan.html">{{ r.scan }}
findings</a>{% else %}none{% endif %}</td><td><a href="{{ r.dir }}/threat-model.md">Markdown</a> ·
<a href="{{ r.dir }}/threat-model.sarif">SARIF</a> ·
<a href="{{ r.dir }}/threat-model.json">JSON</a></td></tr>{% endfor %}
</tbody></table></body></html>
"""
)


def scenarios(examples: Path) -> list[Path]:
    """Scenario folders under ``examples`` (those holding a system.yaml), sorted by name."""
    if not examples.is_dir():
        raise InputError("examples folder not found", file=str(examples))
    return sorted(p.parent for p in examples.glob("*/system.yaml"))


def run_demo(
    examples: Path,
    out_dir: Path,
    *,
    only: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> list[Path]:
    """Threat-model every scenario (or ``only`` one); return the files written."""
    from mlhunt._io import write_atomic
    from mlhunt.findings import document
    from mlhunt.report import render
    from mlhunt.scan import scan_path
    from mlhunt.system import dfd
    from mlhunt.system.loader import definition_lines, parse_system, read_text
    from mlhunt.threatmodel import build_threat_model

    found = scenarios(examples)
    if only is not None:
        found = [p for p in found if p.name == only]
        if not found:
            names = ", ".join(p.name for p in scenarios(examples))
            raise InputError(f"unknown scenario {only!r} (available: {names})")
    written: list[Path] = []
    rows: list[dict[str, Any]] = []
    for folder in found:
        path = folder / "system.yaml"
        progress(f"[{folder.name}] threat model")
        text = read_text(path)
        tm = build_threat_model(parse_system(text, str(path)))
        doc = tm.to_document()
        target = out_dir / folder.name
        outputs = {
            "threat-model.json": render(doc, "json"),
            "threat-model.sarif": render(
                doc, "sarif", source_path=str(path), lines=definition_lines(text)
            ),
            "threat-model.md": render(doc, "markdown"),
            "threat-model.html": render(doc, "html"),
            "dfd.svg": dfd.to_svg(dfd.to_dot(doc)),
        }
        deploy = folder / "deploy"
        scanned = None
        if deploy.is_dir():
            progress(f"[{folder.name}] scan of {deploy}")
            result = scan_path(deploy)
            scanned = document(
                "scan", result.findings, files_scanned=result.files, bytes_scanned=result.bytes
            )
            outputs["scan.json"] = render(scanned, "json")
            outputs["scan.sarif"] = render(scanned, "sarif")
            outputs["scan.html"] = render(scanned, "html")
        for name, content in outputs.items():
            write_atomic(target / name, content)
            written.append(target / name)
        summary = doc["summary"]["by_severity"]
        rows.append(
            {
                "dir": folder.name,
                "name": tm.system.name,
                "total": len(tm.findings),
                "counts": summary,
                "scan": scanned["summary"]["total"] if scanned else None,
            }
        )
        progress(
            f"[{folder.name}] {len(tm.findings)} threats: "
            + ", ".join(f"{v} {k}" for k, v in summary.items() if v)
        )
    index = out_dir / "index.html"
    severities = ["critical", "high", "medium", "low", "info"]
    write_atomic(index, _INDEX.render(rows=rows, severities=severities))
    written.append(index)
    return written
