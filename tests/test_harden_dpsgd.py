"""`harden` opacus DP-SGD on a PyTorch MLP over the loan records: the privacy budget spent is the
one asked for (opacus's RDP accountant), utility and membership inference (TPR at 0.1% FPR, the
measure assess reports) before and after, and one clear error when opacus cannot be used."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from mlhunt.errors import InputError
from mlhunt.harden import harden
from mlhunt.harden._dpsgd import MLPConfig, import_opacus, train

DP = "MLH-HARDEN-DP-SGD"
MEMBERSHIP = "MLH-ASSESS-MEMBERSHIP"


def test_dp_sgd_spends_the_budget_asked_and_plain_training_none() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((1000, 4), dtype=np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    cfg = MLPConfig(hidden=8, epochs=2, batch=100)
    _m, info = train(x, y, cfg, epsilon=2.0, delta=1e-4)
    assert 1.5 < info["epsilon"] <= 2.0 + 1e-6 and info["delta"] == 1e-4
    assert info["noise_multiplier"] > 0 and info["sample_rate"] == pytest.approx(0.1)
    _m, plain = train(x, y, cfg)
    assert plain["epsilon"] is None


def test_opacus_missing_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opacus", None)  # import opacus -> ImportError
    with pytest.raises(InputError, match=r"DP-SGD needs opacus .*mlhunt\[privacy\].*torch"):
        import_opacus()
    with pytest.raises(InputError, match="DP-SGD needs opacus"):
        harden("loan-approval", select=["dp-sgd"])


def test_dp_sgd_on_loan_mlp(tmp_path: Path) -> None:
    params = {DP: {"epsilons": [1, 8], "membership": {"shadow_models": 4}}}
    doc = harden("loan-approval", select=["dp-sgd"], params=params, out_dir=tmp_path).document()
    f1, f8 = doc["findings"]
    for f, eps in ((f1, 1.0), (f8, 8.0)):
        ev = f["evidence"]
        budget = ev["privacy_budget"]
        assert eps * 0.8 < budget["epsilon"] <= eps + 1e-6 and budget["delta"] == 1e-5
        assert "opacus DP-SGD" in budget["mechanism"]
        for side in ("attack_before", "attack_after"):
            m = ev[side][MEMBERSHIP]
            assert 0 <= m["tpr_at_fpr"]["0.001"] <= 1 and 0 <= m["auc"] <= 1
        assert set(ev["utility_after"]) == {"roc_auc", "pr_auc", "accuracy"}
        assert ev["utility_before"]["roc_auc"] > 0.8  # the non-private MLP is a real model
        drop = ev["utility_before"]["roc_auc"] - ev["utility_after"]["roc_auc"]
        assert ev["utility_drop"]["roc_auc"] == pytest.approx(drop, abs=1e-4)
        refuted = all(a["verdict"] == "refuted" for a in ev["attack_after"].values())
        assert ev["effective"] == (refuted and drop <= 0.05)
        assert Path(ev["plots"][0]).is_file()
    # At the smallest epsilon, membership inference gains nothing from the released model
    # and the accountant's epsilon is the one asked for.
    ev1 = f1["evidence"]
    m_b, m_a = ev1["attack_before"][MEMBERSHIP], ev1["attack_after"][MEMBERSHIP]
    assert m_a["auc"] <= m_b["auc"] + 0.03
    if "0.001" in m_a.get("tpr_at_fpr", {}) and "0.001" in m_b.get("tpr_at_fpr", {}):
        assert m_a["tpr_at_fpr"]["0.001"] <= m_b["tpr_at_fpr"]["0.001"] + 0.01
    assert ev1["privacy_budget"]["epsilon"] <= 1.0 * 1.01
    # More budget, less noise; utility no worse (within noise of training).
    b1, b8 = f1["evidence"]["privacy_budget"], f8["evidence"]["privacy_budget"]
    assert b8["noise_multiplier"] < b1["noise_multiplier"]
    u1, u8 = f1["evidence"]["utility_after"], f8["evidence"]["utility_after"]
    assert u8["roc_auc"] >= u1["roc_auc"] - 0.01
