"""Evidence for the training and artifact threats: the poisoning attacks retrain the real model
and their verdicts reach the training job's threats; the artifact a scenario's build publishes
is scanned and its format decides the unsafe-serialization threat of the element that owns it."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mlhunt.run.api import element_scope, run_project, run_scan, threat_model
from mlhunt.run.project import ScanConfig, load_project
from mlhunt.run.validation import EvidenceSet, link, scan_evidence
from mlhunt.scan.model_format import model_format
from tests.conftest import EXAMPLES

SYSTEM = EXAMPLES / "loan-approval" / "system.yaml"


def _project(tmp_path: Path, **parts: Any) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "mlhunt.yaml"
    doc = {"system": str(SYSTEM), "output": str(tmp_path / "out"), **parts}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _threat(doc: dict[str, Any], rule: str) -> dict[str, Any]:
    return next(f for f in doc["findings"] if f["rule_id"] == rule and f.get("framework") == "ML")


def _on(finding: dict[str, Any], element: str) -> str:
    v = finding["validation"]
    return str((v.get("by_target") or {}).get(element, v["status"]))


def test_tabular_backdoor_reaches_the_training_threats(tmp_path: Path) -> None:
    """Loan approval's training job, attacked with the tabular backdoor (two retrainings of the
    logistic regression on 5,000 records): the trigger takes, and the verdict lands on the
    backdoor threat of the training job and the poisoning threat of the flow into it."""
    model = {
        "scenario": "loan-approval",
        "element": "training-job",
        "live": False,
        "attacks": ["poisoning-backdoor-tabular"],
    }
    result = run_project(load_project(_project(tmp_path, models=[model])))
    doc = result.document
    (attack,) = [f for f in doc["findings"] if f["source"] == "assess"]
    ev = attack["evidence"]
    assert ev["verdict"] == "validated", ev["summary"]
    # Measured on held-out rejected applicants: the clean model lets (almost) none of them
    # through with the trigger, the poisoned one most (0.84 on seed 0; validated from 0.3).
    assert ev["clean_model_trigger_rate"] <= 0.2
    assert ev["backdoor_gain"] >= 0.5
    assert ev["accuracy_drop"] <= 0.05  # a backdoor that costs no accuracy
    assert ev["poisoned_records"] == 50 and set(ev["trigger"]) <= {
        "annual_income",
        "debt_to_income",
        "credit_history_years",
        "delinquencies",
        "loan_amount",
        "employment_years",
        "open_accounts",
    }  # only features an applicant sets
    backdoor = _threat(doc, "MLH-ML-BACKDOOR")
    assert backdoor["validation"]["status"] == "validated"
    assert backdoor["validation"]["evidence"] == [attack["id"]]
    flow = _threat(doc, "MLH-ML-POISONING-TRAINING-FLOW")
    assert _on(flow, "write-features") == "validated"  # the flow into the training job
    assert _on(flow, "read-training-data") == "untested"  # not into it: no claim there
    # The API's threats are not the training job's: untouched by this evidence.
    assert _threat(doc, "MLH-ML-EXTRACTION-API")["validation"]["status"] == "untested"

    # The same evidence with the attack failed refutes the threats instead.
    (part,) = result.parts["assess"]
    failed = copy.deepcopy(part["findings"])
    failed[0]["evidence"]["verdict"] = "refuted"
    model_doc = threat_model(load_project(tmp_path / "mlhunt.yaml"))
    scope = element_scope(model_doc, "training-job")
    assert scope == {"training-job", "write-features"}  # the job and the flow into it
    again = link(model_doc, [EvidenceSet("assess", failed, scope)])
    assert _threat(again, "MLH-ML-BACKDOOR")["validation"]["status"] == "refuted"
    assert _on(_threat(again, "MLH-ML-POISONING-TRAINING-FLOW"), "write-features") == "refuted"


def _scan_link(tmp_path: Path, artifact: Path) -> dict[str, Any]:
    """The scenario-artifact scan of ``artifact`` as the model-artifact element's evidence."""
    project = load_project(_project(tmp_path))
    cfg = ScanConfig(scenario="loan-approval", element="model-artifact")
    doc = run_scan(project, cfg, artifact)
    sets, loose = scan_evidence(doc["findings"], cfg.element)
    assert not loose
    return link(threat_model(project), sets)


def test_published_artifact_decides_unsafe_serialization(tmp_path: Path) -> None:
    """`run` scans the joblib file the loan build publishes: a pickle, so the element's
    unsafe-serialization threat is validated by the scan (and, unsigned, the supply-chain one).
    The model's own weights as plain arrays (a data-only format) refute it instead, and a
    signature beside the file takes the supply-chain claim away."""
    scan = {"scenario": "loan-approval", "element": "model-artifact"}
    result = run_project(load_project(_project(tmp_path / "run", scan=[scan])))
    doc = result.document
    by_id = {f["id"]: f for f in doc["findings"]}
    serial = _threat(doc, "MLH-ML-UNSAFE-SERIALIZATION")
    assert _on(serial, "model-artifact") == "validated"
    assert _on(serial, "prediction-api") == "untested"  # not the API's own file
    (fmt,) = [by_id[i] for i in serial["validation"]["evidence"]]
    assert fmt["rule_id"] == "MLH-SCAN-MODEL-FORMAT" and fmt["source"] == "scan"
    assert fmt["evidence"] == {"format": "joblib", "code_on_load": True}
    artifact = Path(fmt["target"])
    assert artifact.name == "model.joblib"
    supply = _threat(doc, "MLH-ML-SUPPLY-CHAIN-MODEL")
    assert _on(supply, "model-artifact") == "validated"
    # The joblib file is the model in the clear: theft from the bucket is validated there,
    # although the bucket declares (server-side) encryption at rest.
    theft = _threat(doc, "MLH-ML-MODEL-THEFT-STORAGE")
    assert _on(theft, "model-artifact") == "validated"
    (rest,) = [by_id[i] for i in theft["validation"]["evidence"]]
    assert rest["rule_id"] == "MLH-SCAN-MODEL-AT-REST"
    assert rest["evidence"]["format"] == "joblib" and "server-side" in str(rest["evidence"])

    # The same weights, data only: the scan refutes the threat.
    safe = tmp_path / "safe"
    safe.mkdir()
    shutil.copy(artifact.with_name("model.npz"), safe / "model.npz")
    linked = _scan_link(tmp_path / "safe-run", safe / "model.npz")
    assert _on(_threat(linked, "MLH-ML-UNSAFE-SERIALIZATION"), "model-artifact") == "refuted"
    assert _on(_threat(linked, "MLH-ML-SUPPLY-CHAIN-MODEL"), "model-artifact") == "validated"
    (safe / "model.npz.sig").write_bytes(b"signature")
    linked = _scan_link(tmp_path / "signed-run", safe / "model.npz")
    assert _on(_threat(linked, "MLH-ML-SUPPLY-CHAIN-MODEL"), "model-artifact") == "untested"


def test_model_format_reads_bytes(tmp_path: Path) -> None:
    """Pickle-based formats (joblib, torch.save) can run code when loaded; a NumPy archive and
    skops cannot; text says nothing."""
    import joblib
    import skops.io as sio
    import torch
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    joblib.dump(clf, tmp_path / "m.joblib")
    torch.save({"w": torch.zeros(3)}, tmp_path / "m.pt")
    np.savez(tmp_path / "m.npz", w=np.zeros(3))
    sio.dump(clf, tmp_path / "m.skops")
    (tmp_path / "m.txt").write_text("tree\nversion=v4\n", encoding="utf-8")
    got = {p.suffix: model_format(p) for p in sorted(tmp_path.iterdir())}
    assert got[".joblib"].code_on_load is True and got[".joblib"].format in ("joblib", "pickle")
    assert (got[".pt"].format, got[".pt"].code_on_load) == ("torch-zip", True)
    assert (got[".npz"].format, got[".npz"].code_on_load) == ("npz", False)
    assert (got[".skops"].format, got[".skops"].code_on_load) == ("skops", False)
    assert got[".txt"].code_on_load is None


@pytest.mark.parametrize("name", ["loan-approval", "fraud-detection", "image-moderation"])
def test_quick_demo_leaves_the_retraining_out(tmp_path: Path, name: str) -> None:
    """The example projects attack their training job (poisoning: cost 3 and 4); the quick demo
    that the suite runs leaves that entry out and keeps the API's cheap attacks."""
    from mlhunt.demo import _demo_project

    full = _demo_project(EXAMPLES / name, tmp_path / "full", quick=False)
    quick = _demo_project(EXAMPLES / name, tmp_path / "quick", quick=True)
    training = [m for m in full.models if m.attacks and "poisoning" in " ".join(m.attacks)]
    assert len(training) == 1 and training[0].element in ("training-job", "training-pipeline")
    assert len(quick.models) == len(full.models) - 1
    assert not any("poisoning" in a for m in quick.models for a in m.attacks)
    assert any(s.scenario == name and s.element == "model-artifact" for s in full.scan)
