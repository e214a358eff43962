"""Membership inference (MLH-ASSESS-MEMBERSHIP) on image models: the scenario's CNN, trained on
12,000 images with augmentation, barely tells its members apart (the threat is refuted, with the
numbers); a small CNN memorising 200 images is caught, and the same attack on that CNN finds no
"membership" between two sets of images it never saw (the attack can fail)."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.assess_fakes import attack_ctx

torch = pytest.importorskip("torch")

from mlhunt.assess.base import AssessData, AttackResult  # noqa: E402
from mlhunt.assess.catalog import load_attacks  # noqa: E402
from mlhunt.assess.scenario import ScenarioTarget, scenario_data  # noqa: E402

ID = "MLH-ASSESS-MEMBERSHIP"


@pytest.fixture(scope="module")
def image() -> tuple[ScenarioTarget, AssessData]:
    from mlhunt.scenarios import ensure_built

    torch.set_num_threads(2)
    _, loaded = ensure_built("image-moderation")
    return ScenarioTarget(loaded), scenario_data(loaded, seed=0, n_eval=100)


@pytest.fixture(scope="module")
def memoriser(image: tuple[ScenarioTarget, AssessData]) -> tuple[ScenarioTarget, AssessData]:
    """A small CNN trained 60 epochs on 200 images, no augmentation: it memorises them (train
    accuracy 1.0, holdout about 0.7)."""
    from mlhunt.scenarios.image import cnn_logits, softmax, train_cnn

    target, data = image
    assert data.x_members is not None and data.y_members is not None
    x, y = data.x_members[:200], data.y_members[:200]
    model = train_cnn(
        x,
        y.astype(np.int64),
        seed=0,
        epochs=60,
        batch_size=32,
        lr=4e-3,
        widths=(8, 16),
        hidden=16,
        augment=False,
    )

    class Memoriser(ScenarioTarget):
        def predict_proba(self, q: np.ndarray) -> np.ndarray:
            self.budget.charge(len(q))
            return softmax(cnn_logits(model, np.asarray(q, dtype=np.float32)))

    return Memoriser(target.loaded), dataclasses.replace(data, x_members=x, y_members=y)


def _run(target: ScenarioTarget, data: AssessData, tmp_path: Path, **params: Any) -> AttackResult:
    defaults = {a.id: a.spec.params for a in load_attacks()}[ID]
    ctx = attack_ctx(target, data, tmp_path, {**defaults, **params})
    return importlib.import_module("mlhunt.assess.attacks.membership").run(ctx)  # type: ignore[no-any-return]


def test_membership_applies_to_images() -> None:
    spec = {a.id: a for a in load_attacks()}[ID].spec
    assert "image" in spec.applies_to and spec.cost <= 2


def test_scenario_cnn_leaks_little_and_is_refuted(image: Any, tmp_path: Path) -> None:
    target, data = image
    r = _run(target, data, tmp_path)
    m = r.metrics
    assert set(m["attacks"]) == {"art_black_box", "art_rule_based", "confidence_threshold"}
    assert m["members"] == m["nonmembers"] == 1000 and target.budget.used == 2000
    # measured AUC 0.5 to 0.53: the refutation needs its upper 95% bound under 0.6
    assert r.verdict == "refuted" and m["auc"] < 0.56 and m["auc_upper_95"] < 0.6
    assert (tmp_path / "membership_roc.png").is_file()


def test_memorising_cnn_is_caught(memoriser: Any, tmp_path: Path) -> None:
    target, data = memoriser
    r = _run(target, data, tmp_path, n_members=200, n_nonmembers=200)
    m = r.metrics
    assert r.verdict == "validated", r.summary
    # measured AUC about 0.78 (train accuracy 1.0 vs about 0.7 held out); validated at 0.6
    assert m["attacks"]["confidence_threshold"]["auc"] > 0.7


def test_no_membership_between_two_unseen_sets(memoriser: Any, tmp_path: Path) -> None:
    """Control: both sets are held-out images, so any signal would be the attack's artefact."""
    target, data = memoriser
    unseen = dataclasses.replace(
        data,
        x_members=data.x_nonmembers[:1000],
        y_members=data.y_nonmembers[:1000],
        x_nonmembers=data.x_nonmembers[1000:2000],
        y_nonmembers=data.y_nonmembers[1000:2000],
    )
    r = _run(target, unseen, tmp_path)
    assert r.verdict == "refuted", r.summary
    assert r.metrics["auc"] < 0.56
