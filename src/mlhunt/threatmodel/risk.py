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


_B = FACTOR_BIT
_F = LikelihoodFactor
_RATE_SET = frozenset(_RATE_CONTROLS)
_SCORES_OUT = (ModelOutput.SCORES, ModelOutput.EMBEDDING)
#: What a flow takes from its ends, not from its target's own exposure.
_FLOW_OWN = _B[_F.NO_AUTH] | _B[_F.UNTRUSTED_DATA] | _B[_F.INTERNET_FACING]


def _element_mask(
    e: Element, inbound_crossing: bool | None = None, assume_absent: bool = True
) -> int:
    """Exposure factors present on ``e`` (bits of FACTOR_BIT); an unstated fact only counts
    when assumed absent."""
    links = e._l
    m = e.model
    out = 0
    if e.internet_facing:
        out |= _B[_F.INTERNET_FACING]
    if links.receives_across_boundary if inbound_crossing is None else inbound_crossing:
        out |= _B[_F.CROSSES_BOUNDARY]
    stated = () if assume_absent else e.model_fields_set
    if e.authentication == Authentication.NONE and (assume_absent or "authentication" in stated):
        out |= _B[_F.NO_AUTH]
    if _RATE_SET.isdisjoint(links.controls) and (assume_absent or "rate_limit" in stated):
        out |= _B[_F.NO_RATE_LIMIT]
    if m is not None:
        if m.output in _SCORES_OUT:
            out |= _B[_F.SCORES_EXPOSED]
        if m.training_data_provenance in _UNTRUSTED:
            out |= _B[_F.UNTRUSTED_DATA]
        if m.retrains_on_feedback:
            out |= _B[_F.FEEDBACK_LOOP]
        if m.physical_world_inputs:
            out |= _B[_F.PHYSICAL_INPUTS]
    if links.receives_from & _EXTERNAL:
        out |= _B[_F.UNTRUSTED_DATA]
    if e.shared_tenancy:
        out |= _B[_F.SHARED_TENANCY]
    if e.privileged:
        out |= _B[_F.PRIVILEGED]
    return out


def _flow_mask(
    f: Flow, assume_absent: bool = True, cache: dict[tuple[int, bool], int] | None = None
) -> int:
    links = f._l
    src, dst = links.source, links.target
    crossing = links.crosses_boundary
    if cache is None:
        out = _element_mask(dst, crossing, assume_absent) & ~_FLOW_OWN
    else:
        # Many flows share a target: its part of the mask is computed once.
        key = (id(dst), crossing)
        out = cache.get(key, -1)
        if out < 0:
            out = cache[key] = _element_mask(dst, crossing, assume_absent) & ~_FLOW_OWN
    if src.internet_facing or dst.internet_facing or src.kind in _EXTERNAL:
        out |= _B[_F.INTERNET_FACING]
    if not f.authenticated and (assume_absent or "authenticated" in f.model_fields_set):
        out |= _B[_F.NO_AUTH]
    if src.kind in _EXTERNAL or (
        src.model is not None and src.model.training_data_provenance in _UNTRUSTED
    ):
        out |= _B[_F.UNTRUSTED_DATA]
    if src.privileged:
        out |= _B[_F.PRIVILEGED]
    return out


def _element_factors(
    e: Element, inbound_crossing: bool | None = None, assume_absent: bool = True
) -> set[LikelihoodFactor]:
    """Exposure factors present on ``e``; an unstated fact only counts when assumed absent."""
    m = _element_mask(e, inbound_crossing, assume_absent)
    return {f for f, bit in FACTOR_BIT.items() if m & bit}


class Profile:
    """What scoring needs to know about one target, computed once per element or flow.

    Ranking every rule hit reads only the masks and numbers; the factor set, the merged control
    references and the memo key are built on first use (for the findings a report shows).
    """

    __slots__ = (
        "_key",
        "_refs",
        "_refs_over",
        "cia",
        "control_mask",
        "criticality",
        "factor_mask",
        "hop_bucket",
        "hops",
        "ip_value",
        "sensitivity",
    )

    def __init__(
        self,
        factor_mask: int,
        control_refs: dict[ControlType, tuple[str, ...]],
        sensitivity: int,
        criticality: Level,
        ip_value: Level | None,
        hops: int = -1,
        cia: tuple[int, int, int] = (2, 2, 2),
        refs_over: dict[ControlType, tuple[str, ...]] | None = None,
    ) -> None:
        self.factor_mask = factor_mask
        self._refs = control_refs
        # A flow's own control references, laid over its target's (they win where both name
        # a type); merged on first read.
        self._refs_over = refs_over
        # One bit per control type: the sum of distinct bits is their union.
        cm = sum(map(CONTROL_BIT.__getitem__, control_refs))
        if refs_over:
            cm |= sum(map(CONTROL_BIT.__getitem__, refs_over))
        self.control_mask = cm
        self.sensitivity = sensitivity
        self.criticality = criticality
        self.ip_value = ip_value
        self.hops = hops  # flows from the nearest untrusted source; -1: none reaches it
        self.hop_bucket = 2 if hops < 0 else 0 if hops <= 2 else 1  # see hop_bucket()
        self.cia = cia
        self._key: tuple[int, ...] | None = None

    @property
    def factors(self) -> frozenset[LikelihoodFactor]:
        return frozenset(f for f, bit in FACTOR_BIT.items() if self.factor_mask & bit)

    @property
    def control_refs(self) -> dict[ControlType, tuple[str, ...]]:
        if self._refs_over is not None:
            refs = dict(self._refs)
            refs.update(self._refs_over)
            self._refs, self._refs_over = refs, None
        return self._refs

    @property
    def score_key(self) -> tuple[int, ...]:
        """Everything the score depends on besides the rule, as one hashable int tuple."""
        if self._key is None:
            ip = self.ip_value
            self._key = (
                self.sensitivity,
                self.criticality.score,
                ip.score if ip is not None else 0,
                self.hop_bucket,
            )
        return self._key


def profile_element(e: Element, assume_absent: bool = True) -> Profile:
    links = e._l
    m = e.model
    return Profile(
        _element_mask(e, None, assume_absent),
        links.control_refs,
        links.sensitivity,
        links.criticality,
        m.ip_value if m is not None else None,
        links.untrusted_hops,
        links.cia,
    )


def profile_flow(
    f: Flow, assume_absent: bool = True, cache: dict[tuple[int, bool], int] | None = None
) -> Profile:
    """``cache`` (one per build) keeps each target's share of the flows' factor masks."""
    links = f._l
    src, dst = links.source, links.target
    sl, dl = src._l, dst._l
    crit = sl.criticality if sl.criticality.score >= dl.criticality.score else dl.criticality
    m = dst.model if dst.model is not None else src.model
    return Profile(
        _flow_mask(f, assume_absent, cache),
        dl.control_refs,
        links.sensitivity,
        crit,
        m.ip_value if m is not None else None,
        sl.untrusted_hops,
        links.cia,
        links.control_refs,
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
    if im < 1.0:
        im = 1.0
    elif im > 5.0:
        im = 5.0
    return round(lk * im, 2), mitigated


def _addressing(rule: Rule) -> tuple[ControlType, ...]:
    """Controls that lower the rule's likelihood: its ``mitigated_by`` and its mitigations'."""
    out = list(rule.mitigated_by)
    out.extend(m.control for m in rule.mitigations if m.control not in out)
    return tuple(out)
