"""The LLM example's deployment as evidence: the agent's MCP client configuration of each tool
(examples/llm-helpdesk/deploy/, owned by the tool elements) validates the tool-credential and
tool-supply-chain threats, and the fixed configuration (deploy-fixed/) refutes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlhunt.run import deploy_links, validation
from mlhunt.run.api import run_project
from mlhunt.run.deploy_links import clean_checks
from mlhunt.run.project import load_project
from tests.conftest import EXAMPLES

TOOLS = ("reset-tool", "asset-tool")
THREATS = ("MLH-LLM-AGENT-TOOL-CREDENTIALS", "MLH-LLM-AGENT-TOOL-SUPPLY-CHAIN")


def _run(tmp_path: Path, deploy: str) -> dict[str, Any]:
    """The helpdesk run on its tools' configuration only (no gateway log: seconds)."""
    project = load_project(EXAMPLES / "llm-helpdesk" / "mlhunt.yaml")
    project.logs = []
    project.scan[0].path = deploy
    project.output = str(tmp_path / deploy)
    return run_project(project).document


def _verdict(doc: dict[str, Any], rule: str) -> dict[str, Any]:
    (finding,) = (f for f in doc["findings"] if f["source"] == "model" and f["rule_id"] == rule)
    return dict(finding["validation"])


def _evidence_rules(doc: dict[str, Any], rule: str) -> set[str]:
    by_id = {f["id"]: f for f in doc["findings"]}
    return {by_id[e]["rule_id"] for e in _verdict(doc, rule)["evidence"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("llm-deploy")
    return {d: _run(tmp, d) for d in ("deploy", "deploy-fixed")}


def test_the_deployed_tool_configuration_validates_the_tool_threats(
    runs: dict[str, dict[str, Any]],
) -> None:
    doc = runs["deploy"]
    for rule in THREATS:
        v = _verdict(doc, rule)
        assert v["by_target"] == dict.fromkeys(TOOLS, "validated"), rule
    # each tool's own file: the inline token of both servers, the asset server's unpinned package
    assert _evidence_rules(doc, "MLH-LLM-AGENT-TOOL-CREDENTIALS") == {"MLH-SCAN-MCP-INLINE-SECRET"}
    assert _evidence_rules(doc, "MLH-LLM-AGENT-TOOL-SUPPLY-CHAIN") == {
        "MLH-SCAN-MCP-INLINE-SECRET",
        "MLH-SCAN-MCP-UNPINNED-PACKAGE",
    }
    by_id = {f["id"]: f for f in doc["findings"]}
    unpinned = [
        by_id[e]["target"]
        for e in _verdict(doc, "MLH-LLM-AGENT-TOOL-SUPPLY-CHAIN")["evidence"]
        if by_id[e]["rule_id"] == "MLH-SCAN-MCP-UNPINNED-PACKAGE"
    ]
    assert unpinned and all(t.endswith("asset-tool.mcp.json") for t in unpinned)
    # a vendor-hosted model: nothing in the deployment tests its supply chain
    assert _verdict(doc, "MLH-LLM-SUPPLY-CHAIN")["status"] == "untested"


def test_the_fixed_configuration_refutes_them(runs: dict[str, dict[str, Any]]) -> None:
    doc = runs["deploy-fixed"]
    assert not [f for f in doc["findings"] if str(f["rule_id"]).startswith("MLH-SCAN-MCP-")]
    for rule in THREATS:
        assert _verdict(doc, rule)["by_target"] == dict.fromkeys(TOOLS, "refuted"), rule
        assert _evidence_rules(doc, rule) == {"MLH-SCAN-DEPLOY-CLEAN"}, rule
    clean = [f for f in doc["findings"] if f["rule_id"] == "MLH-SCAN-DEPLOY-CLEAN"]
    assert {f["evidence"]["element"] for f in clean} == set(TOOLS)
    for f in clean:
        checked = f["evidence"]["checked_rules"]
        assert checked["MLH-LLM-AGENT-TOOL-CREDENTIALS"] == ["MLH-SCAN-MCP-INLINE-SECRET"]
        assert "MLH-SCAN-MCP-UNPINNED-PACKAGE" in checked["MLH-LLM-AGENT-TOOL-SUPPLY-CHAIN"]


def test_without_the_mcp_mappings_the_tool_threats_stay_untested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verdicts come from scan_links.yaml's MCP entries, not from the example's files alone."""
    links = tuple((k, v) for k, v in validation.scan_links() if not k.startswith("MLH-SCAN-MCP-"))
    monkeypatch.setattr(validation, "scan_links", lambda: links)
    monkeypatch.setattr(deploy_links, "scan_links", lambda: links)
    for deploy in ("deploy", "deploy-fixed"):
        doc = _run(tmp_path, deploy)
        for rule in THREATS:
            assert _verdict(doc, rule)["status"] == "untested", (deploy, rule)


def test_a_malformed_configuration_refutes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "mcp.json"
    bad.write_text('{"mcpServers": {', encoding="utf-8")
    model = {
        "elements": [{"id": "tool", "kind": "agent_tool"}],
        "flows": [],
        "findings": [{"rule_id": "MLH-LLM-AGENT-TOOL-CREDENTIALS", "target": "tool"}],
    }
    malformed = {"rule_id": "MLH-SCAN-MCP-MALFORMED", "target": str(bad), "severity": "low"}
    assert clean_checks(model, {"tool": [bad]}, [malformed]) == []
    good = EXAMPLES / "llm-helpdesk" / "deploy-fixed" / "asset-tool.mcp.json"
    ((finding, scope),) = clean_checks(model, {"tool": [good]}, [])
    assert finding["evidence"]["refutes"] == ["MLH-LLM-AGENT-TOOL-CREDENTIALS"]
    assert scope == {"tool"}
