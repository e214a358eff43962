"""The review corpus: nine systems with the threats a reviewer expected, written before mlhunt
ran on them (tests/review_corpus/*/expected.yaml). Scores recall, must-haves in the top ten
and the finding count."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhunt.system import load_system
from mlhunt.threatmodel import ThreatModel, build_threat_model
from mlhunt.threatmodel.grouping import unfold

CORPUS = Path(__file__).resolve().parent / "review_corpus"
SYSTEMS = sorted(p.name for p in CORPUS.iterdir() if (p / "system.yaml").is_file())
MAX_FINDINGS = 30
MIN_RECALL = 0.95


@functools.cache
def model(name: str) -> ThreatModel:
    return build_threat_model(load_system(CORPUS / name / "system.yaml"))


def expected(name: str) -> list[dict[str, Any]]:
    items = yaml.safe_load((CORPUS / name / "expected.yaml").read_text(encoding="utf-8"))
    return [i for i in items if not i.get("skip")]


def rank_of(tm: ThreatModel, item: dict[str, Any]) -> int | None:
    """Rank (0-based) of the first finding reporting one of the item's rules on its element,
    or on a flow into or out of it; None when none does."""
    where = {item["element"]}
    for f in tm.system.flows:
        if item["element"] in (f.source, f.target):
            where.add(f.id)
    for i, f in enumerate(tm.findings):
        if any(r in item["rules"] and t in where for (r, t) in unfold(f.to_dict())):
            return i
    if item.get("question") and any(q.id == item["question"] for q in tm.questions):
        return len(tm.findings)  # asked, not asserted: found, but not a top risk
    return None


def test_corpus_has_eight_systems_with_expectations() -> None:
    assert len(SYSTEMS) >= 8
    for name in SYSTEMS:
        items = expected(name)
        assert len(items) >= 5 and any(i.get("must") for i in items), name
        for i in items:
            assert i["why"] and i["rules"] and i["element"], (name, i)


@pytest.mark.parametrize("name", SYSTEMS)
def test_expected_threats_are_found(name: str) -> None:
    tm = model(name)
    assert len(tm.findings) <= MAX_FINDINGS, len(tm.findings)
    items = expected(name)
    missed = [i for i in items if rank_of(tm, i) is None]
    assert len(missed) <= len(items) * (1 - MIN_RECALL), missed
    for i in items:
        if i.get("must"):
            rank = rank_of(tm, i)
            assert rank is not None and rank < 10, (i, rank)


def test_corpus_recall() -> None:
    items = [(n, i) for n in SYSTEMS for i in expected(n)]
    found = sum(1 for n, i in items if rank_of(model(n), i) is not None)
    assert found / len(items) >= MIN_RECALL, (found, len(items))


def test_imaging_triage_patch_and_backbone_judged_on_the_merits() -> None:
    tm = model("imaging-triage")
    # Nobody stages a CT scan: no adversarial-patch threat on an image model without
    # physical-world inputs.
    assert not [f for f in tm.findings if f.rule_id == "MLH-ML-ADVERSARIAL-PATCH"]
    # The hub backbone raises the likelihood of a transfer-learning attack on the trainer.
    transfer = next(f for f in tm.findings if f.rule_id == "MLH-ML-TRANSFER-LEARNING")
    assert transfer.target == "trainer"
    assert "third_party_weights" in transfer.evidence["likelihood_factors"]
