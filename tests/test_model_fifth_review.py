"""What the fifth outside review changed in the threat model, on small systems built here: a
process that consumes a model's score is no oracle for its callers, a decision engine decides
about people only on a verdict about people, and privileged automation that outsiders' input
drives is excessive agency without an LLM."""

from __future__ import annotations

from typing import Any

from mlhunt.system.loader import system_from_dict
from mlhunt.threatmodel import build_threat_model
from mlhunt.threatmodel.catalog import default_catalog
from mlhunt.threatmodel.grouping import unfold

QUERY = {"MLH-ML-EXTRACTION-API", "MLH-ML-MEMBERSHIP-INFERENCE", "MLH-ML-MODEL-INVERSION"}
DECISION = "MLH-LINDDUN-UNAWARENESS-AUTOMATED-DECISION"
AUTOMATION = "MLH-STRIDE-E-AUTOMATED-PRIVILEGED-ACTION"


def _rules_on(system: dict[str, Any], target: str) -> set[str]:
    """The rules that hit ``target`` (grouped findings unfolded)."""
    findings = build_threat_model(system_from_dict(system)).findings
    return {r for f in findings for r, t in unfold(f.to_dict()) if t == target}


def _gateway(
    verdict_class: str = "internal",
    sender_data: tuple[str, ...] = ("mail",),
    extra_flows: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """An internet-facing mail gateway asks a classifier (the score comes back on a flow of
    its own) and files the mail in a mailbox; the sender holds ``sender_data``."""
    return {
        "name": "gateway",
        "data_assets": [
            {"id": "mail", "classification": "personal", "data_subjects": ["people"]},
            {"id": "verdict", "classification": verdict_class, "data_subjects": ["people"]},
        ],
        "elements": [
            {"id": "sender", "kind": "external_entity", "data": list(sender_data)},
            {
                "id": "gw",
                "kind": "process",
                "internet_facing": True,
                "data": ["mail", "verdict"],
            },
            {
                "id": "clf",
                "kind": "inference_api",
                "data": ["mail", "verdict"],
                "model": {
                    "task": "classification",
                    "output": "scores",
                    "human_review": False,
                    "training_data_provenance": "user_generated",
                },
            },
            {"id": "mailbox", "kind": "data_store", "data": ["mail"]},
        ],
        "flows": [
            {"id": "in", "source": "sender", "target": "gw", "data": ["mail"]},
            {"id": "ask", "source": "gw", "target": "clf", "data": ["mail"]},
            {"id": "score", "source": "clf", "target": "gw", "data": ["verdict"]},
            {"id": "file", "source": "gw", "target": "mailbox", "data": ["mail"]},
            *extra_flows,
        ],
    }


def test_a_process_that_consumes_the_score_is_no_oracle_for_its_callers() -> None:
    # The gateway acts on the score and sends only mail on: the sender never reads a score.
    assert not _rules_on(_gateway(), "clf") & QUERY
    # A gateway that passes the score back to the sender (a 5xx with the score) is an oracle.
    back = {"id": "bounce", "source": "gw", "target": "sender", "data": ["verdict"]}
    passed_back = _gateway(sender_data=("mail", "verdict"), extra_flows=(back,))
    assert _rules_on(passed_back, "clf") >= QUERY
    # A caller that states no data of its own (a person at a dashboard, by reply) may see it.
    assert QUERY & _rules_on(_gateway(sender_data=()), "clf")


def test_a_decision_engine_decides_about_people_only_on_a_verdict_about_people() -> None:
    # Quarantining mail on a score about a message is filtering, not a decision about a person.
    assert DECISION not in _rules_on(_gateway("internal"), "gw")
    # The same engine acting on a score about a person (a verdict with personal data) decides.
    assert DECISION in _rules_on(_gateway("personal"), "gw")


def _remediation(
    worker: dict[str, Any], api: dict[str, Any], review: bool = False, trust: str = "untrusted"
) -> dict[str, Any]:
    """Employees' reports reach a worker through an API and a queue; it purges mailboxes."""
    controls = [{"id": "confirm", "type": "human_review", "applies_to": ["worker"]}]
    return {
        "controls": controls if review else [],
        "name": "remediation",
        "data_assets": [
            {"id": "report", "classification": "personal", "trust": trust},
            {"id": "mail", "classification": "personal", "integrity": "high"},
        ],
        "elements": [
            {"id": "employee", "kind": "actor", "data": ["report"]},
            {"id": "api", "kind": "process", "data": ["report"], **api},
            {"id": "queue", "kind": "message_bus", "data": ["report"]},
            {"id": "worker", "kind": "process", "data": ["report"], **worker},
            {"id": "mailbox", "kind": "data_store", "data": ["mail"]},
        ],
        "flows": [
            {"id": "post", "source": "employee", "target": "api", "data": ["report"]},
            {"id": "enqueue", "source": "api", "target": "queue", "data": ["report"]},
            {"id": "consume", "source": "queue", "target": "worker", "data": ["report"]},
            {"id": "purge", "source": "worker", "target": "mailbox", "data": ["report"]},
        ],
    }


def test_privileged_automation_driven_by_outsiders_input_is_excessive_agency() -> None:
    facing = {"internet_facing": True}
    assert AUTOMATION in _rules_on(_remediation({"privileged": True}, facing), "worker")
    # A person confirming each action removes it; so do ordinary rights, or no outsider input.
    assert AUTOMATION not in _rules_on(_remediation({"privileged": True}, facing, True), "worker")
    assert AUTOMATION not in _rules_on(_remediation({}, facing), "worker")
    internal = _remediation({"privileged": True}, {}, trust="internal")
    assert AUTOMATION not in _rules_on(internal, "worker")


def _index(store: dict[str, Any], controls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One vector index an agent queries for every customer's users."""
    return {
        "name": "index",
        "controls": controls or [],
        "data_assets": [{"id": "docs", "classification": "confidential"}],
        "elements": [
            {"id": "user", "kind": "actor", "data": ["docs"]},
            {"id": "agent", "kind": "orchestrator", "data": ["docs"]},
            {
                "id": "index",
                "kind": "vector_store",
                "authentication": "api_key",
                "authorization": "coarse",
                "encrypted_at_rest": True,
                "data": ["docs"],
                **store,
            },
        ],
        "flows": [
            {"id": "ask", "source": "user", "target": "agent", "data": ["docs"]},
            {"id": "retrieve", "source": "index", "target": "agent", "data": ["docs"]},
        ],
    }


def _cross_tenant(system: dict[str, Any]) -> tuple[float, str]:
    tm = build_threat_model(system_from_dict(system))
    (f,) = (f for f in tm.findings if f.rule_id == "MLH-LLM-VECTOR-EMBEDDING-ACCESS")
    return f.risk, f.status


def test_an_api_key_and_encryption_at_rest_do_not_stop_cross_tenant_retrieval() -> None:
    risk, status = _cross_tenant(_index({}))
    assert status == "open"
    # Several tenants' data in the one index raises it; a server-side filter lowers it.
    shared, _ = _cross_tenant(_index({"multi_tenant": True}))
    assert shared > risk
    policy = [{"id": "acl", "type": "authorization_policy", "applies_to": ["index"]}]
    filtered, _ = _cross_tenant(_index({"multi_tenant": True}, policy))
    assert filtered < shared


def test_one_cause_on_the_drafter_is_one_finding() -> None:
    causes = {r.rule.id: r.rule.cause for r in default_catalog().rules}
    assert causes["MLH-LLM-DATA-MODEL-POISONING"] == causes["MLH-ML-FEEDBACK-LOOP"]
    assert causes["MLH-LLM-SUPPLY-CHAIN"] == causes["MLH-ML-TRANSFER-LEARNING"]
    assert causes["MLH-LINDDUN-IDENTIFYING-EMBEDDING"] == causes["MLH-LINDDUN-IDENTIFYING-STORE"]
