"""Helpers shared by the report formats. Everything works on the JSON document (a dict)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low", "info")
SEVERITY_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # info 0 .. critical 4

#: Light fills for DFD nodes coloured by their worst finding.
SEVERITY_FILL = {
    "critical": "#f8c4c4",
    "high": "#fdd8b5",
    "medium": "#fff0b3",
    "low": "#d9efd0",
    "info": "#dbe9f7",
}
#: Strong colours for badges and text.
SEVERITY_COLOR = {
    "critical": "#b3261e",
    "high": "#c55a00",
    "medium": "#9a7400",
    "low": "#2e7d32",
    "info": "#1f5fa8",
}

#: Statuses that mean the team has dealt with a finding (SARIF suppressions, greyed out).
RESOLVED_STATUSES = ("accepted", "mitigated", "false-positive")

MAPPING_FIELDS = (
    ("atlas", "ATLAS"),
    ("owasp_ml", "OWASP ML"),
    ("stride", "STRIDE"),
    ("linddun", "LINDDUN"),
    ("cwe", "CWE"),
)

REFERENCE_NAMES = {"pci_dss": "PCI DSS", "gdpr": "GDPR", "owasp_llm": "OWASP LLM"}

_IN_PLACE = re.compile(r"^\[in place: (?P<refs>[^\]]*)\] (?P<action>.*)$", re.DOTALL)


def text(value: Any) -> str:
    """Any JSON value as display text (None -> '')."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def severity_of(finding: dict[str, Any]) -> str:
    sev = str(finding.get("severity", "info")).lower()
    return sev if sev in SEVERITY_RANK else "info"


def findings_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in doc.get("findings") or [] if isinstance(f, dict)]


def sort_key(finding: dict[str, Any]) -> tuple[float, int, str]:
    """Highest risk first, then worst severity, then id."""
    return (
        -number(finding.get("risk")),
        -SEVERITY_RANK[severity_of(finding)],
        text(finding.get("id")),
    )


def sorted_findings(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(findings_of(doc), key=sort_key)


def counts_by_severity(doc: dict[str, Any]) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for f in findings_of(doc):
        counts[severity_of(f)] += 1
    return counts


def framework_of(finding: dict[str, Any]) -> str:
    return text(finding.get("framework") or finding.get("source") or "-")


def counts_by_framework(doc: dict[str, Any]) -> dict[str, dict[str, int]]:
    """framework -> severity -> count, frameworks in first-seen order of the sorted findings."""
    out: dict[str, dict[str, int]] = {}
    for f in sorted_findings(doc):
        out.setdefault(framework_of(f), dict.fromkeys(SEVERITIES, 0))[severity_of(f)] += 1
    return out


def counts_by_status(doc: dict[str, Any]) -> dict[str, int]:
    return dict(Counter(text(f.get("status") or "open") for f in findings_of(doc)))


def mappings(finding: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Non-empty taxonomy mappings as (label, ids)."""
    out = []
    for key, label in MAPPING_FIELDS:
        values = [text(v) for v in finding.get(key) or []]
        if values:
            out.append((label, values))
    return out


def mappings_compact(finding: dict[str, Any], *, cwe: bool = False) -> str:
    parts = []
    for label, values in mappings(finding):
        if label == "CWE" and not cwe:
            continue
        parts.append(f"{label} {', '.join(values)}")
    return "; ".join(parts)


def references(finding: dict[str, Any]) -> list[tuple[str, list[str]]]:
    refs = finding.get("references") or {}
    if not isinstance(refs, dict):
        return []
    return [
        (REFERENCE_NAMES.get(k, k), [text(v) for v in vals]) for k, vals in refs.items() if vals
    ]


def risk_explanation(finding: dict[str, Any]) -> str:
    evidence = finding.get("evidence")
    if isinstance(evidence, dict):
        return text(evidence.get("risk_explanation"))
    return ""


def risk_text(finding: dict[str, Any]) -> str:
    """'22.5 (4.5 x 5)' or '' when the finding has no risk score."""
    if finding.get("risk") is None:
        return ""
    risk = text(round(number(finding["risk"]), 2))
    if finding.get("likelihood") is not None and finding.get("impact") is not None:
        return f"{risk} ({text(finding['likelihood'])} x {text(finding['impact'])})"
    return risk


@dataclass
class Mitigation:
    action: str
    done: bool
    in_place: str = ""


def split_mitigation(value: Any) -> Mitigation:
    """The engine prefixes actions already covered by a control with '[in place: refs] '."""
    s = text(value)
    m = _IN_PLACE.match(s)
    if m:
        return Mitigation(m.group("action"), True, m.group("refs"))
    return Mitigation(s, False)


@dataclass
class ChecklistItem:
    action: str
    todo: list[str] = field(default_factory=list)  # finding ids still needing it
    done: list[str] = field(default_factory=list)  # finding ids where it is in place
    in_place: list[str] = field(default_factory=list)  # control refs providing it

    @property
    def complete(self) -> bool:
        return not self.todo


def mitigation_checklist(doc: dict[str, Any]) -> list[ChecklistItem]:
    """Mitigations deduplicated across findings, most urgent (first needed by) first."""
    items: dict[str, ChecklistItem] = {}
    for f in sorted_findings(doc):
        fid = text(f.get("id"))
        resolved = text(f.get("status")) in ("mitigated", "false-positive")
        for raw in f.get("mitigations") or []:
            m = split_mitigation(raw)
            item = items.setdefault(m.action, ChecklistItem(m.action))
            if m.done or resolved:
                item.done.append(fid)
                if m.in_place and m.in_place not in item.in_place:
                    item.in_place.append(m.in_place)
            else:
                item.todo.append(fid)
    return list(items.values())


def labels(doc: dict[str, Any]) -> dict[str, str]:
    """Element and flow id -> display name."""
    out: dict[str, str] = {}
    for section in ("elements", "flows"):
        for obj in doc.get(section) or []:
            if isinstance(obj, dict) and obj.get("id") is not None:
                out[text(obj["id"])] = text(obj.get("name") or obj["id"])
    return out


def worst_by_target(doc: dict[str, Any], *, include_resolved: bool = False) -> dict[str, str]:
    """target -> worst severity of its findings (resolved findings ignored by default)."""
    out: dict[str, str] = {}
    for f in findings_of(doc):
        if not include_resolved and text(f.get("status")) in ("mitigated", "false-positive"):
            continue
        target, sev = text(f.get("target")), severity_of(f)
        if target not in out or SEVERITY_RANK[sev] > SEVERITY_RANK[out[target]]:
            out[target] = sev
    return out


def title_of(doc: dict[str, Any]) -> str:
    system = doc.get("system") if isinstance(doc.get("system"), dict) else {}
    name = text(system.get("name"))
    command = text(doc.get("command") or "report")
    if command == "model":
        return f"Threat model: {name}" if name else "Threat model"
    return f"mlhunt {command}: {name}" if name else f"mlhunt {command} report"


def summary_line(doc: dict[str, Any]) -> str:
    counts = counts_by_severity(doc)
    total = sum(counts.values())
    parts = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES)
    return f"{total} finding{'s' if total != 1 else ''}: {parts}"


def dfd_parts(
    doc: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """The model document's system, elements, flows and boundary names (id -> name), tolerant of
    documents from other commands (which have none of them)."""
    system = doc.get("system") if isinstance(doc.get("system"), dict) else {}
    elements = [e for e in doc.get("elements") or [] if isinstance(e, dict)]
    flows = [f for f in doc.get("flows") or [] if isinstance(f, dict)]
    boundaries = {
        text(b.get("id")): text(b.get("name") or b.get("id"))
        for b in doc.get("trust_boundaries") or []
        if isinstance(b, dict)
    }
    return system, elements, flows, boundaries
