"""Apply the threat catalog to a system description: findings per element and per flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlhunt._gc import gc_paused
from mlhunt.findings import Finding, document
from mlhunt.system.model import (
    ControlType,
    Element,
    ElementKind,
    Flow,
    SystemDescription,
)
from mlhunt.threatmodel.catalog import Catalog, CompiledRule, default_catalog
from mlhunt.threatmodel.facts import FactJudge, Question
from mlhunt.threatmodel.grouping import apply_tracking, group_findings
from mlhunt.threatmodel.paths import compute_paths
from mlhunt.threatmodel.risk import (
    Profile,
    Score,
    cia_dims,
    profile_element,
    profile_flow,
    score,
)

CONTROL_BY_VALUE = {c.value: c for c in ControlType}


@dataclass
class ThreatModel:
    """The result of ``mlhunt model``: the system, its findings (one per cause), the questions
    its unknown facts raise, its attack paths and warnings about the input."""

    system: SystemDescription
    findings: list[Finding]
    warnings: list[str] = field(default_factory=list)
    catalog: Catalog | None = None
    questions: list[Question] = field(default_factory=list)
    attack_paths: list[dict[str, Any]] = field(default_factory=list)
    assume: str = "unknown"

    def findings_for(self, target: str) -> list[Finding]:
        """Findings whose cause applies to ``target`` (it is among their affected ids)."""
        return [f for f in self.findings if target in (f.affected or (f.target,))]

    def to_document(self, top: int | None = None) -> dict[str, Any]:
        """The JSON document; ``top`` keeps only the N highest risks (the summary says so)."""
        shown = self.findings if top is None else self.findings[:top]
        doc = document(
            "model",
            shown,
            system={"name": self.system.name, "description": self.system.description},
            elements=[_dump(e) for e in self.system.elements],
            flows=[_dump(f) for f in self.system.flows],
            trust_boundaries=[b.model_dump(mode="json") for b in self.system.trust_boundaries],
            warnings=list(self.warnings),
            assume=self.assume,
            questions=[q.to_dict() for q in self.questions],
            attack_paths=list(self.attack_paths),
        )
        if top is not None:
            doc["summary"]["shown"] = len(shown)
            doc["summary"]["total"] = len(self.findings)
            doc["top"] = top
        return doc


def _dump(obj: Element | Flow) -> dict[str, Any]:
    out = obj.model_dump(mode="json", exclude_defaults=True)
    out.setdefault("id", obj.id)
    out["controls"] = sorted(c.value for c in obj.controls)
    return out


ASSUME_CHOICES = ("unknown", "absent")


def build_threat_model(
    system: SystemDescription, catalog: Catalog | None = None, *, assume: str = "unknown"
) -> ThreatModel:
    """Every rule of ``catalog`` (the built-in one by default) applied to ``system``.

    ``assume="unknown"`` (the default) turns a finding that rests only on an unstated security
    fact into a question; ``assume="absent"`` reports it (the pessimistic view).
    """
    if assume not in ASSUME_CHOICES:
        raise ValueError(f"assume must be one of {', '.join(ASSUME_CHOICES)}, not {assume!r}")
    catalog = catalog or default_catalog()
    with gc_paused():
        return _build(system, catalog, assume == "absent")


def _build(system: SystemDescription, catalog: Catalog, assume_absent: bool) -> ThreatModel:
    paths = compute_paths(system)
    by_kind: dict[ElementKind, list[Element]] = {}
    for e in system.elements:
        by_kind.setdefault(e.kind, []).append(e)
    # Flows grouped by the kinds of their ends, so a rule only visits flows it can apply to.
    flows_by_ends: dict[tuple[ElementKind, ElementKind], list[tuple[Flow, Element, Element]]] = {}
    for f in system.flows:
        src, dst = f.source_element, f.target_element
        flows_by_ends.setdefault((src.kind, dst.kind), []).append((f, src, dst))
    builder = _FindingBuilder(assume_absent)
    judge = FactJudge(system, paths)

    for rule in catalog.rules:
        if rule.rule.scope == "element":
            internals = rule.rule.internals
            for kind in rule.kinds:
                for e in by_kind.get(kind, ()):
                    if internals and e.is_vendor:
                        continue
                    if rule.condition(e, system):
                        found = builder.add(rule, e, e.label, e.kind.value, (e, system))
                        judge.judge(rule, found, (e,))
        else:
            kinds = rule.kinds
            for (sk, dk), group in flows_by_ends.items():
                if sk in kinds or dk in kinds:
                    for f, src, dst in group:
                        if rule.condition(f, src, dst, system):
                            found = builder.add(rule, f, f.label, "flow", (f, src, dst, system))
                            judge.judge(rule, found, (f, src, dst))
    raw = builder.findings
    # Decisions match every hit, those resting on unknown facts included (no stale warning).
    warnings = apply_tracking(raw, system.risk_tracking)
    kept = raw if assume_absent else [f for f in raw if not f.evidence.get("assumed_absent")]
    causes = {r.id: r.rule.cause or r.id for r in catalog.rules}
    findings = group_findings(kept, system, causes, judge.describe)
    findings.sort(key=lambda x: (-(x.risk or 0.0), x.id))
    questions = judge.questions(findings)
    mode = "absent" if assume_absent else "unknown"
    return ThreatModel(system, findings, warnings, catalog, questions, paths.ranked(findings), mode)


class _FindingBuilder:
    """Builds findings, computing each target's profile once and reusing identical scores.

    Large estates repeat the same shapes (same exposure, same controls), so scores and
    mitigation lists are memoised by what they depend on; findings never share mutable state.
    """

    def __init__(self, assume_absent: bool = True) -> None:
        self.assume_absent = assume_absent
        self.findings: list[Finding] = []
        self._profiles: dict[int, Profile] = {}
        self._scores: dict[tuple[Any, ...], Score] = {}
        self._dims: dict[int, tuple[int, ...]] = {}
        self._mitigations: dict[tuple[Any, ...], Any] = {}

    def add(
        self,
        rule: CompiledRule,
        target: Element | Flow,
        label: str,
        kind: str,
        args: tuple[Any, ...],
    ) -> Finding:
        p = self._profiles.get(id(target))
        if p is None:
            absent = self.assume_absent
            p = (
                profile_flow(target, absent)
                if isinstance(target, Flow)
                else profile_element(target, absent)
            )
            self._profiles[id(target)] = p
        r = rule.rule
        refs = p.control_refs
        ctl = p.control_mask & rule.mitigated_mask
        dims = self._dims.get(id(rule))
        if dims is None:
            dims = self._dims[id(rule)] = cia_dims(r)
        need = max(p.cia[d] for d in dims)
        key = (id(rule), p.factor_mask & rule.factor_mask, ctl, p.score_key, need)
        sc = self._scores.get(key)
        if sc is None:
            sc = self._scores[key] = score(r, p)
        mkey = (id(rule), p.control_mask & rule.mitigation_mask)
        plan = self._mitigations.get(mkey)
        if plan is None:
            plan = self._mitigations[mkey] = _mitigation_plan(rule, refs)
        todo, done = plan
        mitigations = list(todo)
        if done:
            mitigations.extend(f"[in place: {', '.join(refs[c])}] {a}" for c, a in done)
        in_place = {c: list(refs[CONTROL_BY_VALUE[c]]) for c in sc.controls} if ctl else {}
        found = _finding(
            rule, target.id, label, kind, sc, _compliance(rule, args), mitigations, in_place
        )
        self.findings.append(found)
        return found


def _mitigation_plan(
    rule: CompiledRule, control_refs: dict[ControlType, tuple[str, ...]]
) -> tuple[tuple[str, ...], tuple[tuple[ControlType, str], ...]]:
    """The rule's mitigations still to do, and those in place (named per target by the caller)."""
    todo = tuple(m.action for m in rule.rule.mitigations if m.control not in control_refs)
    done = tuple((m.control, m.action) for m in rule.rule.mitigations if m.control in control_refs)
    return todo, done


def _compliance(rule: CompiledRule, args: tuple[Any, ...]) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {}
    if rule.rule.owasp_llm:
        refs["owasp_llm"] = list(rule.rule.owasp_llm)
    for cond, comp in rule.compliance:
        if cond(*args):
            for key in ("pci_dss", "gdpr"):
                values = getattr(comp, key)
                if values:
                    bucket = refs.setdefault(key, [])
                    bucket.extend(v for v in values if v not in bucket)
    return refs


def _finding(
    rule: CompiledRule,
    target: str,
    label: str,
    kind: str,
    sc: Score,
    references: dict[str, list[str]],
    mitigations: list[str],
    controls_in_place: dict[str, list[str]],
) -> Finding:
    r = rule.rule
    evidence: dict[str, Any] = {
        "target_kind": kind,
        "likelihood_factors": list(sc.factors),
        "controls_in_place": controls_in_place,
        "risk_explanation": sc.explanation,
    }
    if r.false_positives:
        evidence["false_positives"] = r.false_positives
    if r.detection:
        evidence["detection"] = r.detection
    if sc.mitigated:
        evidence["mitigated_by_controls"] = True
    return Finding(
        status="mitigated" if sc.mitigated else "open",
        id=f"{r.id}@{target}",
        rule_id=r.id,
        title=r.title.replace("{name}", label),
        severity=sc.severity,
        source="model",
        target=target,
        description=rule.description,
        atlas=list(r.atlas),
        owasp_ml=list(r.owasp_ml),
        stride=list(r.stride),
        linddun=list(r.linddun),
        cwe=list(r.cwe),
        evidence=evidence,
        mitigations=mitigations,
        framework=rule.framework,
        likelihood=sc.likelihood,
        impact=sc.impact,
        risk=sc.risk,
        references=references or None,
    )
