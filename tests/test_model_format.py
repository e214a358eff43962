"""The system-description fields that say what a reviewer needs to know: each one changes the
threat model the way it should, so each test compares a small system with and without it."""

from __future__ import annotations

import copy
from typing import Any

from mlhunt.system import load_system, system_from_dict
from mlhunt.threatmodel import build_threat_model
from mlhunt.threatmodel.grouping import unfold
from tests.conftest import EXAMPLES

Hits = dict[tuple[str, str], tuple[str, float]]


def hits(system: dict[str, Any], assume: str = "absent") -> Hits:
    """(rule, element or flow) -> (status, risk) of every rule hit, groups unfolded."""
    out: Hits = {}
    for f in build_threat_model(system_from_dict(system), assume=assume).findings:
        per = f.evidence.get("per_target") or {}
        for (rule, target), status in unfold(f.to_dict()).items():
            out[(rule, target)] = (status, (per.get(target) or {}).get("risk", f.risk))
    return out


def lowered(before: Hits, after: Hits, key: tuple[str, str]) -> bool:
    """The hit is gone, mitigated, or its risk went down."""
    if key not in after:
        return True
    return after[key][0] == "mitigated" or after[key][1] < before[key][1]


LLM = {"algorithm": "transformer", "input_type": "text", "output": "text"}


def _bus() -> dict[str, Any]:
    return {
        "name": "events",
        "data_assets": [{"id": "ev", "classification": "personal"}],
        "elements": [
            {"id": "app", "kind": "process", "data": ["ev"], "authentication": "mtls"},
            {"id": "bus", "kind": "message_bus", "data": ["ev"]},
            {"id": "scorer", "kind": "inference_api", "data": ["ev"], "model": {}},
        ],
        "flows": [
            {"id": "pub", "source": "app", "target": "bus", "data": ["ev"]},
            {"id": "sub", "source": "bus", "target": "scorer", "data": ["ev"]},
        ],
    }


def test_message_bus_authentication_tls_and_acls() -> None:
    base = hits(_bus())
    assert ("MLH-STRIDE-S-DATASTORE-NO-AUTH", "bus") in base
    assert ("MLH-STRIDE-I-FLOW-CLEARTEXT", "sub") in base

    authenticated = _bus()
    authenticated["elements"][1]["authentication"] = "mtls"
    assert ("MLH-STRIDE-S-DATASTORE-NO-AUTH", "bus") not in hits(authenticated)

    tls = _bus()
    for f in tls["flows"]:
        f["encrypted"] = True
    with_tls = hits(tls)
    for flow in ("pub", "sub"):
        assert ("MLH-STRIDE-I-FLOW-CLEARTEXT", flow) not in with_tls
        assert ("MLH-STRIDE-T-FLOW-UNENCRYPTED", flow) not in with_tls

    acls = _bus()
    acls["elements"][1]["acls"] = True
    with_acls = hits(acls)
    assert lowered(base, with_acls, ("MLH-STRIDE-T-DATASTORE", "bus"))
    assert lowered(base, with_acls, ("MLH-LINDDUN-DISCLOSURE-STORE", "bus"))


def test_deidentification_method_counts_as_a_control() -> None:
    base = hits(_bus())
    for method in ("tokenized", "pseudonymized"):
        system = _bus()
        system["data_assets"][0]["deidentification"] = method
        after = hits(system)
        assert ("MLH-LINDDUN-IDENTIFYING-STORE", "bus") not in after, method
        assert ("MLH-LINDDUN-IDENTIFYING-FLOW", "sub") not in after, method
        assert lowered(base, after, ("MLH-LINDDUN-DISCLOSURE-STORE", "bus")), method
    # Only when every personal asset carried is de-identified: one raw asset keeps the risk.
    mixed = _bus()
    mixed["data_assets"][0]["deidentification"] = "tokenized"
    mixed["data_assets"].append({"id": "raw", "classification": "personal"})
    mixed["flows"][1]["data"].append("raw")
    assert ("MLH-LINDDUN-IDENTIFYING-FLOW", "sub") in hits(mixed)


def test_lifecycle_planned_marks_design_requirements() -> None:
    system = _bus()
    system["elements"][2]["lifecycle"] = "planned"
    tm = build_threat_model(system_from_dict(system), assume="absent")
    on_scorer = [f for f in tm.findings if f.target == "scorer"]
    assert on_scorer
    for f in on_scorer:
        assert f.evidence.get("planned") == ["scorer"], f.id
    # A flow into the planned element is a requirement too; the built ones are not.
    for f in tm.findings:
        if f.target in ("app", "bus", "pub"):
            assert "planned" not in f.evidence, f.id
    built = build_threat_model(system_from_dict(_bus()), assume="absent")
    assert not any("planned" in f.evidence for f in built.findings)


def _trainer(**model: Any) -> dict[str, Any]:
    return {
        "name": "training",
        "data_assets": [{"id": "d", "classification": "internal"}],
        "elements": [
            {"id": "store", "kind": "data_store", "data": ["d"]},
            {"id": "trainer", "kind": "training_job", "data": ["d"], "model": model},
        ],
        "flows": [{"id": "read", "source": "store", "target": "trainer", "data": ["d"]}],
    }


def test_several_training_sources_each_with_its_provenance() -> None:
    internal = hits(_trainer(training_data_provenance="internal"))
    assert ("MLH-ML-POISONING-UNTRUSTED-SOURCE", "trainer") not in internal
    # The least trusted source counts: one third-party source among internal ones.
    mixed = hits(
        _trainer(
            training_data_provenance="internal",
            training_sources=[
                {"name": "own history", "provenance": "internal"},
                {"name": "vendor labels", "provenance": "third_party"},
            ],
        )
    )
    assert ("MLH-ML-POISONING-UNTRUSTED-SOURCE", "trainer") in mixed
    # Pretrained weights from a hub are a supply-chain matter, not poisoned training records.
    weights = hits(
        _trainer(
            training_sources=[
                {"name": "hub backbone", "provenance": "public_scraped", "weights": True}
            ]
        )
    )
    assert ("MLH-ML-TRANSFER-LEARNING", "trainer") in weights
    assert ("MLH-ML-TRANSFER-LEARNING", "trainer") not in internal
    assert ("MLH-ML-POISONING-UNTRUSTED-SOURCE", "trainer") not in weights


def _llm(**extra: Any) -> dict[str, Any]:
    return {
        "name": "chat",
        "data_assets": [{"id": "q", "classification": "personal"}],
        "elements": [
            {"id": "user", "kind": "actor"},
            {"id": "llm", "kind": "llm", "internet_facing": True, "data": ["q"], "model": LLM}
            | extra,
        ],
        "flows": [{"id": "ask", "source": "user", "target": "llm", "data": ["q"]}],
    }


def test_token_budget_bounds_consumption() -> None:
    assert ("MLH-LLM-UNBOUNDED-CONSUMPTION", "llm") in hits(_llm())
    budgeted = hits(_llm(budget="50k tokens per user per day"))
    assert ("MLH-LLM-UNBOUNDED-CONSUMPTION", "llm") not in budgeted


def _agent(kind: str, limits: list[str] | None = None) -> dict[str, Any]:
    tool: dict[str, Any] = {"id": "refund", "kind": "agent_tool"}
    if limits is not None:
        tool["limits"] = limits
    return {
        "name": "agent",
        "data_assets": [],
        "elements": [
            {"id": "user", "kind": "actor"},
            {"id": "orch", "kind": kind},
            {"id": "llm", "kind": "llm", "model": LLM},
            tool,
        ],
        "flows": [
            {"id": "ask", "source": "user", "target": "orch"},
            {"id": "gen", "source": "orch", "target": "llm"},
            {"id": "call", "source": "orch", "target": "refund"},
        ],
    }


def test_orchestrator_that_lets_the_llm_choose_tools() -> None:
    orchestrated = hits(_agent("orchestrator"))
    assert ("MLH-LLM-EXCESSIVE-AGENCY", "orch") in orchestrated
    assert ("MLH-LLM-EXCESSIVE-AGENCY", "orch") not in hits(_agent("process"))


def test_tool_limits_count_as_least_privilege() -> None:
    unlimited = hits(_agent("orchestrator"))
    limited = hits(_agent("orchestrator", ["refund <= 100 EUR", "own orders only"]))
    touched = [k for k in unlimited if k[1] == "refund"]
    assert touched
    assert any(lowered(unlimited, limited, k) for k in touched)


def test_data_trust_decides_what_is_a_source_of_taint() -> None:
    def rag(trust: str) -> dict[str, Any]:
        return {
            "name": "rag",
            "data_assets": [{"id": "docs", "classification": "internal", "trust": trust}],
            "elements": [
                {"id": "wiki", "kind": "data_store", "data": ["docs"]},
                {"id": "vectors", "kind": "vector_store", "data": ["docs"]},
                {"id": "llm", "kind": "llm", "model": LLM},
            ],
            "flows": [
                {"id": "index", "source": "wiki", "target": "vectors", "data": ["docs"]},
                {"id": "retrieve", "source": "vectors", "target": "llm", "data": ["docs"]},
            ],
        }

    def model(trust: str) -> Any:
        return build_threat_model(system_from_dict(rag(trust)), assume="absent")

    rule = "MLH-LLM-PROMPT-INJECTION-INDIRECT"
    internal = model("internal")
    assert not internal.attack_paths
    base = next(f for f in internal.findings if f.rule_id == rule)
    for trust in ("untrusted", "partner"):
        tm = model(trust)
        assert any(p["sink"] == "llm" for p in tm.attack_paths), trust
        f = next(f for f in tm.findings if f.rule_id == rule)
        assert f.risk > base.risk, (trust, f.risk, base.risk)
        assert [h["element"] for h in f.evidence["attack_path"]] == ["wiki", "vectors"], trust


def test_the_examples_use_the_fields_where_they_describe_the_system() -> None:
    """The examples say what they are: tokenized card data, per-topic ACLs, several training
    sources with their provenance; the fraud example's third-party labels reach the model."""
    fraud = load_system(EXAMPLES / "fraud-detection" / "system.yaml")
    tokenized = next(a for a in fraud.data_assets if a.id == "tokenized-txn")
    assert tokenized.deidentification.value == "tokenized"
    bus = next(e for e in fraud.elements if e.id == "txn-ingestion")
    assert bus.acls
    trainer = next(e for e in fraud.elements if e.id == "training-job")
    assert trainer.model is not None and trainer.model.untrusted_training_data
    tm = build_threat_model(fraud)
    assert any(
        ("MLH-ML-POISONING-UNTRUSTED-SOURCE", "training-job") in unfold(f.to_dict())
        for f in tm.findings
    ), "chargeback labels from the card network are a third-party training source"

    for name in ("clickstream-recommender", "loan-approval"):
        system = load_system(EXAMPLES / name / "system.yaml")
        assert any(e.model and e.model.training_sources for e in system.elements), name


def test_planned_copy_keeps_others_unchanged() -> None:
    """Planning one element changes no other element's findings."""
    system = _bus()
    planned = copy.deepcopy(system)
    planned["elements"][0]["lifecycle"] = "planned"
    assert hits(system) == hits(planned)


def test_an_untrusted_training_source_is_an_exposure_factor() -> None:
    from mlhunt.threatmodel.catalog import FACTOR_BIT, LikelihoodFactor
    from mlhunt.threatmodel.risk import profile_element

    def factor(model: dict[str, Any]) -> bool:
        system = system_from_dict(_trainer(**model))
        trainer = next(e for e in system.elements if e.id == "trainer")
        mask = profile_element(trainer).factor_mask
        return bool(mask & FACTOR_BIT[LikelihoodFactor.UNTRUSTED_DATA])

    assert not factor({"training_data_provenance": "internal"})
    assert factor({"training_data_provenance": "third_party"})
    assert factor(
        {
            "training_data_provenance": "internal",
            "training_sources": [{"name": "vendor labels", "provenance": "third_party"}],
        }
    )
