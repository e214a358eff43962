"""The LLM hunt on the simulated helpdesk-agent range: every attack style and variant caught by
its detector, in the gateway log and in the OTel GenAI traces of the same traffic, and at most
1% of benign users alerted at medium or above (the issue #25 goal)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import pytest

from mlhunt.llmhunt import HuntResult, SimulationResult, hunt, simulate

STYLE_DETECTOR = {
    "prompt_injection": "MLH-HUNT-LLM-PROMPT-INJECTION",
    "indirect_injection": "MLH-HUNT-LLM-INDIRECT-INJECTION",
    "prompt_extraction": "MLH-HUNT-LLM-PROMPT-LEAK",
    "sensitive_output": "MLH-HUNT-LLM-SENSITIVE-OUTPUT",
    "unbounded_consumption": "MLH-HUNT-LLM-CONSUMPTION",
    "excessive_agency": "MLH-HUNT-LLM-EXCESSIVE-AGENCY",
    "campaign": "MLH-HUNT-LLM-CAMPAIGN",
}
MEDIUM_UP = {"medium", "high", "critical"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(tmp_path_factory.mktemp("llmrange"), seed=7)


@pytest.fixture(scope="module", params=["gateway", "otel"])
def result(request: pytest.FixtureRequest, sim: SimulationResult) -> HuntResult:
    path: Path = getattr(sim, request.param)
    return hunt([path], canaries=[sim.canary])


def _by_target(res: HuntResult) -> dict[str, dict[str, str]]:
    """client -> {detector: severity}; a campaign's finding counts for each of its members."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for f in res.findings:
        for target in f.evidence.get("members") or [f.target]:
            out[target][f.rule_id] = f.severity.value
    return out


def test_range_has_the_workload_the_issue_asks_for(sim: SimulationResult) -> None:
    benign = [v for v in sim.labels.values() if v["label"] == "benign"]
    assert len(benign) >= 200
    heavy = {v["style"] for v in benign}
    assert {"support_bot", "long_documents", "security_questions"} <= heavy
    attacks = [v for v in sim.labels.values() if v["label"] == "attack"]
    variants: dict[str, set[str]] = defaultdict(set)
    for v in attacks:
        variants[v["style"]].add(v["variant"])
    assert set(variants) == set(STYLE_DETECTOR)
    assert all(len(v) >= 2 for v in variants.values()), variants


def test_every_attack_caught_by_its_detector(sim: SimulationResult, result: HuntResult) -> None:
    assert result.read.malformed_total == 0 and not result.errors
    alerted = _by_target(result)
    missed = [
        (client, v["style"], v["variant"])
        for client, v in sim.labels.items()
        if v["label"] == "attack" and STYLE_DETECTOR[v["style"]] not in alerted.get(client, {})
    ]
    assert missed == []


def test_benign_users_rarely_alerted(sim: SimulationResult, result: HuntResult) -> None:
    alerted = _by_target(result)
    benign = [c for c, v in sim.labels.items() if v["label"] == "benign"]
    noisy = [c for c in benign if MEDIUM_UP & set(alerted.get(c, {}).values())]
    # Goal: <= 1% (2 of 218); the range today has none, so one new false positive fails.
    assert len(noisy) / len(benign) <= 0.005, noisy


def test_detection_is_early_and_findings_are_complete(
    sim: SimulationResult, result: HuntResult
) -> None:
    first = {}
    for f in result.findings:
        if f.rule_id == "MLH-HUNT-LLM-CAMPAIGN":  # about many clients: its members are clients
            assert f.target.startswith("campaign-") and set(f.evidence["members"]) <= set(
                sim.labels
            )
            continue
        assert f.source == "hunt" and f.target in sim.labels
        ev = f.evidence
        assert {"detector", "first_event_ts", "detected_at_event", "score"} <= set(ev)
        assert ev["detector"] == f.rule_id and ev["owasp_llm"]
        assert f.atlas and f.id.startswith("hunt-")
        if sim.labels[f.target]["label"] == "attack":
            first[f.target] = min(first.get(f.target, 10**9), ev["detected_at_event"])
    assert statistics.median(first.values()) <= 20  # the issue's goal: within 20 events


def test_campaign_outranks_single_message(sim: SimulationResult, result: HuntResult) -> None:
    by = _by_target(result)
    inj = [
        by[c]["MLH-HUNT-LLM-PROMPT-INJECTION"]
        for c, v in sim.labels.items()
        if v["style"] == "prompt_injection"
    ]
    assert all(s in {"high", "critical"} for s in inj), inj


def test_campaigns_are_one_finding_each_with_exactly_their_members(
    sim: SimulationResult, result: HuntResult
) -> None:
    """Each campaign key sent one attempt (low alone); the campaign is one high finding."""
    camps = [f for f in result.findings if f.rule_id == "MLH-HUNT-LLM-CAMPAIGN"]
    expected: dict[str, set[str]] = defaultdict(set)
    for c, v in sim.labels.items():
        if v["style"] == "campaign":
            expected[v["variant"]].add(c)
    assert sorted(sorted(f.evidence["members"]) for f in camps) == sorted(
        sorted(m) for m in expected.values()
    )
    assert all(f.severity.value == "high" and f.evidence["detected_at_event"] == 3 for f in camps)
    by = _by_target(result)
    for members in expected.values():
        assert all(by[c]["MLH-HUNT-LLM-PROMPT-INJECTION"] == "low" for c in members)


def test_simulated_calls_say_so(result: HuntResult) -> None:
    assert result.read.calls and all(c.simulated for c in result.read.calls)
    doc = result.document()
    assert doc["command"] == "hunt" and doc["read"]["malformed"] == 0
    assert doc["summary"]["total"] == len(result.findings) == len(doc["findings"])
    assert doc["read"]["calls"] == len(result.read.calls)


def test_simulation_is_deterministic(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", seed=3, benign_users=3)
    b = simulate(tmp_path / "b", seed=3, benign_users=3)
    c = simulate(tmp_path / "c", seed=4, benign_users=3)
    assert a.gateway.read_bytes() == b.gateway.read_bytes()
    assert a.otel.read_bytes() == b.otel.read_bytes()
    assert a.gateway.read_bytes() != c.gateway.read_bytes()
