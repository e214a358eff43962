"""`harden` DP logistic regression on the loan scenario: a real diffprivlib model per epsilon,
the same assess attacks before and after, the privacy budget from diffprivlib's accountant."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlhunt.errors import InputError
from mlhunt.harden import harden, parse_params
from mlhunt.harden.catalog import default_mitigations

DP = "MLH-HARDEN-DP-LOGREG"
# Small attacks: the test checks the wiring and the numbers' direction, not their precision.
SMALL = {
    "membership": {"n_members": 400, "n_nonmembers": 400, "shadow_models": 0},
    "attribute": {"n_train": 800, "n_members": 400, "n_nonmembers": 0},
}


@pytest.fixture(scope="module")
def dp_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run for the whole file. No utility loss is tolerated, so epsilon 0.5's finding (which
    loses ROC AUC, asserted below) is the one test_effective_requires_acceptable_utility reads;
    nothing else asserted here depends on the tolerance."""
    out = tmp_path_factory.mktemp("harden")
    params = {DP: {"epsilons": [0.5, 10], "max_utility_drop": 0.0, **SMALL}}
    report = harden("loan-approval", select=["dp-logreg"], params=params, out_dir=out)
    return {"doc": report.document(), "out": out}


def test_catalog_loads_and_short_names_resolve() -> None:
    ids = {m.id for m in default_mitigations()}
    assert DP in ids
    assert parse_params(["dp-logreg.epsilons=[1, 2]"]) == {DP: {"epsilons": [1, 2]}}
    nested = parse_params(["dp-logreg.membership.shadow_models=2"])[DP]["membership"]
    assert nested == {"shadow_models": 2}  # merged over the YAML default mapping
    with pytest.raises(InputError, match="no parameter 'epsilon'"):
        parse_params(["dp-logreg.epsilon=1"])
    with pytest.raises(InputError, match="unknown mitigation"):
        parse_params(["nope.x=1"])


def test_one_finding_per_epsilon_with_budget_and_before_after(dp_report: dict) -> None:
    doc = dp_report["doc"]
    assert doc["command"] == "harden" and doc["scenario"] == "loan-approval"
    findings = doc["findings"]
    assert [f["evidence"]["variant"]["epsilon"] for f in findings] == [0.5, 10.0]
    for f in findings:
        ev = f["evidence"]
        assert f["source"] == "harden" and f["rule_id"] == DP
        assert f["target"] == "loan-approval-logreg-v1"
        for key in (
            "mitigation",
            "parameters",
            "utility_before",
            "utility_after",
            "attack_before",
            "attack_after",
            "effective",
        ):
            assert key in ev
        # diffprivlib's accountant: the scaler's and the model's spends add up to epsilon.
        assert ev["privacy_budget"]["epsilon"] == pytest.approx(ev["variant"]["epsilon"])
        assert ev["privacy_budget"]["delta"] == 0
        for side in ("attack_before", "attack_after"):
            m = ev[side]["MLH-ASSESS-MEMBERSHIP"]
            assert 0 <= m["auc"] <= 1 and set(m["tpr_at_fpr"]) == {"0.001", "0.01"}
            assert "advantage" in ev[side]["MLH-ASSESS-ATTRIBUTE-INFERENCE"]
        assert Path(ev["plots"][0]).is_file()
    # The non-private side is measured once: identical in every finding.
    assert findings[0]["evidence"]["attack_before"] == findings[1]["evidence"]["attack_before"]
    before = findings[0]["evidence"]["utility_before"]
    assert before["roc_auc"] == pytest.approx(0.8486, abs=1e-3)  # the scenario's own model
    low, high = (f["evidence"]["utility_after"]["roc_auc"] for f in findings)
    # Privacy costs utility at epsilon 0.5; at 10 the noise is small.
    assert low < before["roc_auc"] - 0.005
    assert high > before["roc_auc"] - 0.01
    assert high > low


def test_effective_requires_acceptable_utility(dp_report: dict) -> None:
    f = dp_report["doc"]["findings"][0]
    assert f["evidence"]["variant"]["epsilon"] == 0.5
    assert f["evidence"]["parameters"]["max_utility_drop"] == 0.0
    assert f["evidence"]["utility_drop"]["roc_auc"] > 0  # a loss, over the zero tolerance
    assert f["evidence"]["effective"] is False and f["severity"] == "low"
    assert "exceeds the tolerance" in f["evidence"]["summary"]


def test_bad_epsilon_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="epsilons"):
        harden("loan-approval", select=[DP], params={DP: {"epsilons": [0]}}, out_dir=tmp_path)
    with pytest.raises(InputError, match="does not apply"):
        harden("image-moderation", select=[DP], out_dir=tmp_path)
