"""``mlhunt.record``: value classes that behave as the dataclasses they replaced (equality,
repr, frozen immutability and hash, pickle and copy), and ``Finding.replace``."""

from __future__ import annotations

import copy
import pickle

import pytest

from mlhunt.findings import Finding, Severity
from mlhunt.scan.art_policy import Verdict
from mlhunt.scan.pickleops import ImportRecord, Limits


def _finding(**changes: object) -> Finding:
    base = Finding("X@t", "X", "title", Severity.HIGH, "scan", "t", evidence={"k": [1]})
    return base.replace(**changes) if changes else base


def test_equality_and_repr_by_value() -> None:
    a = ImportRecord("os", "system", 3, "GLOBAL", 0)
    b = ImportRecord("os", "system", 3, "GLOBAL", 0)
    assert a == b and a is not b and a.calls is not b.calls
    b.called = True
    assert a != b
    assert "module='os'" in repr(a) and repr(a).startswith("ImportRecord(")
    assert a != Verdict("deny", "r")  # another class is never equal
    with pytest.raises(TypeError):
        hash(a)  # mutable: unhashable, as a dataclass with eq


def test_frozen_is_immutable_hashable_and_survives_pickle_and_copy() -> None:
    lim = Limits(max_depth=2)
    assert lim == Limits(max_depth=2) != Limits()
    assert hash(lim) == hash(Limits(max_depth=2))
    assert {lim: 1}[Limits(max_depth=2)] == 1
    with pytest.raises(AttributeError):
        lim.max_depth = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del lim.max_depth
    assert pickle.loads(pickle.dumps(lim)) == lim
    assert copy.deepcopy(lim) == lim and copy.copy(lim) == lim
    assert Limits().max_depth == 4 and lim.max_seconds == Limits().max_seconds


def test_finding_replace_is_dataclasses_replace() -> None:
    f = _finding()
    g = f.replace(id="Y@t", source="guard")
    assert (g.id, g.source, g.rule_id, g.target) == ("Y@t", "guard", "X", "t")
    assert (f.id, f.source) == ("X@t", "scan")  # the original is unchanged
    assert g.evidence is f.evidence  # field values shared, not copied
    assert f.replace() == f and f.replace() is not f
    with pytest.raises(TypeError):
        f.replace(nope=1)
    assert _finding() == _finding() != _finding(severity=Severity.LOW)
    assert pickle.loads(pickle.dumps(g)) == g
    assert g.to_dict()["source"] == "guard" and "risk" not in g.to_dict()
