"""What scoring needs to know about one element or flow: its exposure and controls as bit masks.

Computed once per target and build (:func:`profile_element`, :func:`profile_flow`); ranking every
rule hit reads only the masks and numbers (``risk.quick_risk``), the explained score
(``risk.score``) also the factor set and the control references.
"""

from __future__ import annotations

from mlhunt.system.model import (
    Authentication,
    ControlType,
    Element,
    ElementKind,
    Flow,
    Level,
    ModelOutput,
)
from mlhunt.threatmodel.catalog import CONTROL_BIT, FACTOR_BIT, LikelihoodFactor

_EXTERNAL = frozenset({ElementKind.EXTERNAL_ENTITY, ElementKind.ACTOR, ElementKind.DATA_SOURCE})
_RATE_CONTROLS = (ControlType.RATE_LIMITING, ControlType.QUOTA)


def hop_bucket(hops: int) -> int:
    """What the likelihood sees of the distance: 0 (0-2 hops), 1 (3 or more), 2 (unreached)."""
    return 2 if hops < 0 else 0 if hops <= 2 else 1


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
        if m.untrusted_training_data:  # its provenance or any of its training sources
            out |= _B[_F.UNTRUSTED_DATA]
        if m.retrains_on_feedback:
            out |= _B[_F.FEEDBACK_LOOP]
        if m.physical_world_inputs:
            out |= _B[_F.PHYSICAL_INPUTS]
        if m.third_party_weights:
            out |= _B[_F.THIRD_PARTY_WEIGHTS]
    if links.verdict_fed_back:  # it decides on a model that learns from the decisions
        out |= _B[_F.FEEDBACK_LOOP]
    if links.receives_from & _EXTERNAL:
        out |= _B[_F.UNTRUSTED_DATA]
    if e.shared_tenancy or e.multi_tenant:  # other tenants share its nodes, or its data
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
    if src.kind in _EXTERNAL or (src.model is not None and src.model.untrusted_training_data):
        out |= _B[_F.UNTRUSTED_DATA]
    if src.privileged:
        out |= _B[_F.PRIVILEGED]
    return out


class Profile:
    """What scoring needs to know about one target, computed once per element or flow.

    Ranking every rule hit reads only the masks and numbers; the factor set, the merged control
    references and the memo key are built on first use (for the findings a report shows).
    """

    __slots__ = (
        "_key",
        "_refs",
        "_refs_over",
        "agency",
        "children",
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
        agency: int = 2,
        children: bool = False,
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
        self.agency = agency  # what the element can do (Element.agency); 2 for flows
        self.children = children  # its data concern children (Element.concerns_children)
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
                self.agency,
                self.children,
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
        None,
        links.agency,
        links.concerns_children,
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
