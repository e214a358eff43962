"""`harden` adversarial training of the moderation CNN: PGD robust accuracy up, the adversarial
patch's hide rate down, clean accuracy (and recall / false positives) reported. The trained
weights are cached under MLHUNT_CACHE by parameters, so after the first run (a few minutes on
two busy cores) this file only re-runs the attacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlhunt.errors import InputError
from mlhunt.harden import harden
from mlhunt.harden._robust import _patch_masks, patch_pgd
from mlhunt.harden.mitigations.adversarial_training import recipe_from

ADV = "MLH-HARDEN-ADV-TRAINING"
EVASION, PATCH = "MLH-ASSESS-EVASION-WHITEBOX", "MLH-ASSESS-PATCH"


def test_patch_pgd_changes_only_the_square_off_the_object() -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    rng = np.random.default_rng(0)
    x = rng.random((4, 3, 16, 16), dtype=np.float32)
    boxes = np.array([[2, 2, 8, 8]] * 4, dtype=np.float32)  # x0, y0, x1, y1
    masks = _patch_masks(boxes, 4, 16, rng)
    assert masks.sum(axis=(1, 2, 3)).tolist() == [16.0] * 4  # one 4x4 square each
    assert not masks[:, :, 1:10, 1:10].any()  # never on the object (+1 px margin)
    xa = patch_pgd(model, x, np.ones(4, np.int64), masks, 3, rng)
    outside = np.broadcast_to(masks == 0, x.shape)
    assert np.array_equal(xa[outside], x[outside])
    assert xa.min() >= 0 and xa.max() <= 1


def test_bad_recipe_is_an_input_error() -> None:
    with pytest.raises(InputError, match="clean_weight"):
        recipe_from({"clean_weight": 2}, 8 / 255, 0)
    with pytest.raises(InputError, match="parameters"):
        recipe_from({"epochs": "many"}, 8 / 255, 0)
    with pytest.raises(InputError, match="does not apply"):
        harden("loan-approval", select=["adv-training"])


@pytest.mark.slow
def test_adversarial_training_lowers_patch_hide_rate_and_raises_robust_accuracy(
    tmp_path: Path,
) -> None:
    # Measured on a fresh scenario build (2 cores, torch_threads(1), seeds fixed): with the
    # default clean_weight 0.5 the clean accuracy drop was 0.097 here and 0.105 on another fresh
    # clone, at the edge of the rule's 0.1. With clean_weight 0.65: drop 0.073 (margin 0.027,
    # three times that spread), robust accuracy 0.025 -> 0.18 (gain 0.155, margin 0.055 over
    # 0.1), patch hide rate 0.82 -> 0.07 (drop 0.75, margin 0.65 over 0.1).
    params = {ADV: {"clean_weight": 0.65}}
    doc = harden(
        "image-moderation", select=["adv-training"], params=params, out_dir=tmp_path
    ).document()
    (f,) = doc["findings"]
    ev = f["evidence"]
    before, after = ev["attack_before"], ev["attack_after"]
    # PGD L-inf at the threat's epsilon (8/255), same images and steps before and after.
    assert before[EVASION]["epsilon_label"] == "8/255" == after[EVASION]["epsilon_label"]
    assert before[EVASION]["evaluated"] == after[EVASION]["evaluated"] == 200
    rob_b, rob_a = before[EVASION]["adversarial_accuracy"], after[EVASION]["adversarial_accuracy"]
    assert rob_a >= rob_b + 0.1
    # assess's patch attack, same parameters and seed: the sticker stops working.
    hide_b, hide_a = before[PATCH]["hide_rate"], after[PATCH]["hide_rate"]
    assert hide_b >= 0.5 and hide_a <= hide_b - 0.1
    assert before[PATCH]["verdict"] == "validated"
    # Clean accuracy, recall and false positives are reported on the full holdout, both sides.
    for u in (ev["utility_before"], ev["utility_after"]):
        assert set(u) == {"accuracy", "recall_prohibited", "false_positive_rate"}
    assert ev["utility_before"]["accuracy"] > 0.95
    assert ev["clean_accuracy_drop"] == pytest.approx(
        ev["utility_before"]["accuracy"] - ev["utility_after"]["accuracy"], abs=1e-4
    )
    # The verdict is the rule applied to these numbers, nothing else.
    assert ev["checks"] == {
        "robust_gain": True,
        "patch_hide_drop": True,
        "clean_accuracy": ev["clean_accuracy_drop"] <= 0.1,
    }
    assert ev["effective"] == all(ev["checks"].values()) == ev["proven"]
    # ...and the measured facts themselves: the mitigation works on this scenario.
    assert ev["clean_accuracy_drop"] <= 0.1
    assert hide_a < hide_b and rob_a > rob_b
    assert ev["effective"] is True
    assert ev["robustness_curve"]["epsilons"] == [1, 2, 4, 8, 16]
    assert ev["robustness_curve"]["after"][3] == rob_a
    assert Path(ev["plots"][0]).is_file()
    assert ev["training"]["n_train"] == 4000 and len(ev["training"]["losses"]) == 3
    assert ev["training"]["recipe"]["clean_weight"] == 0.65
