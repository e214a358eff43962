"""Linking the threat model to attack, hunt and scan evidence (issue #7's verdicts)."""

from __future__ import annotations

from typing import Any

import pytest

from mlhunt.run.validation import EvidenceSet, link
from mlhunt.system.loader import parse_system, read_text
from mlhunt.threatmodel import build_threat_model, default_catalog
from tests.conftest import EXAMPLES


@pytest.fixture(scope="module")
def loan_model() -> dict[str, Any]:
    path = EXAMPLES / "loan-approval" / "system.yaml"
    tm = build_threat_model(parse_system(read_text(path), str(path)), default_catalog())
    return tm.to_document()


def _fresh(doc: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(doc)


def _ml(doc: dict[str, Any], rule: str, target: str = "prediction-api") -> dict[str, Any]:
    """The finding of ``rule`` that affects ``target`` (grouped findings list several)."""
    return next(
        f
        for f in doc["findings"]
        if f["rule_id"] == rule and target in (f.get("affected") or [f["target"]])
    )


def _status_on(doc: dict[str, Any], rule: str, target: str) -> str:
    """The validation status of ``rule`` on one element, inside its group if grouped."""
    v = _ml(doc, rule, target)["validation"]
    return (v.get("by_target") or {}).get(target, v["status"])


def _assess(fid: str, verdict: str, *rules: str) -> dict[str, Any]:
    return {
        "id": fid,
        "rule_id": "MLH-ASSESS-X",
        "severity": "high",
        "evidence": {"verdict": verdict, "validates": list(rules)},
    }


def test_untested_without_evidence(loan_model: dict[str, Any]) -> None:
    doc = link(_fresh(loan_model), [])
    f = _ml(doc, "MLH-ML-EXTRACTION-API")
    assert f["validation"]["status"] == "untested"
    assert f["validation"]["statuses"] == ["untested"]
    assert f["validation"]["reason"]
    assert f["risk"] == _ml(loan_model, "MLH-ML-EXTRACTION-API")["risk"]
    assert all("validation" not in x for x in doc["findings"] if x.get("framework") != "ML")


def test_validated_and_observed_raise_risk(loan_model: dict[str, Any]) -> None:
    hunt = {
        "id": "h1",
        "rule_id": "MLH-HUNT-EXTRACTION",
        "severity": "high",
        "evidence": {"validates": ["MLH-ML-EXTRACTION-API"]},
    }
    doc = link(
        _fresh(loan_model),
        [
            EvidenceSet("assess", [_assess("a1", "validated", "MLH-ML-EXTRACTION-API")]),
            EvidenceSet("hunt", [hunt]),
        ],
    )
    before = _ml(loan_model, "MLH-ML-EXTRACTION-API")
    f = _ml(doc, "MLH-ML-EXTRACTION-API")
    v = f["validation"]
    assert v["statuses"] == ["validated", "observed"]
    assert v["evidence"] == ["a1", "h1"]
    assert f["likelihood"] == min(5.0, before["likelihood"] + 2)  # +1 validated, +1 observed
    assert f["risk"] >= before["risk"]
    assert v["risk_before"] == before["risk"]
    assert doc["summary"]["by_validation"]["validated"] >= 1


def test_refuted_lowers_risk_and_success_beats_failure(loan_model: dict[str, Any]) -> None:
    before = _ml(loan_model, "MLH-ML-MEMBERSHIP-INFERENCE")
    refuted = EvidenceSet("assess", [_assess("m1", "refuted", "MLH-ML-MEMBERSHIP-INFERENCE")])
    doc = link(_fresh(loan_model), [refuted])
    f = _ml(doc, "MLH-ML-MEMBERSHIP-INFERENCE")
    assert f["validation"]["status"] == "refuted"
    assert f["risk"] < before["risk"]
    both = [
        _assess("m1", "refuted", "MLH-ML-MEMBERSHIP-INFERENCE"),
        _assess("m2", "validated", "MLH-ML-MEMBERSHIP-INFERENCE"),
    ]
    doc = link(_fresh(loan_model), [EvidenceSet("assess", both)])
    assert _ml(doc, "MLH-ML-MEMBERSHIP-INFERENCE")["validation"]["statuses"] == ["validated"]


def test_inconclusive_proves_nothing_and_elements_restrict(loan_model: dict[str, Any]) -> None:
    unsure = EvidenceSet("assess", [_assess("e1", "inconclusive", "MLH-ML-EVASION-API")])
    doc = link(_fresh(loan_model), [unsure])
    assert _ml(doc, "MLH-ML-EVASION-API")["validation"]["status"] == "untested"
    ev = EvidenceSet(
        "assess",
        [_assess("e2", "validated", "MLH-ML-EVASION-API")],
        frozenset({"some-other-element"}),
    )
    doc = link(_fresh(loan_model), [ev])
    assert _ml(doc, "MLH-ML-EVASION-API")["validation"]["status"] == "untested"


def test_scan_finding_validates_serialization(loan_model: dict[str, Any]) -> None:
    scan = {
        "id": "s1",
        "rule_id": "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL",
        "severity": "critical",
        "evidence": {},
    }
    doc = link(_fresh(loan_model), [EvidenceSet("scan", [scan], frozenset({"model-artifact"}))])
    assert _status_on(doc, "MLH-ML-UNSAFE-SERIALIZATION", "model-artifact") == "validated"
    assert _status_on(doc, "MLH-ML-UNSAFE-SERIALIZATION", "prediction-api") == "untested"
    # The group is validated: one of its elements is.
    group = _ml(doc, "MLH-ML-UNSAFE-SERIALIZATION", "prediction-api")
    assert group["validation"]["status"] == "validated"


def test_refuted_and_observed_both_hold(loan_model: dict[str, Any]) -> None:
    """Someone tries membership inference in production, and the attacks show it fails."""
    hunt = {
        "id": "h2",
        "rule_id": "MLH-HUNT-MEMBERSHIP-PROBING",
        "severity": "medium",
        "evidence": {"validates": ["MLH-ML-MEMBERSHIP-INFERENCE"]},
    }
    before = _ml(loan_model, "MLH-ML-MEMBERSHIP-INFERENCE")
    doc = link(
        _fresh(loan_model),
        [
            EvidenceSet("assess", [_assess("m1", "refuted", "MLH-ML-MEMBERSHIP-INFERENCE")]),
            EvidenceSet("hunt", [hunt]),
        ],
    )
    f = _ml(doc, "MLH-ML-MEMBERSHIP-INFERENCE")
    assert f["validation"]["statuses"] == ["refuted", "observed"]
    assert f["validation"]["status"] == "refuted"
    assert f["validation"]["evidence"] == ["h2", "m1"]
    assert f["likelihood"] == before["likelihood"]  # -1 and +1
