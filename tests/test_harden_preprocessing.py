"""`harden` input preprocessing: ART's feature squeezing in front of the moderation CNN looks
robust to a non-adaptive PGD and is broken by the adaptive (BPDA) one: reported not effective."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlhunt.errors import InputError
from mlhunt.harden import harden
from mlhunt.harden.mitigations.input_preprocessing import bpda_module, preprocessor

PRE = "MLH-HARDEN-INPUT-PREPROCESSING"
EVASION = "MLH-ASSESS-EVASION-WHITEBOX"


def test_bpda_forward_is_the_defence_backward_is_identity() -> None:
    import torch

    variant, apply = preprocessor({"name": "feature_squeezing", "bit_depth": 2}, "t")
    assert variant == {"preprocessor": "feature_squeezing", "bit_depth": 2}
    x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
    assert np.allclose(np.unique(apply(x)), [0, 1 / 3, 2 / 3, 1])  # ART squeezed it to 2 bits
    module = bpda_module(torch.nn.Flatten(), apply)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = module(xt)
    assert np.allclose(out.detach().numpy(), apply(x).reshape(2, -1))
    out.sum().backward()
    assert xt.grad is not None and torch.all(xt.grad == 1)  # straight through
    with pytest.raises(InputError, match="unknown preprocessor"):
        preprocessor({"name": "jpeg"}, "t")
    with pytest.raises(InputError, match="takes only"):
        preprocessor({"name": "spatial_smoothing", "bit_depth": 3}, "t")


def test_feature_squeezing_masks_gradients_only(tmp_path: Path) -> None:
    params = {PRE: {"preprocessors": [{"name": "feature_squeezing", "bit_depth": 3}]}}
    doc = harden(
        "image-moderation", select=["input-preprocessing"], params=params, out_dir=tmp_path
    ).document()
    (f,) = doc["findings"]
    ev = f["evidence"]
    before = ev["attack_before"][EVASION]["adversarial_accuracy"]
    non = ev["attack_after_nonadaptive"][EVASION]["adversarial_accuracy"]
    ada = ev["attack_after_adaptive"][EVASION]["adversarial_accuracy"]
    assert ev["attack_after"] == ev["attack_after_adaptive"]  # the honest number is "after"
    assert ev["robust_accuracy"] == {"undefended": before, "non_adaptive": non, "adaptive": ada}
    # The naive evaluation says the defence works; the adaptive attack takes it back down.
    assert non >= before + 0.1
    assert non > ada + 0.1
    assert ada < before + 0.1  # below the bar: not effective
    assert ev["effective"] is False and f["severity"] == "medium"
    assert "masks gradients only" in ev["summary"] and "not effective" in f["title"]
    assert ev["utility_before"]["accuracy"] > 0.9  # clean accuracy reported both sides
    assert (
        abs(
            ev["clean_accuracy_drop"]
            - (ev["utility_before"]["accuracy"] - ev["utility_after"]["accuracy"])
        )
        < 1e-3
    )
