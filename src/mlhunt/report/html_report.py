"""One self-contained HTML file: inline CSS, a little inline JS, the DFD as inline SVG.

Rendered with Jinja2 with autoescaping on, so every string from the input is escaped; the only
markup inserted unescaped is the Graphviz SVG (Graphviz escapes labels itself, and the SVG is
checked for script before it is inlined) and the package's own CSS and JS.
"""

from __future__ import annotations

import base64
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from mlhunt.report._common import (
    RESOLVED_STATUSES,
    SEVERITIES,
    SEVERITY_FILL,
    SEVERITY_RANK,
    counts_by_severity,
    dfd_parts,
    framework_of,
    labels,
    mappings,
    mappings_compact,
    mitigation_checklist,
    number,
    references,
    risk_explanation,
    risk_text,
    severity_of,
    sorted_findings,
    split_mitigation,
    text,
    title_of,
    worst_by_target,
)
from mlhunt.report.model_view import finding_extras, model_context

TEMPLATES = Path(__file__).parent / "templates"

_SVG_START = re.compile(r"<svg[\s>]", re.IGNORECASE)
_SVG_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SVG_UNSAFE = re.compile(
    r"<\s*(script|foreignObject|iframe|object|embed)\b|<[^>]*\son[a-z]+\s*=|javascript:",
    re.IGNORECASE,
)


@cache
def template_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def asset(name: str) -> Markup:
    # The package's own CSS/JS; '</' cannot occur in them, so they cannot close their element.
    content = (TEMPLATES / name).read_text(encoding="utf-8")
    assert "</" not in content, f"{name} must not contain '</'"
    return Markup(content)  # noqa: S704 - trusted package file, not input


def element_anchor(element_id: str) -> str:
    return f"el-{element_id}"


def inline_svg(svg: str) -> str | None:
    """Graphviz SVG prepared for inlining (no prolog, doctype or comments), or None if unsafe."""
    m = _SVG_START.search(svg)
    if m is None:
        return None
    svg = _SVG_COMMENT.sub("", svg[m.start() :]).strip()
    if _SVG_UNSAFE.search(svg):
        return None
    return svg


def _diagram(doc: dict[str, Any]) -> tuple[str | None, str, str]:
    """(inline SVG or None, note when there is no SVG, Mermaid text)."""
    from mlhunt.system.dfd import to_dot, to_mermaid, to_svg

    worst = worst_by_target(doc)
    element_ids = {text(e.get("id")) for e in doc.get("elements") or [] if isinstance(e, dict)}
    colors = {t: SEVERITY_FILL[s] for t, s in worst.items() if t in element_ids}
    links = {eid: f"#{element_anchor(eid)}" for eid in element_ids}
    flow_ids = {text(f.get("id")) for f in doc.get("flows") or [] if isinstance(f, dict)}
    links.update({fid: f"#flow-{fid}" for fid in flow_ids})
    mermaid = to_mermaid(doc, colors=colors)
    try:
        svg = inline_svg(to_svg(to_dot(doc, colors=colors, links=links, ids=True)))
    except RuntimeError as exc:
        return None, f"{exc}.", mermaid
    if svg is None:
        return None, "The diagram could not be embedded safely.", mermaid
    return svg, "", mermaid


def _evidence(value: Any) -> list[tuple[str, str, bool]]:
    if not isinstance(value, dict):
        return [("value", json.dumps(value, indent=2, default=str), True)] if value else []
    out = []
    for k, v in value.items():
        if k == "risk_explanation" or v in (None, "", [], {}):
            continue
        if isinstance(v, dict | list):
            if isinstance(v, list) and all(not isinstance(x, dict | list) for x in v):
                out.append((text(k), ", ".join(text(x) for x in v), False))
            else:
                out.append((text(k), json.dumps(v, indent=2, default=str), True))
        else:
            out.append((text(k), text(v), False))
    return out


def _without_series(evidence: Any) -> Any:
    """Evidence minus the per-event score series (drawn as a timeline, not listed)."""
    if isinstance(evidence, dict) and "series" in evidence:
        return {k: v for k, v in evidence.items() if k != "series"}
    return evidence


def _timeline(evidence: Any) -> dict[str, Any] | None:
    """A hunt alert's per-event score as an inline SVG sparkline (numbers only)."""
    if not isinstance(evidence, dict) or "series" not in evidence:
        return None
    from mlhunt.report.run_html import sparkline  # the run report's, shared

    return sparkline(evidence)


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MAX_IMAGE = 2 << 20


def _images(evidence: Any) -> list[tuple[str, str]]:
    """Plot files named in an assess finding's evidence, inlined as data URIs so the report
    stays one file. Only real PNG files are read (checked by magic bytes), others are skipped."""
    paths = evidence.get("plots") if isinstance(evidence, dict) else None
    out: list[tuple[str, str]] = []
    for p in paths if isinstance(paths, list) else []:
        try:
            path = Path(str(p))
            if not path.is_file() or path.stat().st_size > _MAX_IMAGE:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if data.startswith(_PNG_MAGIC):
            out.append((path.name, "data:image/png;base64," + base64.b64encode(data).decode()))
    return out


def render(doc: dict[str, Any], *, diagram: bool = True) -> str:
    """The HTML report of any mlhunt document (``diagram=False`` skips Graphviz)."""
    names = labels(doc)
    system, elements_raw, flows_raw, boundaries = dfd_parts(doc)
    element_ids = {text(e.get("id")) for e in elements_raw}
    flow_ids = {text(f.get("id")) for f in flows_raw}

    findings = []
    for i, f in enumerate(sorted_findings(doc), 1):
        target = text(f.get("target"))
        sev = severity_of(f)
        status = text(f.get("status") or "open")
        tracking = f.get("tracking") if isinstance(f.get("tracking"), dict) else {}
        if target in element_ids:
            target_anchor = element_anchor(target)
        elif target in flow_ids:
            target_anchor = f"flow-{target}"
        else:
            target_anchor = ""
        findings.append(
            {
                "anchor": f"f-{i}",
                "id": text(f.get("id")),
                "rule_id": text(f.get("rule_id")),
                "title": text(f.get("title")),
                "severity": sev,
                "rank": SEVERITY_RANK[sev],
                "risk": risk_text(f),
                "risk_value": number(f.get("risk")),
                "framework": framework_of(f),
                "source": text(f.get("source")),
                "target": target,
                "target_label": names.get(target, target),
                "target_anchor": target_anchor,
                "maps_compact": mappings_compact(f),
                "maps": mappings(f),
                "refs": references(f),
                "status": status,
                "resolved": status in RESOLVED_STATUSES,
                "tracking": [
                    (text(k), text(v))
                    for k, v in tracking.items()
                    if v and k not in ("threat", "status")
                ],
                "description": text(f.get("description")),
                "explanation": risk_explanation(f),
                "mitigations": [split_mitigation(m) for m in f.get("mitigations") or []],
                "evidence": _evidence(_without_series(f.get("evidence"))),
                "images": _images(f.get("evidence")),
                "timeline": _timeline(f.get("evidence")),
                **finding_extras(f, names),
            }
        )
    by_target: dict[str, list[dict[str, Any]]] = {}
    anchors: dict[str, str] = {}
    for f in findings:
        by_target.setdefault(f["target"], []).append(f)
        anchors.setdefault(f["id"], f["anchor"])

    worst = worst_by_target(doc)
    elements = [
        {
            "id": text(e.get("id")),
            "anchor": element_anchor(text(e.get("id"))),
            "name": text(e.get("name") or e.get("id")),
            "kind": text(e.get("kind")).replace("_", " "),
            "boundary": boundaries.get(text(e.get("boundary")), text(e.get("boundary"))),
            "technology": text(e.get("technology")),
            "description": text(e.get("description")),
            "data": ", ".join(text(d) for d in e.get("data") or []),
            "controls": ", ".join(text(c) for c in e.get("controls") or []),
            "worst": worst.get(text(e.get("id")), ""),
            "findings": by_target.get(text(e.get("id")), []),
        }
        for e in elements_raw
    ]
    flows = [
        {
            "id": text(fl.get("id")),
            "anchor": f"flow-{text(fl.get('id'))}",
            "name": text(fl.get("name") or fl.get("id")),
            "source": names.get(text(fl.get("source")), text(fl.get("source"))),
            "target": names.get(text(fl.get("target")), text(fl.get("target"))),
            "protocol": text(fl.get("protocol")),
            "encrypted": bool(fl.get("encrypted")),
            "authenticated": bool(fl.get("authenticated")),
            "data": ", ".join(text(d) for d in fl.get("data") or []),
            "controls": ", ".join(text(c) for c in fl.get("controls") or []),
            "findings": by_target.get(text(fl.get("id")), []),
        }
        for fl in flows_raw
    ]
    checklist = [
        {
            "action": item.action,
            "complete": item.complete,
            "todo": [(fid, anchors.get(fid, "")) for fid in dict.fromkeys(item.todo)],
            "in_place": item.in_place,
        }
        for item in mitigation_checklist(doc)
    ]

    svg, note, mermaid = (None, "", "")
    if elements_raw and diagram:
        svg, note, mermaid = _diagram(doc)
    elif elements_raw:
        from mlhunt.system.dfd import to_mermaid

        note, mermaid = "Diagram rendering was turned off.", to_mermaid(doc)

    seen_targets = dict.fromkeys(f["target"] for f in findings)
    filter_values = {
        "severity": [s for s in SEVERITIES if any(f["severity"] == s for f in findings)],
        "framework": sorted({f["framework"] for f in findings}),
        "target": [(t, names.get(t, t)) for t in seen_targets],
        "status": sorted({f["status"] for f in findings}),
    }
    counts = counts_by_severity(doc)
    context = {
        "title": title_of(doc),
        "description": text(system.get("description")),
        "version": text(doc.get("version")),
        "command": text(doc.get("command")),
        "n_elements": len(elements_raw),
        "n_flows": len(flows_raw),
        "n_boundaries": len(boundaries),
        "counts": counts,
        "total": sum(counts.values()),
        "has_dfd": bool(elements_raw),
        "svg": Markup(svg) if svg else None,  # noqa: S704 - Graphviz output, checked above
        "dfd_note": note,
        "mermaid": mermaid,
        "fills": SEVERITY_FILL,
        "findings": findings,
        "filter_values": filter_values,
        "elements": elements,
        "flows": flows,
        "checklist": checklist,
        "warnings": [text(w) for w in doc.get("warnings") or []],
        **model_context(doc, findings),
        "css": asset("report.css"),
        "js": asset("report.js"),
    }
    return template_env().get_template("report.html.j2").render(**context)
