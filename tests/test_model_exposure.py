"""Who sees a model's output, what a tool can do, records the law requires (second outside
review): the path and element properties the rules read, on small systems built here."""

from __future__ import annotations

from typing import Any

from mlhunt.system.loader import system_from_dict
from mlhunt.threatmodel import build_threat_model
from mlhunt.threatmodel.grouping import unfold

QUERY = {"MLH-ML-EXTRACTION-API", "MLH-ML-MEMBERSHIP-INFERENCE", "MLH-ML-MODEL-INVERSION"}


def _scoring(extra_elements: list[dict[str, Any]], extra_flows: list[dict[str, Any]]) -> dict:
    """A model fed from a bucket whose scores go to a decision service (nobody outside)."""
    return {
        "name": "scoring",
        "data_assets": [
            {"id": "photos", "classification": "personal", "data_subjects": ["people"]},
            {"id": "scores", "classification": "personal", "data_subjects": ["people"]},
            {"id": "result", "classification": "personal", "data_subjects": ["people"]},
        ],
        "elements": [
            {"id": "bucket", "kind": "data_store", "data": ["photos"]},
            {
                "id": "model",
                "kind": "inference_api",
                "data": ["photos", "scores"],
                "model": {"output": "scores", "ip_value": "high"},
            },
            {"id": "decision", "kind": "process", "data": ["scores", "result"]},
            {"id": "cases", "kind": "data_store", "data": ["scores"]},
            *extra_elements,
        ],
        "flows": [
            {"id": "read", "source": "bucket", "target": "model", "data": ["photos"]},
            {"id": "score", "source": "model", "target": "decision", "data": ["scores"]},
            {"id": "keep", "source": "decision", "target": "cases", "data": ["scores"]},
            *extra_flows,
        ],
    }


def _rules_on(system: dict, target: str) -> set[str]:
    """The rules that hit ``target`` (grouped findings unfolded)."""
    findings = build_threat_model(system_from_dict(system)).findings
    return {r for f in findings for r, t in unfold(f.to_dict()) if t == target}


def test_no_query_attacks_where_no_party_sees_the_output() -> None:
    system = system_from_dict(_scoring([], []))
    tm = build_threat_model(system)
    assert not next(e for e in system.elements if e.id == "model").output_exposed
    assert not {f.rule_id for f in tm.findings} & QUERY
    # A different asset (the decision, not the scores) sent on does not carry the output.
    outside = _scoring(
        [{"id": "bank", "kind": "external_entity", "data": ["result"]}],
        [{"id": "notify", "source": "decision", "target": "bank", "data": ["result"]}],
    )
    assert not _rules_on(outside, "model") & QUERY
    # Stored scores read later by a person are no query interface.
    reader = _scoring(
        [{"id": "analyst", "kind": "actor", "data": ["scores"]}],
        [{"id": "browse", "source": "cases", "target": "analyst", "data": ["scores"]}],
    )
    assert not _rules_on(reader, "model") & QUERY


def test_a_party_that_sees_the_output_brings_the_query_attacks_and_their_route() -> None:
    # The scores themselves go on to an outside party: pushed, not stored. Seeing them is not
    # enough: the model reads its input from a bucket, so nobody outside chooses what it is
    # asked (a forecaster fed by its own pipeline has no query interface).
    partner = [{"id": "partner", "kind": "external_entity", "data": ["scores", "photos"]}]
    forward = [{"id": "forward", "source": "decision", "target": "partner", "data": ["scores"]}]
    pushed = _scoring(partner, forward)
    linked = system_from_dict(pushed)
    build_threat_model(linked)
    model = next(e for e in linked.elements if e.id == "model")
    assert model.output_exposed and not model.input_chosen_by_outsider
    assert not _rules_on(pushed, "model") & QUERY
    # Nor when the partner's photos land in the bucket first: a store is no request path.
    stored = _scoring(partner, [*forward, {"id": "drop", "source": "partner", "target": "bucket"}])
    assert not _rules_on(stored, "model") & QUERY
    # The partner sends photos through a message bus (a relay, not a store read later): it
    # chooses the input and sees the answer, and the query attacks follow.
    sent = _scoring(
        [*partner, {"id": "queue", "kind": "message_bus", "data": ["photos"]}],
        [
            *forward,
            {"id": "send", "source": "partner", "target": "queue", "data": ["photos"]},
            {"id": "consume", "source": "queue", "target": "model", "data": ["photos"]},
        ],
    )
    assert _rules_on(sent, "model") >= QUERY
    # A person asks through the decision service: the reply goes back up the callers' chain.
    asked = _scoring(
        [{"id": "clerk", "kind": "actor", "data": ["result"]}],
        [
            {"id": "ask", "source": "clerk", "target": "decision", "data": ["result"]},
            {"id": "call", "source": "decision", "target": "model", "data": ["photos"]},
        ],
    )
    tm = build_threat_model(system_from_dict(asked))
    (f,) = [f for f in tm.findings if f.rule_id == "MLH-ML-EXTRACTION-API"]
    route = f.evidence["output_seen_by"]
    assert [h["element"] for h in route] == ["model", "decision", "clerk"]
    assert route[1]["as"] == "reply to its request" and route[-1]["party"] is True


def _agent(tool_flows: list[dict[str, Any]], **payment: Any) -> dict:
    """An LLM-driven planner with a flight lookup at a vendor, a note writer and a payment
    tool."""
    return {
        "name": "agent",
        "data_assets": [
            {"id": "fares", "classification": "internal"},
            {"id": "payment", "classification": "cardholder", "integrity": "critical"},
        ],
        "elements": [
            {"id": "llm", "kind": "llm", "operated_by": "vendor"},
            {"id": "planner", "kind": "orchestrator", "data": ["fares", "payment"]},
            {"id": "flights", "kind": "agent_tool", "data": ["fares"]},
            {"id": "gds", "kind": "external_entity", "operated_by": "vendor", "data": ["fares"]},
            {"id": "pay", "kind": "agent_tool", "data": ["payment"], **payment},
            {"id": "psp", "kind": "external_entity", "operated_by": "vendor", "data": ["payment"]},
            {"id": "notes", "kind": "agent_tool", "data": ["fares"]},
            {"id": "notes-db", "kind": "data_store", "data": ["fares"]},
        ],
        "flows": [
            {"id": "prompt", "source": "planner", "target": "llm"},
            {"id": "calls", "source": "llm", "target": "planner"},
            {"id": "search", "source": "planner", "target": "flights", "data": ["fares"]},
            {"id": "query", "source": "flights", "target": "gds", "data": ["fares"]},
            {"id": "offers", "source": "gds", "target": "flights", "data": ["fares"]},
            {"id": "back", "source": "flights", "target": "planner", "data": ["fares"]},
            {"id": "charge", "source": "planner", "target": "pay", "data": ["payment"]},
            {"id": "note", "source": "planner", "target": "notes", "data": ["fares"]},
            {"id": "write", "source": "notes", "target": "notes-db", "data": ["fares"]},
            *tool_flows,
        ],
    }


def test_a_read_only_lookup_is_no_excessive_agency_and_a_payment_heads_it() -> None:
    system = _agent(
        [{"id": "psp-charge", "source": "pay", "target": "psp", "data": ["payment"]}],
        limits=["at most 1500 EUR per booking"],
        audit_logging=True,
    )
    linked = system_from_dict(system)
    tm = build_threat_model(linked)  # the reachability pass reads what each tool can do
    agency = {e.id: e.agency for e in linked.elements}
    assert (agency["flights"], agency["notes"], agency["pay"]) == (0, 2, 3)
    (f,) = [f for f in tm.findings if f.rule_id == "MLH-LLM-EXCESSIVE-AGENCY"]
    # The lookup is out; the tool that pays ranks above the one that writes.
    assert "flights" not in f.affected
    assert f.affected.index("pay") < f.affected.index("notes")
    # The cap and the log bound the loss; they neither confirm the payment nor hide it.
    detail = f.evidence["per_target"]["pay"]
    assert "loss bounded by" in detail["risk_explanation"]
    assert {"least_privilege", "audit_logging"} <= set(detail["controls_in_place"])


def test_records_the_law_requires_are_no_non_repudiation_threat() -> None:
    def upload(basis: str | None) -> dict:
        asset: dict[str, Any] = {"id": "id-doc", "classification": "personal"}
        if basis:
            asset["lawful_basis"] = basis
        return {
            "name": "kyc",
            "data_assets": [asset],
            "elements": [
                {"id": "applicant", "kind": "actor", "data": ["id-doc"]},
                {"id": "api", "kind": "process", "audit_logging": True, "data": ["id-doc"]},
            ],
            "flows": [
                {
                    "id": "upload",
                    "source": "applicant",
                    "target": "api",
                    "authenticated": True,
                    "data": ["id-doc"],
                }
            ],
        }

    rule = "MLH-LINDDUN-NONREPUDIATION-FLOW"
    assert rule in _rules_on(upload(None), "upload")
    assert rule in _rules_on(upload("consent"), "upload")
    assert rule not in _rules_on(upload("legal_obligation"), "upload")


def test_an_automated_decision_about_people_needs_an_output_about_people() -> None:
    def forecaster(out_class: str) -> dict:
        """A model trained on people's meter readings whose output commands a dispatcher."""
        return {
            "name": "forecast",
            "data_assets": [
                {"id": "meters", "classification": "personal", "data_subjects": ["households"]},
                {"id": "forecast", "classification": out_class, "integrity": "critical"},
            ],
            "elements": [
                {"id": "features", "kind": "data_store", "data": ["meters"]},
                {
                    "id": "model",
                    "kind": "inference_api",
                    "data": ["meters", "forecast"],
                    "model": {"task": "regression", "output": "scores", "human_review": False},
                },
                {"id": "dispatch", "kind": "process", "data": ["forecast"]},
            ],
            "flows": [
                {"id": "read", "source": "features", "target": "model", "data": ["meters"]},
                {"id": "push", "source": "model", "target": "dispatch", "data": ["forecast"]},
            ],
        }

    rule = "MLH-LINDDUN-UNAWARENESS-AUTOMATED-DECISION"
    # People's data goes in, a load figure comes out: a decision about no one.
    assert rule not in _rules_on(forecaster("confidential"), "model")
    # The same model whose output is about people (a score per household) decides about them.
    assert rule in _rules_on(forecaster("personal"), "model")
