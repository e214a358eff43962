"""Who sees a model's output, and what an element can do: two readings of the DFD's flows.

Query attacks (extraction, membership inference, model inversion) need a party that reads a
model's answers (``element.output_exposed``, with the route in the finding's evidence) and who
chooses what it is asked (``element.input_chosen_by_outsider``). Excessive
agency depends on what a tool can do, from a read-only lookup to a payment: ``element.agency``.
A decision engine that acts on a model's verdict is ``element.acts_on_model_verdict``. Computed
with the taint paths (:func:`mlhunt.threatmodel.paths.compute_paths`), once per build.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from mlhunt.system.model import (
    Authorization,
    ControlType,
    DataTrust,
    Element,
    ElementKind,
    Flow,
    ModelOutput,
    SystemDescription,
)

#: One hop of an output route: (element id, flow taken to it, the output goes back as a reply).
Route = list[tuple[str, str | None, bool]]

#: Who reads what reaches it: an external entity or a person (internet-facing elements too).
_PARTIES = frozenset({ElementKind.EXTERNAL_ENTITY, ElementKind.ACTOR})
#: Elements that answer with a model's output (an artifact or a registry only holds the model).
_SERVING = frozenset({ElementKind.INFERENCE_API, ElementKind.LLM})
#: Elements whose agency is read from their flows (the others keep 2, "acts", unread).
_AGENTS = frozenset({ElementKind.AGENT_TOOL, ElementKind.ORCHESTRATOR, ElementKind.LLM})
#: Agents that act on what they are given (a model's verdict among it).
_ACTORS = frozenset({ElementKind.AGENT_TOOL, ElementKind.ORCHESTRATOR})


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
    #: Elements an outsider's request reaches (``input_chosen_by_outsider``), see
    #: :func:`_reached_from_outside`.
    reached_from_outside: frozenset[str] = frozenset()

    def relays(self, i: str) -> bool:
        """A request passes through ``i`` to what it feeds: every element but a store other
        than a message bus (a bus hands each request to its consumer)."""
        return i not in self.stores or self.elements[i].kind is ElementKind.MESSAGE_BUS


def compute_exposure(
    system: SystemDescription,
    elements: dict[str, Element],
    out_edges: dict[str, list[Flow]],
) -> dict[str, Route]:
    """For every element with a model: does a party see its output (``output_exposed``)?

    The output travels two ways, never through a store (an answer at rest, read later in bulk,
    is not a query interface): back along the chain of callers that asked (a flow into the
    model from a process, and into that process, ...; a reply needs no flow of its own), and
    forward along flows that carry what the model emits (the data assets of its own outgoing
    flows; a flow that names no data may carry it). A push on to a process does not turn into
    a reply to that process's callers: their answers are that process's, not the model's.
    Returns the route per exposed model. Also sets ``input_chosen_by_outsider`` and
    ``output_concerns_person`` on models, ``agency`` on tools, agents and LLMs,
    ``acts_on_model_verdict`` on processes and ``verdict_takes_effect`` on serving models.
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
    untrusted = frozenset(a.id for a in system.data_assets if a.trust is DataTrust.UNTRUSTED)
    g.reached_from_outside = _reached_from_outside(g)
    exposure: dict[str, Route] = {}
    for e in system.elements:
        kind = e.kind
        # An internet-facing entry is pushed to: the coarse grant there is the sender's, not ours.
        e._l.reads_source_broadly = not e.internet_facing and any(
            f.authorization is Authorization.COARSE
            and f._l.crosses_boundary
            and elements[f.source].kind is ElementKind.DATA_SOURCE
            for f in in_edges.get(e.id, ())
        )
        if kind in _AGENTS:
            e._l.agency = agency(e, g)
        if e.model is None:
            continue
        e._l.input_chosen_by_outsider = e.id in g.reached_from_outside
        e._l.output_concerns_person = _output_concerns_person(e, g)
        route = _exposure_route(e.id, g)
        e._l.output_exposed = route is not None
        if route is not None:
            exposure[e.id] = route
    deciders: list[str] = []  # models whose verdict about people takes effect unreviewed
    for e in system.elements:  # after the loop above: agency and output_concerns_person
        if e.kind in _SERVING and e.model is not None:
            e._l.verdict_takes_effect = _verdict_takes_effect(e, g)
            if e._l.verdict_takes_effect and e._l.output_concerns_person:
                deciders.append(e.id)
        elif e.kind is ElementKind.PROCESS:
            e._l.shows_others_content = _shows_others_content(e, g, untrusted)
            e._l.serves_tenants = any(
                g.elements[f.source].multi_tenant for f in g.in_edges.get(e.id, ())
            )
            src = _acts_on_model_verdict(e, g)
            e._l.acts_on_model_verdict = src is not None
            # The model learns from what it decided: its errors come back as labels.
            if src is not None and src.model is not None:
                e._l.verdict_fed_back = src.model.retrains_on_feedback
                deciders.append(src.id)
    for i in _feeding(deciders, g):
        g.elements[i]._l.feeds_people_decision = True
    return exposure


def _feeding(models: list[str], g: _Graph) -> set[str]:
    """The elements whose requests reach one of ``models`` (backwards along flows, relayed by
    every element but a store other than a message bus): what they send is decided on."""
    seen = set(models)
    queue: deque[str] = deque(models)
    while queue:
        for f in g.in_edges.get(queue.popleft(), ()):
            src = f.source
            if src in seen:
                continue
            seen.add(src)
            if g.relays(src):
                queue.append(src)
    return seen - set(models)


def _reached_from_outside(g: _Graph) -> frozenset[str]:
    """The elements a party or a data source reaches along flows (``input_chosen_by_outsider``
    of a model).

    Requests are relayed by processes and message buses but by no other store: a model that
    reads its features or documents from a store its own pipeline fills answers no outsider's
    query, however the store was filled. So the search goes on from the starts and from every
    element it reaches except such stores, which it reaches without passing.
    """
    starts = [
        i for i, e in g.elements.items() if i in g.parties or e.kind is ElementKind.DATA_SOURCE
    ]
    relayed = set(starts)
    reached: set[str] = set()
    queue: deque[str] = deque(starts)
    while queue:
        for f in g.out_edges.get(queue.popleft(), ()):
            dst = f.target
            reached.add(dst)
            if g.relays(dst) and dst not in relayed:
                relayed.add(dst)
                queue.append(dst)
    return frozenset(reached)


def _acts_on_model_verdict(e: Element, g: _Graph) -> Element | None:
    """``element.acts_on_model_verdict``: a flow from a serving model brings this process a
    verdict (``model.decides``, no human review there) about a person (the model's
    ``output_concerns_person``): a score that a mail gateway turns into a quarantine is about
    a message, not about whom it was sent to. Where ``human_review: false`` is stated on the
    model, a score that names no person still decides about one when this process sends on a
    record about people of critical integrity (a ban, a blocked account): it acts on the score.
    Returns the model whose verdict it acts on, or None.
    """
    records = any(f.has_personal_data and f.integrity_need >= 4 for f in g.out_edges.get(e.id, ()))
    for f in g.in_edges.get(e.id, ()):
        src = g.elements[f.source]
        m = src.model
        if (
            m is not None
            and src.kind in _SERVING
            and m.decides
            and ControlType.HUMAN_REVIEW not in src.controls
            and (
                src._l.output_concerns_person
                or (records and "human_review" in m.model_fields_set and not m.human_review)
            )
        ):
            return src
    return None


def _shows_others_content(e: Element, g: _Graph, untrusted: frozenset[str]) -> bool:
    """``element.shows_others_content``: a person uses this process (a flow from an actor), and
    content that outsiders wrote (a data asset of ``trust: untrusted``) reaches it from another
    service or store, and is none that its users send themselves (a chat answered back to
    whoever asked is not another's content): what it shows its users was written by others."""
    ins = g.in_edges.get(e.id, ())
    users = [f for f in ins if g.elements[f.source].kind is ElementKind.ACTOR]
    if not users:
        return False
    own = {d for f in users for d in f.data}
    return any(
        g.elements[f.source].kind not in _PARTIES
        and any(d in untrusted and d not in own for d in f.data)
        for f in ins
    )


def _output_concerns_person(e: Element, g: _Graph) -> bool:
    """``element.output_concerns_person``: the personal data of what the model emits.

    Read from the data its outgoing flows name; a model that answers by reply only, or one
    with a flow that names no data, is read from the data it holds.
    """
    outs = g.out_edges.get(e.id, ())
    if outs and all(f.data for f in outs):
        return any(f.has_personal_data for f in outs)
    return e.has_personal_data


def _verdict_takes_effect(e: Element, g: _Graph) -> bool:
    """``element.verdict_takes_effect``: no person between this model's output and an action.

    A model decides when its task is a verdict, or when ``human_review: false`` is stated
    whatever its task (a rank that rejects people decides). Its output takes effect when a
    flow brings it to an agent or tool that acts (writes, sends, pays), or to a process as a
    command (data of critical integrity).
    """
    m = e.model
    assert m is not None
    if m.output == ModelOutput.TEXT or ControlType.HUMAN_REVIEW in e.controls:
        return False
    if not (m.decides or "human_review" in m.model_fields_set):
        return False
    for f in g.out_edges.get(e.id, ()):
        dst = g.elements[f.target]
        if dst.kind in _ACTORS and dst._l.agency >= 2:
            return True
        if dst.kind is ElementKind.PROCESS and f.integrity_need >= 4:
            return True
    return False


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


def _exposure_route(model: str, g: _Graph) -> Route | None:
    """Breadth-first from ``model`` to the nearest party; the route, or None."""
    out_edges, in_edges, stores, parties = g.out_edges, g.in_edges, g.stores, g.parties
    leads_out = g.leads_out
    emitted: set[str] = set()
    for f in out_edges.get(model, ()):
        if not f.data:
            emitted = set()
            break
        emitted.update(f.data)
    consumers = _consumers(model, emitted, g)

    def sees(caller: str, consumer: str) -> bool:
        """A caller of a consumer reads the output when it holds it (or states no data); a
        store, or a service the consumer itself calls (a sandbox answering it), is no caller."""
        if caller in stores or any(f.target == caller for f in out_edges.get(consumer, ())):
            return False
        held = g.elements[caller].data
        return not held or not emitted.isdisjoint(held)

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
            if node in consumers and reply and not sees(nxt, node):
                continue  # it answers its callers with its own output, not the model's
            nxt_state = (nxt, reply)
            if nxt_state in prev:
                continue
            prev[nxt_state] = (state, flow_id)
            if nxt in parties and (
                nxt not in consumers
                or any(sees(f.source, nxt) for f in in_edges.get(nxt, ()) if f.source != model)
            ):
                return _unwind(prev, nxt_state)
            queue.append(nxt_state)
    return None


def _consumers(model: str, emitted: set[str], g: _Graph) -> frozenset[str]:
    """The processes the model's output reaches on a flow of its own that pass none of it on.

    The model sends them what it emits on a flow naming the data, and every flow out of them
    names its data and carries none of it: they act on the output (a mail gateway that
    quarantines above a score). Their callers read the model's answer only when they hold
    what it emits, or state no data (a person at a dashboard, by reply); an internet-facing
    consumer is a party only then (a sender whose mail is quarantined holds no score).
    """
    if not emitted:
        return frozenset()
    out: set[str] = set()
    for f in g.out_edges.get(model, ()):
        dst = f.target
        if dst in g.stores or g.elements[dst].kind in _PARTIES:
            continue
        outs = g.out_edges.get(dst, ())
        if all(o.data and emitted.isdisjoint(o.data) for o in outs):
            out.add(dst)
    return frozenset(out)


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
) -> Route:
    """The hops from the search's start to ``end``: (element, flow taken to it, as a reply)."""
    hops: list[tuple[str, str | None, bool]] = []
    back: tuple[str, bool] | None = end
    while back is not None:
        link = prev[back]
        hops.append((back[0], link[1] if link else None, back[1]))
        back = link[0] if link else None
    hops.reverse()
    return hops
