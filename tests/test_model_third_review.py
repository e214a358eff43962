"""The third outside review's misses (tests/outside_review/third-review), on small systems built
here: a zone's firewall against an attacker inside the zone, a rank that rejects people, a model
that alone commands a machine, coarse authorization over critical settings, a vendor's bus, and
crafted files parsed a store away from the upload."""

from __future__ import annotations

from typing import Any

from mlhunt.system.loader import system_from_dict
from mlhunt.system.model import ControlType
from mlhunt.threatmodel import build_threat_model
from mlhunt.threatmodel.grouping import unfold


def _hits(system: dict[str, Any]) -> dict[str, set[str]]:
    """Rule id -> the elements and flows it hits."""
    out: dict[str, set[str]] = {}
    for f in build_threat_model(system_from_dict(system)).findings:
        for rule, target in unfold(f.to_dict()):
            out.setdefault(rule, set()).add(target)
    return out


def _plant(sensor_zone: str) -> dict[str, Any]:
    """Sensors publish to an anonymous broker in a firewalled zone; a model stops a machine."""
    return {
        "name": "plant",
        "data_assets": [
            {"id": "readings", "trust": "untrusted", "integrity": "high"},
            {"id": "stop", "integrity": "critical"},
        ],
        "trust_boundaries": [
            {"id": "ot", "kind": "network"},
            {"id": "it", "kind": "network"},
        ],
        "elements": [
            {"id": "sensors", "kind": "data_source", "boundary": sensor_zone, "data": ["readings"]},
            {
                "id": "broker",
                "kind": "message_bus",
                "boundary": "ot",
                "authentication": "none",
                "data": ["readings"],
            },
            {
                "id": "model",
                "kind": "inference_api",
                "boundary": "ot",
                "data": ["readings", "stop"],
                "model": {"task": "regression", "human_review": False},
            },
            {"id": "plc", "kind": "process", "boundary": "ot", "data": ["stop"]},
        ],
        "flows": [
            {"id": "publish", "source": "sensors", "target": "broker", "data": ["readings"]},
            {"id": "sub", "source": "broker", "target": "model", "data": ["readings"]},
            {"id": "cmd", "source": "model", "target": "plc", "data": ["stop"]},
        ],
        "controls": [{"id": "fw", "type": "network_policy", "applies_to": ["ot"]}],
    }


def _risk(system: dict[str, Any], rule: str, target: str) -> float:
    tm = build_threat_model(system_from_dict(system))
    (f,) = [f for f in tm.findings if f.rule_id == rule and target in (f.affected or (f.target,))]
    assert f.risk is not None
    return f.risk


def _no_firewall(system: dict[str, Any]) -> dict[str, Any]:
    return {**system, "controls": []}


def test_a_zones_firewall_does_not_count_against_an_attacker_inside_it() -> None:
    inside, outside = system_from_dict(_plant("ot")), system_from_dict(_plant("it"))
    build_threat_model(inside)
    build_threat_model(outside)
    broker_in = next(e for e in inside.elements if e.id == "broker")
    broker_out = next(e for e in outside.elements if e.id == "broker")
    assert ControlType.NETWORK_POLICY not in broker_in.controls
    assert ControlType.NETWORK_POLICY in broker_out.controls
    rule = "MLH-STRIDE-S-DATASTORE-NO-AUTH"
    # Sensors inside the zone: the firewall changes nothing; outside it, it lowers the risk.
    assert _risk(_plant("ot"), rule, "broker") == _risk(_no_firewall(_plant("ot")), rule, "broker")
    assert _risk(_plant("it"), rule, "broker") < _risk(_no_firewall(_plant("it")), rule, "broker")


def test_a_model_alone_commanding_a_machine_is_found() -> None:
    assert "cmd" in _hits(_plant("ot")).get("MLH-ML-AUTONOMOUS-ACTUATION", set())
    reviewed = _plant("ot")
    reviewed["elements"][2]["model"]["human_review"] = True
    assert "MLH-ML-AUTONOMOUS-ACTUATION" not in _hits(reviewed)
    # A command about a person is the automated-decision rule's, not this one's.
    about_people = _plant("ot")
    about_people["data_assets"][1].update(classification="personal", data_subjects=["drivers"])
    assert "MLH-ML-AUTONOMOUS-ACTUATION" not in _hits(about_people)


def _screening(review: dict[str, Any]) -> dict[str, Any]:
    """A ranker whose score an agent acts on (its tool rejects applicants)."""
    person = {"classification": "personal", "data_subjects": ["applicants"]}
    return {
        "name": "screening",
        "data_assets": [{"id": "profile", **person}, {"id": "rank", **person}],
        "elements": [
            {
                "id": "ranker",
                "kind": "inference_api",
                "data": ["profile", "rank"],
                "model": {"task": "ranking", **review},
            },
            {"id": "agent", "kind": "orchestrator", "data": ["profile", "rank"]},
            {"id": "ats", "kind": "data_store", "data": ["profile"]},
        ],
        "flows": [
            {"id": "ask", "source": "agent", "target": "ranker", "data": ["profile"]},
            {"id": "answer", "source": "ranker", "target": "agent", "data": ["rank"]},
            {"id": "reject", "source": "agent", "target": "ats", "data": ["profile"]},
        ],
    }


def test_a_rank_acted_on_with_no_review_stated_decides() -> None:
    rule = "MLH-LINDDUN-UNAWARENESS-AUTOMATED-DECISION"
    assert "ranker" in _hits(_screening({"human_review": False})).get(rule, set())
    # Unsaid, a ranking stays a ranking (recommendations); reviewed, a person decides.
    assert "ranker" not in _hits(_screening({})).get(rule, set())
    assert "ranker" not in _hits(_screening({"human_review": True})).get(rule, set())


def _portal(integrity: str, parser: dict[str, Any]) -> dict[str, Any]:
    """An internet-facing portal: settings of some integrity, uploads parsed from a store."""
    return {
        "name": "portal",
        "data_assets": [
            {"id": "settings", "integrity": integrity},
            {"id": "upload", "trust": "untrusted"},
        ],
        "elements": [
            {
                "id": "portal",
                "kind": "process",
                "internet_facing": True,
                "authentication": "sso",
                "authorization": "coarse",
                "data": ["settings", "upload"],
            },
            {
                "id": "files",
                "kind": "data_store",
                "authentication": "cloud_iam",
                "data": ["upload"],
            },
            {"id": "parser", "kind": "ingestion", "data": ["upload"], **parser},
            {
                "id": "bus",
                "kind": "message_bus",
                "operated_by": "vendor",
                "authentication": "mtls",
                "data": ["settings"],
            },
        ],
        "flows": [
            {"id": "keep", "source": "portal", "target": "files", "data": ["upload"]},
            {"id": "read", "source": "files", "target": "parser", "data": ["upload"]},
            {"id": "push", "source": "portal", "target": "bus", "data": ["settings"]},
        ],
    }


def test_coarse_authorization_over_critical_settings() -> None:
    rule = "MLH-STRIDE-E-COARSE-AUTHORIZATION"
    assert "portal" in _hits(_portal("critical", {})).get(rule, set())
    assert rule not in _hits(_portal("high", {}))


def test_a_vendors_bus_without_an_assessment() -> None:
    rule = "MLH-STRIDE-VENDOR-OPERATED"
    assert "bus" in _hits(_portal("high", {})).get(rule, set())
    assessed = _portal("high", {})
    assessed["controls"] = [{"id": "dpa", "type": "vendor_assessment", "applies_to": ["bus"]}]
    assert rule not in _hits(assessed)


def test_crafted_files_parsed_a_store_away_from_the_upload() -> None:
    rule = "MLH-STRIDE-E-UNTRUSTED-FILE-PARSER"
    assert _hits(_portal("high", {"input_validation": False})).get(rule) == {"parser"}
    assert rule not in _hits(_portal("high", {"input_validation": True}))
