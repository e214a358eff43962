"""Known, absent, unknown: the security facts a description may leave unsaid.

An element's ``authentication``, a flow's ``encrypted`` ... are *stated* when the YAML names them
(pydantic's ``model_fields_set``) and *unknown* otherwise. A rule that fires only because an
unknown fact takes its absent default does not become a finding: it becomes a question for the
system owner, listed with the findings an "absent" answer would add. :class:`Assumed` is the
view of an element or flow with some unknown facts taken as present, used to tell the two apart.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from typing import Any

from mlhunt.system.model import Authentication, Authorization, ControlType, Element, Flow
from mlhunt.threatmodel.conditions import condition_reads

#: Element facts: field -> (value when present, control it implies, question asked).
ELEMENT_FACTS: dict[str, tuple[Any, ControlType, str]] = {
    "authentication": (
        Authentication.TOKEN,
        ControlType.AUTHENTICATION,
        "How do callers of {name} authenticate (none, api_key, token, oauth2, mtls, sso ...)?",
    ),
    "authorization": (
        Authorization.RBAC,
        ControlType.AUTHORIZATION_POLICY,
        "How is access to {name} authorised once a caller is authenticated (none, coarse, rbac, "
        "abac, policy)?",
    ),
    "rate_limit": (
        "stated",
        ControlType.RATE_LIMITING,
        "Is there a per-client rate limit on {name} (e.g. '100/minute', or 'none')?",
    ),
    "audit_logging": (
        True,
        ControlType.AUDIT_LOGGING,
        "Are security-relevant actions on {name} audit-logged?",
    ),
    "input_validation": (
        True,
        ControlType.INPUT_VALIDATION,
        "Does {name} validate its inputs against a schema?",
    ),
    "encrypted_at_rest": (
        True,
        ControlType.ENCRYPTION_AT_REST,
        "Is the data {name} stores encrypted at rest?",
    ),
    "resource_limits": (
        True,
        ControlType.RESOURCE_QUOTAS,
        "Do CPU/memory/GPU quotas bound {name}'s resource use?",
    ),
    "high_availability": (
        True,
        ControlType.HIGH_AVAILABILITY,
        "Is {name} replicated with failover?",
    ),
}
FLOW_FACTS: dict[str, tuple[Any, ControlType, str]] = {
    "encrypted": (
        True,
        ControlType.ENCRYPTION_IN_TRANSIT,
        "Is {name} encrypted in transit (TLS, mTLS, VPN)?",
    ),
    "authenticated": (
        True,
        ControlType.AUTHENTICATION,
        "Does the receiver of {name} authenticate its sender?",
    ),
    "authorization": (
        Authorization.RBAC,
        ControlType.AUTHORIZATION_POLICY,
        "How does the receiver of {name} authorise the request (none, coarse, rbac ...)?",
    ),
}


def facts_of(obj: Element | Flow) -> dict[str, tuple[Any, ControlType, str]]:
    return FLOW_FACTS if isinstance(obj, Flow) else ELEMENT_FACTS


def unknown_facts(obj: Element | Flow) -> tuple[str, ...]:
    """Security fact fields the description leaves unsaid for ``obj``."""
    stated = obj.model_fields_set
    return tuple(name for name in facts_of(obj) if name not in stated)


def stated(obj: Element | Flow, name: str) -> bool:
    return name in obj.model_fields_set


class Assumed:
    """``obj`` seen with the facts in ``present`` taken as present (conditions read it as-is)."""

    __slots__ = ("_controls", "_ends", "_obj", "_over", "_refs")

    def __init__(
        self, obj: Element | Flow, present: tuple[str, ...], ends: tuple[Any, Any] | None = None
    ) -> None:
        facts = facts_of(obj)
        self._obj = obj
        self._over = {name: facts[name][0] for name in present}
        added = {facts[name][1] for name in present}
        self._controls = obj.controls | added
        refs = dict(obj.control_refs)
        for ct in added:
            refs.setdefault(ct, ("assumed",))
        self._refs = refs
        self._ends = ends

    def __getattr__(self, name: str) -> Any:
        over = self._over
        if name in over:
            return over[name]
        if name == "controls":
            return self._controls
        if name == "control_refs":
            return self._refs
        if self._ends is not None:
            if name == "source_element":
                return self._ends[0]
            if name == "target_element":
                return self._ends[1]
        return getattr(self._obj, name)


@dataclass(slots=True)
class Question:
    """One unknown fact about one element or flow, and what an "absent" answer would add."""

    id: str
    target: str
    fact: str
    text: str
    would_add: list[str] = field(default_factory=list)
    risk: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "fact": self.fact,
            "question": self.text,
            "would_add": list(self.would_add),
            "max_risk": self.risk,
        }


def question_for(obj: Element | Flow, fact: str) -> Question:
    text = facts_of(obj)[fact][2].format(name=obj.label)
    return Question(id=f"Q-{fact}@{obj.id}", target=obj.id, fact=fact, text=text)


_DATA_READS = frozenset(
    {"has_personal_data", "has_cardholder_data", "classifications", "sensitivity"}
)


class FactJudge:
    """Sorts each rule hit into resting on stated facts or on an unknown one (then a question)."""

    def __init__(self, system: Any, paths: Any) -> None:
        self.system = system
        self.paths = paths
        self._asks: dict[tuple[str, str], tuple[Question, list[Any]]] = {}
        self._unknown: dict[int, tuple[str, ...]] = {}
        # Per rule: the facts its condition can see, per object of a hit (element; or flow,
        # source, target).
        self._visible: dict[int, tuple[frozenset[str], ...]] = {}
        self._any_planned = any(e.is_planned for e in system.elements)

    def describe(self, hit: Any, evidence: dict[str, Any]) -> None:
        """Add the stated facts a hit rests on and its attack path to ``evidence``."""
        reads, _consts, by_role = _rule_reads(hit.rule.rule.condition)
        evidence["rests_on"] = _rests_on(by_role, hit.objs)
        path = self.paths.path_for(reads, hit.objs)
        if path:
            evidence["attack_path"] = path
        if any(attr == "output_exposed" for _role, attr in reads):
            evidence["output_seen_by"] = self.paths.output_route(hit.objs[0].id)

    def needed(self, rule: Any) -> bool:
        """Whether a hit of ``rule`` can be planned or rest on an unstated fact."""
        if self._any_planned:
            return True
        kinds = (Element,) if rule.rule.scope == "element" else (Flow, Element, Element)
        visible = self._visible[id(rule)] = self._visible_facts(rule, kinds)
        return any(visible)

    def _visible_facts(self, rule: Any, objs: tuple[Any, ...]) -> tuple[frozenset[str], ...]:
        """Only the unknown facts the condition can see: read directly, or through a control
        type it names (``'rate_limiting' not in element.controls``)."""
        _reads, consts, by_role = _rule_reads(rule.rule.condition)
        out = []
        for i, o in enumerate(objs):
            attrs = by_role.get(_role(i, len(objs)), ())
            via_controls = "controls" in attrs or "control_refs" in attrs
            out.append(
                frozenset(
                    n
                    for n, fact in (
                        FLOW_FACTS if o is Flow or isinstance(o, Flow) else ELEMENT_FACTS
                    ).items()
                    if n in attrs or (via_controls and fact[1].value in consts)
                )
            )
        return tuple(out)

    def judge(self, rule: Any, hit: Any) -> None:
        """Set ``hit.planned`` and, when it fires only on unknown facts, ``hit.assumed``."""
        objs = hit.objs
        if self._any_planned:
            planned = [o.id for o in objs if isinstance(o, Element) and o.is_planned]
            if planned:
                hit.planned = planned
        visible = self._visible.get(id(rule))
        if visible is None:
            visible = self._visible[id(rule)] = self._visible_facts(rule, objs)
        unknown = []
        for i, o in enumerate(objs):
            seen = visible[i]
            if not seen:
                continue
            unknown_here = self._unknown.get(id(o))
            if unknown_here is None:
                unknown_here = self._unknown[id(o)] = unknown_facts(o)
            for n in unknown_here:
                if n in seen:
                    unknown.append((i, n))
        if not unknown or self._fires(rule, objs, unknown):
            return
        # A cause: the one unknown whose "absent" answer alone (the others present) fires it;
        # failing that, one whose "present" answer alone silences it; failing that, all.
        causes = [
            u for u in unknown if self._fires(rule, objs, [v for v in unknown if v != u])
        ] or [u for u in unknown if not self._fires(rule, objs, [u])]
        causes = causes or unknown
        hit.assumed = [f"{objs[i].id}.{n}" for i, n in causes]
        for i, n in causes:
            key = (objs[i].id, n)
            entry = self._asks.get(key)
            if entry is None:
                entry = self._asks[key] = (question_for(objs[i], n), [])
            entry[1].append(hit)

    def _fires(self, rule: Any, objs: tuple[Any, ...], present: list[tuple[int, str]]) -> bool:
        names: dict[int, list[str]] = {}
        for i, n in present:
            names.setdefault(i, []).append(n)
        if len(objs) == 1:
            return bool(rule.condition(Assumed(objs[0], tuple(names.get(0, ()))), self.system))
        f, src, dst = objs
        s = Assumed(src, tuple(names.get(1, ())))
        d = Assumed(dst, tuple(names.get(2, ())))
        return bool(rule.condition(Assumed(f, tuple(names.get(0, ())), (s, d)), s, d, self.system))

    def questions(self) -> list[Question]:
        out: list[Question] = []
        for q, raw in self._asks.values():
            q.would_add = sorted({h.id for h in raw})
            q.risk = max(h.risk for h in raw)
            out.append(q)
        out.sort(key=lambda q: (-q.risk, q.id))
        return out


@functools.cache
def _rule_reads(
    condition: str,
) -> tuple[frozenset[tuple[str, str]], frozenset[str], dict[str, tuple[str, ...]]]:
    """What a condition reads: (name, attribute) pairs, its string constants, and the sorted
    attributes it reads per name (``element``, ``flow``, ``source``, ``target``)."""
    reads = condition_reads(condition)
    try:
        tree = ast.parse(f"({condition.strip() or 'True'}\n)", mode="eval")
    except SyntaxError:
        tree = None
    consts = frozenset(
        n.value
        for n in (ast.walk(tree) if tree is not None else ())
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )
    by_role: dict[str, list[str]] = {}
    for role, attr in sorted(reads):
        by_role.setdefault(role, []).append(attr)
    return reads, consts, {r: tuple(a) for r, a in by_role.items()}


def _role(i: int, n_objs: int) -> str:
    return "element" if n_objs == 1 else ("flow", "source", "target")[i]


def _rests_on(by_role: dict[str, tuple[str, ...]], objs: tuple[Any, ...]) -> list[str]:
    """The stated facts (and data classifications) the rule's condition read on these objects."""
    out: list[str] = []
    for i, obj in enumerate(objs):
        stated_fields = obj.model_fields_set
        for attr in by_role.get(_role(i, len(objs)), ()):
            if attr in _DATA_READS:
                cls = sorted(c.value for c in obj.classifications)
                fact = f"{obj.id} handles {', '.join(cls) or 'no classified data'}"
            elif attr == "model" and obj.model is not None:
                m = obj.model
                shown = ", ".join(
                    f"{k}={getattr(getattr(m, k), 'value', getattr(m, k))}"
                    for k in sorted(m.model_fields_set)
                    if k not in ("algorithm", "training_sources")
                )
                fact = f"{obj.id}.model: {shown or 'defaults'}"
            elif attr in stated_fields and attr not in ("id", "name", "description"):
                value = getattr(obj, attr)
                fact = f"{obj.id}.{attr} = {getattr(value, 'value', value)}"
            else:
                continue
            if fact not in out:
                out.append(fact)
    return out
