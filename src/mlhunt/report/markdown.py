"""A Markdown threat-model document a reviewer can read, comment on and sign off.

Renders on GitHub/GitLab (the DFD is a ``mermaid`` block). Every string from the input is escaped
for inline Markdown and table cells (pipes, angle brackets, newlines).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlhunt.report._common import (
    SEVERITIES,
    counts_by_framework,
    counts_by_severity,
    counts_by_status,
    dfd_parts,
    findings_of,
    framework_of,
    labels,
    mappings,
    mappings_compact,
    mitigation_checklist,
    references,
    risk_explanation,
    risk_text,
    severity_of,
    sorted_findings,
    split_mitigation,
    summary_line,
    text,
    title_of,
)
from mlhunt.report.model_view import (
    SHOWN_AFFECTED,
    affected_ids,
    affected_line,
    md_attack_paths,
    md_finding_extra,
    md_questions,
)

TOP_RISKS = 10

_METHOD = """\
The system was described once (elements, data flows, trust boundaries, data assets and controls)
and mlhunt applied its threat catalog to that description:

- **STRIDE per element and per flow**: spoofing, tampering, repudiation, information disclosure,
  denial of service and elevation of privilege, checked against each element's type (external
  entity, process, data store) and each data flow, especially flows crossing a trust boundary.
- **LINDDUN on personal data**: linking, identifying, non-repudiation, detecting, data disclosure,
  unawareness and non-compliance threats for elements and flows that handle personal, special
  category or cardholder data.
- **ML threats** mapped to **MITRE ATLAS** techniques and the **OWASP Machine Learning Security
  Top 10** (and the OWASP Top 10 for LLM applications where relevant): evasion, adversarial
  patches, poisoning, model extraction, membership inference, model inversion, supply chain.
- **PASTA-style risk scoring**: risk = likelihood x impact (each 1 to 5). Likelihood rises with
  exposure (internet-facing, missing authentication or rate limits, returned scores) and falls
  with the attacker capability needed and the controls in place; impact follows the sensitivity
  of the data, the business criticality and the value of the model. Each finding explains its
  score.

Controls declared in the description lower likelihood and are shown as mitigations already in
place; decisions recorded in `risk_tracking` set each finding's status."""


def esc(value: Any) -> str:
    """Inline Markdown text: HTML-significant characters, pipes and newlines neutralised."""
    s = text(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("|", "\\|")
    return re.sub(r"\r\n|\r|\n", " ", s)


def cell(value: Any) -> str:
    """A table cell: like :func:`esc`, line breaks kept as ``<br>``."""
    s = text(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("|", "\\|")
    return re.sub(r"\r\n|\r|\n", "<br>", s) or " "


def code(value: Any, *, in_table: bool = False) -> str:
    """An inline code span that survives backticks (and pipes inside tables)."""
    s = re.sub(r"\r\n|\r|\n", " ", text(value))
    if in_table:
        s = s.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def table(headers: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _severity_badge(sev: str) -> str:
    icon = {"critical": "🟥", "high": "🟧", "medium": "🟨", "low": "🟩", "info": "🟦"}[sev]
    return f"{icon} {sev}"


def _anchor(fid: str) -> str:
    return "f-" + re.sub(r"[^A-Za-z0-9_-]+", "-", fid).strip("-").lower()


def render(doc: dict[str, Any]) -> str:
    from mlhunt.system.dfd import to_mermaid

    out: list[str] = []
    system, elements, flows, boundaries = dfd_parts(doc)
    names = labels(doc)
    findings = sorted_findings(doc)
    by_target: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_target.setdefault(text(f.get("target")), []).append(f)
    touching: dict[str, int] = {}
    for f in findings:
        for t in affected_ids(f):
            touching[t] = touching.get(t, 0) + 1

    out += [f"# {esc(title_of(doc))}", ""]
    meta = [
        ("Tool", f"mlhunt {text(doc.get('version'))}".strip()),
        ("Command", text(doc.get("command"))),
        ("Findings", summary_line(doc)),
    ]
    out += table(["", ""], [[f"**{k}**", cell(v)] for k, v in meta if v])
    out.append("")

    # -- system -----------------------------------------------------------------------------
    out += ["## 1. System", ""]
    out.append(esc(system.get("description")) or "_No description given._")
    out.append("")
    if elements:
        out.append(
            f"The model covers {len(elements)} elements, {len(flows)} data flows and "
            f"{len(boundaries)} trust boundaries."
        )
        out.append("")

    # -- scope and method -------------------------------------------------------------------
    if doc.get("command") == "model" or elements:
        out += ["## 2. Scope and method", "", _METHOD, ""]
    else:
        out += [
            "## 2. Scope and method",
            "",
            f"Findings produced by `mlhunt {esc(doc.get('command'))}`, mapped to MITRE ATLAS, "
            "the OWASP ML Top 10, STRIDE, LINDDUN and CWE where applicable.",
            "",
        ]

    # -- summary ----------------------------------------------------------------------------
    counts = counts_by_severity(doc)
    out += ["## 3. Summary", "", "### By severity", ""]
    out += table(["Severity", "Count"], [[_severity_badge(s), str(counts[s])] for s in SEVERITIES])
    out += ["", f"**Total: {sum(counts.values())}**", ""]
    by_fw = counts_by_framework(doc)
    if by_fw:
        out += ["### By framework", ""]
        out += table(
            ["Framework", *SEVERITIES, "Total"],
            [
                [cell(fw), *(str(c[s]) for s in SEVERITIES), str(sum(c.values()))]
                for fw, c in by_fw.items()
            ],
        )
        out.append("")
    statuses = counts_by_status(doc)
    if statuses:
        out += ["### By status", ""]
        out += table(["Status", "Count"], [[cell(k), str(v)] for k, v in sorted(statuses.items())])
        out.append("")

    if findings:
        out += ["### Top risks", ""]
        rows = []
        for i, f in enumerate(findings[:TOP_RISKS], 1):
            tgt = text(f.get("target"))
            rows.append(
                [
                    str(i),
                    _severity_badge(severity_of(f)),
                    cell(risk_text(f) or "-"),
                    f"[{cell(f.get('title'))}](#{_anchor(text(f.get('id')))})",
                    cell(affected_line(f, names, limit=SHOWN_AFFECTED) or names.get(tgt, tgt)),
                    cell(mappings_compact(f)),
                    cell(f.get("status") or "open"),
                ]
            )
        out += table(
            ["#", "Severity", "Risk (L x I)", "Threat", "Affected", "Mappings", "Status"], rows
        )
        out.append("")
    if doc.get("command") == "model":
        out += ["### Attack paths", "", *md_attack_paths(doc, esc)]
        out += ["### Open questions for the system owner", "", *md_questions(doc, esc)]

    # -- DFD and inventory --------------------------------------------------------------------
    section = 4
    if elements:
        out += [f"## {section}. Data-flow diagram", ""]
        out += [
            "Trust boundaries are subgraphs; external entities are rectangles, data stores "
            "cylinders, processes rounded boxes; ML components are purple; dotted red flows are "
            "not encrypted in transit.",
            "",
            "```mermaid",
            to_mermaid(doc).rstrip("\n"),
            "```",
            "",
        ]
        section += 1
        out += [f"## {section}. Inventory", "", "### Elements", ""]
        rows = []
        for e in elements:
            eid = text(e.get("id"))
            fs = by_target.get(eid, [])
            rows.append(
                [
                    code(eid, in_table=True),
                    cell(e.get("name") or eid),
                    cell(text(e.get("kind")).replace("_", " ")),
                    cell(boundaries.get(text(e.get("boundary")), text(e.get("boundary"))) or "-"),
                    cell(", ".join(text(d) for d in e.get("data") or []) or "-"),
                    cell(", ".join(text(c) for c in e.get("controls") or []) or "-"),
                    str(touching.get(eid, len(fs))),
                ]
            )
        out += table(["Id", "Name", "Kind", "Boundary", "Data", "Controls", "Findings"], rows)
        out.append("")
        if flows:
            out += ["### Flows", ""]
            rows = []
            for fl in flows:
                fid = text(fl.get("id"))
                src, dst = text(fl.get("source")), text(fl.get("target"))
                rows.append(
                    [
                        code(fid, in_table=True),
                        cell(fl.get("name") or fid),
                        cell(f"{names.get(src, src)} → {names.get(dst, dst)}"),
                        cell(fl.get("protocol") or "-"),
                        "yes" if fl.get("encrypted") else "**no**",
                        "yes" if fl.get("authenticated") else "no",
                        cell(", ".join(text(d) for d in fl.get("data") or []) or "-"),
                        cell(", ".join(text(c) for c in fl.get("controls") or []) or "-"),
                        str(touching.get(fid, 0)),
                    ]
                )
            out += table(
                [
                    "Id",
                    "Name",
                    "From → to",
                    "Protocol",
                    "Encrypted",
                    "Authenticated",
                    "Data",
                    "Controls",
                    "Findings",
                ],
                rows,
            )
            out.append("")
        section += 1

    # -- findings -----------------------------------------------------------------------------
    out += [f"## {section}. Findings", ""]
    if not findings:
        out += ["No findings.", ""]
    order = [text(e.get("id")) for e in elements] + [text(f.get("id")) for f in flows]
    order += [t for t in by_target if t not in order]
    kinds = {text(e.get("id")): text(e.get("kind")).replace("_", " ") for e in elements}
    kinds.update({text(f.get("id")): "flow" for f in flows})
    for tgt in order:
        fs = by_target.get(tgt)
        if not fs:
            continue
        heading = esc(names.get(tgt, tgt))
        kind = kinds.get(tgt)
        out += [f"### {heading} ({code(tgt)}{', ' + esc(kind) if kind else ''})", ""]
        for f in fs:
            out += _finding(f)
            out += md_finding_extra(f, names, esc)
    section += 1

    # -- mitigation checklist -------------------------------------------------------------------
    checklist = mitigation_checklist(doc)
    if checklist:
        out += [f"## {section}. Mitigation checklist", ""]
        out.append(
            "Each action once, with the findings it addresses. Ticked: in place for every "
            "finding that needs it."
        )
        out.append("")
        for item in checklist:
            box = "x" if item.complete else " "
            line = f"- [{box}] {esc(item.action)}"
            if item.todo:
                line += " — for " + ", ".join(code(i) for i in item.todo)
            if item.in_place:
                line += " — in place: " + esc(", ".join(item.in_place))
            out.append(line)
        out.append("")
        section += 1

    # -- warnings -----------------------------------------------------------------------------
    warnings = [text(w) for w in doc.get("warnings") or []]
    out += [f"## {section}. Warnings", ""]
    out += [f"- {esc(w)}" for w in warnings] if warnings else ["None."]
    out.append("")
    section += 1

    # -- sign-off -------------------------------------------------------------------------------
    open_high = sum(
        1
        for f in findings_of(doc)
        if severity_of(f) in ("critical", "high") and text(f.get("status") or "open") == "open"
    )
    out += [
        f"## {section}. Review and sign-off",
        "",
        f"Open critical/high findings at the time of review: **{open_high}**. Accepted risks "
        "need a justification in `risk_tracking`.",
        "",
    ]
    out += table(
        ["Role", "Name", "Decision", "Date", "Signature"],
        [
            [r, " ", " ", " ", " "]
            for r in ("System owner", "Security reviewer", "Privacy / DPO", "Risk owner")
        ],
    )
    out += ["", f"_Generated by mlhunt {esc(doc.get('version'))}._", ""]
    return "\n".join(out)


def _finding(f: dict[str, Any]) -> list[str]:
    fid = text(f.get("id"))
    sev = severity_of(f)
    out = [
        f'<a id="{_anchor(fid)}"></a>',
        "",
        f"#### {_severity_badge(sev).split()[0]} {esc(f.get('title'))}",
        "",
    ]
    facts = [
        ("Id", code(fid, in_table=True)),
        ("Rule", code(f.get("rule_id"), in_table=True)),
        ("Severity", sev),
        ("Framework", cell(framework_of(f))),
        ("Status", cell(f.get("status") or "open")),
    ]
    risk = risk_text(f)
    if risk:
        facts.insert(3, ("Risk (likelihood x impact)", cell(risk)))
    explanation = risk_explanation(f)
    if explanation:
        facts.append(("Risk explanation", cell(explanation)))
    for label, values in mappings(f):
        facts.append((label, cell(", ".join(values))))
    for label, values in references(f):
        facts.append((label, cell(", ".join(values))))
    tracking = f.get("tracking") if isinstance(f.get("tracking"), dict) else {}
    if tracking:
        parts = [f"{k}: {text(v)}" for k, v in tracking.items() if v]
        facts.append(("Tracking", cell("; ".join(parts))))
    out += table(["Field", "Value"], [[k, v] for k, v in facts])
    out.append("")
    if f.get("description"):
        out += [esc(f["description"]), ""]
    out += _measured(f)
    mits = [split_mitigation(m) for m in f.get("mitigations") or []]
    if mits:
        out += ["Mitigations:", ""]
        for m in mits:
            suffix = f" _(in place: {esc(m.in_place)})_" if m.done else ""
            out.append(f"- [{'x' if m.done else ' '}] {esc(m.action)}{suffix}")
        out.append("")
    return out


def _measured(f: dict[str, Any]) -> list[str]:
    """An assess finding's numbers (scalars only) and its plots as image links."""
    ev = f.get("evidence")
    if f.get("source") != "assess" or not isinstance(ev, dict):
        return []
    skip = ("summary", "params", "validates", "plots", "curves", "traceback")
    parts = [
        f"{k} {text(v)}"
        for k, v in ev.items()
        if k not in skip and isinstance(v, str | int | float) and not isinstance(v, bool)
    ]
    tpr = ev.get("tpr_at_fpr")
    if isinstance(tpr, dict):
        parts += [f"TPR at FPR {k}: {text(v)}" for k, v in tpr.items()]
    out = [f"Measured: {esc('; '.join(parts))}", ""] if parts else []
    for p in ev.get("plots") or []:
        out += [f"![{esc(Path(str(p)).name)}]({str(p).replace(' ', '%20')})", ""]
    return out
