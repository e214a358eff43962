"""What the sixth outside review changed in the threat model, on small systems built here: a
process that turns a model's score into a record about people decides about them where
``human_review: false`` is stated, decisions about children weigh more, and a training job
that only hands its data to a vendor's fine-tuning API runs no workload of ours to admit."""

from __future__ import annotations

from typing import Any

from mlhunt.system.loader import system_from_dict
from mlhunt.threatmodel import build_threat_model

DECISION = "MLH-LINDDUN-UNAWARENESS-AUTOMATED-DECISION"
ADMISSION = "MLH-STRIDE-E-NO-ADMISSION-POLICY"


def _risks_on(system: dict[str, Any], target: str) -> dict[str, float]:
    """Rule id -> risk of every rule that hits ``target`` (grouped findings included)."""
    out: dict[str, float] = {}
    for f in build_threat_model(system_from_dict(system)).findings:
        if target in (f.affected or (f.target,)):
            per = (f.evidence or {}).get("per_target", {}).get(target, {})
            for r in per.get("rules") or (f.rule_id,):
                out[r] = per.get("risk", f.risk)
    return out


def _bans(
    subjects: tuple[str, ...] = ("players",),
    record_integrity: str = "critical",
    review_stated: bool = True,
) -> dict[str, Any]:
    """A classifier's score (no person named in it) goes to a ban service, which writes a ban
    record about players."""
    model: dict[str, Any] = {"task": "classification", "output": "scores"}
    if review_stated:
        model["human_review"] = False
    return {
        "name": "bans",
        "data_assets": [
            {"id": "telemetry", "classification": "personal", "data_subjects": list(subjects)},
            {"id": "score", "classification": "confidential", "integrity": "high"},
            {
                "id": "ban",
                "classification": "personal",
                "integrity": record_integrity,
                "data_subjects": list(subjects),
            },
        ],
        "elements": [
            {
                "id": "scorer",
                "kind": "inference_api",
                "data": ["telemetry", "score"],
                "model": model,
            },
            {"id": "bans", "kind": "process", "audit_logging": True, "data": ["score", "ban"]},
            {"id": "accounts", "kind": "data_store", "data": ["ban"]},
        ],
        "flows": [
            {"id": "verdict", "source": "scorer", "target": "bans", "data": ["score"]},
            {"id": "write", "source": "bans", "target": "accounts", "data": ["ban"]},
        ],
    }


def test_a_process_that_bans_on_a_score_decides_about_people() -> None:
    assert DECISION in _risks_on(_bans(), "bans")
    # Without human_review: false stated, a score that names no person decides nothing here.
    assert DECISION not in _risks_on(_bans(review_stated=False), "bans")
    # A record of less than critical integrity is no decision with a significant effect.
    assert DECISION not in _risks_on(_bans(record_integrity="high"), "bans")


def test_decisions_about_children_weigh_more() -> None:
    adults = _risks_on(_bans(), "bans")[DECISION]
    children = _risks_on(_bans(subjects=("players", "minors")), "bans")[DECISION]
    assert children > adults + 1.0, (adults, children)


def _finetune(to_registry: bool) -> dict[str, Any]:
    """A fine-tuning job that uploads its training file to a vendor's hosted LLM, and (when
    ``to_registry``) also writes a model of its own to our registry."""
    elements: list[dict[str, Any]] = [
        {"id": "feedback", "kind": "data_store", "data": ["corrections"]},
        {"id": "tune", "kind": "training_job", "data": ["corrections"]},
        {"id": "llm", "kind": "llm", "operated_by": "vendor", "data": ["corrections"]},
    ]
    flows: list[dict[str, Any]] = [
        {"id": "read", "source": "feedback", "target": "tune", "data": ["corrections"]},
        {"id": "upload", "source": "tune", "target": "llm", "data": ["corrections"]},
    ]
    if to_registry:
        elements.append({"id": "registry", "kind": "model_registry", "data": ["corrections"]})
        flows.append({"id": "save", "source": "tune", "target": "registry"})
    return {
        "name": "finetune",
        "data_assets": [{"id": "corrections", "classification": "internal"}],
        "elements": elements,
        "flows": flows,
    }


def test_a_fine_tune_at_the_vendor_has_no_workload_to_admit() -> None:
    assert ADMISSION not in _risks_on(_finetune(to_registry=False), "tune")
    assert ADMISSION in _risks_on(_finetune(to_registry=True), "tune")


RENDERED = "MLH-STRIDE-T-UNTRUSTED-CONTENT-RENDERED"
TENANCY = "MLH-STRIDE-E-COARSE-AUTHORIZATION"


def _console(author: str = "player", tenants: bool = False) -> dict[str, Any]:
    """Players' appeals (untrusted) go through a portal to an internet-facing console that an
    analyst uses; ``author`` is who sends the appeal in; the console reads a case store."""
    return {
        "name": "console",
        "data_assets": [
            {"id": "appeal", "classification": "personal", "trust": "untrusted"},
            {"id": "case", "classification": "personal"},
        ],
        "elements": [
            {"id": "player", "kind": "actor"},
            {"id": "analyst", "kind": "actor"},
            {"id": "portal", "kind": "process", "internet_facing": True, "data": ["appeal"]},
            {"id": "cases", "kind": "data_store", "multi_tenant": tenants, "data": ["case"]},
            {
                "id": "console",
                "kind": "process",
                "internet_facing": True,
                "authorization": "rbac",
                "data": ["appeal", "case"],
            },
        ],
        "flows": [
            {"id": "submit", "source": author, "target": "portal", "data": ["appeal"]},
            {"id": "relay", "source": "portal", "target": "console", "data": ["appeal"]},
            {"id": "session", "source": "analyst", "target": "console"},
            {"id": "read", "source": "cases", "target": "console", "data": ["case"]},
        ],
    }


def test_outsiders_content_shown_to_staff_is_rendered_content() -> None:
    assert RENDERED in _risks_on(_console(), "console")
    # The analyst's own appeal echoed back to the analyst is nobody else's content.
    own = _console(author="analyst")
    own["flows"][2]["data"] = ["appeal"]
    assert RENDERED not in _risks_on(own, "console")


def test_roles_do_not_keep_tenants_apart_on_a_shared_store() -> None:
    assert TENANCY in _risks_on(_console(tenants=True), "console")
    assert TENANCY not in _risks_on(_console(tenants=False), "console")
    policy = _console(tenants=True)
    policy["elements"][4]["authorization"] = "policy"
    assert TENANCY not in _risks_on(policy, "console")


GRANT = "MLH-STRIDE-E-BROAD-SOURCE-GRANT"
SPOOF = "MLH-STRIDE-S-INPUT-IN-ANOTHERS-NAME"


def _connector(grant: str = "coarse", internet_facing: bool = False) -> dict[str, Any]:
    """Our connector pulls notes from a hospital's EHR (another boundary) with ``grant``."""
    return {
        "name": "connector",
        "data_assets": [{"id": "notes", "classification": "special_category"}],
        "trust_boundaries": [{"id": "hospital"}, {"id": "saas"}],
        "elements": [
            {"id": "ehr", "kind": "data_source", "boundary": "hospital", "data": ["notes"]},
            {
                "id": "conn",
                "kind": "ingestion",
                "boundary": "saas",
                "internet_facing": internet_facing,
                "data": ["notes"],
            },
        ],
        "flows": [
            {
                "id": "pull",
                "source": "ehr",
                "target": "conn",
                "authorization": grant,
                "data": ["notes"],
            }
        ],
    }


def test_a_coarse_grant_at_a_partners_source_is_over_broad() -> None:
    assert GRANT in _risks_on(_connector(), "conn")
    assert GRANT not in _risks_on(_connector(grant="rbac"), "conn")
    # An internet-facing entry is pushed to: the coarse grant there is the sender's.
    assert GRANT not in _risks_on(_connector(internet_facing=True), "conn")


def _telemetry(auth: str) -> dict[str, Any]:
    """Clients send telemetry through an internet-facing gateway (``auth``) and a bus to a
    classifier whose score a ban service acts on (the bans system above, extended)."""
    system = _bans()
    system["data_assets"][0]["trust"] = "untrusted"
    system["elements"] += [
        {"id": "client", "kind": "external_entity", "data": ["telemetry"]},
        {
            "id": "gateway",
            "kind": "ingestion",
            "internet_facing": True,
            "authentication": auth,
            "data": ["telemetry"],
        },
        {"id": "bus", "kind": "message_bus", "data": ["telemetry"]},
    ]
    system["flows"] += [
        {"id": "send", "source": "client", "target": "gateway", "data": ["telemetry"]},
        {"id": "publish", "source": "gateway", "target": "bus", "data": ["telemetry"]},
        {"id": "consume", "source": "bus", "target": "scorer", "data": ["telemetry"]},
    ]
    return system


def test_a_bearer_token_feeding_a_decision_about_people_is_spoofable() -> None:
    assert SPOOF in _risks_on(_telemetry("token"), "gateway")
    # A client bound to a key the thief cannot copy.
    assert SPOOF not in _risks_on(_telemetry("mtls"), "gateway")
    # Nothing decides about people downstream: no record of critical integrity is written.
    calm = _telemetry("token")
    calm["data_assets"][2]["integrity"] = "medium"
    assert SPOOF not in _risks_on(calm, "gateway")
