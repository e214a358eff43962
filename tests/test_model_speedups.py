"""The shortcuts the threat-model engine takes for speed give the same answers as the long way:
the ranking number of every rule on every element and flow equals the explained score's, and a
rule's boolean guards never skip an object its condition would report."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from mlhunt._gc import PROMOTE_AT_LEAST, gc_paused
from mlhunt.system import load_system
from mlhunt.system.model import Element, ElementKind, Flow, SystemDescription
from mlhunt.threatmodel.catalog import default_catalog
from mlhunt.threatmodel.guards import boolean_guards, compile_guarded, kind_guards
from mlhunt.threatmodel.paths import compute_paths
from mlhunt.threatmodel.risk import RiskTerms, profile_element, profile_flow, quick_risk, score
from tests.conftest import EXAMPLES, SCENARIOS

CORPUS = Path(__file__).resolve().parent / "review_corpus"
SYSTEMS = [EXAMPLES / n / "system.yaml" for n in SCENARIOS] + sorted(CORPUS.glob("*/system.yaml"))


def _system(path: Path) -> SystemDescription:
    system = load_system(path)
    compute_paths(system)  # the reachability the profiles read
    return system


@pytest.mark.parametrize("path", SYSTEMS, ids=lambda p: p.parent.name)
def test_quick_risk_equals_the_explained_score(path: Path) -> None:
    system = _system(path)
    rules = default_catalog().rules
    checked = 0
    for absent in (True, False):
        cache: dict[tuple[int, bool], int] = {}
        profiles = [profile_element(e, absent) for e in system.elements]
        profiles += [profile_flow(f, absent, cache) for f in system.flows]
        # The flows' profiles with a shared cache equal those computed alone.
        for f in system.flows:
            assert profile_flow(f, absent).factor_mask == profile_flow(f, absent, cache).factor_mask
        for rule in rules:
            terms = RiskTerms.of(rule.rule)
            for p in profiles:
                sc = score(rule.rule, p)
                assert quick_risk(terms, p) == (sc.risk, sc.mitigated), (rule.id, sc.explanation)
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize("path", SYSTEMS, ids=lambda p: p.parent.name)
def test_boolean_guards_skip_only_objects_the_condition_rejects(path: Path) -> None:
    system = _system(path)
    guarded = 0
    for rule in default_catalog().rules:
        for attr, value in rule.guards:
            guarded += 1
            if rule.rule.scope == "element":
                for e in system.elements:
                    if bool(getattr(e, attr)) is not value:
                        assert not rule.condition(e, system), (rule.id, e.id)
            else:
                for f in system.flows:
                    if bool(getattr(f, attr)) is not value:
                        src, dst = f.source_element, f.target_element
                        assert not rule.condition(f, src, dst, system), (rule.id, f.id)
    assert guarded >= 20


@pytest.mark.parametrize("path", SYSTEMS, ids=lambda p: p.parent.name)
def test_the_residual_decides_where_the_guards_hold(path: Path) -> None:
    system = _system(path)
    checked = 0
    for rule in default_catalog().rules:
        assert rule.residual is not None
        if not rule.guards and not rule.kind_guards:
            assert rule.residual is rule.condition
            continue
        kinds = dict(rule.kind_guards)
        objs = system.elements if rule.rule.scope == "element" else system.flows
        for o in objs:
            args = (o,) if isinstance(o, Element) else (o, o.source_element, o.target_element)
            by_role = dict(
                zip(
                    ("element",) if len(args) == 1 else ("flow", "source", "target"),
                    args,
                    strict=True,
                )
            )
            picked = all(by_role[n].kind in k for n, k in kinds.items())
            if not picked or not all(bool(getattr(o, a)) is v for a, v in rule.guards):
                assert not rule.condition(*args, system), rule.id  # skipped: never a hit
                continue
            assert rule.residual(*args, system) == rule.condition(*args, system), rule.id
            checked += 1
    assert checked > 20


def test_the_residual_drops_only_the_guard_terms() -> None:
    scope = {"flow": Flow, "source": Element, "target": Element, "system": SystemDescription}
    _c, rest, guards, _k = compile_guarded(
        "flow.has_personal_data and not flow.encrypted and source.privileged", scope, "flow", Flow
    )
    assert guards == (("has_personal_data", True), ("encrypted", False))
    src = Element(id="a", kind="process", privileged=True)
    other = Element(id="b", kind="process")
    flow = Flow(id="f", source="a", target="b")  # the residual reads the source only
    assert rest(flow, src, other, None) and not rest(flow, other, other, None)
    _c, rest, guards, kinds = compile_guarded("flow.encrypted", scope, "flow", Flow)
    assert guards == (("encrypted", True),) and kinds == () and rest(flow, other, other, None)
    _c, rest, guards, kinds = compile_guarded(
        "target.kind in ('llm', 'agent_tool') and source.kind != 'actor' and source.privileged",
        scope,
        "flow",
        Flow,
    )
    every = {k.value for k in ElementKind}
    assert guards == () and dict(kinds) == {
        "target": {"llm", "agent_tool"},
        "source": every - {"actor"},
    }
    assert rest(flow, src, other, None) and not rest(flow, other, other, None)
    # An 'or' at the top level picks nothing.
    assert kind_guards("target.kind == 'llm' or source.privileged", scope) == ()


def test_a_paused_block_leaves_its_objects_old_and_its_cycles_collectable() -> None:
    class Node:
        pass

    gc.collect()
    with gc_paused():
        kept = [{"n": i} for i in range(50_000)]
        cycle = Node()
        cycle.self = cycle  # type: ignore[attr-defined]
        probe = weakref.ref(cycle)
        del cycle
    assert gc.isenabled()
    # Promoted untraversed: the young generation does not hold the block's 50,000 dicts.
    assert gc.get_count()[0] < 1_000
    # A cycle made in the block is freed by a full collection (whether an automatic one, run
    # by any thread of the process, already freed it is not this test's business).
    gc.collect()
    assert probe() is None
    assert len(kept) == 50_000


def test_guards_are_the_top_level_boolean_terms() -> None:
    assert boolean_guards("flow.has_personal_data and not flow.encrypted", "flow", Flow) == (
        ("has_personal_data", True),
        ("encrypted", False),
    )
    # Not a top-level 'and' term, not boolean, or another name: no guard.
    assert boolean_guards("flow.encrypted or flow.authenticated", "flow", Flow) == ()
    assert boolean_guards("element.sensitivity and element.privileged", "element", Element) == (
        ("privileged", True),
    )
    assert boolean_guards("source.privileged and flow.encrypted", "flow", Flow) == (
        ("encrypted", True),
    )


def test_a_small_paused_block_does_not_count_frozen_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counting frozen objects walks every one of them (a guard in the same process freezes its
    whole heap): a threat model of a few dozen elements must not pay that on every build."""

    def walk_everything() -> int:
        raise AssertionError("gc.get_freeze_count called for a small block")

    monkeypatch.setattr(gc, "get_freeze_count", walk_everything)
    with gc_paused():
        kept = [{"n": i} for i in range(PROMOTE_AT_LEAST // 10)]
    assert len(kept) == PROMOTE_AT_LEAST // 10 and gc.isenabled()
