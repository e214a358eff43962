"""The mlhunt command as users run it: real processes, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

LOAN = EXAMPLES / "loan-approval" / "system.yaml"


def mlhunt(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mlhunt", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def test_model_json_to_stdout() -> None:
    r = mlhunt("model", str(LOAN), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["command"] == "model" and doc["findings"]
    assert {"elements", "flows", "trust_boundaries"} <= set(doc)


def test_default_format_when_piped_is_json() -> None:
    r = mlhunt("model", str(LOAN))
    assert json.loads(r.stdout)["tool"] == "mlhunt"


def test_fail_on(tmp_path: Path) -> None:
    r = mlhunt("model", str(LOAN), "-f", "json", "--fail-on", "medium")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert any(f["severity"] in ("medium", "high", "critical") for f in doc["findings"])
    # Threshold above every open finding: exit 0.
    worst = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
    top = max(worst[f["severity"]] for f in doc["findings"] if f["status"] == "open")
    if top < 4:
        above = next(k for k, v in worst.items() if v == top + 1)
        assert mlhunt("model", str(LOAN), "-f", "json", "--fail-on", above).returncode == 0


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["model", "nope.yaml"], "nope.yaml: file not found"),
        (["model", str(LOAN), "--format", "pdf"], "--format: unknown format 'pdf'"),
        (["model", str(LOAN), "--fail-on", "severe"], "--fail-on: unknown severity 'severe'"),
        (["model", str(LOAN), "--dfd", "x.png"], "--dfd: unsupported extension '.png'"),
    ],
)
def test_bad_usage_exits_2_with_one_line(args: list[str], expect: str, tmp_path: Path) -> None:
    r = mlhunt(*args, cwd=tmp_path) if args[1] == "nope.yaml" else mlhunt(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert expect in lines[0]
    assert "Traceback" not in r.stderr


def test_bad_system_file_exits_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "system.yaml"
    bad.write_text(LOAN.read_text().replace("kind: inference_api", "kind: inference-api"))
    r = mlhunt("model", str(bad))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {bad}:")
    assert "kind" in line and "inference-api" in line
    r = mlhunt("model", str(bad), "--debug")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_bad_project_rule_exits_2(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "MLH-X-Y.yaml").write_text("id: MLH-X-Y\ntitle: t\n")
    r = mlhunt("model", str(LOAN), "--rules", str(rules))
    assert r.returncode == 2
    assert "threat catalog" in r.stderr and "MLH-X-Y.yaml" in r.stderr


def test_outputs_by_extension(tmp_path: Path) -> None:
    for name, check in [
        ("tm.json", lambda t: json.loads(t)["command"] == "model"),
        ("tm.sarif", lambda t: json.loads(t)["version"] == "2.1.0"),
        ("tm.md", lambda t: "```mermaid" in t),
        ("tm.html", lambda t: t.lstrip().lower().startswith("<!doctype html")),
    ]:
        out = tmp_path / name
        r = mlhunt("model", str(LOAN), "-o", str(out), "--dfd", str(tmp_path / "dfd.svg"))
        assert r.returncode == 0, r.stderr
        assert check(out.read_text()), name
    assert "<svg" in (tmp_path / "dfd.svg").read_text()


def test_table_output() -> None:
    r = mlhunt("model", str(LOAN), "--format", "table")
    assert r.returncode == 0, r.stderr
    assert "MLH-ML-EXTRACTION-API" in r.stdout or "extraction" in r.stdout.lower()


def test_schema_is_valid_json_schema_and_describes_every_field() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    r = mlhunt("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    for name, definition in schema["$defs"].items():
        for field, spec in definition.get("properties", {}).items():
            if definition.get("type") == "object":
                assert spec.get("description"), f"{name}.{field} has no description"
    # The examples validate against the schema too (what an editor would check).
    import yaml

    for path in EXAMPLES.glob("*/system.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_demo_unknown_scenario(tmp_path: Path) -> None:
    """A scenario name that is no folder under examples/: one clear line and exit 2 (the
    clickstream scenario's whole demo runs in test_demo)."""
    out = tmp_path / "report"
    r = mlhunt("demo", "nope", "--examples", str(EXAMPLES), "--output", str(out))
    assert r.returncode == 2 and "unknown scenario 'nope'" in r.stderr


def test_version() -> None:
    r = mlhunt("--version")
    assert r.returncode == 0 and r.stdout.startswith("mlhunt ")
