"""`mlhunt harden` as a user runs it: the JSON document, and bad input as one line + exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _mlhunt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlhunt", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )


def test_json_document_and_fail_on(tmp_path: Path) -> None:
    out = tmp_path / "harden.json"
    r = _mlhunt(
        "harden",
        "--scenario",
        "loan-approval",
        "--mitigation",
        "output",
        "--param",
        "output.modes=[labels]",
        "--param",
        "output.extraction.queries=[50, 250]",
        "--state",
        str(tmp_path / "state"),
        "-o",
        str(out),
        "--fail-on",
        "info",
    )
    assert r.returncode == 1, r.stderr  # an info finding reaches --fail-on info
    doc = json.loads(out.read_text())
    assert doc["command"] == "harden" and doc["scenario"] == "loan-approval"
    (f,) = doc["findings"]
    assert f["rule_id"] == "MLH-HARDEN-OUTPUT" and f["source"] == "harden"
    assert f["evidence"]["parameters"]["extraction"]["queries"] == [50, 250]
    assert f["evidence"]["effective"] is True


def test_bad_input_is_one_line_exit_2() -> None:
    for args, needle in (
        (["--scenario", "nope"], "unknown scenario"),
        (["--scenario", "loan-approval", "--mitigation", "nope"], "unknown mitigation"),
        (["--scenario", "loan-approval", "--param", "dp-logreg.epsilon=1"], "no parameter"),
        (["--scenario", "image-moderation", "--mitigation", "dp-logreg"], "does not apply"),
    ):
        r = _mlhunt("harden", *args, "--format", "json")
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
