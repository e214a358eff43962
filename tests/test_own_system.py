"""Issue #21: mlhunt tried on a system of one's own. Each of the five wrong answers reproduced
(hunt layouts, item 3, live with the hunt tests)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from mlhunt.assess.api import TargetOptions, assess, open_target
from mlhunt.assess.catalog import default_attacks, load_attacks
from mlhunt.assess.runner import PlanItem, query_shares
from mlhunt.run.api import check_elements, threat_model
from mlhunt.run.project import load_project
from mlhunt.run.validation import EvidenceSet, link, scan_evidence
from mlhunt.system.loader import parse_system, read_text
from mlhunt.threatmodel import build_threat_model, default_catalog
from tests.assess_fakes import write_catalog
from tests.conftest import EXAMPLES, ROOT


def mlhunt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    return subprocess.run(
        [sys.executable, "-m", "mlhunt", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=env,
    )


# --- 1. init writes a project that runs -----------------------------------------------------------


def test_init_scenario_in_an_empty_folder_writes_what_run_needs(tmp_path: Path) -> None:
    r = mlhunt("init", "--scenario", "loan-approval", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    project = load_project(tmp_path / "mlhunt.yaml")  # failed: system description not found
    model_doc = threat_model(project)
    check_elements(project, model_doc)  # every element the project names exists
    assert project.models[0].element == "prediction-api"
    for cfg in project.scan:
        assert project.resolve(cfg.path).is_dir()
    # Running init again keeps the user's edits unless --force.
    again = mlhunt("init", "-o", "other.yaml", "--scenario", "loan-approval", cwd=tmp_path)
    assert again.returncode == 0 and "kept" in again.stderr


@pytest.mark.parametrize(
    "scenario", ["loan-approval", "image-moderation", "fraud-detection", "clickstream-recommender"]
)
def test_scenario_templates_match_the_examples(scenario: str) -> None:
    """The packaged starter files are the examples' (so they cannot drift apart)."""
    from mlhunt.run.init import template_files

    files = template_files(scenario)
    example = EXAMPLES / scenario
    expected = {"system.yaml"} | {f"deploy/{p.name}" for p in (example / "deploy").glob("*.yaml")}
    assert set(files) == expected
    for rel, text in files.items():
        assert text == (example / rel).read_text(encoding="utf-8"), rel


def test_init_without_scenario_writes_a_system_that_threat_models(tmp_path: Path) -> None:
    r = mlhunt("init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    project = load_project(tmp_path / "mlhunt.yaml")
    check_elements(project, threat_model(project))


# --- 2. the query budget is shared fairly ---------------------------------------------------------


@pytest.fixture
def churn_like(tmp_path: Path) -> TargetOptions:
    """A 400-row evaluation set with members, non-members and a pool, like the issue's."""
    rng = np.random.default_rng(3)
    x = np.column_stack(
        [rng.integers(0, 72, 2400), rng.normal(65, 20, 2400), rng.integers(0, 3, 2400)]
    )
    y = ((x[:, 1] - 65) / 20 - x[:, 0] / 36 + x[:, 2] * 0.3 + rng.normal(0, 0.7, 2400) > 0).astype(
        int
    )
    model = LogisticRegression(max_iter=500).fit(x[:800], y[:800])
    sio.dump(model, tmp_path / "m.skops")
    np.savez(
        tmp_path / "eval.npz",
        x=x[800:1200],
        y=y[800:1200],
        x_members=x[:400],
        y_members=y[:400],
        x_nonmembers=x[1200:1600],
        y_nonmembers=y[1200:1600],
        x_pool=x[1600:],
    )
    spec = (
        "kind: tabular\nfeatures:\n  - {name: tenure, integer: true}\n  - charges\n"
        "  - {name: contract, integer: true}\nsensitive: contract\n"
    )
    (tmp_path / "spec.yaml").write_text(spec, encoding="utf-8")
    return TargetOptions(
        target=str(tmp_path / "m.skops"), data=tmp_path / "eval.npz", spec=tmp_path / "spec.yaml"
    )


def test_every_planned_attack_gets_a_fair_part_of_the_budget(
    tmp_path: Path, churn_like: TargetOptions
) -> None:
    """--max-queries 2000 on 400 rows: corruptions spent 1,600 and four attacks never started."""
    with open_target(churn_like) as (target, data):
        report = assess(target, data, max_queries=2000, state_dir=tmp_path / "s")
    ran = [r for r in report.results if r.verdict != "skipped"]
    assert len(ran) >= 5
    assert sum(r.queries for r in report.results) <= 2000
    for r in ran:
        assert "before it started" not in r.summary, r.attack_id
        assert r.queries > 0, (r.attack_id, r.summary)  # each one measured something
    corruptions = next(r for r in ran if r.attack_id == "MLH-ASSESS-CORRUPTIONS")
    assert corruptions.queries <= 1600 // 3  # its part, not the whole budget
    # The budget's rows went to the attacks, not back unused.
    assert sum(r.queries for r in ran) >= 1600 * 0.9


def test_query_shares_give_each_the_same_fraction_of_its_need() -> None:
    plan = [PlanItem(a, {}) for a in default_attacks() if a.spec.queries is not None]
    shares = query_shares(1600, plan)
    assert sum(shares.values()) == pytest.approx(1600)
    fractions = {shares[it.id] / float(it.attack.spec.queries or 1) for it in plan}
    assert max(fractions) == pytest.approx(min(fractions))
    # When every need fits, each gets at least its need.
    total = sum(it.attack.spec.queries or 0 for it in plan)
    roomy = query_shares(total + 1000, plan)
    assert all(roomy[it.id] >= (it.attack.spec.queries or 0) for it in plan)


# --- 4. an attack that cannot measure is inconclusive; run moves no risk on it -------------


def test_continuous_sensitive_feature_is_inconclusive_not_refuted(
    tmp_path: Path, churn_like: TargetOptions
) -> None:
    spec = Path(str(churn_like.spec))
    spec.write_text(spec.read_text().replace("sensitive: contract", "sensitive: charges"))
    with open_target(churn_like) as (target, data):
        report = assess(
            target, data, select=["attribute-inference"], state_dir=tmp_path / "s", max_queries=4000
        )
    (result,) = report.results
    assert result.verdict == "inconclusive", result.summary
    assert "continuous" in result.summary


def test_a_result_without_its_impact_metric_is_inconclusive(
    tmp_path: Path, churn_like: TargetOptions
) -> None:
    """The runner's general rule: no finite impact measured, no refutation."""
    cat = load_attacks(write_catalog(tmp_path / "cat", {"HOLLOW": {"entry": "hollow"}}))
    with open_target(churn_like) as (target, data):
        report = assess(target, data, catalog=cat, state_dir=tmp_path / "s")
    (result,) = report.results
    assert result.verdict == "inconclusive" and "degenerate" in result.summary


@pytest.fixture(scope="module")
def loan_model() -> dict[str, Any]:
    path = EXAMPLES / "loan-approval" / "system.yaml"
    return build_threat_model(
        parse_system(read_text(path), str(path)), default_catalog()
    ).to_document()


def _ml(doc: dict[str, Any], rule: str, target: str) -> dict[str, Any]:
    """The finding of ``rule`` that covers ``target`` (one finding per cause lists them all)."""
    return next(
        f
        for f in doc["findings"]
        if f["rule_id"] == rule and target in (f.get("affected") or [f["target"]])
    )


def _status(doc: dict[str, Any], rule: str, target: str) -> str:
    """The verdict for one element of a grouped finding."""
    v = _ml(doc, rule, target)["validation"]
    return v.get("by_target", {}).get(target, v["status"])


def test_inconclusive_evidence_moves_no_risk(loan_model: dict[str, Any]) -> None:
    rule = "MLH-ML-MODEL-INVERSION"
    before = _ml(loan_model, rule, "prediction-api")
    ev = {"id": "a1", "rule_id": "MLH-ASSESS-X", "severity": "info"}
    ev["evidence"] = {"verdict": "inconclusive", "validates": [rule]}
    doc = link(copy.deepcopy(loan_model), [EvidenceSet("assess", [ev], frozenset())])
    after = _ml(doc, rule, "prediction-api")
    assert after["validation"]["status"] == "untested"
    assert after["risk"] == before["risk"]
    assert after["validation"]["inconclusive"] == ["a1"]
    assert "could not decide" in after["validation"]["reason"]


# --- 5. scan evidence belongs to the element whose artifact it is -------------------------------


def _pickle_finding(target: str) -> dict[str, Any]:
    return {
        "id": "s1",
        "rule_id": "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL",
        "severity": "critical",
        "target": target,
        "evidence": {},
    }


def test_a_scan_finding_on_an_unrelated_file_validates_nothing(loan_model: dict[str, Any]) -> None:
    sets, loose = scan_evidence([_pickle_finding("/work/scratch/churn_mlp_full.pt")], None)
    assert sets == [] and len(loose) == 1
    doc = link(copy.deepcopy(loan_model), sets)
    for element in ("prediction-api", "training-job", "model-artifact"):
        assert _status(doc, "MLH-ML-UNSAFE-SERIALIZATION", element) == "untested", element


def test_scan_evidence_links_to_its_element_and_says_it_was_a_scan(
    loan_model: dict[str, Any],
) -> None:
    declared = {"model-artifact": ["/srv/models"]}
    sets, loose = scan_evidence(
        [_pickle_finding("/srv/models/credit.joblib"), _pickle_finding("/tmp/other.pkl")],
        None,
        declared,
    )
    assert len(loose) == 1 and [s.elements for s in sets] == [frozenset({"model-artifact"})]
    doc = link(copy.deepcopy(loan_model), sets)
    mine = _ml(doc, "MLH-ML-UNSAFE-SERIALIZATION", "model-artifact")["validation"]
    assert _status(doc, "MLH-ML-UNSAFE-SERIALIZATION", "model-artifact") == "validated"
    assert "a scan found" in mine["reason"] and "attack" not in mine["reason"]
    from mlhunt.report.run_view import headline  # what the HTML and Markdown quote

    assert headline({**_pickle_finding("/srv/models/credit.joblib"), "source": "scan"}).startswith(
        "a scan found: "
    )
    assert _status(doc, "MLH-ML-UNSAFE-SERIALIZATION", "prediction-api") == "untested"
    # The project's scan[].element ties everything under that path to the element.
    sets, loose = scan_evidence([_pickle_finding("/x/y.pkl")], "training-job")
    assert not loose and sets[0].elements == frozenset({"training-job"})


# --- rough edges ---------------------------------------------------------------------------


def test_every_yaml_error_of_a_system_is_reported_in_one_pass(tmp_path: Path) -> None:
    bad = tmp_path / "system.yaml"
    bad.write_text(
        "name: x\nelements:\n  - id: a\n    name: A\n    kind: proces\n"
        "  - id: b\n    name: B\n    kind: process\n    colour: red\n",
        encoding="utf-8",
    )
    r = mlhunt("model", str(bad), cwd=tmp_path)
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2, r.stderr
    assert f"{bad}:5: elements[0].kind:" in errors[0] and "did you mean 'process'" in errors[0]
    assert f"{bad}:9: elements[1].colour: unknown field" in errors[1]
    # Once the fields are valid, every broken reference at once.
    bad.write_text(
        "name: x\nelements:\n  - id: a\n    name: A\n    kind: process\n    boundary: nowhere\n"
        "flows:\n  - id: f\n    source: a\n    target: c\n    name: f\n",
        encoding="utf-8",
    )
    r = mlhunt("model", str(bad), cwd=tmp_path)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert r.returncode == 2 and len(errors) == 2, r.stderr
    assert "elements[0].boundary: unknown trust boundary 'nowhere'" in errors[0]
    assert "flows[0].target: unknown element 'c'" in errors[1]


def test_every_error_of_a_project_file_is_reported_in_one_pass(tmp_path: Path) -> None:
    (tmp_path / "system.yaml").write_text("name: x\n", encoding="utf-8")
    project = tmp_path / "mlhunt.yaml"
    project.write_text(
        "system: system.yaml\nseed: -1\nmodels:\n  - scenario: loan-approval\n    max_querys: 1\n",
        encoding="utf-8",
    )
    r = mlhunt("run", str(project), cwd=tmp_path)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert r.returncode == 2 and len(errors) == 2, r.stderr
    assert any(":2: seed:" in e for e in errors)
    assert any(":5: models[0].max_querys: unknown field" in e for e in errors)


def test_model_without_argument_is_one_line_exit_2(tmp_path: Path) -> None:
    r = mlhunt("model", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: SYSTEM: missing") and len(r.stderr.splitlines()) == 1


def test_fail_on_names_the_findings_that_crossed_it(tmp_path: Path) -> None:
    system = EXAMPLES / "loan-approval" / "system.yaml"
    r = mlhunt("model", str(system), "--fail-on", "high", "-o", "m.json", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0].startswith("--fail-on high: ") and "at or above it" in lines[0]
    assert "high: MLH-" in lines[1]


def test_table_shows_ids_and_wide_shows_verdicts(tmp_path: Path) -> None:
    from rich.console import Console

    from mlhunt.report import print_table

    doc = {
        "command": "assess",
        "findings": [
            {
                "id": "MLH-ASSESS-MEMBERSHIP@abc123",
                "rule_id": "MLH-ASSESS-MEMBERSHIP",
                "title": "Membership inference: refuted",
                "severity": "info",
                "source": "assess",
                "target": "churn.skops",
                "evidence": {"verdict": "refuted", "severity_metric": "auc", "auc": 0.5123},
            }
        ],
    }
    out = Console(width=250, record=True, color_system=None)
    print_table(doc, out)
    plain = out.export_text()
    assert "MLH-ASSESS-MEMBERSHIP@abc123" in plain and "auc 0.5123" not in plain
    out = Console(width=250, record=True, color_system=None)
    print_table(doc, out, wide=True)
    assert "refuted; auc 0.5123" in out.export_text()


def test_list_prints_attacks_and_detectors(tmp_path: Path) -> None:
    r = mlhunt("assess", "--list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("MLH-ASSESS-MEMBERSHIP "))
    assert "ML04" in line and "MLH-ML-MEMBERSHIP-INFERENCE" in line and len(line) < 250
    r = mlhunt("hunt", "--list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert any(x.startswith("MLH-HUNT-EXTRACTION ") for x in r.stdout.splitlines())


def test_spark_master_default_agrees_in_help_and_docs() -> None:
    import typer

    from mlhunt.cli import app
    from mlhunt.hunt.engines.spark import DEFAULT_MASTER

    hunt = typer.main.get_command(app).commands["hunt"]  # type: ignore[attr-defined]
    (option,) = [p for p in hunt.params if p.name == "spark_master"]
    assert f"(default: {DEFAULT_MASTER})" in option.help
    docs = (ROOT / "docs" / "hunt.md").read_text(encoding="utf-8")
    assert f"(default `{DEFAULT_MASTER}`)" in docs


def test_a_small_membership_sample_near_chance_is_inconclusive() -> None:
    """107 members vs 107 non-members at AUC 0.545 cannot rule out AUC 0.6: not a refutation."""
    from mlhunt.assess.attacks.membership import auc_se

    assert auc_se(0.5, 100, 100) == pytest.approx(0.0409, abs=5e-4)
    assert 0.545 + 1.96 * auc_se(0.545, 107, 107) > 0.6  # inconclusive
    assert 0.527 + 1.96 * auc_se(0.527, 1000, 1000) < 0.6  # refuted, as before
