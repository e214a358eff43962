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
answers. See :func:`compute_exposure`.
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
    #: Per model element whose output a party sees: the route, one (element id, flow id, the
    #: output goes back as a reply along that flow) per hop.
    exposure: dict[str, list[tuple[str, str | None, bool]]] = field(default_factory=dict)

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
    compute_exposure(system, elements, out_edges, paths)
    return paths


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
            queue.append(nxt)


#: Who reads what reaches it: an external entity or a person (internet-facing elements too).
_PARTIES = frozenset({ElementKind.EXTERNAL_ENTITY, ElementKind.ACTOR})
#: Elements that answer with a model's output (an artifact or a registry only holds the model).
_SERVING = frozenset({ElementKind.INFERENCE_API, ElementKind.LLM})
#: Elements whose agency is read from their flows (the others keep 2, "acts", unread).
_AGENTS = frozenset({ElementKind.AGENT_TOOL, ElementKind.ORCHESTRATOR, ElementKind.LLM})


@dataclass
class _Graph:
    """The DFD's adjacency and the element sets the searches below test per hop."""

    elements: dict[str, Element]
    out_edges: dict[str, list[Flow]]
    in_edges: dict[str, list[Flow]]
    stores: frozenset[str]
    #: Someone outside the system's own services reads what reaches it: an internet-facing
    #: element's callers, an external entity or a person (an insider with a key included).
    parties: frozenset[str]
    vendors: frozenset[str]
    #: Elements from which a party is reachable forward without resting in a store (whatever
    #: the flows carry): a forward step anywhere else cannot lead to one.
    leads_out: frozenset[str] = frozenset()


def compute_exposure(
    system: SystemDescription,
    elements: dict[str, Element],
    out_edges: dict[str, list[Flow]],
    paths: Paths,
) -> None:
    """For every element with a model: does a party see its output (``output_exposed``)?

    The output travels two ways, never through a store (an answer at rest, read later in bulk,
    is not a query interface): back along the chain of callers that asked (a flow into the
    model from a process, and into that process, ...; a reply needs no flow of its own), and
    forward along flows that carry what the model emits (the data assets of its own outgoing
    flows; a flow that names no data may carry it). A push on to a process does not turn into
    a reply to that process's callers: their answers are that process's, not the model's.
    Also sets ``agency`` on tools, agents and LLMs and ``acts_on_model_verdict`` on processes.
    """
    in_edges: dict[str, list[Flow]] = {}
    for f in system.flows:
        in_edges.setdefault(f.target, []).append(f)
    g = _Graph(
        elements,
        out_edges,
        in_edges,
        frozenset(i for i, e in elements.items() if e.is_store),
        frozenset(i for i, e in elements.items() if e.internet_facing or e.kind in _PARTIES),
        frozenset(i for i, e in elements.items() if e.is_vendor),
    )
    g.leads_out = _leads_out(g)
    for e in system.elements:
        kind = e.kind
        if kind in _AGENTS:
            e._l.agency = agency(e, g)
        if kind is ElementKind.PROCESS:
            e._l.acts_on_model_verdict = any(
                (m := (src := elements[f.source]).model) is not None
                and src.kind in _SERVING
                and m.decides
                and ControlType.HUMAN_REVIEW not in src.controls
                for f in in_edges.get(e.id, ())
            )
        if e.model is None:
            continue
        route = _exposure_route(e.id, g)
        e._l.output_exposed = route is not None
        if route is not None:
            paths.exposure[e.id] = route


def agency(e: Element, g: _Graph) -> int:
    """What ``e`` can do, read from its flows (``element.agency``).

    3: it sends cardholder data to an outside party (a payment instruction). 2: it writes a
    store, sends more than internal data to an outside party (a message), calls another
    internal service (read or write, the DFD cannot say), or nothing shows where it reads from
    (what it does is unknown). 1: it fetches from a party no contract fixes (a browser given
    any URL). 0: a read-only lookup: it answers its callers from a store or with a query of at
    most internal data to a vendor (a flight search at a GDS).
    """
    ins = [f.source for f in g.in_edges.get(e.id, ())]
    outside = {i for i in ins if g.elements[i].kind in _PARTIES}
    # The services that ask it; a store or a party it reads from is no caller.
    callers = {i for i in ins if i not in g.stores and i not in outside}
    reads = bool(outside) or any(i in g.stores for i in ins)
    level = 0
    for f in g.out_edges.get(e.id, ()):
        if f.target in callers:
            continue  # its answer
        if g.elements[f.target].kind in _PARTIES:
            if f.has_cardholder_data:
                return 3
            if f.sensitivity < 2 and f.target in g.vendors:
                reads = True  # a query to a vendor
                continue
        level = 2
    if level < 2 and not outside <= g.vendors:
        level = 1
    return level if reads or level else 2


def _exposure_route(model: str, g: _Graph) -> list[tuple[str, str | None, bool]] | None:
    """Breadth-first from ``model`` to the nearest party; the route, or None."""
    out_edges, in_edges, stores, parties = g.out_edges, g.in_edges, g.stores, g.parties
    leads_out = g.leads_out
    emitted: set[str] = set()
    for f in out_edges.get(model, ()):
        if not f.data:
            emitted = set()
            break
        emitted.update(f.data)
    start: tuple[str, bool] = (model, True)  # (element, still on the callers' chain)
    prev: dict[tuple[str, bool], tuple[tuple[str, bool], str] | None] = {start: None}
    queue: deque[tuple[str, bool]] = deque([start])
    while queue:
        state = queue.popleft()
        node, replying = state
        steps: list[tuple[str, str, bool]] = []
        if replying:
            steps.extend((f.source, f.id, True) for f in in_edges.get(node, ()))
        steps.extend(
            (f.target, f.id, False)
            for f in out_edges.get(node, ())
            if f.target in leads_out
            and (not emitted or not f.data or not emitted.isdisjoint(f.data))
        )
        for nxt, flow_id, reply in steps:
            if nxt in stores or nxt == model:
                continue
            nxt_state = (nxt, reply)
            if nxt_state in prev:
                continue
            prev[nxt_state] = (state, flow_id)
            if nxt in parties:
                return _unwind(prev, nxt_state)
            queue.append(nxt_state)
    return None


def _leads_out(g: _Graph) -> frozenset[str]:
    """The parties and every element with a path of flows to one through no store."""
    seen = set(g.parties)
    queue = deque(seen)
    while queue:
        node = queue.popleft()
        for f in g.in_edges.get(node, ()):
            src = f.source
            if src not in seen and src not in g.stores:
                seen.add(src)
                queue.append(src)
    return frozenset(seen)


def _unwind(
    prev: dict[tuple[str, bool], tuple[tuple[str, bool], str] | None], end: tuple[str, bool]
) -> list[tuple[str, str | None, bool]]:
    """The hops from the search's start to ``end``: (element, flow taken to it, as a reply)."""
    hops: list[tuple[str, str | None, bool]] = []
    back: tuple[str, bool] | None = end
    while back is not None:
        link = prev[back]
        hops.append((back[0], link[1] if link else None, back[1]))
        back = link[0] if link else None
    hops.reverse()
    return hops
