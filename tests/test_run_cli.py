"""`mlhunt run` and `mlhunt init` end to end through the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import EXAMPLES


def mlhunt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlhunt", *args],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=cwd,
    )


def _loan_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "loan"
    folder.mkdir()
    shutil.copy(EXAMPLES / "loan-approval" / "system.yaml", folder / "system.yaml")
    shutil.copytree(EXAMPLES / "loan-approval" / "deploy", folder / "deploy")
    (folder / "mlhunt.yaml").write_text(
        "system: system.yaml\noutput: out\nscan:\n  - path: deploy\n", encoding="utf-8"
    )
    return folder


def test_baseline_marks_a_removed_cause_fixed(tmp_path: Path) -> None:
    folder = _loan_copy(tmp_path)
    first = mlhunt("run", str(folder / "mlhunt.yaml"), "-f", "json", "-o", str(tmp_path / "a.json"))
    assert first.returncode == 0, first.stderr
    assert "ML threats with evidence: 0 of " in first.stderr  # no owners: no manifest evidence
    before = json.loads((tmp_path / "a.json").read_text())
    assert before["command"] == "run"
    for name in ("run.json", "run.sarif", "run.md", "report.html"):
        assert (folder / "out" / name).stat().st_size > 0
    # Remove the cause: the analyst notebook and every flow touching it.
    system: dict[str, Any] = yaml.safe_load((folder / "system.yaml").read_text())
    gone = "analyst-notebook"
    system["elements"] = [e for e in system["elements"] if e["id"] != gone]
    system["flows"] = [f for f in system["flows"] if gone not in (f["source"], f["target"])]
    (folder / "system.yaml").write_text(yaml.safe_dump(system), encoding="utf-8")
    second = mlhunt(
        "run",
        str(folder / "mlhunt.yaml"),
        "--baseline",
        str(tmp_path / "a.json"),
        "-f",
        "json",
        "-o",
        str(tmp_path / "b.json"),
    )
    assert second.returncode == 0, second.stderr
    after = json.loads((tmp_path / "b.json").read_text())
    fixed = set(after["baseline"]["fixed"])
    on_notebook = {f["id"] for f in before["findings"] if f["target"] == gone}
    assert on_notebook and on_notebook <= fixed
    assert all(f["baseline"] in ("new", "unchanged") for f in after["findings"])
    assert "fixed" in second.stderr


def test_init_writes_a_project_that_loads(tmp_path: Path) -> None:
    r = mlhunt("init", "-o", str(tmp_path / "mlhunt.yaml"), "--scenario", "loan-approval")
    assert r.returncode == 0, r.stderr
    again = mlhunt("init", "-o", str(tmp_path / "mlhunt.yaml"))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_bad_project_is_one_line_exit_2(tmp_path: Path) -> None:
    folder = _loan_copy(tmp_path)
    text = "system: system.yaml\nmodels:\n  - scenario: loan-approval\n    element: nope\n"
    (folder / "mlhunt.yaml").write_text(text, encoding="utf-8")
    r = mlhunt("run", str(folder / "mlhunt.yaml"))
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "mlhunt.yaml" in errors[0] and "unknown element 'nope'" in errors[0]
    assert "Traceback" not in r.stderr
