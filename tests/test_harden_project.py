"""`harden` in projects: the `harden:` section of mlhunt.yaml, `mlhunt harden mlhunt.yaml`, `run`
with harden findings linked to the threats they address (a proven mitigation lowers the risk by
one likelihood point and marks the threat "mitigated"), and the reports showing them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mlhunt.cli import app
from mlhunt.errors import InputError
from mlhunt.report import render
from mlhunt.run.api import run_project, threat_model
from mlhunt.run.project import load_project
from mlhunt.run.validation import EvidenceSet, link
from tests.conftest import EXAMPLES

EXTRACTION_THREAT = "MLH-ML-EXTRACTION-API"
SMALL = {
    "MLH-HARDEN-OUTPUT.modes": ["labels"],
    "MLH-HARDEN-OUTPUT.extraction": {"queries": [50, 250, 1000], "n_eval": 500, "n_rare": 100},
}


def _project(tmp_path: Path, **extra: Any) -> Path:
    data = {
        "system": str(EXAMPLES / "loan-approval" / "system.yaml"),
        "output": str(tmp_path / "out"),
        "seed": 0,
        "harden": [
            {
                "scenario": "loan-approval",
                "element": "prediction-api",
                "mitigations": ["output"],
                "params": SMALL,
            }
        ],
        **extra,
    }
    path = tmp_path / "mlhunt.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _harden_finding(proven: bool, rule: str = EXTRACTION_THREAT) -> dict[str, Any]:
    return {
        "id": f"h-{proven}",
        "rule_id": "MLH-HARDEN-OUTPUT",
        "source": "harden",
        "severity": "info",
        "title": "t",
        "target": "m",
        "evidence": {
            "addresses": [rule],
            "effective": proven,
            "proven": proven,
            "summary": "numbers",
        },
    }


def test_proven_mitigation_lowers_risk_and_failed_one_is_listed(tmp_path: Path) -> None:
    model_doc = threat_model(load_project(_project(tmp_path)))
    plain = link(copy.deepcopy(model_doc), [])
    proven = link(copy.deepcopy(model_doc), [EvidenceSet("harden", [_harden_finding(True)])])
    failed = link(copy.deepcopy(model_doc), [EvidenceSet("harden", [_harden_finding(False)])])

    def threat(doc: dict[str, Any]) -> dict[str, Any]:
        return next(f for f in doc["findings"] if f["rule_id"] == EXTRACTION_THREAT)

    p, m, f = threat(plain), threat(proven), threat(failed)
    assert m["validation"]["statuses"] == ["mitigated"]
    assert m["likelihood"] == max(1.0, p["likelihood"] - 1)  # one level lower
    assert m["risk"] < p["risk"]
    assert m["validation"]["mitigations"][0]["proven"] is True
    assert "h-True" in m["validation"]["evidence"]
    # A failed check changes nothing but is shown beside the threat.
    assert f["validation"]["statuses"] == ["untested"] and f["risk"] == p["risk"]
    assert f["validation"]["mitigations"][0]["proven"] is False
    assert proven["summary"]["by_validation"]["mitigated"] >= 1


def test_project_harden_section_cli_and_run(tmp_path: Path) -> None:
    path = _project(tmp_path)
    project = load_project(path)
    assert project.harden[0].mitigations == ["output"]
    r = CliRunner().invoke(app, ["harden", str(path), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    (f,) = doc["findings"]
    assert f["source"] == "harden" and f["evidence"]["proven"] is True
    assert doc["parts"][0]["element"] == "prediction-api"

    result = run_project(project)  # harden weights/attacks re-run; the threat model links them
    rdoc = result.document
    threat = next(
        t
        for t in rdoc["findings"]
        if t["rule_id"] == EXTRACTION_THREAT and t["target"] == "prediction-api"
    )
    assert "mitigated" in threat["validation"]["statuses"]
    hf = next(x for x in rdoc["findings"] if x["source"] == "harden")
    assert hf["id"] in threat["validation"]["evidence"]
    assert rdoc["parts"]["harden"][0]["element"] == "prediction-api"
    plot = hf["evidence"]["plots"][0]
    assert not Path(plot).is_absolute() and (result.out_dir / plot).is_file()
    md = render(rdoc, "markdown")
    assert "mitigated" in md and "**harden**" in md and "Output hardening" in md
    html = render(rdoc, "html")
    assert "st mitigated" in html or 'class="st mitigated"' in html or "mitigated" in html
    assert "Mitigations proven or not (harden)" in html


def test_bad_harden_section_is_one_line(tmp_path: Path) -> None:
    path = _project(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["harden"][0]["mitigations"] = ["no-such-thing"]
    path.write_text(yaml.safe_dump(data))
    from mlhunt.run.harden_part import harden_project

    with pytest.raises(InputError, match=r"harden\[0\].*unknown mitigation"):
        harden_project(load_project(path))
    data["harden"][0]["typo"] = 1
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="typo"):
        load_project(path)
    r = CliRunner().invoke(app, ["harden", str(path), "--scenario", "loan-approval"])
    assert r.exit_code == 2
