"""The report of ``mlhunt run`` as Markdown (GitHub/GitLab): the same summary, threat table with
statuses, evidence numbers and mitigation checklist as the HTML report, without images: plots are
linked by their path relative to the run's ``assets_dir`` (where the Markdown file is written).

Input: the run document described in :mod:`mlhunt.report.run_view`. Every string from the input
goes through :func:`mlhunt.report.markdown.esc` / ``cell`` / ``code``.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from mlhunt.report import run_view as rv
from mlhunt.report._common import SEVERITIES, dfd_parts, labels, mappings_compact, severity_of, text
from mlhunt.report.markdown import cell, code, esc, table

_BADGE = {"critical": "🟥", "high": "🟧", "medium": "🟨", "low": "🟩", "info": "🟦"}


def _sev(s: str) -> str:
    return f"{_BADGE.get(s, '')} {s}".strip()


def _statuses(t: dict[str, Any]) -> str:
    return ", ".join(f"**{s}**" if s in ("validated", "observed") else s for s in rv.statuses(t))


def _risk(t: dict[str, Any]) -> str:
    v = t.get("validation") if isinstance(t.get("validation"), dict) else {}
    risk = rv.num(t.get("risk")) if t.get("risk") is not None else "-"
    if v.get("risk_before") is not None and v["risk_before"] != t.get("risk"):
        risk += f" (was {rv.num(v['risk_before'])})"
    return risk


def _link(path: Any) -> str:
    p = text(path)
    return f"[{esc(PurePosixPath(p).name)}]({quote(p, safe='/:.-_~')})"


def _summary(doc: dict[str, Any], names: dict[str, str]) -> list[str]:
    s = rv.summarize(doc)

    def on(t: dict[str, Any]) -> str:
        return esc(names.get(text(t.get("target")), text(t.get("target"))))

    out = ["## Summary", "", "### Top risks", ""]
    out += [
        f"{i}. {_sev(severity_of(t))} {esc(t.get('title'))} (on {on(t)}; risk {_risk(t)}; "
        f"{_statuses(t)})"
        for i, t in enumerate(s.top, 1)
    ] or ["No threats."]
    out += ["", "### Proven by attack or scan", ""]
    for t, heads in s.proven:
        out.append(f"- **{esc(t.get('title'))}** (on {on(t)}): " + "; ".join(map(esc, heads)))
    if not s.proven:
        out.append("No threat was validated in this run.")
    if s.refuted:
        out += ["", "Tested and held:", ""]
        out += [f"- {esc(t.get('title'))}: " + "; ".join(map(esc, h)) for t, h in s.refuted]
    if s.untested:
        out += ["", f"{s.untested} ML threats untested (no attack, detector or scan applies)."]
    out += ["", "### Observed in production", ""]
    o = s.observed
    if o.alerts:
        out.append(
            f"{o.alerts} hunt alert{'s' if o.alerts != 1 else ''} from {len(o.targets)} "
            f"clients or sources ({', '.join(code(x) for x in o.targets[:8])}); "
            f"detectors: {esc(', '.join(o.detectors))}."
        )
        out += ["", *[f"- {esc(t.get('title'))} (on {on(t)})" for t in o.threats]]
    else:
        out.append("No hunt alert in this run.")
    out += ["", "### Fix first", ""]
    for i, (action, ts) in enumerate(s.fix_first, 1):
        rules = ", ".join(dict.fromkeys(code(t.get("rule_id")) for t in ts))
        out.append(f"{i}. {esc(action)} ({rules})")
    if not s.fix_first:
        out.append("Nothing validated or observed needs a new mitigation.")
    return [*out, ""]


def _evidence(t: dict[str, Any], index: dict[str, dict[str, Any]]) -> list[str]:
    v = t.get("validation") if isinstance(t.get("validation"), dict) else {}
    out = [
        f"### {esc(t.get('title'))}",
        "",
        f"{_sev(severity_of(t))} · {_statuses(t)} · risk {_risk(t)} · {code(t.get('id'))}",
        "",
    ]
    if v.get("reason"):
        out += [f"_{esc(v['reason'])}_", ""]
    linked = rv.linked_evidence(t, index)
    for e in (e for e in linked if e.get("source") != "hunt"):
        ev = e.get("evidence") if isinstance(e.get("evidence"), dict) else {}
        out.append(f"- **{esc(e.get('source'))}**: {esc(rv.headline(e))}")
        nums = "; ".join(f"{k} {v}" for k, v in rv.metrics(ev))
        if nums:
            out.append(f"  - measured: {esc(nums)}")
        if ev.get("plots"):
            out.append("  - plots: " + ", ".join(_link(p) for p in ev["plots"]))
    alerts = [e for e in linked if e.get("source") == "hunt"]
    if alerts:
        out += ["", "Seen in production:", ""]
        rows = []
        for a in alerts:
            ev = a.get("evidence") if isinstance(a.get("evidence"), dict) else {}
            vals = [ev.get(k) for k in ("detector", "first_event_ts", "detected_at_event", "score")]
            rows.append(
                [
                    code(a.get("target"), in_table=True),
                    *(cell(rv.num(v) if v is not None else "") for v in vals),
                ]
            )
        heads = ["Client / source", "Detector", "First event", "Alert at event", "Score"]
        out += table(heads, rows)
    return [*out, ""]


def render_run_markdown(doc: dict[str, Any]) -> str:
    """The Markdown report of a run document."""
    system, elements, flows, _ = dfd_parts(doc)
    names = labels(doc)
    ts = rv.threats(doc)
    index = rv.by_id(doc)
    counts = dict.fromkeys(SEVERITIES, 0)
    by_status = dict.fromkeys(rv.STATUS_ORDER[:-1], 0)
    for t in ts:
        counts[severity_of(t)] += 1
        for s in rv.statuses(t):
            by_status[s] = by_status.get(s, 0) + 1
    name = text(system.get("name"))
    out = [f"# mlhunt run: {esc(name)}" if name else "# mlhunt run", ""]
    if system.get("description"):
        out += [esc(system["description"]), ""]
    out += [
        f"mlhunt {esc(doc.get('version'))} · {len(elements)} elements, {len(flows)} flows · "
        f"{len(ts)} threats: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + " · "
        + ", ".join(f"{by_status[s]} {s}" for s in rv.STATUS_ORDER[:-1]),
        "",
    ]
    if coverage := rv.evidence_line(doc.get("summary") or {}):
        out += [esc(coverage), ""]
    base = doc.get("baseline") if isinstance(doc.get("baseline"), dict) else None
    if base:
        out += [
            f"Against the baseline: {len(base.get('new') or [])} new, "
            f"{len(base.get('unchanged') or [])} unchanged, "
            f"{len(base.get('fixed') or [])} fixed.",
            "",
        ]
    out += _summary(doc, names)

    marks = rv.baseline_mark(doc)
    out += ["## Threats", ""]
    rows = [
        [
            _sev(severity_of(t)),
            cell(_risk(t)),
            cell(t.get("framework")),
            cell(t.get("title")) + (" 🆕" if marks.get(text(t.get("id"))) == "new" else ""),
            cell(names.get(text(t.get("target")), t.get("target"))),
            _statuses(t),
            str(len(rv.linked_evidence(t, index)) or ""),
            cell(mappings_compact(t)),
        ]
        for t in ts
    ]
    heads = ["Severity", "Risk", "Framework", "Threat", "Element", "Status", "Evidence", "Mappings"]
    out += table(heads, rows)
    tested = [t for t in ts if rv.statuses(t) not in (["modelled"], ["untested"])]
    if tested:
        out += ["", "## Evidence", ""]
        for t in tested:
            out += _evidence(t, index)
    out += _untested(ts, names)

    atlas = rv.atlas_matrix(doc)
    if atlas:
        out += ["## MITRE ATLAS coverage", ""]
        rows = [
            [
                cell(tactic),
                f"{code(c.technique, in_table=True)} {cell(c.name)}",
                str(len(c.threats)),
                c.status,
            ]
            for tactic, cells in atlas
            for c in cells
        ]
        out += table(["Tactic", "Technique", "Threats", "Status"], rows)
        out.append("")

    out += ["## Mitigation checklist", ""]
    for control, items in rv.checklist(doc):
        out += [f"### {esc(control)}", ""]
        for i in items:
            rules = ", ".join(dict.fromkeys(code(t.get("rule_id")) for t in i.threats))
            done = f" (in place: {esc(i.in_place)})" if i.in_place else ""
            out.append(
                f"- [{'x' if i.done else ' '}] {esc(i.action)}"
                + (f" → {rules}" if rules else "")
                + done
            )
        out.append("")
    return "\n".join(out + _appendix(doc)).rstrip() + "\n"


def _untested(ts: list[dict[str, Any]], names: dict[str, str]) -> list[str]:
    """Each untested threat with the checks that would test it (``validation.checks``)."""
    rows = []
    for t in ts:
        v = t.get("validation") if isinstance(t.get("validation"), dict) else {}
        if rv.statuses(t) != ["untested"]:
            continue
        checks = [esc(c.get("action")) for c in v.get("checks") or [] if isinstance(c, dict)]
        where = esc(names.get(text(t.get("target")), text(t.get("target"))))
        rows.append(
            f"- **{esc(t.get('title'))}** (on {where}): "
            + ("; ".join(checks) if checks else esc(v.get("reason")))
        )
    return (
        ["", "## Untested threats: the checks that would test them", "", *rows, ""] if rows else []
    )


def _appendix(doc: dict[str, Any]) -> list[str]:
    out = ["## Appendix", ""]
    sections = (("assess", "Attacks"), ("hunt", "Hunt alerts"), ("scan", "Scan findings"))
    for source, title in sections:
        found = rv.evidence_findings(doc, source)
        if found:
            out += [f"### {title}", ""]
            out += table(
                ["Severity", "Finding", "Target", "Result"],
                (
                    [
                        _sev(severity_of(f)),
                        cell(f.get("title")),
                        code(f.get("target"), in_table=True),
                        cell(rv.headline(f)),
                    ]
                    for f in found
                ),
            )
            out.append("")
    parts = doc.get("parts") if isinstance(doc.get("parts"), dict) else {}
    rows = []
    for p in parts.get("hunt") or []:
        read = p.get("read") if isinstance(p, dict) and isinstance(p.get("read"), dict) else {}
        malformed = read.get("malformed")
        malformed = len(malformed) if isinstance(malformed, list) else malformed or 0
        rows.append(
            [
                "hunt",
                code(p.get("logs"), in_table=True),
                f"{rv.num(read.get('records') or 0)} records, {rv.num(malformed)} malformed",
            ]
        )
    for p in parts.get("scan") or []:
        if isinstance(p, dict):
            rows.append(
                [
                    "scan",
                    code(p.get("path"), in_table=True),
                    f"{rv.num(p.get('files_scanned') or 0)} files",
                ]
            )
    for p in parts.get("assess") or []:
        if isinstance(p, dict):
            rows.append(
                [
                    "assess",
                    code(p.get("target"), in_table=True),
                    f"{rv.num(p.get('queries') or 0)} queries, {rv.num(p.get('seconds') or 0)} s",
                ]
            )
    if rows:
        out += ["### How this run was made", "", *table(["Part", "Input", "Read"], rows), ""]
    base = doc.get("baseline") if isinstance(doc.get("baseline"), dict) else {}
    if base.get("fixed"):
        out += ["### Fixed since the baseline", "", *[f"- {code(f)}" for f in base["fixed"]], ""]
    return out
