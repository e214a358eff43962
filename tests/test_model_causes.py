"""A threat model a reviewer can sign: one finding per cause, unknown facts asked, attack paths
followed through any number of hops, risk that ranks, and the seed weaknesses still reported."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import pytest

from mlhunt.system import load_system, system_from_dict
from mlhunt.threatmodel import ThreatModel, build_threat_model
from mlhunt.threatmodel.grouping import unfold
from tests.conftest import EXAMPLES, SCENARIOS


@functools.cache
def example(name: str, assume: str = "unknown") -> ThreatModel:
    return build_threat_model(load_system(EXAMPLES / name / "system.yaml"), assume=assume)


def hits(tm: ThreatModel) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for f in tm.findings:
        out.update(unfold(f.to_dict()))
    return out


# --- 1. one finding per cause -------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_one_finding_per_cause(name: str) -> None:
    tm = example(name)
    assert 10 <= len(tm.findings) <= 30, len(tm.findings)
    descriptions = [f.description for f in tm.findings]
    assert len(descriptions) == len(set(descriptions)), "no two findings share a description"
    for f in tm.findings:
        assert f.affected and f.target == f.affected[0]
        per = f.evidence.get("per_target")
        if per:
            assert set(per) == set(f.affected)
            open_risks = [per[t]["risk"] for t in f.affected if per[t]["status"] == "open"]
            assert open_risks == sorted(open_risks, reverse=True), f.id
            assert f.risk == max(open_risks or [f.risk]), f.id
    # The grouped view loses no hit: every (rule, element) of the pessimistic view is either
    # reported or behind a question.
    absent = hits(example(name, "absent"))
    reported = hits(tm)
    asked = {a for q in tm.questions for a in q.would_add}
    for rule, target in absent:
        assert (rule, target) in reported or f"{rule}@{target}" in asked, (rule, target)


@pytest.mark.parametrize("name", SCENARIOS)
def test_high_and_critical_are_at_most_a_quarter(name: str) -> None:
    tm = example(name)
    top = sum(1 for f in tm.findings if f.severity.value in ("high", "critical"))
    assert 1 <= top <= len(tm.findings) / 4, (top, len(tm.findings))


def test_linddun_threats_of_one_cause_are_one_finding_that_keeps_each() -> None:
    """Linking, identifying and disclosure on the loan example's personal-data flows and stores
    rest on one cause (no de-identification declared): one finding, each threat kept with its
    own title, targets and mitigations."""
    tm = example("loan-approval")
    rules = (
        "MLH-LINDDUN-LINKING-FLOW",
        "MLH-LINDDUN-IDENTIFYING-FLOW",
        "MLH-LINDDUN-DISCLOSURE-FLOW",
    )
    (f,) = [f for f in tm.findings if {r for r, _t in unfold(f.to_dict())} & set(rules)]
    threats = f.evidence["threats"]
    assert set(rules) <= set(threats)
    for rule in rules:
        t = threats[rule]
        assert t["targets"] and t["title"] and "{name}" not in t["title"]
        assert t["mitigations"] and set(t["mitigations"]) <= set(f.mitigations), rule
        for target in t["targets"]:
            assert rule in f.evidence["per_target"][target]["rules"], (rule, target)


# --- 3. known, absent, unknown --------------------------------------------------------------------


def test_unknown_fact_is_a_question_not_a_finding(minimal_system: dict) -> None:
    system = copy.deepcopy(minimal_system)
    del system["elements"][3]["authentication"]  # the api's authentication is now unknown
    tm = build_threat_model(system_from_dict(system))
    assert ("MLH-STRIDE-S-PROCESS-NO-AUTH", "api") not in hits(tm)
    (q,) = [q for q in tm.questions if q.id == "Q-authentication@api"]
    assert "MLH-STRIDE-S-PROCESS-NO-AUTH@api" in q.would_add
    assert "authenticate" in q.text
    doc = tm.to_document()
    assert any(d["id"] == "Q-authentication@api" for d in doc["questions"])
    # --assume absent: today's pessimistic view, the finding says what it assumed.
    pessimistic = build_threat_model(system_from_dict(system), assume="absent")
    f = next(f for f in pessimistic.findings if "api" in f.affected and "S" in f.stride)
    assert "api.authentication" in str(f.evidence)
    # Stated "none": a finding citing the stated fact, no question.
    system["elements"][3]["authentication"] = "none"
    stated = build_threat_model(system_from_dict(system))
    assert not any(q.id == "Q-authentication@api" for q in stated.questions)
    f = next(
        f for f in stated.findings if ("MLH-STRIDE-S-PROCESS-NO-AUTH", "api") in unfold(f.to_dict())
    )
    facts = str(f.evidence)
    assert "api.authentication = none" in facts


def test_every_finding_cites_what_it_rests_on() -> None:
    tm = example("fraud-detection")
    with_facts = [f for f in tm.findings if f.evidence.get("rests_on")]
    assert len(with_facts) >= len(tm.findings) * 0.6
    cleartext = next(
        f
        for f in tm.findings
        if ("MLH-STRIDE-I-FLOW-CLEARTEXT", "write-online-features") in unfold(f.to_dict())
    )
    per = cleartext.evidence.get("per_target", {}).get("write-online-features", cleartext.evidence)
    assert "write-online-features.encrypted = False" in per["rests_on"]


# --- 2. taint and attack paths -------------------------------------------------------------------


def _rag(orchestrated: bool) -> dict[str, Any]:
    llm_in = "orchestrator" if orchestrated else "vectors"
    elements: list[dict[str, Any]] = [
        {"id": "customer", "kind": "actor"},
        {"id": "web", "kind": "data_source", "internet_facing": True, "data": ["pages"]},
        {"id": "crawler", "kind": "ingestion", "data": ["pages"]},
        {"id": "vectors", "kind": "vector_store", "data": ["pages"]},
        {
            "id": "llm",
            "kind": "llm",
            "operated_by": "vendor",
            "model": {"algorithm": "transformer", "input_type": "text", "output": "text"},
        },
        {"id": "refund-tool", "kind": "agent_tool", "limits": ["refund <= 100 EUR"]},
    ]
    flows = [
        {"id": "crawl", "source": "web", "target": "crawler", "data": ["pages"]},
        {"id": "index", "source": "crawler", "target": "vectors", "data": ["pages"]},
        {"id": "ask", "source": "customer", "target": "orchestrator" if orchestrated else "llm"},
        {"id": "to-llm", "source": llm_in, "target": "llm", "data": ["pages"]},
    ]
    if orchestrated:
        elements.append({"id": "orchestrator", "kind": "orchestrator"})
        flows += [
            {"id": "retrieve", "source": "vectors", "target": "orchestrator", "data": ["pages"]},
            {"id": "call-tool", "source": "orchestrator", "target": "refund-tool"},
        ]
    return {
        "name": "rag",
        "data_assets": [{"id": "pages", "classification": "public", "trust": "untrusted"}],
        "elements": elements,
        "flows": flows,
    }


def test_indirect_prompt_injection_through_an_orchestrator() -> None:
    tm = build_threat_model(system_from_dict(_rag(orchestrated=True)))
    f = next(f for f in tm.findings if f.rule_id == "MLH-LLM-PROMPT-INJECTION-INDIRECT")
    assert "to-llm" in f.affected, f.affected  # orchestrator -> llm, two hops after the store
    per = f.evidence.get("per_target", {}).get("to-llm", f.evidence)
    path = per["attack_path"]
    assert [h["element"] for h in path][:1] == ["web"]
    assert "vectors" in [h["element"] for h in path]
    assert all("controls" in h for h in path)
    # The ranked attack paths list the route to the LLM, through the store.
    assert any(p["sink"] == "llm" and p["via_store"] for p in tm.attack_paths)


def test_sql_injection_when_training_builds_sql_from_what_it_reads() -> None:
    system = {
        "name": "claims",
        "data_assets": [
            {"id": "forms", "classification": "personal", "trust": "untrusted"},
        ],
        "elements": [
            {"id": "portal", "kind": "inference_api", "internet_facing": True, "data": ["forms"]},
            {"id": "db", "kind": "data_store", "data": ["forms"]},
            {"id": "trainer", "kind": "training_job", "uses_sql": True, "model": {}},
        ],
        "flows": [
            {"id": "save", "source": "portal", "target": "db", "data": ["forms"]},
            {"id": "read", "source": "db", "target": "trainer", "data": ["forms"]},
        ],
    }
    tm = build_threat_model(system_from_dict(system))
    f = next(f for f in tm.findings if f.rule_id == "MLH-STRIDE-T-SQL-INJECTION")
    assert "trainer" in f.affected
    hops = [h["element"] for h in f.evidence["attack_path"]]
    assert hops == ["portal", "db", "trainer"]


def test_vendor_operated_llm_gets_contract_not_internals() -> None:
    tm = build_threat_model(system_from_dict(_rag(orchestrated=True)), assume="absent")
    on_llm = {rule for (rule, target) in hits(tm) if target == "llm"}
    assert "MLH-STRIDE-VENDOR-OPERATED" in on_llm
    for internal in ("MLH-STRIDE-E-NO-AUTHORIZATION", "MLH-STRIDE-R-PROCESS"):
        assert internal not in on_llm
    # A tool's stated limit is least privilege: it lowers excessive agency but does not remove
    # it (a cap bounds the loss; no person confirms the refund).
    assert ("MLH-LLM-EXCESSIVE-AGENCY", "refund-tool") in hits(tm)
    unlimited = _rag(orchestrated=True)
    next(e for e in unlimited["elements"] if e["id"] == "refund-tool").pop("limits")
    loose = build_threat_model(system_from_dict(unlimited), assume="absent")
    assert _agency_risk(tm, "refund-tool") < _agency_risk(loose, "refund-tool")


def _agency_risk(tm: ThreatModel, target: str) -> float:
    f = next(f for f in tm.findings if f.rule_id == "MLH-LLM-EXCESSIVE-AGENCY")
    return float(f.evidence["per_target"][target]["risk"])


# --- 5. controls lower what they address, across the whole catalog ---------------------------


def test_declaring_a_control_lowers_or_removes_what_it_addresses() -> None:
    """For every rule hit on the examples, declaring each control that addresses the rule on the
    hit's element or flow lowers its risk or removes it, for at least 90 % of the pairs."""
    import yaml

    pairs = lowered = 0
    misses: list[str] = []
    for name in SCENARIOS:
        data = yaml.safe_load((EXAMPLES / name / "system.yaml").read_text())
        base = build_threat_model(system_from_dict(copy.deepcopy(data)), assume="absent")
        risk = {}
        for f in base.findings:
            per = f.evidence.get("per_target") or {f.target: {"risk": f.risk}}
            for (rule, target), _status in unfold(f.to_dict()).items():
                risk.setdefault((rule, target), per.get(target, {}).get("risk", f.risk))
        rules = {r.id: r.rule for r in base.catalog.rules}  # type: ignore[union-attr]
        objects: dict[str, Any] = {e.id: e for e in base.system.elements}
        objects.update({f.id: f for f in base.system.flows})
        seen_rules: set[str] = set()
        for (rule, target), before in sorted(risk.items()):
            if rule in seen_rules:
                continue  # one target per rule keeps the test fast
            seen_rules.add(rule)
            r = rules[rule]
            addressing = dict.fromkeys([*r.mitigated_by, *(m.control for m in r.mitigations)])
            in_place = set(objects[target].controls)
            for control in addressing:
                if control in in_place:
                    continue  # already there: declaring it again says nothing new
                changed = copy.deepcopy(data)
                changed.setdefault("controls", []).append(
                    {"id": f"t-{control.value}", "type": control.value, "applies_to": [target]}
                )
                after = build_threat_model(system_from_dict(changed), assume="absent")
                now = [
                    (f.evidence.get("per_target") or {}).get(target, {}).get("risk", f.risk)
                    for f in after.findings
                    if unfold(f.to_dict()).get((rule, target)) == "open"
                ]
                pairs += 1
                if not now or now[0] < before:
                    lowered += 1
                else:
                    misses.append(f"{name}: {rule}@{target} {control.value}")
    assert pairs >= 100
    assert lowered / pairs >= 0.9, (lowered, pairs, misses[:20])


# --- the seed scenarios' deliberate weaknesses (comment block atop each system.yaml) -------------

SEED_WEAKNESSES: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "image-moderation": [
        (("MLH-ML-ADVERSARIAL-PATCH",), "moderation-inference"),  # 1
        (("MLH-ML-EVASION-API",), "moderation-inference"),  # 2 scores as an oracle
        (("MLH-STRIDE-D-NO-RATE-LIMIT",), "report-api"),  # 3
        (("MLH-ML-FEEDBACK-LOOP", "MLH-ML-POISONING-UNTRUSTED-SOURCE"), "training-pipeline"),
        (("MLH-ML-SUPPLY-CHAIN-MODEL", "MLH-ML-TRANSFER-LEARNING"), "training-pipeline"),  # 4
        (("MLH-ML-UNSAFE-SERIALIZATION",), "model-artifact"),
        (("MLH-STRIDE-E-PRIVILEGED-WORKLOAD",), "training-pipeline"),  # 5
        (("MLH-STRIDE-D-RESOURCE-EXHAUSTION",), "training-pipeline"),
        (("MLH-STRIDE-I-FLOW-CLEARTEXT", "MLH-STRIDE-T-FLOW-UNENCRYPTED"), "hold-for-review"),
        (("MLH-ML-OUTPUT-INTEGRITY",), "scores-to-upload-api"),  # 6 forged verdicts
    ],
    "fraud-detection": [
        (("MLH-ML-EXTRACTION-API",), "partner-gateway"),  # 1
        (("MLH-LINDDUN-NONCOMPLIANCE-CARDHOLDER-FLOW",), "score-request"),  # 2
        (("MLH-STRIDE-I-FLOW-CLEARTEXT", "MLH-STRIDE-T-FLOW-UNENCRYPTED"), "write-online-features"),
        (("MLH-STRIDE-I-STORE-CREDENTIALS",), "write-online-features"),  # 3 shared password
        (("MLH-STRIDE-E-PRIVILEGED-WORKLOAD",), "analyst-notebook"),  # 4
        (("MLH-STRIDE-T-INGESTION-UNVALIDATED",), "label-loader"),  # 5
        (("MLH-ML-DENIAL-OF-AI-SERVICE",), "scoring-api"),  # 6 fail-open on DoS
    ],
    "loan-approval": [
        (("MLH-ML-EXTRACTION-API",), "prediction-api"),  # 1
        (("MLH-STRIDE-D-NO-RATE-LIMIT", "MLH-ML-DENIAL-OF-AI-SERVICE"), "prediction-api"),
        (("MLH-ML-MODEL-INVERSION",), "prediction-api"),  # 2
        (("MLH-STRIDE-I-STORE-CREDENTIALS",), "dashboard-db"),  # 3
        (("MLH-LINDDUN-DISCLOSURE-FLOW", "MLH-LINDDUN-DISCLOSURE-STORE"), "notebook-query"),  # 4
        (("MLH-STRIDE-I-FLOW-CLEARTEXT", "MLH-STRIDE-T-FLOW-UNENCRYPTED"), "pred-logs"),  # 5
        (("MLH-ML-UNSAFE-SERIALIZATION",), "model-artifact"),  # 6
        (("MLH-ML-MEMBERSHIP-INFERENCE",), "prediction-api"),  # 7
    ],
    "clickstream-recommender": [
        (("MLH-STRIDE-S-FLOW-UNAUTHENTICATED", "MLH-STRIDE-S-PROCESS-NO-AUTH"), "client-events"),
        (("MLH-ML-FEEDBACK-LOOP",), "kubeflow-training"),  # 1
        (("MLH-STRIDE-E-PRIVILEGED-WORKLOAD",), "spark-features"),  # 2
        (("MLH-STRIDE-D-RESOURCE-EXHAUSTION",), "spark-features"),
        (("MLH-STRIDE-I-FLOW-CLEARTEXT", "MLH-STRIDE-T-FLOW-UNENCRYPTED"), "spark-to-features"),
        (("MLH-ML-MODEL-INVERSION",), "prediction-api"),  # 4
        (("MLH-ML-MEMBERSHIP-INFERENCE",), "prediction-api"),
        (("MLH-LINDDUN-DISCLOSURE-STORE", "MLH-LINDDUN-DISCLOSURE-FLOW"), "notebook-reads"),  # 5
        (("MLH-ML-UNSAFE-SERIALIZATION",), "model-artifact"),  # 6 pickled checkpoint
    ],
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_seed_weaknesses_are_still_reported(name: str) -> None:
    tm = example(name)
    reported = hits(tm)
    flows = {f.id: (f.source, f.target) for f in tm.system.flows}
    missing = []
    for rules, where in SEED_WEAKNESSES[name]:
        near = {where} | {fid for fid, ends in flows.items() if where in ends}
        if not any((r, t) in reported for r in rules for t in near):
            missing.append((rules, where))
    assert not missing


# --- 7. reading it: --top, --assume, the table ---------------------------------------------------


def test_cli_top_assume_and_table() -> None:
    from tests.test_cli import mlhunt

    system = str(EXAMPLES / "loan-approval" / "system.yaml")
    top = mlhunt("model", system, "-f", "json", "--top", "5")
    assert top.returncode == 0, top.stderr
    doc = json.loads(top.stdout)
    assert len(doc["findings"]) == 5 and doc["summary"]["total"] > 5
    assert doc["questions"] and doc["assume"] == "unknown"
    absent = json.loads(mlhunt("model", system, "-f", "json", "--assume", "absent").stdout)
    assert absent["assume"] == "absent"
    assert len(absent["findings"]) >= doc["summary"]["total"]
    bad = mlhunt("model", system, "--assume", "maybe")
    assert bad.returncode == 2 and "--assume" in bad.stderr
    table = mlhunt("model", system, "-f", "table", "--top", "3")
    assert "open question" in table.stdout and "MLH-" in table.stdout


def test_reports_show_groups_questions_and_paths() -> None:
    from mlhunt.report import render

    doc = build_threat_model(system_from_dict(_rag(orchestrated=True))).to_document()
    grouped = next(f for f in doc["findings"] if len(f["affected"]) > 1)
    sarif = json.loads(render(doc, "sarif"))
    result = next(
        r
        for r in sarif["runs"][0]["results"]
        if r["properties"]["mlhuntFindingId"] == grouped["id"]
    )
    assert len(result["locations"]) == len(grouped["affected"])  # one per affected element
    md = render(doc, "markdown")
    assert "### Attack paths" in md and "### Open questions for the system owner" in md
    assert "Affected (worst first):" in md
    html = render(doc, "html")
    assert html.index('id="top-risks"') < html.index('id="attack-paths"') < html.index('id="dfd"')
    assert 'id="questions"' in html
    assert 'data-path="dfd-e-web dfd-f-crawl dfd-e-crawler' in html  # highlighted on the DFD
    assert "dfd&#45;e&#45;web" in html or 'id="dfd-e-web"' in html
