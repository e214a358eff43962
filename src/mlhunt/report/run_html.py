"""The report of ``mlhunt run``: one self-contained HTML file per system.

The input is the run document described in :mod:`mlhunt.report.run_view`. Nothing is loaded at
view time: CSS and JS are inlined, the DFD is inline Graphviz SVG (checked by
:func:`mlhunt.report.html_report._inline_svg`), plots are PNG files read from ``assets_dir`` and
inlined as ``data:`` URIs, hunt timelines are SVG sparklines drawn here from numbers only.
Jinja2 autoescaping escapes every string taken from the input.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from markupsafe import Markup

from mlhunt.report import run_view as rv
from mlhunt.report._common import (
    SEVERITIES,
    SEVERITY_FILL,
    SEVERITY_RANK,
    dfd_parts,
    labels,
    mappings_compact,
    number,
    references,
    risk_explanation,
    severity_of,
    split_mitigation,
    text,
)
from mlhunt.report.html_report import asset, inline_svg, template_env

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MAX_IMAGE = 8 << 20  # a patch-example grid is well under 1 MB; bigger is not a plot
_MAX_POINTS = 300  # sparkline points; longer series are thinned
_NODE = re.compile(r'<g id="(node\d+)" class="node">(\s*<title>)([^<]*)(</title>)')


def _plots(ev: dict[str, Any], assets: Path | None) -> list[dict[str, str]]:
    """Each plot named in the evidence as a data URI, or marked missing (never an error)."""
    out: list[dict[str, str]] = []
    for p in ev.get("plots") or []:
        rel = Path(text(p))
        path = rel if rel.is_absolute() or assets is None else assets / rel
        item = {"name": rel.name, "path": text(p), "uri": "", "problem": "plot missing"}
        try:
            if path.is_file():
                if path.stat().st_size > _MAX_IMAGE:
                    item["problem"] = "plot too large to embed"
                else:
                    data = path.read_bytes()
                    if data.startswith(_PNG_MAGIC):
                        item["uri"] = "data:image/png;base64," + base64.b64encode(data).decode()
                        item["problem"] = ""
                    else:
                        item["problem"] = "not a PNG file"
        except OSError as exc:
            item["problem"] = f"plot unreadable ({exc.strerror or exc})"
        out.append(item)
    return out


def _series(raw: Any) -> list[tuple[float, float]]:
    """A hunt score series in any of the documented shapes, as (event, score) points."""
    if isinstance(raw, dict):
        xs = raw.get("events") or raw.get("x") or []
        ys = raw.get("scores") or raw.get("y") or []
        raw = list(zip(xs, ys, strict=False))
    pts: list[tuple[float, float]] = []
    for i, v in enumerate(raw if isinstance(raw, list) else [], 1):
        if isinstance(v, int | float) and not isinstance(v, bool):
            pts.append((float(i), float(v)))
        elif isinstance(v, list | tuple) and len(v) >= 2:
            pts.append((number(v[0]), number(v[1])))
        elif isinstance(v, dict):
            pts.append((number(v.get("event", i)), number(v.get("score", v.get("value")))))
    step = max(1, -(-len(pts) // _MAX_POINTS))
    if step == 1:
        return pts
    return pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else [])


def sparkline(ev: dict[str, Any], w: float = 520.0, h: float = 90.0) -> dict[str, Any] | None:
    """Polyline coordinates (numbers only) of a per-event score series, with the alert marked."""
    pts = _series(ev.get("series"))
    if len(pts) < 2:
        return None
    pad = 4.0
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    threshold = ev.get("threshold")
    ys = [p[1] for p in pts] + ([number(threshold)] if threshold is not None else [])
    y0, y1 = min(0.0, *ys), max(ys) or 1.0

    def sx(x: float) -> float:
        return round(pad + (x - x0) / ((x1 - x0) or 1) * (w - 2 * pad), 1)

    def sy(y: float) -> float:
        return round(h - pad - (y - y0) / ((y1 - y0) or 1) * (h - 2 * pad), 1)

    points = " ".join(f"{sx(x)},{sy(y)}" for x, y in pts)
    out: dict[str, Any] = {
        "w": w,
        "h": h,
        "x0": rv.num(x0),
        "x1": rv.num(x1),
        "ymax": rv.num(y1),
        "points": points,
        "alert_x": None,
        "threshold_y": None,
    }
    at = ev.get("detected_at_event")
    if isinstance(at, int | float) and x0 <= at <= x1:
        out["alert_x"] = sx(float(at))
    if threshold is not None:
        out["threshold_y"] = sy(number(threshold))
    return out


def _evidence_card(f: dict[str, Any], anchor: str, assets: Path | None) -> dict[str, Any]:
    ev = f.get("evidence") if isinstance(f.get("evidence"), dict) else {}
    src = text(f.get("source"))
    others = {"hunt": "observed", "harden": "mitigated" if ev.get("proven") else "unproven"}
    verdict = text(ev.get("verdict")) if src == "assess" else others.get(src, "")
    return {
        "anchor": anchor,
        "id": text(f.get("id")),
        "rule_id": text(f.get("rule_id")),
        "source": src,
        "title": text(f.get("title")),
        "target": text(f.get("target")),
        "severity": severity_of(f),
        "verdict": verdict,
        "headline": rv.headline(f),
        "result": rv.headline(f),
        "summary": text(ev.get("summary") or ev.get("message")),
        "metrics": rv.metrics(ev),
        "plots": _plots(ev, assets),
        "spark": sparkline(ev) if src == "hunt" else None,
        "mini": sparkline(ev, 240.0, 36.0) if src == "hunt" else None,
        "detector": text(ev.get("detector")),
        "first": text(ev.get("first_event_ts")),
        "at": _opt(ev.get("detected_at_event")),
        "score": _opt(ev.get("score")),
        "samples": [text(s) for s in (ev.get("sample_queries") or [])[:3]],
        "mitigations": [split_mitigation(m).action for m in f.get("mitigations") or []],
    }


def _diagram(doc: dict[str, Any], anchors: dict[str, str]) -> tuple[Markup | None, str]:
    """DFD SVG with each element node classed by its worst post-evidence risk and statuses."""
    from mlhunt.system.dfd import to_dot, to_svg

    worst = rv.worst_by_element(doc)
    colors = {t: SEVERITY_FILL[s] for t, (s, _) in worst.items() if t in anchors}
    links = {eid: f"#{a}" for eid, a in anchors.items()}
    try:
        svg = inline_svg(to_svg(to_dot(doc, colors=colors, links=links)))
    except RuntimeError as exc:
        return None, f"{exc}."
    if svg is None:
        return None, "The diagram could not be embedded safely."

    def classed(m: re.Match[str]) -> str:
        eid = html.unescape(m.group(3))
        sev, sts = worst.get(eid, ("none", set()))
        cls = " ".join(
            ["node", f"risk-{sev}", *(f"is-{s}" for s in ("validated", "observed") if s in sts)]
        )
        el = f' data-el="{anchors[eid]}"' if eid in anchors else ""
        return f'<g id="{m.group(1)}" class="{cls}"{el}>{m.group(2)}{m.group(3)}{m.group(4)}'

    return Markup(_NODE.sub(classed, svg)), ""  # noqa: S704 - Graphviz output, checked above


def _opt(value: Any) -> str:
    return rv.num(value) if value is not None else ""


def _threat_row(
    t: dict[str, Any],
    i: int,
    names: dict[str, str],
    marks: dict[str, str],
    anchors: dict[str, str],
    cards: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    v = t.get("validation") if isinstance(t.get("validation"), dict) else {}
    target = text(t.get("target"))
    sts = rv.statuses(t)
    sev = severity_of(t)
    before = v.get("severity_before")
    linked = [cards[text(e)] for e in v.get("evidence") or [] if text(e) in cards]
    return {
        "anchor": f"t-{i}",
        "id": text(t.get("id")),
        "rule_id": text(t.get("rule_id")),
        "title": text(t.get("title")),
        "severity": sev,
        "rank": SEVERITY_RANK[sev],
        "risk": number(t.get("risk")),
        "risk_text": rv.num(t.get("risk")) if t.get("risk") is not None else "-",
        "risk_before": rv.num(v["risk_before"]) if v.get("risk_before") is not None else "",
        "severity_before": text(before) if before and before != sev else "",
        "likelihood": rv.num(t.get("likelihood")),
        "impact": rv.num(t.get("impact")),
        "framework": text(t.get("framework") or "-"),
        "target": target,
        "target_label": names.get(target, target),
        "target_anchor": anchors.get(target, ""),
        "maps": mappings_compact(t),
        "refs": references(t),
        "statuses": sts,
        "group": sts[0] if sts in (["modelled"], ["untested"]) else "tested",
        "reason": text(v.get("reason")),
        "checks": [text(c.get("action")) for c in v.get("checks") or [] if isinstance(c, dict)],
        "explanation": risk_explanation(t),
        "description": text(t.get("description")),
        "mitigations": [split_mitigation(m) for m in t.get("mitigations") or []],
        "evidence": linked,
        "attacks": [c for c in linked if c["source"] != "hunt"],
        "alerts": [c for c in linked if c["source"] == "hunt"],
        "mark": marks.get(text(t.get("id")), ""),
    }


def _by_rule(found: list[dict[str, Any]], rows: dict[str, Any], cards: dict[str, Any]) -> Any:
    """(rule id, anchor of its first finding, how many) per rule: one rule on five flows is one
    link with x5, not five links with the same name."""
    out: dict[str, list[Any]] = {}
    for f in found:
        row = rows.get(text(f.get("id"))) or cards[text(f.get("id"))]
        out.setdefault(row["rule_id"] or row["title"], [row["anchor"], 0])[1] += 1
    return [(rule, anchor, n) for rule, (anchor, n) in out.items()]


def _count(value: Any) -> str:
    """A count that may come as a number or as the list of the things counted."""
    return rv.num(len(value)) if isinstance(value, list | dict) else rv.num(value or 0)


def _parts(parts: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """What ran, flattened to display strings (the template never probes optional keys)."""

    def rows(key: str) -> list[dict[str, Any]]:
        return [p for p in parts.get(key) or [] if isinstance(p, dict)]

    hunt = []
    for p in rows("hunt"):
        read = p.get("read") if isinstance(p.get("read"), dict) else {}
        hunt.append(
            {
                "logs": text(p.get("logs")),
                "engine": text(p.get("engine")),
                "records": _count(read.get("records")),
                "malformed": _count(read.get("malformed")),
                "errors": _count(read["errors"]) if read.get("errors") else "",
                "eps": rv.num(p["events_per_second"]) if p.get("events_per_second") else "",
            }
        )
    return {
        "assess": [
            {
                "target": text(p.get("target")),
                "element": text(p.get("element")),
                "attacks": _count(p.get("attacks")),
                "queries": rv.num(p.get("queries") or 0),
                "seconds": rv.num(p.get("seconds") or 0),
            }
            for p in rows("assess")
        ],
        "hunt": hunt,
        "scan": [
            {"path": text(p.get("path")), "files": _count(p.get("files_scanned"))}
            for p in rows("scan")
        ],
    }


def render_run_html(doc: dict[str, Any], assets_dir: str | Path | None = None) -> str:
    """The HTML report of a run document; plot paths resolve against ``assets_dir`` (default:
    the document's own ``assets_dir``)."""
    assets_raw = assets_dir if assets_dir is not None else doc.get("assets_dir")
    assets = Path(text(assets_raw)) if assets_raw else None
    names = labels(doc)
    system, elements_raw, flows_raw, boundaries = dfd_parts(doc)
    el_anchor = {text(e.get("id")): f"el-{i}" for i, e in enumerate(elements_raw, 1)}
    fl_anchor = {text(f.get("id")): f"fl-{i}" for i, f in enumerate(flows_raw, 1)}
    target_anchor = {**el_anchor, **fl_anchor}
    marks = rv.baseline_mark(doc)

    evidence = rv.evidence_findings(doc)
    cards = {
        text(f.get("id")): _evidence_card(f, f"ev-{i}", assets) for i, f in enumerate(evidence, 1)
    }
    threats = [
        _threat_row(t, i, names, marks, target_anchor, cards)
        for i, t in enumerate(rv.threats(doc), 1)
    ]
    row_of = {r["id"]: r for r in threats}
    for c in cards.values():  # back-links: which threats each piece of evidence supports
        c["threats"] = [r for r in threats if c in r["evidence"]]
        # Drawn in full (plots) once, under its first threat; elsewhere it is a link.
        c["home"] = c["threats"][0]["anchor"] if c["threats"] else ""
        if c["source"] == "scan":
            c["verdict"] = "validated" if c["threats"] else ""
            c["result"] = c["summary"] or c["headline"]

    s = rv.summarize(doc)
    summary = {
        "top": [row_of[text(t.get("id"))] for t in s.top],
        "proven": [(row_of[text(t.get("id"))], h) for t, h in s.proven],
        "refuted": [(row_of[text(t.get("id"))], h) for t, h in s.refuted],
        "observed": s.observed,
        "observed_threats": [row_of[text(t.get("id"))] for t in s.observed.threats],
        "fix_first": [(a, [row_of[text(t.get("id"))] for t in ts]) for a, ts in s.fix_first],
        "untested": s.untested,
    }
    worst = rv.worst_by_element(doc)
    by_target: dict[str, list[dict[str, Any]]] = {}
    for r in threats:
        by_target.setdefault(r["target"], []).append(r)
    places = [
        {
            "anchor": target_anchor[text(x.get("id"))],
            "id": text(x.get("id")),
            "name": text(x.get("name") or x.get("id")),
            "kind": text(x.get("kind") or kind).replace("_", " "),
            "worst": worst.get(text(x.get("id")), ("", set()))[0],
            "threats": by_target.get(text(x.get("id")), []),
        }
        for kind, group in (("element", elements_raw), ("flow", flows_raw))
        for x in group
    ]
    svg, dfd_note = (None, "")
    if elements_raw:
        svg, dfd_note = _diagram(doc, el_anchor)

    atlas = [
        (
            tactic,
            [
                {
                    "id": c.technique,
                    "name": c.name,
                    "n": len(c.threats),
                    "status": c.status,
                    "statuses": sorted(c.statuses),
                    "first": row_of.get(text(c.threats[0].get("id"))) if c.threats else None,
                }
                for c in cells
            ],
        )
        for tactic, cells in rv.atlas_matrix(doc)
    ]
    check = [
        (
            control,
            [
                {
                    "action": i.action,
                    "done": i.done,
                    "in_place": i.in_place,
                    "urgent": i.urgent,
                    "rules": _by_rule(i.threats, row_of, cards),
                }
                for i in items
            ],
        )
        for control, items in rv.checklist(doc)
    ]
    parts = doc.get("parts") if isinstance(doc.get("parts"), dict) else {}
    base = doc.get("baseline") if isinstance(doc.get("baseline"), dict) else None
    counts = dict.fromkeys(SEVERITIES, 0)
    for r in threats:
        counts[r["severity"]] += 1
    by_validation = dict.fromkeys(rv.STATUS_ORDER[:-1], 0)
    for r in threats:
        for st in r["statuses"]:
            if st in by_validation:
                by_validation[st] += 1
    context = {
        "title": f"mlhunt run: {text(system.get('name'))}" if system.get("name") else "mlhunt run",
        "system_name": text(system.get("name")),
        "description": text(system.get("description")),
        "version": text(doc.get("version")),
        "n_elements": len(elements_raw),
        "n_flows": len(flows_raw),
        "n_boundaries": len(boundaries),
        "counts": counts,
        "by_validation": by_validation,
        "coverage": rv.evidence_line(
            doc.get("summary") if isinstance(doc.get("summary"), dict) else {}
        ),
        "n_evidence": len(evidence),
        "summary": summary,
        "svg": svg,
        "dfd_note": dfd_note,
        "has_dfd": bool(elements_raw),
        "fills": SEVERITY_FILL,
        "threats": threats,
        "places": places,
        "filters": {
            "severity": [x for x in SEVERITIES if counts[x]],
            "framework": sorted({r["framework"] for r in threats}),
            "element": list(dict.fromkeys((r["target"], r["target_label"]) for r in threats)),
            "status": [x for x in rv.STATUS_ORDER if any(x in r["statuses"] for r in threats)],
        },
        "atlas": atlas,
        "checklist": check,
        "assess": [cards[text(f.get("id"))] for f in evidence if f.get("source") == "assess"],
        "hunt": [cards[text(f.get("id"))] for f in evidence if f.get("source") == "hunt"],
        "scan": [cards[text(f.get("id"))] for f in evidence if f.get("source") == "scan"],
        "harden": [cards[text(f.get("id"))] for f in evidence if f.get("source") == "harden"],
        "parts": _parts(parts),
        "baseline": base,
        "warnings": [text(w) for w in doc.get("warnings") or []],
        "css": asset("run.css"),
        "js": asset("run.js"),
    }
    return template_env().get_template("run.html.j2").render(**context)
