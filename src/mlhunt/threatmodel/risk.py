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
from mlhunt.system.model import ControlType, Element, Flow, Level
from mlhunt.threatmodel.catalog import (
    CONTROL_BIT,
    FACTOR_BIT,
    Capability,
    ImpactFactor,
    LikelihoodFactor,
    Rule,
    mask,
)
from mlhunt.threatmodel.profile import Profile, hop_bucket, profile_element, profile_flow

__all__ = [
    "Profile",
    "RiskTerms",
    "Score",
    "cia_dims",
    "hop_bucket",
    "profile_element",
    "profile_flow",
    "quick_risk",
    "score",
    "severity_for",
]

_CAPABILITY_ADJUST = {Capability.LOW: 0.0, Capability.MEDIUM: -0.5, Capability.HIGH: -1.0}
_LEVEL_ADJUST = {Level.LOW: -1, Level.MEDIUM: 0, Level.HIGH: 1, Level.CRITICAL: 2}
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
# What an element can do (Element.agency): a lookup or fetch -1, a write or message 0, a payment +1.
_AGENCY_ADJUST = (-1.0, -1.0, 0.0, 1.0)
# Which CIA needs a threat hurts, by its STRIDE letters (LINDDUN: confidentiality).
_STRIDE_CIA = {"S": (0, 1), "T": (1,), "R": (1,), "I": (0,), "D": (2,), "E": (0, 1)}


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
    present = p.factor_mask
    factors = tuple(f.value for f in lk.factors if FACTOR_BIT[f] & present)
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
        elif factor is ImpactFactor.AGENCY:
            adj = _AGENCY_ADJUST[p.agency]
        elif factor is ImpactFactor.CHILDREN:
            adj = 1.0 if p.children else 0.0
        if adj:
            impact += adj
            iparts.append(f"{adj:+g} {factor.value}")
    if data_adj:
        impact += data_adj
        iparts.append(f"{data_adj:+g} {data_why}")
    bounds = [c.value for c in im.bounded_by if c in p.control_refs]
    if bounds:
        impact -= 1.0
        iparts.append(f"-1 (loss bounded by: {', '.join(bounds)})")
    impact = _clamp(impact)
    risk = round(likelihood * impact, 2)
    explanation = (
        f"likelihood {likelihood:g} = {' '.join(parts)}; impact {impact:g} = {' '.join(iparts)}"
    )
    shown = controls + tuple(b for b in bounds if b not in controls)
    return Score(
        likelihood, impact, risk, severity_for(risk), factors, shown, explanation, residual
    )


_CIA_NAMES = ("confidentiality", "integrity", "availability")
#: Likelihood points gained by the number of the rule's exposure factors present (see _score).
_GAIN = (0.0, 1.0) + (1.5,) * len(LikelihoodFactor)
#: Likelihood points the controls in place take off, by their number (see _score).
_REDUCTION = tuple(
    min(n, MAX_CONTROL_REDUCTION) + 0.5 * max(0, n - MAX_CONTROL_REDUCTION) for n in range(8)
)
#: The hop adjustment by hop_bucket (see _HOP_ADJUST).
_HOP_BY_BUCKET = (0.0, -0.5, -1.0)


@dataclass(frozen=True, slots=True)
class RiskTerms:
    """What a rule adds to a risk, precomputed: ranking every rule hit needs only the number,
    so :func:`quick_risk` computes it without the factor lists and explanation of :func:`score`.
    """

    rule: Rule
    factor_mask: int
    control_mask: int
    likelihood: float  # base plus the capability adjustment
    privacy: bool
    dims: tuple[int, ...]
    impact: float
    sensitivity: bool
    criticality: int  # how often the criticality adjustment is added (0 for privacy rules)
    ip_value: int
    #: False when the rule names a factor or control twice: then score() is the reference.
    exact: bool
    dim: int | None = None  # the one CIA need it hurts, if only one
    agency: int = 0  # how often the agency adjustment is added
    bound_mask: int = 0  # controls that bound the loss (impact -1 when any is in place)
    children: int = 0  # how often the children adjustment is added

    @classmethod
    def of(cls, rule: Rule) -> RiskTerms:
        lk, im = rule.likelihood, rule.impact
        privacy = rule.framework.value == "LINDDUN"
        addressed = _addressing(rule)
        dims = cia_dims(rule)
        exact = len(set(lk.factors)) == len(lk.factors) and len(set(addressed)) == len(addressed)
        return cls(
            rule,
            mask(lk.factors, FACTOR_BIT),
            mask(addressed, CONTROL_BIT),
            float(lk.base) + _CAPABILITY_ADJUST[lk.capability],
            privacy,
            dims,
            float(im.base),
            ImpactFactor.SENSITIVITY in im.factors,
            0 if privacy else im.factors.count(ImpactFactor.CRITICALITY),
            im.factors.count(ImpactFactor.IP_VALUE),
            exact,
            dims[0] if len(dims) == 1 else None,
            im.factors.count(ImpactFactor.AGENCY),
            mask(im.bounded_by, CONTROL_BIT),
            im.factors.count(ImpactFactor.CHILDREN),
        )


def quick_risk(t: RiskTerms, p: Profile) -> tuple[float, bool]:
    """``(score(rule, p).risk, score(rule, p).mitigated)``, computed with masks and counts."""
    if not t.exact:
        sc = _score(t.rule, p)
        return sc.risk, sc.mitigated
    lk = t.likelihood + _GAIN[(p.factor_mask & t.factor_mask).bit_count()]
    if t.privacy:
        if lk > LINDDUN_CAP:
            lk = LINDDUN_CAP
    else:
        lk += _HOP_BY_BUCKET[p.hop_bucket]
    mitigated = False
    n = (p.control_mask & t.control_mask).bit_count()
    if n:
        lk -= _REDUCTION[n] if n < len(_REDUCTION) else n * 0.5 + 1.0
        mitigated = lk < 1.0
    if lk < 1.0:
        lk = 1.0
    elif lk > 5.0:
        lk = 5.0
    cia = p.cia
    if t.dim is not None:
        data = _NEED_ADJUST[cia[t.dim]]
    else:
        data = _NEED_ADJUST[max(map(cia.__getitem__, t.dims))]
    if t.sensitivity:
        sens = _SENSITIVITY_ADJUST[p.sensitivity if p.sensitivity < 4 else 4]
        if sens > data:
            data = sens
    im = t.impact + data
    if t.criticality:
        im += t.criticality * _CRIT_ADJUST[p.criticality]
    if t.ip_value and p.ip_value is not None:
        im += t.ip_value * _CRIT_ADJUST[p.ip_value]
    if t.agency:
        im += t.agency * _AGENCY_ADJUST[p.agency]
    if t.children and p.children:
        im += t.children
    if t.bound_mask and p.control_mask & t.bound_mask:
        im -= 1.0
    if im < 1.0:
        im = 1.0
    elif im > 5.0:
        im = 5.0
    return round(lk * im, 2), mitigated


def _addressing(rule: Rule) -> tuple[ControlType, ...]:
    """Controls that lower the rule's likelihood: its ``mitigated_by`` and its mitigations',
    less those that only bound the loss (``impact.bounded_by``)."""
    bounded = rule.impact.bounded_by
    out = [c for c in rule.mitigated_by if c not in bounded]
    out.extend(
        m.control for m in rule.mitigations if m.control not in out and m.control not in bounded
    )
    return tuple(out)
