"""PASTA-style risk: attacker-centric likelihood times business impact, mapped to severity.

Likelihood (1..5) starts from the rule's base and adds one point per exposure factor present on
the target (internet-facing, no authentication, no rate limit, scores returned ...), subtracts for
the attacker capability the threat needs, and subtracts one per mitigating control in place (at
most two). Impact (1..5) starts from the rule's base and moves with data sensitivity, business
criticality and the model's IP value. Risk is their product (1..25).
"""

from __future__ import annotations

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
    (15.0, Severity.HIGH),
    (8.0, Severity.MEDIUM),
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
    #: The controls in place push the likelihood below its floor: only residual risk is left.
    mitigated: bool = False


def _clamp(x: float) -> float:
    return max(1.0, min(5.0, x))


def _model_of(*elements: Element) -> ModelProperties | None:
    for e in elements:
        if e.model is not None:
            return e.model
    return None


def _element_factors(
    e: Element, inbound_crossing: bool | None = None, assume_absent: bool = True
) -> set[LikelihoodFactor]:
    """Exposure factors present on ``e``; an unstated fact only counts when assumed absent."""
    m = e.model
    stated = e.model_fields_set
    present: set[LikelihoodFactor] = set()
    if e.internet_facing:
        present.add(LikelihoodFactor.INTERNET_FACING)
    if e.receives_across_boundary if inbound_crossing is None else inbound_crossing:
        present.add(LikelihoodFactor.CROSSES_BOUNDARY)
    if e.authentication == Authentication.NONE and (assume_absent or "authentication" in stated):
        present.add(LikelihoodFactor.NO_AUTH)
    if not any(c in e.controls for c in _RATE_CONTROLS) and (
        assume_absent or "rate_limit" in stated
    ):
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


def _flow_factors(f: Flow, assume_absent: bool = True) -> set[LikelihoodFactor]:
    src, dst = f.source_element, f.target_element
    present = _element_factors(dst, f.crosses_boundary, assume_absent) - {
        LikelihoodFactor.NO_AUTH,
        LikelihoodFactor.UNTRUSTED_DATA,
        LikelihoodFactor.INTERNET_FACING,
    }
    if src.internet_facing or dst.internet_facing or src.kind in _EXTERNAL:
        present.add(LikelihoodFactor.INTERNET_FACING)
    if not f.authenticated and (assume_absent or "authenticated" in f.model_fields_set):
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
    hops: int = -1  # flows from the nearest untrusted source; -1: none reaches it
    cia: tuple[int, int, int] = (2, 2, 2)
    factor_mask: int = 0
    control_mask: int = 0
    # Everything the score depends on besides the rule, as one hashable int tuple.
    score_key: tuple[int, ...] = (0, 0, 0)

    @classmethod
    def make(
        cls,
        factors: set[LikelihoodFactor],
        control_refs: dict[ControlType, tuple[str, ...]],
        sensitivity: int,
        criticality: Level,
        ip_value: Level | None,
        hops: int = -1,
        cia: tuple[int, int, int] = (2, 2, 2),
    ) -> Profile:
        return cls(
            frozenset(factors),
            control_refs,
            sensitivity,
            criticality,
            ip_value,
            hops,
            cia,
            mask(factors, FACTOR_BIT),
            mask(control_refs, CONTROL_BIT),
            (
                sensitivity,
                criticality.score,
                ip_value.score if ip_value is not None else 0,
                hop_bucket(hops),
            ),
        )


def profile_element(e: Element, assume_absent: bool = True) -> Profile:
    m = e.model
    return Profile.make(
        _element_factors(e, None, assume_absent),
        e.control_refs,
        e.sensitivity,
        e.business_criticality,
        m.ip_value if m is not None else None,
        e.untrusted_hops,
        e._l.cia,
    )


def profile_flow(f: Flow, assume_absent: bool = True) -> Profile:
    src, dst = f.source_element, f.target_element
    refs = dict(dst.control_refs)
    refs.update(f.control_refs)  # the flow's own controls win where both name a type
    crit = max(src.business_criticality, dst.business_criticality, key=lambda lv: lv.score)
    m = _model_of(dst, src)
    return Profile.make(
        _flow_factors(f, assume_absent),
        refs,
        f.sensitivity,
        crit,
        m.ip_value if m is not None else None,
        src.untrusted_hops,
        f._l.cia,
    )


def score(rule: Rule, p: Profile) -> Score:
    """Risk of ``rule`` on the target described by ``p``."""
    return _score(rule, p)


def score_element(rule: Rule, e: Element) -> Score:
    return score(rule, profile_element(e))


def score_flow(rule: Rule, f: Flow) -> Score:
    return score(rule, profile_flow(f))


LINDDUN_CAP = 3.5
MAX_FACTOR_POINTS = 1.5
#: Likelihood points per exposure factor present (several factors overlap: no full point each).
FACTOR_WEIGHT = 0.5
#: Reachability from the nearest untrusted source, in flows: 0 (it is one) .. 4+, or -1 (none).
_HOP_ADJUST = {0: 0.0, 1: 0.0, 2: 0.0, 3: -0.5, 4: -0.5, -1: -1.0}
# Business criticality and CIA needs move impact by half points; sensitivity by whole ones.
_CRIT_ADJUST = {Level.LOW: -1.0, Level.MEDIUM: 0.0, Level.HIGH: 0.5, Level.CRITICAL: 1.0}
_NEED_ADJUST = {1: -0.5, 2: 0.0, 3: 0.5, 4: 1.0}
_SENSITIVITY_ADJUST = {0: -1, 1: -1, 2: 0, 3: 1, 4: 2}
# Which CIA needs a threat hurts, by its STRIDE letters (LINDDUN: confidentiality).
_STRIDE_CIA = {"S": (0, 1), "T": (1,), "R": (1,), "I": (0,), "D": (2,), "E": (0, 1)}


def hop_bucket(hops: int) -> int:
    """What the likelihood sees of the distance: 0 (0-2 hops), 1 (3 or more), 2 (unreached)."""
    return 2 if hops < 0 else 0 if hops <= 2 else 1


def cia_dims(rule: Rule) -> tuple[int, ...]:
    dims: set[int] = set()
    for letter in rule.stride:
        dims.update(_STRIDE_CIA.get(letter, ()))
    if not dims:
        dims = {0} if rule.linddun else {0, 1}
    return tuple(sorted(dims))


def _score(rule: Rule, p: Profile) -> Score:
    lk = rule.likelihood
    parts = [f"base {lk.base}"]
    factors = tuple(f.value for f in lk.factors if f in p.factors)
    # The first exposure factor present opens the attack (+1); more overlap with it (+0.5 each).
    likelihood = float(lk.base)
    # Exposure saturates: at most MAX_FACTOR_POINTS however many factors are present.
    gained = 0.0
    for i, f in enumerate(factors):
        w = min(1.0 if i == 0 else FACTOR_WEIGHT, MAX_FACTOR_POINTS - gained)
        if w <= 0:
            parts.append(f"(+0 {f}: exposure already counted in full)")
            continue
        gained += w
        parts.append(f"+{w:g} {f}")
    likelihood += gained
    # Privacy harms (LINDDUN) come from how the operator processes data, not from an attacker
    # reaching the element: exposure does not move them.
    hop = 0.0 if rule.framework.value == "LINDDUN" else _HOP_ADJUST[min(p.hops, 4)]
    if hop:
        likelihood += hop
        where = (
            "no untrusted source reaches it"
            if p.hops < 0
            else "3 or more hops from the nearest untrusted source"
        )
        parts.append(f"{hop:+g} ({where})")
    cap = _CAPABILITY_ADJUST[lk.capability]
    if cap:
        likelihood += cap
        parts.append(f"{cap:+g} ({lk.capability.value} attacker capability needed)")
    if rule.framework.value == "LINDDUN" and likelihood > LINDDUN_CAP:
        # A privacy gap is certain processing, not a likely attack: it ranks below live attacks.
        likelihood = LINDDUN_CAP
        parts.append(f"(capped at {LINDDUN_CAP:g} for a privacy-by-design gap)")
    addressed = _addressing(rule)
    controls = tuple(ct.value for ct in addressed if ct in p.control_refs)
    # Each control in place counts: the first MAX_CONTROL_REDUCTION a full point, more a half.
    reduction = min(len(controls), MAX_CONTROL_REDUCTION) + 0.5 * max(
        0, len(controls) - MAX_CONTROL_REDUCTION
    )
    if reduction:
        likelihood -= reduction
        parts.append(f"- {reduction:g} (controls in place: {', '.join(controls)})")
    # Below the floor, the controls in place leave only residual risk: mitigated.
    residual = bool(controls) and likelihood < 1.0
    if residual:
        parts.append("(below 1: mitigated by the controls in place)")
    likelihood = _clamp(likelihood)

    im = rule.impact
    impact = float(im.base)
    iparts = [f"base {im.base}"]
    # Sensitivity and the CIA need both describe the data: the larger of the two counts.
    privacy = rule.framework.value == "LINDDUN"
    dims = cia_dims(rule)
    need = _NEED_ADJUST[max(p.cia[d] for d in dims)]
    data_adj, data_why = need, f"data's {'/'.join(_CIA_NAMES[d] for d in dims)} need"
    for factor in im.factors:
        adj = 0.0
        if factor is ImpactFactor.SENSITIVITY:
            sens = _SENSITIVITY_ADJUST[min(p.sensitivity, 4)]
            if sens > data_adj:
                data_adj, data_why = sens, "sensitivity"
            continue
        if factor is ImpactFactor.CRITICALITY:
            # A privacy harm falls on the data subjects: the data's sensitivity measures it,
            # not how critical the system is to the business.
            adj = 0.0 if privacy else _CRIT_ADJUST[p.criticality]
        elif factor is ImpactFactor.IP_VALUE and p.ip_value is not None:
            adj = _CRIT_ADJUST[p.ip_value]
        if adj:
            impact += adj
            iparts.append(f"{adj:+g} {factor.value}")
    if data_adj:
        impact += data_adj
        iparts.append(f"{data_adj:+g} {data_why}")
    impact = _clamp(impact)
    risk = round(likelihood * impact, 2)
    explanation = (
        f"likelihood {likelihood:g} = {' '.join(parts)}; impact {impact:g} = {' '.join(iparts)}"
    )
    return Score(
        likelihood, impact, risk, severity_for(risk), factors, controls, explanation, residual
    )


_CIA_NAMES = ("confidentiality", "integrity", "availability")


def _addressing(rule: Rule) -> tuple[ControlType, ...]:
    """Controls that lower the rule's likelihood: its ``mitigated_by`` and its mitigations'."""
    out = list(rule.mitigated_by)
    out.extend(m.control for m in rule.mitigations if m.control not in out)
    return tuple(out)
