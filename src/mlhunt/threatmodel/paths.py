"""Taint and attack paths: which untrusted sources reach which sensitive elements, hop by hop.

Sources are internet-facing elements, external entities, actors and data sources (unless every
data asset they handle is declared ``trust: internal``), elements holding untrusted or partner
data, and models trained on untrusted data or built on third-party weights. A breadth-first
search over the flows (any number of hops, through processes and stores) gives each element its
distance from the nearest source and whether untrusted content reaches it *after resting in a
store* (written now, retrieved later: the indirect prompt-injection and stored-XSS shape). The
conditions read the result as ``element.reached_by_untrusted``, ``element.untrusted_hops`` and
``element.untrusted_via_store``; a finding that rests on them carries the path in its evidence.

The other direction, *who sees a model's output* (``element.output_exposed``), is a search of its
own per model: query attacks (extraction, membership, inversion) need a party that reads the
answers. See :mod:`mlhunt.threatmodel.exposure`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mlhunt.findings import Finding
from mlhunt.system.model import (
    ControlType,
    DataTrust,
    Element,
    ElementKind,
    Flow,
    SystemDescription,
)
from mlhunt.threatmodel.exposure import Route, compute_exposure

#: Condition attributes that make a finding rest on a path.
PATH_READS = frozenset({"reached_by_untrusted", "untrusted_hops", "untrusted_via_store"})
#: Where an attack path ends: what an attacker wants to reach.
SINK_KINDS = frozenset(
    {
        ElementKind.LLM,
        ElementKind.ORCHESTRATOR,
        ElementKind.TRAINING_JOB,
        ElementKind.AGENT_TOOL,
    }
)
_EXTERNAL = frozenset({ElementKind.EXTERNAL_ENTITY, ElementKind.ACTOR, ElementKind.DATA_SOURCE})
MAX_RANKED = 20

State = tuple[str, bool]  # (element id, untrusted content has rested in a store on the way)


@dataclass
class Paths:
    """The reachability of every element from the untrusted sources of one system."""

    elements: dict[str, Element]
    flows: dict[str, Flow]
    sources: dict[str, str] = field(default_factory=dict)  # id -> why it is a source
    prev: dict[State, tuple[State, str] | None] = field(default_factory=dict)
    hops: dict[State, int] = field(default_factory=dict)
    #: The source each reached state's shortest path starts from.
    origins: dict[State, str] = field(default_factory=dict)
    #: Per model element whose output a party sees: the route, one (element id, flow id, the
    #: output goes back as a reply along that flow) per hop.
    exposure: dict[str, Route] = field(default_factory=dict)

    def output_route(self, element_id: str) -> list[dict[str, Any]]:
        """Who sees ``element_id``'s output, hop by hop from the model to the party."""
        hops: list[dict[str, Any]] = []
        for eid, fid, reply in self.exposure.get(element_id, ()):
            e = self.elements[eid]
            hop: dict[str, Any] = {"element": e.id, "name": e.label, "kind": e.kind.value}
            if fid is not None:
                hop["via_flow"] = fid
                hop["as"] = "reply to its request" if reply else "sent on"
            hops.append(hop)
        if hops:
            hops[-1]["party"] = True
        return hops

    def route(self, element_id: str, via_store: bool = False) -> list[dict[str, Any]]:
        """The shortest path from a source to ``element_id``, one dict per hop."""
        state: State = (element_id, via_store)
        if state not in self.prev:
            state = (element_id, not via_store)
            if state not in self.prev:
                return []
        hops: list[dict[str, Any]] = []
        step: State | None = state
        while step is not None:
            back = self.prev[step]
            hops.append(self._hop(step[0], back[1] if back else None))
            step = back[0] if back else None
        hops.reverse()
        return hops

    def _hop(self, element_id: str, flow_id: str | None) -> dict[str, Any]:
        e = self.elements[element_id]
        hop: dict[str, Any] = {
            "element": e.id,
            "name": e.label,
            "kind": e.kind.value,
            "controls": sorted(c.value for c in e.controls),
        }
        if element_id in self.sources:
            hop["source"] = self.sources[element_id]
        if flow_id is not None:
            f = self.flows[flow_id]
            hop["via_flow"] = f.id
            hop["flow_controls"] = sorted(c.value for c in f.controls)
        return hop

    def path_for(
        self, reads: frozenset[tuple[str, str]], objs: tuple[Any, ...]
    ) -> list[dict[str, Any]]:
        """The path a finding rests on, when its rule's condition reads the reachability."""
        for role, attr in reads:
            if attr not in PATH_READS:
                continue
            via_store = attr == "untrusted_via_store"
            if len(objs) == 1:
                return self.route(objs[0].id, via_store)
            _flow, src, dst = objs
            end = src if role == "source" else dst
            return self.route(end.id, via_store)
        return []

    def ranked(self, findings: list[Finding]) -> list[dict[str, Any]]:
        """Attack paths to the sinks, ranked by the worst finding on the sink, then by length."""
        worst: dict[str, float] = {}
        for f in findings:
            for target in f.affected or (f.target,):
                if f.risk is not None and f.risk > worst.get(target, 0.0):
                    worst[target] = f.risk
        # Rank on (risk, length, id) first; draw the hop-by-hop path of the shown ones only.
        ranked: list[tuple[float, int, str, Element, bool, str]] = []
        for e in self.elements.values():
            if not _is_sink(e):
                continue
            via = (e.id, True) in self.prev
            if not via and (e.id, False) not in self.prev:
                continue
            state: State = (e.id, via)
            hops = 0
            back = self.prev[state]
            while back is not None:
                state = back[0]
                back = self.prev[state]
                hops += 1
            if hops < 1:
                continue  # a source that is itself the sink: no path to draw
            path_id = f"PATH-{state[0]}->{e.id}"
            ranked.append((-worst.get(e.id, 0.0), hops, path_id, e, via, state[0]))
        ranked.sort(key=lambda r: r[:3])
        return [
            {
                "id": path_id,
                "source": source,
                "sink": e.id,
                "sink_kind": e.kind.value,
                "hops": hops,
                "via_store": via,
                "risk": -neg_risk,
                "path": self.route(e.id, via),
            }
            for neg_risk, hops, path_id, e, via, source in ranked[:MAX_RANKED]
        ]


def _is_sink(e: Element) -> bool:
    if e.kind in SINK_KINDS:
        return True
    return e.is_store and (e.sensitivity >= 4 or e.business_criticality.score >= 4)


def _source_reason(e: Element, trust: dict[str, DataTrust]) -> str | None:
    """Why ``e`` is an untrusted source, or None. Entries come before data holders."""
    levels = [trust[d] for d in e.data if d in trust]
    if e.internet_facing:
        return "internet-facing"
    if e.kind in _EXTERNAL and not (
        e.data and all(trust.get(d) is DataTrust.INTERNAL for d in e.data)
    ):
        # An external party writes what it sends unless its data is declared internal.
        return f"external ({e.kind.value})"
    m = e.model
    if m is not None and m.untrusted_training_data:
        return "trained on untrusted data"
    if m is not None and m.third_party_weights:
        return "built on third-party weights"
    if any(t is not DataTrust.INTERNAL for t in levels):
        kinds = sorted({t.value for t in levels if t is not DataTrust.INTERNAL})
        return f"holds {' and '.join(kinds)} data"
    return None


def compute_paths(system: SystemDescription) -> Paths:
    """Reachability from every untrusted source; also written into each element's links."""
    elements = {e.id: e for e in system.elements}
    flows = {f.id: f for f in system.flows}
    stated = {a.id: a.trust for a in system.data_assets if "trust" in a.model_fields_set}
    paths = Paths(elements, flows)
    out_edges: dict[str, list[Flow]] = {}
    for f in system.flows:
        out_edges.setdefault(f.source, []).append(f)
    # Entries first (internet-facing, external parties, untrusted models); an element holding
    # untrusted data starts a path of its own only where no entry reaches it.
    reasons = {e.id: _source_reason(e, stated) for e in system.elements}
    holders = [i for i, r in reasons.items() if r is not None and r.startswith("holds ")]
    entries = [i for i, r in reasons.items() if r is not None and i not in holders]
    _search(paths, elements, out_edges, entries, reasons)
    late = [i for i in holders if (i, False) not in paths.prev and (i, True) not in paths.prev]
    _search(paths, elements, out_edges, late, reasons)
    for e in system.elements:
        links = e._l
        a, b = paths.hops.get((e.id, False)), paths.hops.get((e.id, True))
        known = [h for h in (a, b) if h is not None]
        links.untrusted_hops = min(known) if known else -1
        links.untrusted_via_store = b is not None
    _drop_perimeter_inside(system, paths)
    paths.exposure = compute_exposure(system, elements, out_edges)
    return paths


def _drop_perimeter_inside(system: SystemDescription, paths: Paths) -> None:
    """A boundary's network policy does not stop an attacker who is already inside it.

    A ``network_policy`` declared on a trust boundary (a firewall, a zone's segmentation) holds
    for every element and flow within it; where the untrusted source of the shortest path to
    an element (or to a flow's source) sits inside that boundary too, the policy no longer
    counts there: its ``controls`` lose it unless it is also declared otherwise. An
    internet-facing source keeps it on itself (the policy admits its callers on purpose).
    """
    boundary_ids = {b.id for b in system.trust_boundaries}
    perimeter: dict[str, set[str]] = {}
    for c in system.controls:
        if c.type is ControlType.NETWORK_POLICY:
            inside = boundary_ids.intersection(c.applies_to)
            if inside:
                perimeter[c.id] = inside
    if not perimeter:
        return
    elements = paths.elements

    def origin_of(eid: str) -> str | None:
        return paths.origins.get((eid, False)) or paths.origins.get((eid, True))

    def drop(links: Any, origin: str, own: bool) -> None:
        refs = links.control_refs.get(ControlType.NETWORK_POLICY)
        if not refs:
            return
        around = set(elements[origin]._l.boundaries)
        if own and elements[origin].internet_facing:
            return
        kept = tuple(r for r in refs if not perimeter.get(r, set()) & around)
        if len(kept) == len(refs):
            return
        refs_now = dict(links.control_refs)
        if kept:
            refs_now[ControlType.NETWORK_POLICY] = kept
        else:
            del refs_now[ControlType.NETWORK_POLICY]
            links.controls = links.controls - {ControlType.NETWORK_POLICY}
        links.control_refs = refs_now

    for e in system.elements:
        origin = origin_of(e.id)
        if origin is not None:
            drop(e._l, origin, origin == e.id)
    for f in system.flows:
        origin = origin_of(f.source)
        if origin is not None:
            drop(f._l, origin, False)


def _search(
    paths: Paths,
    elements: dict[str, Element],
    out_edges: dict[str, list[Flow]],
    seeds: list[str],
    reasons: dict[str, str | None],
) -> None:
    """Breadth-first from ``seeds`` over (element, rested-in-a-store) states."""
    queue: deque[State] = deque()
    for eid in seeds:
        paths.sources[eid] = reasons[eid] or ""
        state: State = (eid, False)
        paths.prev[state] = None
        paths.hops[state] = 0
        paths.origins[state] = eid
        queue.append(state)
    while queue:
        state = queue.popleft()
        node, rested = state
        here = elements[node]
        nxt_rested = rested or here.is_store
        for f in out_edges.get(node, ()):
            nxt: State = (f.target, nxt_rested)
            if nxt in paths.prev:
                continue
            paths.prev[nxt] = (state, f.id)
            paths.hops[nxt] = paths.hops[state] + 1
            paths.origins[nxt] = paths.origins[state]
            queue.append(nxt)
