"""Report formats (json, sarif, markdown, html, table) rendered from a real threat model."""

from __future__ import annotations

import copy
import io
import json
import re
import shutil

import jsonschema
import pytest
from rich.console import Console

from mlhunt.report import CLI_FORMATS, FORMATS, print_table, render
from mlhunt.report import sarif as sarif_mod
from mlhunt.system import dfd, system_from_dict
from mlhunt.threatmodel import build_threat_model

XSS = "<script>alert(1)</script>"


def _system() -> dict:
    return {
        "name": "Loan scoring | review",
        "description": "Scores loan applications. Contains a pipe | and <angle> brackets.",
        "criticality": "high",
        "regulations": ["gdpr"],
        "data_assets": [
            {"id": "applications", "classification": "personal", "data_subjects": ["applicants"]},
            {"id": "weights", "classification": "confidential"},
        ],
        "trust_boundaries": [
            {"id": "internet", "name": "Internet"},
            {"id": "corp", "name": "Corporate network", "parent": "internet"},
            {"id": "cluster", "name": "ML cluster", "kind": "cluster", "parent": "corp"},
        ],
        "elements": [
            {
                "id": "applicant",
                "name": "Applicant",
                "kind": "external_entity",
                "boundary": "internet",
            },
            {
                "id": "db",
                "name": "Applicant DB",
                "kind": "data_store",
                "boundary": "corp",
                "data": ["applications"],
                "uses_sql": True,
            },
            {
                "id": "train",
                "name": "Training job",
                "kind": "training_job",
                "boundary": "cluster",
                "data": ["applications", "weights"],
                "model": {"algorithm": "logistic_regression", "serialization": "pickle"},
            },
            {
                "id": "api",
                "name": XSS,
                "kind": "inference_api",
                "boundary": "cluster",
                "internet_facing": True,
                "data": ["applications"],
                "model": {
                    "algorithm": "logistic_regression",
                    "output": "scores",
                    "ip_value": "high",
                },
            },
        ],
        "flows": [
            {
                "id": "submit",
                "source": "applicant",
                "target": "api",
                "name": "Submit | score",
                "protocol": "https",
                "encrypted": True,
                "data": ["applications"],
            },
            {
                "id": "read-train",
                "source": "db",
                "target": "train",
                "name": "Read rows",
                "protocol": "jdbc",
                "data": ["applications"],
            },
        ],
        "controls": [
            {"id": "gw-limit", "type": "rate_limiting", "applies_to": ["api"]},
        ],
        "risk_tracking": [
            {
                "threat": "*@read-train",
                "status": "accepted",
                "justification": "Internal network only; TLS planned.",
                "ticket": "SEC-1",
                "checked_by": "reviewer",
            },
            {"threat": "NOPE@nowhere", "status": "mitigated"},
        ],
    }


@pytest.fixture(scope="module")
def doc() -> dict:
    model = build_threat_model(system_from_dict(_system()))
    d = model.to_document()
    assert d["findings"], "the test system must produce findings"
    # A finding from another command whose target is attacker-controlled (a hunt client id).
    d["findings"].append(
        {
            "id": f"MLH-HUNT-EXTRACTION@{XSS}",
            "rule_id": "MLH-HUNT-EXTRACTION",
            "title": f"Extraction pattern from client {XSS}",
            "severity": "high",
            "source": "hunt",
            "target": XSS,
            "description": f"Client {XSS} probed.",
            "atlas": ["AML.T0024.002"],
            "owasp_ml": ["ML05"],
            "stride": [],
            "linddun": [],
            "cwe": [],
            "evidence": {"detector": "prada", "score": 0.97, "note": XSS},
            "mitigations": [f"Block {XSS}"],
            "status": "open",
        }
    )
    d["warnings"].append(f"warning with {XSS}")
    return d


def _ids(doc: dict) -> list[str]:
    return [f["id"] for f in doc["findings"]]


def _resolved(doc: dict) -> list[dict]:
    return [
        f for f in doc["findings"] if f["status"] in ("accepted", "mitigated", "false-positive")
    ]


# ---------------------------------------------------------------------------------- render API


def test_formats_and_unknown_format(doc):
    assert FORMATS == ("json", "sarif", "markdown", "html")
    assert CLI_FORMATS[0] == "table"
    for fmt in FORMATS:
        assert render(doc, fmt)
    with pytest.raises(ValueError, match="unknown report format 'xml'"):
        render(doc, "xml")


def test_render_does_not_mutate_document(doc):
    before = copy.deepcopy(doc)
    for fmt in FORMATS:
        render(doc, fmt, source_path="system.yaml", lines={"api": 3})
    assert doc == before


# ---------------------------------------------------------------------------------------- json


def test_json_round_trips_with_contract_keys(doc):
    out = json.loads(render(doc, "json"))
    assert out == doc
    for key in (
        "tool",
        "version",
        "command",
        "findings",
        "summary",
        "elements",
        "flows",
        "trust_boundaries",
        "system",
        "warnings",
    ):
        assert key in out
    assert out["tool"] == "mlhunt" and out["command"] == "model"
    for f in out["findings"]:
        for key in (
            "id",
            "rule_id",
            "title",
            "severity",
            "source",
            "target",
            "atlas",
            "owasp_ml",
            "stride",
            "linddun",
            "cwe",
            "evidence",
            "mitigations",
            "status",
        ):
            assert key in f


# --------------------------------------------------------------------------------------- sarif

_MSG = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
_PROPS = {"type": "object"}


def _closed(properties: dict, required: list[str] | None = None, **extra) -> dict:
    """An object schema that rejects keys SARIF 2.1.0 does not define for it."""
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "required": required or [],
        **extra,
    }


_ANY = {}
# A compact subset of the SARIF 2.1.0 schema (sarif-schema-2.1.0.json): the objects mlhunt
# writes, with their full property lists (so unknown keys fail), types, enums and required keys.
SARIF_SUBSET = _closed(
    {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": _closed(
                {
                    k: _ANY
                    for k in (
                        "invocations",
                        "conversion",
                        "language",
                        "versionControlProvenance",
                        "originalUriBaseIds",
                        "artifacts",
                        "logicalLocations",
                        "graphs",
                        "automationDetails",
                        "runAggregates",
                        "baselineGuid",
                        "redactionTokens",
                        "defaultEncoding",
                        "defaultSourceLanguage",
                        "newlineSequences",
                        "externalPropertyFileReferences",
                        "threadFlowLocations",
                        "taxonomies",
                        "addresses",
                        "translations",
                        "policies",
                        "webRequests",
                        "webResponses",
                        "specialLocations",
                    )
                }
                | {
                    "properties": _PROPS,
                    "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                    "tool": _closed(
                        {
                            "driver": {"$ref": "#/definitions/toolComponent"},
                            "extensions": {"type": "array"},
                            "properties": _PROPS,
                        },
                        ["driver"],
                    ),
                    "results": {"type": "array", "items": {"$ref": "#/definitions/result"}},
                },
                ["tool"],
            ),
        },
    },
    ["version", "runs"],
    definitions={
        "toolComponent": _closed(
            {
                k: _ANY
                for k in (
                    "guid",
                    "organization",
                    "product",
                    "productSuite",
                    "fullName",
                    "dottedQuadFileVersion",
                    "releaseDateUtc",
                    "downloadUri",
                    "globalMessageStrings",
                    "notifications",
                    "taxa",
                    "locations",
                    "language",
                    "contents",
                    "isComprehensive",
                    "localizedDataSemanticVersion",
                    "minimumRequiredLocalizedDataSemanticVersion",
                    "associatedComponent",
                    "translationMetadata",
                    "supportedTaxonomies",
                    "shortDescription",
                    "fullDescription",
                )
            }
            | {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "semanticVersion": {"type": "string"},
                "informationUri": {"type": "string", "format": "uri"},
                "rules": {"type": "array", "items": {"$ref": "#/definitions/rule"}},
                "properties": _PROPS,
            },
            ["name"],
        ),
        "rule": _closed(
            {
                k: _ANY
                for k in (
                    "deprecatedIds",
                    "guid",
                    "deprecatedGuids",
                    "deprecatedNames",
                    "messageStrings",
                    "helpUri",
                    "relationships",
                )
            }
            | {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "shortDescription": _MSG,
                "fullDescription": _MSG,
                "help": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {"text": {"type": "string"}, "markdown": {"type": "string"}},
                },
                "defaultConfiguration": {
                    "type": "object",
                    "properties": {"level": {"enum": ["none", "note", "warning", "error"]}},
                },
                "properties": {
                    "type": "object",
                    "required": ["tags", "security-severity"],
                    "properties": {
                        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                        "security-severity": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
                    },
                },
            },
            ["id"],
        ),
        "result": _closed(
            {
                k: _ANY
                for k in (
                    "rule",
                    "kind",
                    "analysisTarget",
                    "guid",
                    "correlationGuid",
                    "occurrenceCount",
                    "fingerprints",
                    "stacks",
                    "codeFlows",
                    "graphs",
                    "graphTraversals",
                    "relatedLocations",
                    "baselineState",
                    "rank",
                    "attachments",
                    "hostedViewerUri",
                    "workItemUris",
                    "provenance",
                    "fixes",
                    "taxa",
                    "webRequest",
                    "webResponse",
                )
            }
            | {
                "ruleId": {"type": "string"},
                "ruleIndex": {"type": "integer", "minimum": 0},
                "level": {"enum": ["none", "note", "warning", "error"]},
                "message": _MSG,
                "locations": {"type": "array", "items": {"$ref": "#/definitions/location"}},
                "partialFingerprints": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                },
                "suppressions": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/definitions/suppression"},
                },
                "properties": _PROPS,
            },
            ["message"],
        ),
        "location": _closed(
            {
                "id": _ANY,
                "message": _MSG,
                "annotations": _ANY,
                "relationships": _ANY,
                "properties": _PROPS,
                "physicalLocation": _closed(
                    {
                        "address": _ANY,
                        "contextRegion": _ANY,
                        "properties": _PROPS,
                        "artifactLocation": _closed(
                            {
                                "uri": {"type": "string", "format": "uri-reference"},
                                "uriBaseId": {"type": "string"},
                                "index": _ANY,
                                "description": _MSG,
                                "properties": _PROPS,
                            }
                        ),
                        "region": {
                            "type": "object",
                            "properties": {"startLine": {"type": "integer", "minimum": 1}},
                        },
                    }
                ),
                "logicalLocations": {
                    "type": "array",
                    "items": _closed(
                        {
                            "name": {"type": "string"},
                            "index": _ANY,
                            "fullyQualifiedName": {"type": "string"},
                            "decoratedName": {"type": "string"},
                            "parentIndex": _ANY,
                            "kind": {"type": "string"},
                            "properties": _PROPS,
                        }
                    ),
                },
            }
        ),
        "suppression": _closed(
            {
                "guid": _ANY,
                "location": _ANY,
                "properties": _PROPS,
                "kind": {"enum": ["inSource", "external"]},
                "status": {"enum": ["accepted", "underReview", "rejected"]},
                "justification": {"type": "string"},
            },
            ["kind"],
        ),
    },
)


def test_sarif_validates_against_schema_subset(doc):
    log = json.loads(render(doc, "sarif", source_path="examples/x/system.yaml", lines={"api": 42}))
    jsonschema.Draft7Validator.check_schema(SARIF_SUBSET)
    validator = jsonschema.Draft7Validator(
        SARIF_SUBSET, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"


def test_sarif_rules_and_results(doc):
    log = json.loads(render(doc, "sarif", source_path="examples/x/system.yaml", lines={"api": 42}))
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "mlhunt" and driver["version"] == doc["version"]
    assert driver["informationUri"].startswith("https://")
    rules = driver["rules"]
    rule_ids = [r["id"] for r in rules]
    assert len(rule_ids) == len(set(rule_ids)) == len({f["rule_id"] for f in doc["findings"]})
    results = run["results"]
    assert len(results) == len(doc["findings"])  # nothing dropped, suppressed ones included
    severity = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "1.0"}
    level = {
        "critical": "error",
        "high": "error",
        "medium": "warning",
        "low": "note",
        "info": "note",
    }
    rank = ["info", "low", "medium", "high", "critical"]
    for f, r in zip(doc["findings"], results, strict=True):
        assert r["ruleId"] == f["rule_id"]
        assert rules[r["ruleIndex"]]["id"] == f["rule_id"]
        assert r["level"] == level[f["severity"]]
        assert r["partialFingerprints"] == {"mlhuntFindingId/v1": f["id"]}
        assert r["message"]["text"].startswith(f["title"])
        loc = r["locations"][0]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == "examples/x/system.yaml"
        line = 42 if f["target"] == "api" else 1
        assert loc["physicalLocation"]["region"]["startLine"] == line
        assert loc["logicalLocations"][0]["fullyQualifiedName"] == f["target"]
        assert r["properties"]["status"] == f["status"]
        if f.get("risk") is not None:
            assert r["properties"]["risk"] == f["risk"]
            assert r["properties"]["likelihood"] == f["likelihood"]
            assert r["properties"]["impact"] == f["impact"]
        worst = max(
            (g["severity"] for g in doc["findings"] if g["rule_id"] == f["rule_id"]), key=rank.index
        )
        assert rules[r["ruleIndex"]]["properties"]["security-severity"] == severity[worst]
    extraction = next(r for r in rules if r["id"] == "MLH-ML-EXTRACTION-API")
    tags = extraction["properties"]["tags"]
    assert "AML.T0024.002" in tags and "ML05" in tags and "STRIDE-I" in tags
    assert any(t.startswith("CWE-") for t in tags)
    assert "Mitigations" in extraction["help"]["text"]
    assert XSS not in extraction["shortDescription"]["text"]  # target name generalised


def test_sarif_suppressions_for_tracked_findings(doc):
    resolved = _resolved(doc)
    assert resolved, "risk_tracking must mark at least one finding"
    log = json.loads(render(doc, "sarif"))
    by_id = {r["partialFingerprints"]["mlhuntFindingId/v1"]: r for r in log["runs"][0]["results"]}
    for f in resolved:
        sup = by_id[f["id"]]["suppressions"]
        assert sup[0]["kind"] == "external" and sup[0]["status"] == "accepted"
        assert "Internal network only" in sup[0]["justification"]
        assert "SEC-1" in sup[0]["justification"]
    for f in doc["findings"]:
        if f["status"] == "open":
            assert "suppressions" not in by_id[f["id"]]


def test_sarif_without_source_path_uses_logical_locations(doc):
    log = sarif_mod.to_sarif(doc)
    for r in log["runs"][0]["results"]:
        assert "physicalLocation" not in r["locations"][0]
        assert r["locations"][0]["logicalLocations"]
    notes = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert any("matches no threat" in n["message"]["text"] for n in notes)


def test_sarif_scan_findings_point_at_files():
    scan = {
        "tool": "mlhunt",
        "version": "0",
        "command": "scan",
        "findings": [
            {
                "id": "x",
                "rule_id": "MLH-SCAN-PICKLE",
                "title": "t",
                "severity": "critical",
                "source": "scan",
                "target": "models/m.pkl",
                "evidence": {"line": 7},
                "mitigations": [],
                "status": "open",
            }
        ],
    }
    r = sarif_mod.to_sarif(scan)["runs"][0]["results"][0]
    assert r["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "models/m.pkl"},
        "region": {"startLine": 7},
    }


# ------------------------------------------------------------------------------------ markdown


def test_markdown_document(doc):
    md = render(doc, "markdown")
    assert md.startswith("# Threat model: Loan scoring \\| review")
    for heading in (
        "System",
        "Scope and method",
        "Summary",
        "Top risks",
        "Data-flow diagram",
        "Inventory",
        "Findings",
        "Mitigation checklist",
        "Warnings",
        "Review and sign-off",
    ):
        assert re.search(rf"^##+ (\d+\. )?{heading}$", md, re.M), heading
    for word in ("STRIDE", "LINDDUN", "MITRE ATLAS", "OWASP", "likelihood x impact"):
        assert word in md
    # the DFD as a mermaid block, with subgraphs
    block = re.search(r"```mermaid\n(.*?)\n```", md, re.S)
    assert block and block.group(1).startswith("flowchart LR") and "subgraph" in block.group(1)
    assert block.group(1) == dfd.to_mermaid(doc).rstrip("\n")
    # every finding, its risk explanation and its status
    for f in doc["findings"]:
        assert f"`{f['id']}`" in md or f["id"].replace("|", "\\|") in md
    first = doc["findings"][0]
    assert first["evidence"]["risk_explanation"].replace("|", "\\|") in md
    # tables: inventory with kinds, boundaries and controls; sign-off block
    assert "| Id | Name | Kind | Boundary | Data | Controls | Findings |" in md
    assert "| Severity | Count |" in md
    assert "| Role | Name | Decision | Date | Signature |" in md
    assert "rate_limiting" in md
    assert "- [ ] " in md  # mitigation checkboxes
    assert "accepted" in md and "SEC-1" in md
    assert "matches no threat" in md


def test_markdown_escapes_pipes_and_html(doc):
    md = render(doc, "markdown")
    assert "Submit \\| score" in md
    # raw only inside code spans (rendered literally), escaped everywhere else
    without_code = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", md)
    assert XSS not in without_code
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    # every table row keeps its column count: no unescaped pipe from input splits a cell
    for block in re.findall(r"((?:^\|.*\|$\n?)+)", md, re.M):
        rows = block.strip().splitlines()
        width = len(re.split(r"(?<!\\)\|", rows[0]))
        for row in rows:
            assert len(re.split(r"(?<!\\)\|", row)) == width, row


def test_markdown_checklist_is_deduplicated(doc):
    md = render(doc, "markdown")
    section = md.split("Mitigation checklist", 1)[1].split("\n## ", 1)[0]
    items = [line for line in section.splitlines() if line.startswith("- [")]
    actions = [re.sub(r" — .*$", "", i[6:]) for i in items]
    assert items and len(actions) == len(set(actions))


# ---------------------------------------------------------------------------------------- html


def _no_remote_loads(html: str) -> None:
    assert not re.search(
        r"""<(script|img|iframe|embed|source|audio|video)\b[^>]*\ssrc\s*=""", html, re.I
    )
    assert not re.search(r"<link\b", html, re.I)
    assert not re.search(r"""\shref\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", html, re.I)


def test_html_is_one_self_contained_file(doc):
    html = render(doc, "html")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert html.count("<style>") == 1 and html.count("<script>") == 1
    _no_remote_loads(html)
    for f in doc["findings"]:
        assert f["id"].replace("<", "&lt;").replace(">", "&gt;") in html
    assert 'id="findings-table"' in html and 'data-filter="severity"' in html
    assert 'data-filter="framework"' in html and 'data-filter="target"' in html
    assert 'data-filter="status"' in html and 'data-sort="number"' in html
    assert "Mitigation checklist" in html and "Warnings" in html
    assert doc["findings"][0]["evidence"]["risk_explanation"] in html


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz not installed")
def test_html_embeds_coloured_linked_svg(doc):
    html = render(doc, "html")
    assert re.search(r"<svg[\s>]", html)
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    assert 'href="#el-api"' in html and 'id="el-api"' in html
    assert 'id="el-train"' in html
    # elements with findings are filled with their worst severity's colour
    from mlhunt.report._common import SEVERITY_FILL, worst_by_target

    worst = worst_by_target(doc)
    assert f'fill="{SEVERITY_FILL[worst["api"]]}"' in html


def test_html_escapes_script_from_input(doc):
    html = render(doc, "html")
    # exactly our own inline script, and it is not input
    assert len(re.findall(r"<script", html, re.I)) == 1
    ours = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    assert "alert(1)" not in ours
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html.replace(" ", "")


def test_html_without_graphviz_falls_back_to_mermaid(doc, monkeypatch):
    monkeypatch.setattr(dfd.shutil, "which", lambda name: None)
    html = render(doc, "html")
    assert "<svg" not in html
    assert "Graphviz `dot` not found; install graphviz" in html
    assert "flowchart LR" in html and "subgraph" in html
    assert len(re.findall(r"<script", html, re.I)) == 1
    _no_remote_loads(html)


def test_html_for_documents_without_a_dfd():
    hunt = {
        "tool": "mlhunt",
        "version": "0",
        "command": "hunt",
        "summary": {},
        "findings": [
            {
                "id": "a",
                "rule_id": "R",
                "title": XSS,
                "severity": "medium",
                "source": "hunt",
                "target": "client-1",
                "evidence": {"score": 1},
                "mitigations": [],
                "status": "open",
            }
        ],
    }
    html = render(hunt, "html")
    assert "mlhunt hunt" in html and "client-1" in html and XSS not in html
    assert 'id="dfd"' not in html
    md = render(hunt, "markdown")
    assert "```mermaid" not in md and "`a`" in md


# --------------------------------------------------------------------------------------- table


def test_table_sorted_with_summary_and_warnings(doc):
    buf = io.StringIO()
    console = Console(file=buf, width=250, color_system=None, force_terminal=False)
    print_table(doc, console)
    out = buf.getvalue()
    # The threat model's table: one row per cause, its id, what it affects, OWASP and ATLAS ids.
    for col in ("#", "Severity", "Risk", "Id", "Title", "Affected", "OWASP", "ATLAS", "Status"):
        assert col in out
    n = len(doc["findings"])
    counts = {
        s: sum(f["severity"] == s for f in doc["findings"])
        for s in ("critical", "high", "medium", "low", "info")
    }
    assert f"{n} findings: " + ", ".join(f"{c} {s}" for s, c in counts.items()) in out
    assert "warning: risk_tracking[1]" in out
    assert XSS in out  # rich markup in input printed literally, not interpreted
    rows = [
        line
        for line in out.splitlines()
        if re.match(r"^│ +\d+ │ (CRITICAL|HIGH|MEDIUM|LOW|INFO) ", line)
    ]
    assert len(rows) == n
    risks = [float(r.split("│")[3].strip().replace("-", "0") or 0) for r in rows]
    assert risks == sorted(risks, reverse=True)
    assert "AML.T0024.002" in out
    assert doc["findings"][0]["id"] in out


def test_table_prints_markup_literally():
    doc = {
        "command": "scan",
        "findings": [
            {
                "id": "x",
                "rule_id": "R",
                "title": "[bold red]boom[/]",
                "severity": "low",
                "source": "scan",
                "target": "[link=x]t[/link]",
                "status": "open",
            }
        ],
        "warnings": [],
    }
    buf = io.StringIO()
    print_table(doc, Console(file=buf, width=200, color_system=None))
    assert "[bold red]boom[/]" in buf.getvalue()
    assert "1 finding: 0 critical, 0 high, 0 medium, 1 low, 0 info" in buf.getvalue()


def test_sarif_uris_are_repository_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sarif_mod._uri(str(tmp_path / "examples" / "system.yaml")) == "examples/system.yaml"
    assert sarif_mod._uri("examples\\system.yaml") == "examples/system.yaml"
    assert sarif_mod._uri("/elsewhere/system.yaml") == "file:///elsewhere/system.yaml"
