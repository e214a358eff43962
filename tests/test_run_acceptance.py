"""Issue #7's acceptance: `mlhunt run examples/loan-approval/mlhunt.yaml --format json` on the
real scenario (traffic through the live API, attacks, hunt, scan), verdicts linked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES


def _project(tmp_path: Path) -> Path:
    """The example project as shipped, but for three things: no wall-clock budget for the
    attacks (the example's 300 s cut attacks short on a busy machine, so the verdicts depended
    on the load), only the attacks whose verdicts are checked here (the query budget is the
    example's; every other attack is tested on its own, and `mlhunt demo --quick` runs the
    example projects with the cheap attacks), and a fifth of the simulated day's traffic, as
    `mlhunt demo --quick` sends: the whole day, 43,000 requests through the live API, made
    the test 112 CPU seconds, a fifth makes it 40 (2026-12-07). The attacker clients are in it
    at this scale too: the hunt must still observe the extraction, asserted below."""
    folder = tmp_path / "loan-approval"
    shutil.copytree(EXAMPLES / "loan-approval", folder)
    project = yaml.safe_load((folder / "mlhunt.yaml").read_text(encoding="utf-8"))
    model = project["models"][0]  # the API's model (the training job's poisoning: elsewhere)
    assert model["element"] == "prediction-api"
    project["models"] = [model]
    assert model["max_seconds"] and model["max_queries"]  # what is overridden exists
    model["max_seconds"] = None
    model["attacks"] = ["extraction-tabular", "membership"]
    (log,) = project["logs"]
    assert log["simulate"] == "loan-approval" and "scale" not in log
    log["scale"] = 0.2
    (folder / "mlhunt.yaml").write_text(yaml.safe_dump(project), encoding="utf-8")
    return folder / "mlhunt.yaml"


@pytest.mark.slow
def test_loan_approval_run_verdicts(tmp_path: Path) -> None:
    out = tmp_path / "report"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlhunt",
            "run",
            str(_project(tmp_path)),
            "--out-dir",
            str(out),
            "--format",
            "json",
            "-o",
            str(tmp_path / "run.json"),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "run.json").read_text())
    by_id = {f["id"]: f for f in doc["findings"]}
    threats = {
        f["rule_id"]: f
        for f in doc["findings"]
        if f.get("framework") == "ML" and f["target"] == "prediction-api"
    }

    extraction = threats["MLH-ML-EXTRACTION-API"]["validation"]
    assert {"validated", "observed"} <= set(extraction["statuses"])
    sources = {by_id[e]["source"] for e in extraction["evidence"]}
    assert sources == {"assess", "hunt"}

    membership = threats["MLH-ML-MEMBERSHIP-INFERENCE"]["validation"]
    assert membership["statuses"][0] in ("validated", "refuted")
    attack = next(by_id[e] for e in membership["evidence"] if by_id[e]["source"] == "assess")
    assert 0 <= attack["evidence"]["auc"] <= 1 and "0.001" in attack["evidence"]["tpr_at_fpr"]

    # The traffic went through the live API, and everything landed on disk.
    assert (out / "traffic" / "api-log.jsonl").stat().st_size > 0
    for name in ("run.json", "run.sarif", "run.md", "report.html"):
        assert (out / name).stat().st_size > 0
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html  # the attack plots are embedded
