"""One finding per cause: a rule's hits on several elements or flows become one finding.

The group lists every hit in ``affected`` (worst first), takes its id, title, risk and scores from
the worst hit, keeps each hit's own scores and facts in ``evidence.per_target``, and merges the
compliance references. Risk-tracking decisions are matched per hit (``RULE@element``) before
grouping, so a decision about one element keeps matching once that element sits in a group.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, Protocol

from mlhunt.findings import Finding
from mlhunt.system.model import RiskTracking, TrackingStatus

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


class Hit:
    """One rule applying to one element or flow: what ranking and grouping need, before (and
    mostly instead of) a full :class:`Finding`, which is built only for the hits a report shows.
    """

    __slots__ = (
        "assumed",
        "finding",
        "kind",
        "objs",
        "planned",
        "profile",
        "risk",
        "rule",
        "rule_id",
        "status",
        "target",
        "tracking",
    )

    def __init__(
        self,
        rule: Any,
        rule_id: str,
        objs: tuple[Any, ...],
        target: str,
        kind: str,
        profile: Any,
        risk: float,
        mitigated: bool,
    ) -> None:
        self.rule = rule
        self.rule_id = rule_id
        self.objs = objs  # (element,) or (flow, source, target)
        self.target = target
        self.kind = kind
        self.profile = profile
        self.risk = risk
        self.status = "mitigated" if mitigated else "open"
        self.tracking: dict[str, Any] | None = None
        self.planned: list[str] | None = None
        #: The unknown facts (``id.fact``) it rests on: then it is a question, not a finding.
        self.assumed: list[str] | None = None
        self.finding: Finding | None = None

    @property
    def id(self) -> str:
        return f"{self.rule_id}@{self.target}"

    @property
    def label(self) -> str:
        return self.objs[0].label  # type: ignore[no-any-return]


class FindingSource(Protocol):
    """Builds the full finding of a hit and its parts (the engine's builder)."""

    def finding(self, hit: Hit) -> Finding: ...

    def detail(self, hit: Hit) -> dict[str, Any]: ...

    def mitigations(self, hit: Hit) -> list[str]: ...

    def references(self, hit: Hit) -> dict[str, list[str]]: ...

    def plan(self, hit: Hit) -> tuple[tuple[str, ...], tuple[Any, ...], Any]: ...


def apply_tracking(hits: list[Hit], tracking: list[RiskTracking]) -> list[str]:
    """Set each hit's status from the team's risk-tracking decisions; warn on stale ones."""
    warnings: list[str] = []
    if not tracking:
        return warnings
    by_id = {h.id: h for h in hits}
    for i, entry in enumerate(tracking):
        if any(ch in entry.threat for ch in "*?["):
            matched = [h for hid, h in by_id.items() if fnmatch.fnmatchcase(hid, entry.threat)]
        else:
            matched = [by_id[entry.threat]] if entry.threat in by_id else []
        if not matched:
            warnings.append(f"risk_tracking[{i}]: {entry.threat!r} matches no threat")
        for h in matched:
            h.status = _TRACKING_TO_STATUS.get(entry.status, "open")
            h.tracking = entry.model_dump(mode="json", exclude_defaults=True)
            h.tracking["status"] = entry.status.value
    return warnings


def group_findings(
    hits: list[Hit],
    causes: dict[str, str],
    source: FindingSource,
    describe: Callable[[Hit, dict[str, Any]], None],
) -> list[Finding]:
    """One finding per cause (a rule, or rules sharing a ``cause``), listing every element or
    flow it applies to, worst first. Full findings are built for the detailed hits only."""
    by_rule: dict[str, list[Hit]] = {}
    for h in hits:
        by_rule.setdefault(causes.get(h.rule_id, h.rule_id), []).append(h)

    return [_group(members, source, describe) for members in by_rule.values()]


def _group(
    members: list[Hit], source: FindingSource, describe: Callable[[Hit, dict[str, Any]], None]
) -> Finding:
    # Open hits first (a decision on some does not close the others), then by risk.
    members.sort(key=lambda h: (h.status != "open", -h.risk, h.target, h.rule_id))
    first = members[0]
    head = first.finding = source.finding(first)
    rules = list(dict.fromkeys(h.rule_id for h in members))
    statuses_by_target: dict[str, dict[str, str]] = {}
    if len(rules) > 1:
        _merge_rules(head, members, rules, source)
        for h in members:
            statuses_by_target.setdefault(h.target, {})[h.rule_id] = h.status
    seen: set[str] = set()
    members = [h for h in members if not (h.target in seen or seen.add(h.target))]
    head.affected = [h.target for h in members]
    describe(first, head.evidence)
    if len(members) == 1 and len(rules) == 1:
        return head
    statuses = {h.status for h in members}
    head.status = statuses.pop() if len(statuses) == 1 else "open"
    if head.tracking is None:
        head.tracking = next((h.tracking for h in members if h.tracking), None)
    more = [f"and {len(members) - 1} more"] if len(members) > 1 else []
    if len(rules) > 1:  # say that the group holds several threats (evidence.threats)
        more.append(f"{len(rules)} threats of one cause")
    if more:
        head.title = f"{head.title} ({'; '.join(more)})"
    per_target: dict[str, dict[str, Any]] = {}
    for i, h in enumerate(members[:MAX_DETAILED]):
        if i == 0:  # the head, with the group's status and tracking
            detail: dict[str, Any] = {
                "name": h.label,
                "risk": head.risk,
                "severity": head.severity.value,
                "likelihood": head.likelihood,
                "impact": head.impact,
                "status": head.status,
            }
            ev = head.evidence
            detail.update({k: ev[k] for k in _PER_TARGET_KEYS if k in ev})
            tracking = head.tracking
        else:
            detail = source.detail(h)
            describe(h, detail)
            if h.assumed:
                detail["assumed_absent"] = h.assumed
            if "attack_path" in detail:
                detail["attack_path"] = detail.pop("attack_path")  # after assumed_absent
            tracking = h.tracking
        if tracking:
            detail["tracking"] = tracking
        if len(rules) > 1:
            detail["rules"] = statuses_by_target[h.target]
        per_target[h.target] = detail
    head.evidence["per_target"] = per_target
    head.references = _merged_references(members, source) or None
    return head


def _merged_references(members: list[Hit], source: FindingSource) -> dict[str, list[str]]:
    """Every member's references, in member order; stops once nothing more can be added."""
    possible: set[tuple[str, str]] = set()
    for rule in {id(h.rule): h.rule for h in members}.values():
        possible.update(("owasp_llm", v) for v in rule.rule.owasp_llm)
        for _cond, comp in rule.compliance:
            possible.update(("pci_dss", v) for v in comp.pci_dss)
            possible.update(("gdpr", v) for v in comp.gdpr)
    refs: dict[str, list[str]] = {}
    count = 0
    for h in members:
        if count == len(possible):
            break
        for key, values in source.references(h).items():
            bucket = refs.setdefault(key, [])
            for v in values:
                if v not in bucket:
                    bucket.append(v)
                    count += 1
    return refs


def _merge_rules(
    head: Finding, members: list[Hit], rules: list[str], source: FindingSource
) -> None:
    """Rules sharing a cause: the group carries every mapping and mitigation of its rules."""
    head.evidence["rules"] = rules
    # Each threat of the cause keeps its own title (on its worst target), its targets (worst
    # first, the first MAX_DETAILED) and its own mitigations: a reader can act on each one.
    threats: dict[str, dict[str, Any]] = {}
    for h in members:
        entry = threats.get(h.rule_id)
        if entry is None:
            threats[h.rule_id] = {
                "title": h.rule.rule.title.replace("{name}", h.label),
                "targets": [h.target],
                "mitigations": source.mitigations(h),
            }
        elif len(entry["targets"]) < MAX_DETAILED and h.target not in entry["targets"]:
            entry["targets"].append(h.target)
    head.evidence["threats"] = threats
    by_rule = {h.rule_id: h.rule.rule for h in members}
    for key in ("stride", "linddun", "atlas", "owasp_ml", "cwe"):
        merged: list[str] = getattr(head, key)
        for rule_id in rules:
            merged.extend(v for v in getattr(by_rule[rule_id], key) if v not in merged)
    merged_mitigations = dict.fromkeys(head.mitigations)
    seen: set[Any] = set()
    bare: set[int] = set()  # rules met on a member with none of their mitigations in place
    for h in members:
        if not h.profile.control_mask & h.rule.mitigation_mask:
            # Then its plan is every mitigation of the rule, the same for all such members.
            if id(h.rule) in bare:
                continue
            bare.add(id(h.rule))
        # Members with the same plan (and the same controls in place) add nothing new.
        todo, done, refs = source.plan(h)
        key = (todo, done, tuple(refs[c] for c, _a in done) if done else None)
        if key not in seen:
            seen.add(key)
            merged_mitigations.update(dict.fromkeys(source.mitigations(h)))
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
