"""Evidence for more threats (issue #27, item 4): the load test links to denial of AI service,
deployment manifests to the deployment threats of the element that owns them, an untested ML
threat names the check that would test it, and the run counts its ML threats with evidence."""

from __future__ import annotations

import copy
import socket
from pathlib import Path
from typing import Any

import pytest

from mlhunt.errors import InputError
from mlhunt.report import render
from mlhunt.run.api import (
    element_scope,
    live_api,
    ml_threats,
    run_project,
    run_scan,
    threat_model,
)
from mlhunt.run.coverage import ml_evidence, registry
from mlhunt.run.load_part import load_test_part, request_bodies, wants_load_test
from mlhunt.run.loadtest import LoadSettings, load_test
from mlhunt.run.project import Project, load_project
from mlhunt.run.validation import EvidenceSet, link, scan_evidence
from tests.conftest import EXAMPLES

DOS = "MLH-ML-DENIAL-OF-AI-SERVICE"


def _loan(tmp_path: Path, deploy: str = "deploy") -> Project:
    """The loan-approval project with its manifest scan only (no attacks, no traffic, not the
    published model artifact, whose own evidence tests/test_run_training_evidence.py checks)."""
    project = load_project(EXAMPLES / "loan-approval" / "mlhunt.yaml")
    project.models, project.logs = [], []
    project.scan = [s for s in project.scan if s.path is not None]
    project.scan[0].path = deploy
    project.output = str(tmp_path / deploy)
    return project


def _threat(doc: dict[str, Any], rule: str, target: str) -> dict[str, Any]:
    return next(
        f
        for f in doc["findings"]
        if f.get("source") == "model"
        and f["rule_id"] == rule
        and target in (f.get("affected") or [f["target"]])
    )


def _on(doc: dict[str, Any], rule: str, target: str) -> str:
    v = _threat(doc, rule, target)["validation"]
    return str((v.get("by_target") or {}).get(target, v["status"]))


def _evidence_rules(doc: dict[str, Any], rule: str, target: str) -> set[str]:
    by_id = {f["id"]: f for f in doc["findings"]}
    return {by_id[e]["rule_id"] for e in _threat(doc, rule, target)["validation"]["evidence"]}


@pytest.fixture(scope="module")
def deploy_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The loan-approval run on its manifests as deployed and as fixed (scan only)."""
    tmp = tmp_path_factory.mktemp("deploy")
    return {d: run_project(_loan(tmp, d)).document for d in ("deploy", "deploy-fixed")}


# ---------------------------------------------------------------------------- deployment threats


def test_manifest_findings_validate_the_owners_deployment_threats(
    deploy_runs: dict[str, dict[str, Any]],
) -> None:
    doc = deploy_runs["deploy"]
    # privileged pod -> the notebook's privileged-workload threat
    assert _on(doc, "MLH-STRIDE-E-PRIVILEGED-WORKLOAD", "analyst-notebook") == "validated"
    assert "MLH-K8S-PRIVILEGED" in _evidence_rules(
        doc, "MLH-STRIDE-E-PRIVILEGED-WORKLOAD", "analyst-notebook"
    )
    # no mTLS where the prediction API is served -> clear text on its flow to monitoring
    assert _on(doc, "MLH-STRIDE-I-FLOW-CLEARTEXT", "pred-logs") == "validated"
    assert "MLH-K8S-MTLS-MISSING" in _evidence_rules(
        doc, "MLH-STRIDE-I-FLOW-CLEARTEXT", "pred-logs"
    )
    # ... and nothing protects the integrity of the predictions on it
    assert _on(doc, "MLH-ML-OUTPUT-INTEGRITY", "pred-logs") == "validated"
    # the dashboard's database password in its ConfigMap -> credentials on its database flow
    assert _on(doc, "MLH-STRIDE-I-STORE-CREDENTIALS", "dashboard-db") == "validated"
    # an unpinned model URI in the API's manifest -> model supply chain, on that element only
    assert _on(doc, "MLH-ML-SUPPLY-CHAIN-MODEL", "prediction-api") == "validated"
    assert _on(doc, "MLH-ML-SUPPLY-CHAIN-MODEL", "model-artifact") == "untested"


def test_manifests_checked_clean_refute_them(deploy_runs: dict[str, dict[str, Any]]) -> None:
    doc = deploy_runs["deploy-fixed"]
    for rule, target in (
        ("MLH-STRIDE-E-PRIVILEGED-WORKLOAD", "analyst-notebook"),
        ("MLH-STRIDE-I-FLOW-CLEARTEXT", "pred-logs"),
        ("MLH-STRIDE-I-STORE-CREDENTIALS", "dashboard-db"),
        ("MLH-ML-SUPPLY-CHAIN-MODEL", "prediction-api"),
        ("MLH-ML-OUTPUT-INTEGRITY", "pred-logs"),
    ):
        assert _on(doc, rule, target) == "refuted", rule
        assert _evidence_rules(doc, rule, target) == {"MLH-SCAN-DEPLOY-CLEAN"}, rule
    # the reports quote what was checked, not "a scan found"
    md = render(doc, "markdown")
    assert "Deployment of analyst-notebook checked clean: " in md
    assert "a scan found: Deployment of" not in md
    # a flow none of whose ends owns a manifest stays untested
    assert _on(doc, "MLH-STRIDE-I-STORE-CREDENTIALS", "store-application") == "untested"


@pytest.mark.parametrize(("kind", "cleartext"), [("inference_api", True), ("process", False)])
def test_a_clean_manifest_refutes_only_what_its_checks_look_at(kind: str, cleartext: bool) -> None:
    """No mTLS finding on a workload that serves no model proves nothing about its flows: the
    mTLS policy only looks at model servers."""
    from mlhunt.run.deploy_links import clean_checks

    manifest = EXAMPLES / "loan-approval" / "deploy-fixed" / "prediction-api.yaml"
    model = {
        "elements": [{"id": "svc", "kind": kind}, {"id": "sink", "kind": "monitoring"}],
        "flows": [{"id": "out", "source": "svc", "target": "sink"}],
        "findings": [
            {"rule_id": "MLH-STRIDE-I-FLOW-CLEARTEXT", "target": "out"},
            {"rule_id": "MLH-STRIDE-E-PRIVILEGED-WORKLOAD", "target": "svc"},
        ],
    }
    ((finding, scope),) = clean_checks(model, {"svc": [manifest]}, [])
    refuted = set(finding["evidence"]["refutes"])
    assert "MLH-STRIDE-E-PRIVILEGED-WORKLOAD" in refuted and scope == {"svc", "out"}
    assert ("MLH-STRIDE-I-FLOW-CLEARTEXT" in refuted) is cleartext


def test_owners_typos_are_one_clear_line(tmp_path: Path) -> None:
    project = _loan(tmp_path)
    project.scan[0].owners = {"no-such-file.yaml": "prediction-api"}
    with pytest.raises(InputError, match=r"no-such-file\.yaml"):
        run_project(project)
    project.scan[0].owners = {"dashboard.yaml": "no-such-element"}
    with pytest.raises(InputError, match="no-such-element"):
        run_project(project)


# ------------------------------------------------------------------- untested: what would test it


def test_untested_ml_threat_names_the_check_from_the_registries(
    deploy_runs: dict[str, dict[str, Any]],
) -> None:
    doc = deploy_runs["deploy"]
    evasion = _threat(doc, "MLH-ML-EVASION-API", "prediction-api")["validation"]
    assert evasion["status"] == "untested"
    ids = {c["id"] for c in evasion["checks"]}
    wanted = {c.id for c in registry() if "MLH-ML-EVASION-API" in c.threats}
    assert {"MLH-ASSESS-EVASION-BLACKBOX", "MLH-HUNT-EVASION-PROBING"} <= ids <= wanted
    # attacks for the model's input kind only: the loan model is tabular
    extraction = _threat(doc, "MLH-ML-EXTRACTION-API", "prediction-api")["validation"]
    ids = {c["id"] for c in extraction["checks"]}
    assert "MLH-ASSESS-EXTRACTION-TABULAR" in ids and "MLH-ASSESS-EXTRACTION-NETS" not in ids
    # a poisoned flow is tested on the model it trains
    poison = _threat(doc, "MLH-ML-POISONING-TRAINING-FLOW", "read-training-data")["validation"]
    labelflip = next(c for c in poison["checks"] if c["id"] == "MLH-ASSESS-POISONING-LABELFLIP")
    assert "training-job" in labelflip["action"]
    inputs = {c.id: c.inputs for c in registry() if c.kind == "attack"}
    for t in doc["findings"]:
        for c in (t.get("validation") or {}).get("checks") or ():
            assert c["kind"] != "attack" or "tabular" in inputs[c["id"]], (t["rule_id"], c)
    # scan rules of one kind are one check
    unsafe = _threat(doc, "MLH-ML-UNSAFE-SERIALIZATION", "prediction-api")["validation"]
    assert [c["kind"] for c in unsafe["checks"]] == ["scan"]
    assert "MLH-SCAN-PICKLE-*" in unsafe["checks"][0]["id"]
    assert "to test it: " in evasion["reason"]
    dos = _threat(doc, DOS, "prediction-api")["validation"]
    assert "load-test" in {c["kind"] for c in dos["checks"]}
    # shown in every report format
    action = evasion["checks"][0]["action"]
    for fmt in ("html", "markdown", "json"):
        assert action in render(doc, fmt), fmt


# ----------------------------------------------------------------------------------- the count


def test_ml_evidence_counts_threats_with_evidence() -> None:
    def threat(rule: str, *statuses: str) -> dict[str, Any]:
        return {
            "rule_id": rule,
            "source": "model",
            "framework": "ML",
            "validation": {"status": statuses[0], "statuses": list(statuses)},
        }

    findings = [
        threat("A", "validated", "observed"),
        threat("B", "refuted"),
        threat("C", "untested"),
        threat("D", "mitigated"),
        {"rule_id": "S", "source": "model", "framework": "STRIDE"},
        {"rule_id": "MLH-ASSESS-X", "source": "assess", "framework": "ML"},
    ]
    assert ml_evidence(findings) == {
        "threats": 4,
        "with_evidence": 3,
        "share": 0.75,
        "untested": ["C"],
    }


def test_run_summary_and_reports_carry_the_count(deploy_runs: dict[str, dict[str, Any]]) -> None:
    doc = deploy_runs["deploy"]
    m = doc["summary"]["ml_evidence"]
    assert m == ml_evidence(doc["findings"])
    assert m["with_evidence"] == 2  # supply chain and output integrity, from the manifests
    line = f"ML threats with evidence: 2 of {m['threats']}"
    assert line in render(doc, "markdown") and line in render(doc, "html")
    from mlhunt.report.run_index import render_run_index

    assert line in render_run_index([(doc, "loan-approval/report.html")])


# ------------------------------------------------------------------------------------ load test


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_load_test_counts_failures_and_refuses_remote_targets() -> None:
    settings = LoadSettings(rate=200, requests=8, concurrency=2, slo_p99_ms=1e4, slo_error_rate=0)
    bodies = [("/predict", {"vector": [0.0]})]
    down = load_test(f"http://127.0.0.1:{_closed_port()}", bodies, settings)
    assert down.errors == 8 and down.verdict == "validated"
    with pytest.raises(InputError, match="loopback"):
        load_test("http://192.0.2.1:80", bodies, settings)


def test_load_test_links_to_denial_of_service(tmp_path: Path) -> None:
    """Against the live loan API: the SLO met at the declared rate refutes the threat, one no
    server can meet validates it; the finding carries the verdict into the link."""
    project = load_project(EXAMPLES / "loan-approval" / "mlhunt.yaml")
    model = threat_model(project)
    cfg = project.models[0]
    assert wants_load_test(cfg, {DOS})
    cfg.load_test.requests, cfg.load_test.rate = 30, 30.0
    # 5 s: a loan answer on loopback took at most 280 ms on a 2-core machine shared by 8 runs
    cfg.load_test.slo_p99_ms = 5000.0
    met = load_test_part(project, cfg, tmp_path, lambda _m: None)
    cfg.load_test.slo_p99_ms = 1e-6  # below any round trip
    breached = load_test_part(project, cfg, tmp_path, lambda _m: None)
    assert met["evidence"]["sent"] == 30 and met["evidence"]["error_rate"] == 0.0
    for f, verdict in ((met, "refuted"), (breached, "validated")):
        doc = link(
            copy.deepcopy(model), [EvidenceSet("assess", [f], frozenset({"prediction-api"}))]
        )
        v = _threat(doc, DOS, "prediction-api")["validation"]
        assert (v["status"], v["evidence"]) == (verdict, [f["id"]])


def test_request_bodies_follow_the_scenario_api(tmp_path: Path) -> None:
    import httpx
    import numpy as np

    settings = LoadSettings(rate=100, requests=6, concurrency=2, slo_p99_ms=1e4, slo_error_rate=1)
    key = {"X-API-Key": "sim-t"}
    with live_api("loan-approval", tmp_path / "api.jsonl", 0) as (loaded, base):
        bodies = request_bodies(loaded, 3, np.random.default_rng(0))
        assert bodies is not None
        r = httpx.post(base + bodies[0][0], json=bodies[0][1], headers=key)
        # a body the API refuses (422) is the test's fault: no verdict either way
        wrong = load_test(base, [("/predict", {"vector": [1.0]})], settings, headers=key)
    assert r.status_code == 200 and len(bodies) == 3
    assert wrong.statuses == {"422": 6} and wrong.verdict == "inconclusive"


def test_recommender_load_test_decides_denial_of_service(tmp_path: Path) -> None:
    """The recommender's API is ``POST /recommend``, not ``/predict``: its own
    ``sample_requests`` (known users' carousels and anonymous sessions) let the load test run
    against the live API, every request answered, and its verdict decide the API's threat."""
    import json

    project = load_project(EXAMPLES / "clickstream-recommender" / "mlhunt.yaml")
    model = threat_model(project)
    cfg = project.models[0]
    assert wants_load_test(cfg, ml_threats(model, cfg.element))
    cfg.load_test.requests, cfg.load_test.rate = 30, 30.0
    cfg.load_test.slo_p99_ms = 5000.0  # a /recommend answer takes ~15 ms on loopback
    found = load_test_part(project, cfg, tmp_path, lambda _m: None)
    assert found is not None and found["evidence"]["statuses"] == {"200": 30}
    log = tmp_path / "load" / "clickstream-recommender" / "api-log.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["user"] is None for r in records} == {True, False}  # sessions and known users
    doc = link(
        copy.deepcopy(model), [EvidenceSet("assess", [found], element_scope(model, cfg.element))]
    )
    v = _threat(doc, DOS, "prediction-api")["validation"]
    assert (v["status"], v["evidence"]) == ("refuted", [found["id"]])


def test_recommender_published_checkpoint_validates_unsafe_serialization(tmp_path: Path) -> None:
    """The example scans the torch.save checkpoint the scenario publishes as the checkpoint
    element's artifact: a pickle, so that element's unsafe-serialization threat is validated by
    the scan; the training job and the API, which own no scanned file, stay untested."""
    project = load_project(EXAMPLES / "clickstream-recommender" / "mlhunt.yaml")
    (cfg,) = [s for s in project.scan if s.scenario is not None]
    assert (cfg.scenario, cfg.element) == ("clickstream-recommender", "model-artifact")
    doc = run_scan(project, cfg)
    sets, loose = scan_evidence(doc["findings"], cfg.element)
    assert not loose
    linked = link(threat_model(project), sets)
    serial = _threat(linked, "MLH-ML-UNSAFE-SERIALIZATION", "model-artifact")
    assert _on(linked, "MLH-ML-UNSAFE-SERIALIZATION", "model-artifact") == "validated"
    for other in ("kubeflow-training", "prediction-api"):
        assert _on(linked, "MLH-ML-UNSAFE-SERIALIZATION", other) == "untested"
    by_id = {f["id"]: f for f in doc["findings"]}
    (fmt,) = [by_id[i] for i in serial["validation"]["evidence"]]
    assert fmt["rule_id"] == "MLH-SCAN-MODEL-FORMAT" and Path(fmt["target"]).name == "model.pt"
    assert fmt["evidence"] == {"format": "torch-zip", "code_on_load": True}


@pytest.mark.parametrize("scenario", ["loan-approval", "image-moderation", "fraud-detection"])
def test_init_starter_names_the_examples_manifest_owners(scenario: str) -> None:
    """`mlhunt init --scenario` ties the manifests to the same elements as the example."""
    import yaml

    from mlhunt.run.init import starter

    example = load_project(EXAMPLES / scenario / "mlhunt.yaml").scan[0].owners
    assert yaml.safe_load(starter(scenario=scenario))["scan"][0]["owners"] == example


def test_only_the_runs_clean_check_refutes() -> None:
    """A scan finding that merely carries ``refutes`` (a policy's result metadata) proves
    nothing: only the run's own MLH-SCAN-DEPLOY-CLEAN finding refutes."""
    model = threat_model(_loan(Path("/nonexistent")))
    fake = {
        "id": "x",
        "rule_id": "MLH-K8S-CUSTOM",
        "severity": "info",
        "target": "f.yaml",
        "evidence": {"refutes": ["MLH-STRIDE-E-PRIVILEGED-WORKLOAD"]},
    }
    rule, where = "MLH-STRIDE-E-PRIVILEGED-WORKLOAD", frozenset({"analyst-notebook"})
    doc = link(copy.deepcopy(model), [EvidenceSet("scan", [fake], where)])
    assert "validation" not in _threat(doc, rule, "analyst-notebook")  # nothing spoke to it
    real = {**fake, "rule_id": "MLH-SCAN-DEPLOY-CLEAN"}
    doc = link(copy.deepcopy(model), [EvidenceSet("scan", [real], where)])
    assert _on(doc, rule, "analyst-notebook") == "refuted"
