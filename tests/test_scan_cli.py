"""`mlhunt scan` over a mixed folder, as a user or CI runs it: every scanner, one document."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

from mlhunt.scan import scan_path
from tests.conftest import EXAMPLES

PAYLOAD = b"cos\nsystem\n(S'touch CANARY'\ntR."  # protocol 0: os.system('touch CANARY')


def _tree(tmp: Path) -> Path:
    root = tmp / "project"
    (root / "models").mkdir(parents=True)
    (root / "models" / "weights.bin").write_bytes(
        PAYLOAD.replace(b"CANARY", str(tmp / "c").encode())
    )
    (root / "models" / "ok.pkl").write_bytes(pickle.dumps({"coef": [1.0, 2.0]}))
    (root / ".env").write_text("DATABASE_URL=postgresql://app:Zq8vN3kLp2Wx@db.internal/loans\n")
    (root / "k8s").mkdir()
    (root / "k8s" / "api.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n"
        "    spec:\n      containers:\n        - name: api\n          image: api:latest\n"
        "          securityContext: {privileged: true}\n"
    )
    outside = tmp / "outside.pkl"
    outside.write_bytes(PAYLOAD)
    os.symlink(outside, root / "models" / "linked.pkl")
    return root


def _mlhunt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlhunt", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_scan_path_mixed_tree(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    result = scan_path(root)
    rules = {f.rule_id for f in result.findings}
    assert "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL" in rules
    assert "MLH-SCAN-SYMLINK-ESCAPE" in rules
    assert any(r.startswith("MLH-SECRET-") for r in rules)
    assert "MLH-K8S-PRIVILEGED" in rules
    targets = {f.target for f in result.findings}
    assert str(root / "models" / "ok.pkl") not in targets
    # The link was reported, never read: no pickle finding on it.
    linked = [f for f in result.findings if f.target.endswith("linked.pkl")]
    assert [f.rule_id for f in linked] == ["MLH-SCAN-SYMLINK-ESCAPE"]
    assert not (tmp_path / "c").exists(), "nothing scanned was ever executed"
    assert result.files == 4  # the escaping link is not read


def test_scan_cli_json_sarif_and_fail_on(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    r = _mlhunt("scan", str(root), "-f", "json", "--fail-on", "high")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["command"] == "scan" and doc["files_scanned"] == 4
    assert all(f["source"] == "scan" for f in doc["findings"])
    sarif_path = tmp_path / "scan.sarif"
    r = _mlhunt("scan", str(root), "-o", str(sarif_path))
    assert r.returncode == 0, r.stderr
    sarif = json.loads(sarif_path.read_text())
    results = sarif["runs"][0]["results"]
    k8s = [x for x in results if x["ruleId"] == "MLH-K8S-PRIVILEGED"]
    region = k8s[0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] > 1  # the manifest line, not a placeholder


def test_scan_cli_bad_input(tmp_path: Path) -> None:
    r = _mlhunt("scan", str(tmp_path / "nope"))
    assert r.returncode == 2 and "nope: no such file or folder" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _mlhunt("scan", str(tmp_path), "--policy", str(tmp_path / "missing"))
    assert r.returncode == 2 and "--policy: not a folder" in r.stderr


def test_example_deployments(tmp_path: Path) -> None:
    """Every scenario's deploy/ is flagged; its deploy-fixed/ is clean at high and above."""
    for scenario in (
        "loan-approval",
        "image-moderation",
        "fraud-detection",
        "clickstream-recommender",
        "llm-helpdesk",  # the agent's MCP configuration of its tools
    ):
        bad = scan_path(EXAMPLES / scenario / "deploy")
        assert any(f.severity.rank >= 3 for f in bad.findings), scenario
        fixed = scan_path(EXAMPLES / scenario / "deploy-fixed")
        assert not [f.id for f in fixed.findings if f.severity.rank >= 3], scenario
