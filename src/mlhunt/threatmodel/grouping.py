"""One finding per cause: a rule's hits on several elements or flows become one finding.

The group lists every hit in ``affected`` (worst first), takes its id, title, risk and scores from
the worst hit, keeps each hit's own scores and facts in ``evidence.per_target``, and merges the
compliance references. Risk-tracking decisions are matched per hit (``RULE@element``) before
grouping, so a decision about one element keeps matching once that element sits in a group.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from mlhunt.findings import Finding
from mlhunt.system.model import RiskTracking, SystemDescription, TrackingStatus

_TRACKING_TO_STATUS = {
    TrackingStatus.ACCEPTED: "accepted",
    TrackingStatus.MITIGATED: "mitigated",
    TrackingStatus.FALSE_POSITIVE: "false-positive",
}
#: Affected elements with their own detail in ``per_target`` (worst first); a large estate's
#: group lists every affected id but details only these.
MAX_DETAILED = 50
#: Per-hit evidence kept under ``per_target`` (the group's top level shows the worst hit's).
_PER_TARGET_KEYS = (
    "target_kind",
    "likelihood_factors",
    "controls_in_place",
    "risk_explanation",
    "rests_on",
    "assumed_absent",
    "attack_path",
)


def apply_tracking(findings: list[Finding], tracking: list[RiskTracking]) -> list[str]:
    """Set each hit's status from the team's risk-tracking decisions; warn on stale ones."""
    warnings: list[str] = []
    if not tracking:
        return warnings
    by_id = {f.id: f for f in findings}
    for i, entry in enumerate(tracking):
        if any(ch in entry.threat for ch in "*?["):
            matched = [f for fid, f in by_id.items() if fnmatch.fnmatchcase(fid, entry.threat)]
        else:
            matched = [by_id[entry.threat]] if entry.threat in by_id else []
        if not matched:
            warnings.append(f"risk_tracking[{i}]: {entry.threat!r} matches no threat")
        for f in matched:
            f.status = _TRACKING_TO_STATUS.get(entry.status, "open")
            f.tracking = entry.model_dump(mode="json", exclude_defaults=True)
            f.tracking["status"] = entry.status.value
    return warnings


def group_findings(
    hits: list[Finding],
    system: SystemDescription,
    causes: dict[str, str] | None = None,
    describe: Callable[[Finding], None] | None = None,
) -> list[Finding]:
    """One finding per cause (a rule, or rules sharing a ``cause``), listing every element or
    flow it applies to, worst first."""
    causes = causes or {}
    by_rule: dict[str, list[Finding]] = {}
    for f in hits:
        by_rule.setdefault(causes.get(f.rule_id, f.rule_id), []).append(f)
    labels = {e.id: e.label for e in system.elements}
    labels.update({f.id: f.label for f in system.flows})
    describe = describe or (lambda _f: None)
    return [_group(members, labels, describe) for members in by_rule.values()]


def _group(
    members: list[Finding], labels: dict[str, str], describe: Callable[[Finding], None]
) -> Finding:
    # Open hits first (a decision on some does not close the others), then by risk.
    members.sort(key=lambda f: (f.status != "open", -(f.risk or 0.0), f.target, f.rule_id))
    head = members[0]
    rules = list(dict.fromkeys(f.rule_id for f in members))
    if len(rules) > 1:
        _merge_rules(head, members, rules)
    statuses_by_target: dict[str, dict[str, str]] = {}
    for f in members:
        statuses_by_target.setdefault(f.target, {})[f.rule_id] = f.status
    seen: set[str] = set()
    members = [f for f in members if not (f.target in seen or seen.add(f.target))]
    head.affected = [f.target for f in members]
    describe(head)
    if len(members) == 1 and len(rules) == 1:
        return head
    statuses = {f.status for f in members}
    head.status = statuses.pop() if len(statuses) == 1 else "open"
    if head.tracking is None:
        head.tracking = next((f.tracking for f in members if f.tracking), None)
    if len(members) > 1:
        head.title = f"{head.title} (and {len(members) - 1} more)"
    per_target: dict[str, dict[str, Any]] = {}
    for f in members[:MAX_DETAILED]:
        describe(f)
        detail: dict[str, Any] = {
            "name": labels.get(f.target, f.target),
            "risk": f.risk,
            "severity": f.severity.value,
            "likelihood": f.likelihood,
            "impact": f.impact,
            "status": f.status,
        }
        detail.update({k: f.evidence[k] for k in _PER_TARGET_KEYS if k in f.evidence})
        if f.tracking:
            detail["tracking"] = f.tracking
        if len(rules) > 1:
            detail["rules"] = statuses_by_target[f.target]
        per_target[f.target] = detail
    head.evidence["per_target"] = per_target
    refs: dict[str, list[str]] = {}
    for f in members:
        for key, values in (f.references or {}).items():
            bucket = refs.setdefault(key, [])
            bucket.extend(v for v in values if v not in bucket)
    head.references = refs or None
    return head


def _merge_rules(head: Finding, members: list[Finding], rules: list[str]) -> None:
    """Rules sharing a cause: the group carries every mapping and mitigation of its rules."""
    head.evidence["rules"] = rules
    for key in ("stride", "linddun", "atlas", "owasp_ml", "cwe"):
        merged: list[str] = getattr(head, key)
        for f in members:
            merged.extend(v for v in getattr(f, key) if v not in merged)
    merged_mitigations = dict.fromkeys(head.mitigations)
    for f in members:
        merged_mitigations.update(dict.fromkeys(f.mitigations))
    head.mitigations = list(merged_mitigations)


def unfold(finding: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(rule id, element or flow id) -> status of every rule hit inside a (grouped) finding
    of the JSON document: how a reviewer checks "this rule on that element" after grouping."""
    per: dict[str, Any] = (finding.get("evidence") or {}).get("per_target") or {}
    out: dict[tuple[str, str], str] = {}
    for target in finding.get("affected") or [finding["target"]]:
        detail = per.get(target) or {}
        rules = detail.get("rules") or {finding["rule_id"]: detail.get("status", finding["status"])}
        for rule, status in rules.items():
            out[(rule, target)] = status
    return out
