"""PASTA-style risk: attacker-centric likelihood times business impact, mapped to severity.

Likelihood (1..5) starts from the rule's base and adds one point per exposure factor present on
the target (internet-facing, no authentication, no rate limit, scores returned ...), subtracts for
the attacker capability the threat needs, and subtracts one per mitigating control in place (at
most two). Impact (1..5) starts from the rule's base and moves with data sensitivity, business
criticality and the model's IP value. Risk is their product (1..25).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from mlhunt.findings import Severity
from mlhunt.system.model import (
    Authentication,
    ControlType,
    Element,
    ElementKind,
    Flow,
    Level,
    ModelOutput,
    ModelProperties,
    Provenance,
)
from mlhunt.threatmodel.catalog import (
    CONTROL_BIT,
    FACTOR_BIT,
    Capability,
    ImpactFactor,
    LikelihoodFactor,
    Rule,
    mask,
)

_CAPABILITY_ADJUST = {Capability.LOW: 0.0, Capability.MEDIUM: -0.5, Capability.HIGH: -1.0}
_LEVEL_ADJUST = {Level.LOW: -1, Level.MEDIUM: 0, Level.HIGH: 1, Level.CRITICAL: 2}
_UNTRUSTED = frozenset(
    {
        Provenance.THIRD_PARTY,
        Provenance.PUBLIC_SCRAPED,
        Provenance.USER_GENERATED,
        Provenance.UNKNOWN,
    }
)
_EXTERNAL = frozenset({ElementKind.EXTERNAL_ENTITY, ElementKind.ACTOR, ElementKind.DATA_SOURCE})
_RATE_CONTROLS = (ControlType.RATE_LIMITING, ControlType.QUOTA)
MAX_CONTROL_REDUCTION = 2

# Severity bands over risk = likelihood x impact (1..25).
_BANDS = (
    (20.0, Severity.CRITICAL),
    (12.0, Severity.HIGH),
    (6.0, Severity.MEDIUM),
    (3.0, Severity.LOW),
)


def severity_for(risk: float) -> Severity:
    for floor, sev in _BANDS:
        if risk >= floor:
            return sev
    return Severity.INFO


@dataclass(slots=True)
class Score:
    likelihood: float
    impact: float
    risk: float
    severity: Severity
    factors: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()
    explanation: str = ""


def _clamp(x: float) -> float:
    return max(1.0, min(5.0, x))


def _model_of(*elements: Element) -> ModelProperties | None:
    for e in elements:
        if e.model is not None:
            return e.model
    return None


def _element_factors(e: Element, inbound_crossing: bool | None = None) -> set[LikelihoodFactor]:
    m = e.model
    present: set[LikelihoodFactor] = set()
    if e.internet_facing:
        present.add(LikelihoodFactor.INTERNET_FACING)
    if e.receives_across_boundary if inbound_crossing is None else inbound_crossing:
        present.add(LikelihoodFactor.CROSSES_BOUNDARY)
    if e.authentication == Authentication.NONE:
        present.add(LikelihoodFactor.NO_AUTH)
    if not any(c in e.controls for c in _RATE_CONTROLS):
        present.add(LikelihoodFactor.NO_RATE_LIMIT)
    if m is not None and m.output in (ModelOutput.SCORES, ModelOutput.EMBEDDING):
        present.add(LikelihoodFactor.SCORES_EXPOSED)
    if (m is not None and m.training_data_provenance in _UNTRUSTED) or (
        e.receives_from & _EXTERNAL
    ):
        present.add(LikelihoodFactor.UNTRUSTED_DATA)
    if m is not None and m.retrains_on_feedback:
        present.add(LikelihoodFactor.FEEDBACK_LOOP)
    if e.shared_tenancy:
        present.add(LikelihoodFactor.SHARED_TENANCY)
    if e.privileged:
        present.add(LikelihoodFactor.PRIVILEGED)
    if m is not None and m.physical_world_inputs:
        present.add(LikelihoodFactor.PHYSICAL_INPUTS)
    return present


def _flow_factors(f: Flow) -> set[LikelihoodFactor]:
    src, dst = f.source_element, f.target_element
    present = _element_factors(dst, f.crosses_boundary) - {
        LikelihoodFactor.NO_AUTH,
        LikelihoodFactor.UNTRUSTED_DATA,
        LikelihoodFactor.INTERNET_FACING,
    }
    if src.internet_facing or dst.internet_facing or src.kind in _EXTERNAL:
        present.add(LikelihoodFactor.INTERNET_FACING)
    if not f.authenticated:
        present.add(LikelihoodFactor.NO_AUTH)
    if src.kind in _EXTERNAL or (
        src.model is not None and src.model.training_data_provenance in _UNTRUSTED
    ):
        present.add(LikelihoodFactor.UNTRUSTED_DATA)
    if src.privileged:
        present.add(LikelihoodFactor.PRIVILEGED)
    return present


@dataclass(slots=True, frozen=True)
class Profile:
    """What scoring needs to know about one target, computed once per element or flow."""

    factors: frozenset[LikelihoodFactor]
    control_refs: dict[ControlType, tuple[str, ...]]
    sensitivity: int
    criticality: Level
    ip_value: Level | None
    factor_mask: int = 0
    control_mask: int = 0
    # Everything the score depends on besides the rule, as one hashable int tuple.
    score_key: tuple[int, int, int] = (0, 0, 0)

    @classmethod
    def make(
        cls,
        factors: set[LikelihoodFactor],
        control_refs: dict[ControlType, tuple[str, ...]],
        sensitivity: int,
        criticality: Level,
        ip_value: Level | None,
    ) -> Profile:
        return cls(
            frozenset(factors),
            control_refs,
            sensitivity,
            criticality,
            ip_value,
            mask(factors, FACTOR_BIT),
            mask(control_refs, CONTROL_BIT),
            (sensitivity, criticality.score, ip_value.score if ip_value is not None else 0),
        )


def profile_element(e: Element) -> Profile:
    m = e.model
    return Profile.make(
        _element_factors(e),
        e.control_refs,
        e.sensitivity,
        e.business_criticality,
        m.ip_value if m is not None else None,
    )


def profile_flow(f: Flow) -> Profile:
    src, dst = f.source_element, f.target_element
    refs = dict(dst.control_refs)
    refs.update(f.control_refs)  # the flow's own controls win where both name a type
    crit = max(src.business_criticality, dst.business_criticality, key=lambda lv: lv.score)
    m = _model_of(dst, src)
    return Profile.make(
        _flow_factors(f),
        refs,
        f.sensitivity,
        crit,
        m.ip_value if m is not None else None,
    )


def score(rule: Rule, p: Profile) -> Score:
    """Risk of ``rule`` on the target described by ``p``."""
    return _score(rule, p.factors, p.control_refs.keys(), p.sensitivity, p.criticality, p.ip_value)


def score_element(rule: Rule, e: Element) -> Score:
    return score(rule, profile_element(e))


def score_flow(rule: Rule, f: Flow) -> Score:
    return score(rule, profile_flow(f))


def _score(
    rule: Rule,
    present: frozenset[LikelihoodFactor],
    controls_present: Collection[ControlType],
    sensitivity: int,
    criticality: Level,
    ip_value: Level | None,
) -> Score:
    lk = rule.likelihood
    parts = [f"base {lk.base}"]
    factors = tuple(f.value for f in lk.factors if f in present)
    likelihood = lk.base + len(factors)
    parts.extend(f"+ {f}" for f in factors)
    cap = _CAPABILITY_ADJUST[lk.capability]
    if cap:
        likelihood += cap
        parts.append(f"{cap:+g} ({lk.capability.value} attacker capability needed)")
    controls = tuple(ct.value for ct in rule.mitigated_by if ct in controls_present)
    reduction = min(len(controls), MAX_CONTROL_REDUCTION)
    if reduction:
        likelihood -= reduction
        parts.append(f"- {reduction} (controls in place: {', '.join(controls)})")
    likelihood = _clamp(likelihood)

    im = rule.impact
    impact = float(im.base)
    iparts = [f"base {im.base}"]
    for factor in im.factors:
        adj = 0
        if factor is ImpactFactor.SENSITIVITY:
            adj = 2 if sensitivity >= 4 else 1 if sensitivity == 3 else 0
        elif factor is ImpactFactor.CRITICALITY:
            adj = _LEVEL_ADJUST[criticality]
        elif factor is ImpactFactor.IP_VALUE and ip_value is not None:
            adj = _LEVEL_ADJUST[ip_value]
        if adj:
            impact += adj
            iparts.append(f"{adj:+d} {factor.value}")
    impact = _clamp(impact)
    risk = round(likelihood * impact, 2)
    explanation = (
        f"likelihood {likelihood:g} = {' '.join(parts)}; impact {impact:g} = {' '.join(iparts)}"
    )
    return Score(likelihood, impact, risk, severity_for(risk), factors, controls, explanation)
