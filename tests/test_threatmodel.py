"""The threat model of the four seed scenarios meets the acceptance criteria, and risk responds
to controls and tracking decisions."""

from __future__ import annotations

import copy
import functools

import pytest

from mlhunt.findings import Finding, Severity
from mlhunt.system import load_system, system_from_dict
from mlhunt.threatmodel import ThreatModel, build_threat_model
from mlhunt.threatmodel.grouping import unfold
from tests.conftest import EXAMPLES, SCENARIOS


@functools.cache
def scenario(name: str) -> ThreatModel:
    return build_threat_model(load_system(EXAMPLES / name / "system.yaml"))


def on(tm: ThreatModel, *targets: str) -> list[Finding]:
    """Findings whose cause applies to any of ``targets`` (grouped findings list them all)."""
    return [f for f in tm.findings if set(f.affected or [f.target]) & set(targets)]


def with_atlas(findings: list[Finding], prefix: str) -> list[Finding]:
    return [f for f in findings if any(a.startswith(prefix) for a in f.atlas)]


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_threat_is_scored_and_mitigated(name: str) -> None:
    tm = scenario(name)
    assert len(tm.findings) >= 20
    assert not tm.warnings, "every risk_tracking entry in the examples matches a threat"
    ids = [f.id for f in tm.findings]
    assert len(ids) == len(set(ids)), "finding ids are unique"
    for f in tm.findings:
        assert f.framework in ("STRIDE", "LINDDUN", "ML")
        assert isinstance(f.risk, float) and 1 <= f.risk <= 25
        assert f.likelihood is not None and f.impact is not None
        assert f.risk == pytest.approx(f.likelihood * f.impact)
        assert f.mitigations, f.id
        assert f.severity in Severity
        assert f.id == f"{f.rule_id}@{f.target}"
    # Sorted by risk, highest first.
    risks = [f.risk for f in tm.findings]
    assert risks == sorted(risks, reverse=True)


def test_loan_approval() -> None:
    tm = scenario("loan-approval")
    poisoning = with_atlas(
        on(tm, "applicant-db", "read-training-data", "preprocessing", "write-features"),
        "AML.T0020",
    )
    assert poisoning
    api = on(tm, "prediction-api")
    assert with_atlas(api, "AML.T0024.002")
    assert with_atlas(api, "AML.T0024.000")
    assert with_atlas(api, "AML.T0024.001")
    assert with_atlas(api, "AML.T0015") or with_atlas(api, "AML.T0043")
    applicant_flows = {
        f.id for f in tm.system.flows if "applicant-records" in f.data or f.has_personal_data
    }
    linddun = {c for f in tm.findings if f.target in applicant_flows for c in f.linddun}
    assert len(linddun) >= 3, linddun
    # A STRIDE denial-of-service rule hits (perhaps inside a group headed by an ML rule).
    stride_d = [
        rule
        for f in tm.findings
        for (rule, _target) in unfold(f.to_dict())
        if rule.startswith("MLH-STRIDE-D-")
    ]
    assert stride_d and any("D" in f.stride for f in tm.findings)


def test_fraud_detection() -> None:
    tm = scenario("fraud-detection")
    extraction = [
        f
        for f in with_atlas(tm.findings, "AML.T0024.002")
        if "AML.T0048.004" in f.atlas and f.severity in (Severity.HIGH, Severity.CRITICAL)
    ]
    assert extraction
    cardholder = [f for f in tm.findings if f.references and f.references.get("pci_dss")]
    assert cardholder
    flows = {f.id: f for f in tm.system.flows}
    elements = {e.id: e for e in tm.system.elements}
    for f in cardholder:
        holders = [flows.get(t) or elements[t] for t in f.affected]
        assert any(h.has_cardholder_data for h in holders), f.id


def test_image_moderation_patch_threat_on_the_cnn() -> None:
    tm = scenario("image-moderation")
    patch = [f for f in on(tm, "moderation-inference") if "AML.T0043.003" in f.atlas]
    assert patch and "ML01" in patch[0].owasp_ml
    assert "patch" in patch[0].title.lower()


def test_clickstream_recommender() -> None:
    tm = scenario("clickstream-recommender")

    assert tm.catalog is not None
    by_id = {r.rule.id: r.rule for r in tm.catalog.rules}

    def stride(*targets: str) -> set[str]:
        """STRIDE categories of the STRIDE rules hitting ``targets`` (a STRIDE rule may sit in
        a group whose worst hit is an ML rule of the same cause)."""
        hits = {(r, t) for f in on(tm, *targets) for r, t in unfold(f.to_dict())}
        return {
            s
            for r, t in hits
            if t in targets and by_id[r].framework == "STRIDE"
            for s in by_id[r].stride
        }

    assert {"S", "T"} <= stride("collector", "client-events")
    assert {"D", "E"} <= stride("spark-features") | stride("kubeflow-training")
    api = on(tm, "prediction-api")
    assert any("I" in f.stride for f in api)
    assert with_atlas(api, "AML.T0024.001")


def _extraction(system: dict) -> Finding:
    tm = build_threat_model(system_from_dict(system))
    (f,) = [f for f in tm.findings if f.rule_id == "MLH-ML-EXTRACTION-API" and f.target == "api"]
    return f


def test_rate_limit_lowers_extraction_risk(minimal_system: dict) -> None:
    minimal_system["elements"][3]["rate_limit"] = "none"  # stated: no limit (not unknown)
    before = _extraction(minimal_system)
    limited = copy.deepcopy(minimal_system)
    limited["controls"] = [
        {"id": "gw-limit", "type": "rate_limiting", "applies_to": ["api"]},
        {"id": "hunt-daily", "type": "query_auditing", "applies_to": ["api"]},
    ]
    after = _extraction(limited)
    assert after.risk < before.risk
    assert after.likelihood < before.likelihood
    assert "no_rate_limit" in before.evidence["likelihood_factors"]
    assert "no_rate_limit" not in after.evidence["likelihood_factors"]
    # The finding names the control that lowered it.
    assert after.evidence["controls_in_place"]["query_auditing"] == ["hunt-daily"]
    assert "query_auditing" in after.evidence["risk_explanation"]
    # The element's own rate_limit attribute counts too.
    attr = copy.deepcopy(minimal_system)
    attr["elements"][3]["rate_limit"] = "100/minute"
    assert _extraction(attr).risk < before.risk


def test_ip_value_and_exposure_raise_risk(minimal_system: dict) -> None:
    minimal_system["criticality"] = "medium"
    minimal_system["elements"][3]["model"]["ip_value"] = "medium"
    base = _extraction(minimal_system)
    crown = copy.deepcopy(minimal_system)
    crown["elements"][3]["model"]["ip_value"] = "critical"
    assert _extraction(crown).impact > base.impact
    internal = copy.deepcopy(minimal_system)
    internal["elements"][3]["internet_facing"] = False
    assert _extraction(internal).likelihood < base.likelihood


def test_risk_tracking_status_shows_on_finding(minimal_system: dict) -> None:
    system = copy.deepcopy(minimal_system)
    system["risk_tracking"] = [
        {
            "threat": "MLH-ML-EXTRACTION-API@api",
            "status": "accepted",
            "justification": "labels only from Q3",
            "ticket": "SEC-1",
            "date": "2026-11-01",
        },
        {"threat": "MLH-LINDDUN-*@db-train", "status": "in-progress"},
        {"threat": "MLH-NOPE@api", "status": "mitigated"},
    ]
    tm = build_threat_model(system_from_dict(system))
    f = next(f for f in tm.findings if f.id == "MLH-ML-EXTRACTION-API@api")
    assert f.status == "accepted"
    assert f.tracking == {
        "threat": f.id,
        "status": "accepted",
        "justification": "labels only from Q3",
        "ticket": "SEC-1",
        "date": "2026-11-01",
    }
    wild = [f for f in tm.findings if f.target == "db-train" and f.framework == "LINDDUN"]
    assert wild and all(f.status == "open" and f.tracking["status"] == "in-progress" for f in wild)
    assert tm.warnings == ["risk_tracking[2]: 'MLH-NOPE@api' matches no threat"]
    untouched = [f for f in tm.findings if not f.tracking]
    assert untouched and all(f.status == "open" for f in untouched)


def test_document_contract(minimal_system: dict) -> None:
    doc = build_threat_model(system_from_dict(minimal_system)).to_document()
    assert doc["tool"] == "mlhunt" and doc["command"] == "model"
    assert set(doc["summary"]["by_severity"]) == {"critical", "high", "medium", "low", "info"}
    assert {e["id"] for e in doc["elements"]} == {"user", "db", "train", "api"}
    assert {f["id"] for f in doc["flows"]} == {"db-train", "query"}
    assert [b["id"] for b in doc["trust_boundaries"]] == ["corp", "cluster"]
    required = {
        "id",
        "rule_id",
        "title",
        "severity",
        "source",
        "target",
        "atlas",
        "owasp_ml",
        "stride",
        "linddun",
        "cwe",
        "evidence",
        "mitigations",
        "status",
        "framework",
        "likelihood",
        "impact",
        "risk",
    }
    for f in doc["findings"]:
        assert required <= set(f)
        assert f["source"] == "model"


def test_same_input_same_ids(minimal_system: dict) -> None:
    a = build_threat_model(system_from_dict(minimal_system)).to_document()
    b = build_threat_model(system_from_dict(copy.deepcopy(minimal_system))).to_document()
    assert a == b


def test_loan_api_rate_limit_and_tracking_on_the_example() -> None:
    import yaml

    data = yaml.safe_load((EXAMPLES / "loan-approval" / "system.yaml").read_text())

    def extraction(d: dict) -> Finding:
        tm = build_threat_model(system_from_dict(d))
        return next(f for f in tm.findings if f.id == "MLH-ML-EXTRACTION-API@prediction-api")

    before = extraction(data)
    limited = copy.deepcopy(data)
    limited["controls"].append(
        {
            "id": "kong-rate-limit",
            "type": "rate_limiting",
            "applies_to": ["prediction-api"],
            "implementation": "Kong rate-limiting plugin, 60/min per API key",
        }
    )
    after = extraction(limited)
    assert after.risk < before.risk
    tm = scenario("loan-approval")
    accepted = [f for f in tm.findings if f.status == "accepted"]
    assert accepted and all(f.tracking and f.tracking["status"] == "accepted" for f in accepted)
    assert not tm.warnings
