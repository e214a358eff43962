"""Inversion (MIFace) and backdoor poisoning of ``assess`` on the real image-moderation CNN.

Small parameters keep it fast; the numbers asserted are what the threats mean: the backdoor's
trigger succeeds far more often on the poisoned model than on a clean model trained the same way,
and MIFace inversions carry class features an independently trained referee recognises (while a
judge that cannot tell real images apart leaves the verdict open)."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.assess_fakes import attack_ctx

torch = pytest.importorskip("torch")

from mlhunt.assess.base import AttackContext, AttackResult  # noqa: E402
from mlhunt.assess.catalog import AttackKind, load_attacks  # noqa: E402
from mlhunt.assess.scenario import ScenarioTarget, scenario_data  # noqa: E402

MINE = {
    "MLH-ASSESS-INVERSION-MIFACE": ("inversion_miface", AttackKind.INVERSION),
    "MLH-ASSESS-POISONING-BACKDOOR": ("poisoning_backdoor", AttackKind.POISONING),
}


@pytest.fixture(scope="module")
def image() -> tuple[ScenarioTarget, Any]:
    from mlhunt.scenarios import ensure_built

    torch.set_num_threads(2)
    _, loaded = ensure_built("image-moderation")
    return ScenarioTarget(loaded), scenario_data(loaded, seed=0, n_eval=600)


def _run(module: str, ctx: AttackContext) -> AttackResult:
    defaults = {a.spec.entry: a.spec.params for a in load_attacks()}
    ctx.params = {**defaults[f"mlhunt.assess.attacks.{module}:run"], **ctx.params}
    return importlib.import_module(f"mlhunt.assess.attacks.{module}").run(ctx)  # type: ignore[no-any-return]


def test_yaml_files_load_and_resolve() -> None:
    specs = {a.id: a for a in load_attacks()}
    for attack_id, (module, kind) in MINE.items():
        spec = specs[attack_id].spec
        assert spec.entry == f"mlhunt.assess.attacks.{module}:run"
        assert spec.kind is kind and spec.applies_to == ["image"]
        assert callable(specs[attack_id].load())
    assert specs["MLH-ASSESS-INVERSION-MIFACE"].spec.atlas == ["AML.T0024.001"]
    backdoor = specs["MLH-ASSESS-POISONING-BACKDOOR"].spec
    assert {
        "MLH-ML-BACKDOOR",
        "MLH-ML-POISONING-TRAINING-FLOW",
        "MLH-ML-POISONING-UNTRUSTED-SOURCE",
    } <= set(backdoor.validates)
    # user reports cannot label a prohibited image "allowed": no feedback-loop evidence
    assert "MLH-ML-FEEDBACK-LOOP" not in backdoor.validates
    assert {"AML.T0020", "AML.T0018"} <= set(backdoor.atlas)


def test_advantage_and_permutation_test() -> None:
    from mlhunt.assess.attacks.inversion_miface import advantage, permutation_p

    goal = np.repeat([0, 1], 10)
    rng = np.random.default_rng(0)
    perfect = np.eye(2)[goal]
    assert advantage(perfect, goal) == 1.0
    assert permutation_p(perfect, goal, rng, 500) < 0.01
    # A judge biased toward "prohibited" that still ranks the right inversions higher.
    biased = np.stack([0.2 - 0.1 * goal, 0.8 + 0.1 * goal], axis=1)
    assert advantage(biased, goal) == 1.0
    constant = np.tile([0.1, 0.9], (20, 1))  # says "prohibited" to everything, equally
    assert advantage(constant, goal) == 0.0
    assert permutation_p(constant, goal, rng, 500) > 0.5


def test_triggers_stamp_only_their_pixels() -> None:
    from mlhunt.assess.attacks.poisoning_backdoor import trigger_fn

    x = np.zeros((2, 3, 32, 32), np.float32)
    for kind, pixels in (("pattern", 4), ("single", 1)):
        out = trigger_fn(kind, 2, 1.0)(x)
        assert out.shape == x.shape and x.max() == 0  # input untouched
        changed = np.argwhere(out.max(axis=1)[0] > 0)
        assert len(changed) == pixels
        assert (changed >= 32 - 5).all()  # near the bottom-right corner
        assert (out[:, :, changed[:, 0], changed[:, 1]] == 1.0).all()  # every channel


def test_backdoor_trigger_beats_clean_model(image: Any, tmp_path: Path) -> None:
    target, data = image
    params = {
        "n_train": 2000,
        "rates": [0.05],
        "n_test": 200,
        "train_options": {"epochs": 4, "batch_size": 64},
    }
    r = _run("poisoning_backdoor", attack_ctx(target, data, tmp_path, params))
    m = r.metrics
    assert r.verdict == "validated", r.summary
    assert m["poisoned_records"] == 100 and m["train_options_applied"]
    assert m["success_rate"] >= 0.6, r.summary
    assert m["clean_model_trigger_rate"] <= 0.3, r.summary  # the pixels alone do little
    assert m["backdoor_gain"] >= 0.4
    assert m["clean_accuracy"] >= 0.75 and m["accuracy_drop"] <= 0.1  # stealthy
    assert target.budget.used == 0  # retrained copies only: no query to the deployed model
    assert (tmp_path / "backdoor_examples.png").is_file()


def test_backdoor_skips_tabular_and_tabular_trainer_rejects_options(tmp_path: Path) -> None:
    from mlhunt.scenarios import ensure_built

    _, loaded = ensure_built("loan-approval")
    data = scenario_data(loaded, seed=0, n_eval=50)
    r = _run("poisoning_backdoor", attack_ctx(ScenarioTarget(loaded), data, tmp_path, {}))
    assert r.verdict == "skipped"
    assert data.trainer is not None
    with pytest.raises(TypeError, match="no options"):
        data.trainer(data.x_eval, data.y_eval, epochs=1)


def test_miface_inversions_are_class_specific(image: Any, tmp_path: Path) -> None:
    target, data = image
    params = {
        "per_class": 12,
        "max_iter": 80,
        "n_reference": 2000,
        "referee_options": {"epochs": 3, "batch_size": 64},
        "permutations": 1000,
    }
    r = _run("inversion_miface", attack_ctx(target, data, tmp_path, params))
    m = r.metrics
    assert m["victim_confidence"] >= 0.9  # the victim is fooled, which alone proves nothing
    assert m["judge"] == "referee" and m["referee_accuracy"] >= 0.7
    assert m["advantage"] >= 0.5 and m["p_value"] < 0.01, r.summary
    assert abs(m["referee_untrained_advantage"]) <= 0.3  # optimisation alone: no class
    assert m["pixel_nn_accuracy"] < 0.7  # pixel distance cannot even sort real images here
    assert r.verdict == "validated", r.summary
    assert target.budget.used == 0
    assert (tmp_path / "inversion_examples.png").is_file()


def test_miface_without_a_referee_is_inconclusive(image: Any, tmp_path: Path) -> None:
    """Only the nearest real image judges, and it cannot tell real classes apart here: the
    result must not be reported as refuted (nor validated)."""
    target, data = image
    no_trainer = dataclasses.replace(data, trainer=None)
    params = {"per_class": 4, "max_iter": 20, "n_reference": 1000, "permutations": 200}
    r = _run("inversion_miface", attack_ctx(target, no_trainer, tmp_path, params))
    assert r.metrics["judge"] == "pixel_nn"
    assert r.verdict == "inconclusive", r.summary
