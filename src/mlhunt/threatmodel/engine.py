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
from mlhunt.threatmodel.grouping import Hit, apply_tracking, group_findings
from mlhunt.threatmodel.paths import compute_paths
from mlhunt.threatmodel.risk import (
    Profile,
    RiskTerms,
    Score,
    profile_element,
    profile_flow,
    quick_risk,
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
    # Rules about a component's internals skip vendor-operated elements.
    own_by_kind = {k: [e for e in v if not e.is_vendor] for k, v in by_kind.items()}
    # Flows grouped by the kinds of their ends, so a rule only visits flows it can apply to.
    flows_by_ends: dict[tuple[ElementKind, ElementKind], list[tuple[Flow, Element, Element]]] = {}
    for f in system.flows:
        src, dst = f.source_element, f.target_element
        flows_by_ends.setdefault((src.kind, dst.kind), []).append((f, src, dst))
    builder = _FindingBuilder(system, assume_absent)
    judge = FactJudge(system, paths)
    hits: list[Hit] = []
    add = hits.append
    profiles = builder.profiles
    profile = builder.profile

    # A rule visits only the objects of the kinds its condition requires (``target.kind in
    # (...) and ...``) where its boolean guards hold (``flow.has_personal_data and ...``; lists
    # built on first use per guard and kind, or pair of end kinds, and shared by the rules with
    # the same guards) and checks the rest of its condition there (``residual``). Same order,
    # same hits.
    subsets: dict[tuple[Any, ...], list[Any]] = {}

    for rule in catalog.rules:
        r = rule.rule
        terms = RiskTerms.of(r)
        guards = rule.guards
        condition = rule.residual or rule.condition
        # Most rules read no unstated fact and the system plans nothing: no judging per hit.
        judged = judge.needed(rule)
        rule_id = r.id
        picked = dict(rule.kind_guards)
        if r.scope == "element":
            candidates = own_by_kind if r.internals else by_kind
            allowed = picked.get("element")
            for kind in rule.kinds:
                if allowed is not None and kind not in allowed:
                    continue
                kind_name = kind.value
                elements = candidates.get(kind, ())
                if guards and elements:
                    elements = _subset(subsets, (r.internals, kind), elements, guards, False)
                for e in elements:
                    if condition(e, system):
                        p = profiles.get(id(e)) or profile(e)
                        risk, mitigated = quick_risk(terms, p)
                        hit = Hit(rule, rule_id, (e,), e.id, kind_name, p, risk, mitigated)
                        if judged:
                            judge.judge(rule, hit)
                        add(hit)
        else:
            kinds = rule.kinds
            sources = picked.get("source")
            targets = picked.get("target")
            for ends, group in flows_by_ends.items():
                if (ends[0] in kinds or ends[1] in kinds) and (
                    (sources is None or ends[0] in sources)
                    and (targets is None or ends[1] in targets)
                ):
                    if guards:
                        group = _subset(subsets, ends, group, guards, True)
                    for f, src, dst in group:
                        if condition(f, src, dst, system):
                            p = profiles.get(id(f)) or profile(f)
                            risk, mitigated = quick_risk(terms, p)
                            objs = (f, src, dst)
                            hit = Hit(rule, rule_id, objs, f.id, "flow", p, risk, mitigated)
                            if judged:
                                judge.judge(rule, hit)
                            add(hit)
    # Decisions match every hit, those resting on unknown facts included (no stale warning).
    warnings = apply_tracking(hits, system.risk_tracking)
    kept = hits if assume_absent else [h for h in hits if not h.assumed]
    causes = {r.id: r.rule.cause or r.id for r in catalog.rules}
    findings = group_findings(kept, causes, builder, judge.describe)
    findings.sort(key=lambda x: (-(x.risk or 0.0), x.id))
    questions = judge.questions()
    mode = "absent" if assume_absent else "unknown"
    return ThreatModel(system, findings, warnings, catalog, questions, paths.ranked(findings), mode)


def _subset(
    index: dict[tuple[Any, ...], list[Any]],
    where: tuple[Any, ...],
    base: list[Any],
    guards: tuple[tuple[str, bool], ...],
    flows: bool,
) -> list[Any]:
    """The objects of ``base`` (elements, or ``(flow, source, target)``) where every guard
    holds, in order; built from the subset for the guards but the last, so rules whose guards
    share a prefix share the work."""
    key = (where, guards)
    got = index.get(key)
    if got is None:
        parent = _subset(index, where, base, guards[:-1], flows) if len(guards) > 1 else base
        attr, value = guards[-1]
        if flows:
            got = [t for t in parent if bool(getattr(t[0], attr)) is value]
        else:
            got = [o for o in parent if bool(getattr(o, attr)) is value]
        index[key] = got
    return got


class _FindingBuilder:
    """Scores every rule hit (the number only) and builds the findings a report shows.

    Large estates repeat the same shapes (same exposure, same controls), so scores and
    mitigation lists are memoised by what they depend on; findings never share mutable state.
    """

    def __init__(self, system: SystemDescription, assume_absent: bool = True) -> None:
        self.system = system
        self.assume_absent = assume_absent
        self.profiles: dict[int, Profile] = {}
        self._scores: dict[tuple[Any, ...], Score] = {}
        self._terms: dict[int, RiskTerms] = {}
        self._target_masks: dict[tuple[int, bool], int] = {}
        self._mitigations: dict[tuple[Any, ...], Any] = {}
        self._references: dict[tuple[int, int], dict[str, list[str]]] = {}

    def profile(self, target: Element | Flow) -> Profile:
        p = self.profiles.get(id(target))
        if p is None:
            absent = self.assume_absent
            p = (
                profile_flow(target, absent, self._target_masks)
                if isinstance(target, Flow)
                else profile_element(target, absent)
            )
            self.profiles[id(target)] = p
        return p

    def scored(self, hit: Hit) -> tuple[Score, dict[str, list[str]]]:
        """The explained score of a hit and the controls in place that lowered it."""
        rule, p = hit.rule, hit.profile
        ctl = p.control_mask & rule.mitigated_mask
        t = self._terms.get(id(rule))
        if t is None:
            t = self._terms[id(rule)] = RiskTerms.of(rule.rule)
        # Only what this rule's score reads of the target (see risk._score).
        ip = p.ip_value
        key = (
            id(rule),
            p.factor_mask & rule.factor_mask,
            ctl,
            0 if t.privacy else p.hop_bucket,
            p.sensitivity if t.sensitivity else 0,
            p.criticality.score if t.criticality else 0,
            (ip.score if ip is not None else -1) if t.ip_value else 0,
            max(p.cia[d] for d in t.dims),
            p.agency if t.agency else 0,
            p.children if t.children else False,
        )
        sc = self._scores.get(key)
        if sc is None:
            sc = self._scores[key] = score(rule.rule, p)
        if not ctl:
            return sc, {}
        refs = p.control_refs
        return sc, {c: list(refs[CONTROL_BY_VALUE[c]]) for c in sc.controls}

    def detail(self, hit: Hit) -> dict[str, Any]:
        """What a group shows of one of its members (``evidence.per_target``), without
        building the member's whole finding."""
        sc, in_place = self.scored(hit)
        return {
            "name": hit.label,
            "risk": sc.risk,
            "severity": sc.severity.value,
            "likelihood": sc.likelihood,
            "impact": sc.impact,
            "status": hit.status,
            "target_kind": hit.kind,
            "likelihood_factors": list(sc.factors),
            "controls_in_place": in_place,
            "risk_explanation": sc.explanation,
        }

    def finding(self, hit: Hit) -> Finding:
        """The full finding of one hit: scores explained, mitigations, references, evidence."""
        rule = hit.rule
        sc, in_place = self.scored(hit)
        target = hit.objs[0]
        found = _finding(
            rule,
            hit.target,
            target.label,
            hit.kind,
            sc,
            self.references(hit),
            self.mitigations(hit),
            in_place,
        )
        if hit.tracking is not None:
            found.status = hit.status
            found.tracking = hit.tracking
        if hit.planned:
            # Not built yet: the finding is a design requirement for it.
            found.evidence["planned"] = hit.planned
        if hit.assumed:
            found.evidence["assumed_absent"] = hit.assumed
        return found

    def mitigations(self, hit: Hit) -> list[str]:
        """The rule's mitigations for this target, those already in place named as such."""
        todo, done, refs = self.plan(hit)
        mitigations = list(todo)
        if done:
            mitigations.extend(f"[in place: {', '.join(refs[c])}] {a}" for c, a in done)
        return mitigations

    def plan(self, hit: Hit) -> tuple[tuple[str, ...], tuple[tuple[ControlType, str], ...], Any]:
        """The rule's mitigations to do and those in place, with the target's control refs."""
        rule, p = hit.rule, hit.profile
        mkey = (id(rule), p.control_mask & rule.mitigation_mask)
        plan = self._mitigations.get(mkey)
        if plan is None:
            plan = self._mitigations[mkey] = _mitigation_plan(rule, p.control_refs)
        todo, done = plan
        return todo, done, p.control_refs if done else None

    def references(self, hit: Hit) -> dict[str, list[str]]:
        """OWASP LLM, PCI DSS and GDPR references (a fresh dict: findings share no state)."""
        rule = hit.rule
        when = 0
        args = (*hit.objs, self.system)
        for i, (cond, _comp) in enumerate(rule.compliance):
            if cond(*args):
                when |= 1 << i
        key = (id(rule), when)
        refs = self._references.get(key)
        if refs is None:
            refs = self._references[key] = _compliance(rule, when)
        return {k: list(v) for k, v in refs.items()}


def _mitigation_plan(
    rule: CompiledRule, control_refs: dict[ControlType, tuple[str, ...]]
) -> tuple[tuple[str, ...], tuple[tuple[ControlType, str], ...]]:
    """The rule's mitigations still to do, and those in place (named per target by the caller)."""
    todo = tuple(m.action for m in rule.rule.mitigations if m.control not in control_refs)
    done = tuple((m.control, m.action) for m in rule.rule.mitigations if m.control in control_refs)
    return todo, done


def _compliance(rule: CompiledRule, when: int) -> dict[str, list[str]]:
    """The references of ``rule`` given which of its compliance conditions hold (bits)."""
    refs: dict[str, list[str]] = {}
    if rule.rule.owasp_llm:
        refs["owasp_llm"] = list(rule.rule.owasp_llm)
    for i, (_cond, comp) in enumerate(rule.compliance):
        if when >> i & 1:
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
