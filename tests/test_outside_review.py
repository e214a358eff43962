"""Issue #22 acceptance: `mlhunt model` on systems an outside reviewer wrote (tests/outside_review).

Each system's ``expected.yaml`` was written before mlhunt ran on it and before its rule catalogue
was read; ``judgement.md`` judges every finding. This test scores the threat model against the
expectations as the acceptance states them: recall >= 95% (on the right element or flow), the
must-haves among the ten highest risks, at most 30 findings, and none of the findings judged
wrong for the system (``wrong`` in ``expected.yaml``) comes back.

The second review (``second-review/``: a KYC pipeline and a travel-booking agent, by another
reviewer) is scored the same way, on its own: its systems were scored before any fix, and the
fixes since were made on its misses, so it is no longer unseen either (see the README).

The third review (``third-review/``: compressor predictive maintenance and a CV-screening
agent, by a third reviewer, written in its own layout: ``expectations`` with one ``at`` plus
``also_at`` and ``must``) missed recall and the must-haves before and after the second review's
fixes; the fixes made on its misses meet every bar, so it is seen now too (see the README).

The fourth review (``fourth-review/``: a grid load forecaster driving automatic dispatch and a
text-to-SQL agent in Slack, by a fourth reviewer) met recall, must-haves and count as it came
out, but not the grid's wrong fraction; the fix made on it (query attacks need a party that
chooses the model's input, automated decisions an output about a person) meets every bar, so it
is seen now too (see the README).

The fifth review (``fifth-review/``: a phishing classifier retrained on employees' reports and
a multi-tenant contract-review RAG SaaS, by a fifth reviewer) missed must-haves, count and the
wrong fraction as it came out; the fix made on it (i22d: a process that consumes a score is no
oracle, privileged automation driven by outsiders' input, ``multi_tenant``, causes grouped)
meets every bar, so it is seen now too (see the README).

The sixth review (``sixth-review/``: a game anti-cheat model with automatic bans and a
multi-hospital medical-coding LLM agent, by a sixth reviewer) missed recall and a must-have as it
came out; the fixes made on it (i22e: automated bans on a score, decisions about children, a
vendor-run fine-tune, outsiders' content rendered to staff, tenants behind an application, broad
grants at a partner's source, input in another's name) meet every bar but recall (26/28), which
stays xfail (strict) with the two misses named. It is seen now too (see the README).

The seventh review (``seventh-review/``: a city's ANPR traffic enforcement with on-device OCR
and automatic fines, and a hedge fund's trading signals from LLM-scored news and social posts,
by a seventh reviewer) is scored the same way, with no fix made on it; the bars it misses
are xfail (strict), with the misses named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhunt.system import load_system
from mlhunt.threatmodel import build_threat_model

HERE = Path(__file__).parent / "outside_review"
SECOND = HERE / "second-review"
SYSTEMS = sorted(p.name for p in HERE.iterdir() if (p / "expected.yaml").is_file())
SECOND_SYSTEMS = sorted(p.name for p in SECOND.iterdir() if (p / "expected.yaml").is_file())
THIRD = HERE / "third-review"
THIRD_SYSTEMS = sorted(p.name for p in THIRD.iterdir() if (p / "expected.yaml").is_file())
FOURTH = HERE / "fourth-review"
FOURTH_SYSTEMS = sorted(p.name for p in FOURTH.iterdir() if (p / "expected.yaml").is_file())
FIFTH = HERE / "fifth-review"
FIFTH_SYSTEMS = sorted(p.name for p in FIFTH.iterdir() if (p / "expected.yaml").is_file())
SIXTH = HERE / "sixth-review"
SIXTH_SYSTEMS = sorted(p.name for p in SIXTH.iterdir() if (p / "expected.yaml").is_file())


def rules_on(finding: dict[str, Any], target: str) -> set[str]:
    """The rules of a (possibly grouped) finding that hit ``target``."""
    if target not in (finding.get("affected") or [finding["target"]]):
        return set()
    per = (finding.get("evidence") or {}).get("per_target", {}).get(target, {})
    return set(per.get("rules") or ()) or {finding["rule_id"]}


def matches(threat: dict[str, Any], finding: dict[str, Any]) -> bool:
    """One of the rules the reviewer accepts for this threat hits one of its elements or flows."""
    return any(rules_on(finding, t) & set(threat["met_by"]) for t in threat["at"])


def threats_of(expected: dict[str, Any]) -> list[dict[str, Any]]:
    """The reviewer's threats in one layout: ``at`` a list, ``must_have`` a flag.

    The third review wrote ``expectations`` with a single ``at``, the other accepted places in
    ``also_at`` and ``must``; the first two wrote ``threats`` with ``at`` lists.
    """
    if "threats" in expected:
        return list(expected["threats"])
    return [
        {
            "id": e["id"],
            "at": [e["at"], *e.get("also_at", [])],
            "met_by": e.get("met_by") or [],
            "must_have": bool(e.get("must")),
        }
        for e in expected["expectations"]
    ]


def score(system: str, where: Path = HERE) -> dict[str, Any]:
    """Expectations met, must-haves outside the top ten, count and wrong findings back."""
    expected = yaml.safe_load((where / system / "expected.yaml").read_text(encoding="utf-8"))
    doc = build_threat_model(load_system(where / system / "system.yaml")).to_document()
    findings = doc["findings"]
    met, missed, late, musts_missed = [], [], [], []
    for threat in threats_of(expected):
        ranks = [i for i, f in enumerate(findings) if matches(threat, f)]
        (met if ranks else missed).append(threat["id"])
        if ranks and threat.get("must_have") and ranks[0] >= 10:
            late.append((threat["id"], ranks[0] + 1))
        if not ranks and threat.get("must_have"):
            musts_missed.append(threat["id"])
    wrong = [w.split("@", 1) for w in expected.get("wrong") or ()]
    back = [f"{r}@{t}" for r, t in wrong if any(r in rules_on(f, t) for f in findings)]
    return {
        "met": len(met),
        "expected": len(met) + len(missed),
        "missed": missed,
        "must_haves_late": late,
        "must_haves_missed": musts_missed,
        "count": len(findings),
        "wrong_back": back,
        "findings": findings,
    }


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, Any]]:
    return {s: score(s) for s in SYSTEMS}


def test_three_outside_systems() -> None:
    assert len(SYSTEMS) >= 3


def test_recall(scores: dict[str, dict[str, Any]]) -> None:
    # Over the three systems together; each system's misses are named in judgement.md.
    met = sum(s["met"] for s in scores.values())
    expected = sum(s["expected"] for s in scores.values())
    missed = {name: s["missed"] for name, s in scores.items() if s["missed"]}
    assert met / expected >= 0.95, missed


@pytest.mark.parametrize("system", SYSTEMS)
def test_must_haves_in_top_ten(system: str, scores: dict[str, dict[str, Any]]) -> None:
    assert scores[system]["must_haves_late"] == []


@pytest.mark.parametrize("system", SYSTEMS)
def test_at_most_thirty_findings(system: str, scores: dict[str, dict[str, Any]]) -> None:
    assert scores[system]["count"] <= 30


@pytest.mark.parametrize("system", SYSTEMS)
def test_findings_judged_wrong_stay_gone(system: str, scores: dict[str, dict[str, Any]]) -> None:
    assert scores[system]["wrong_back"] == []


@pytest.fixture(scope="module")
def second() -> dict[str, dict[str, Any]]:
    return {s: score(s, SECOND) for s in SECOND_SYSTEMS}


def test_second_review_has_two_systems() -> None:
    assert SECOND_SYSTEMS == ["kyc-identity-verification", "travel-booking-agent"]


def test_second_review_recall(second: dict[str, dict[str, Any]]) -> None:
    # 28 expectations: 95% allows one miss over both systems.
    met = sum(s["met"] for s in second.values())
    expected = sum(s["expected"] for s in second.values())
    missed = {name: s["missed"] for name, s in second.items() if s["missed"]}
    assert met / expected >= 0.95, missed


@pytest.mark.parametrize("system", SECOND_SYSTEMS)
def test_second_review_must_haves_in_top_ten(
    system: str, second: dict[str, dict[str, Any]]
) -> None:
    assert second[system]["must_haves_late"] == []


@pytest.mark.parametrize("system", SECOND_SYSTEMS)
def test_second_review_at_most_thirty_findings(
    system: str, second: dict[str, dict[str, Any]]
) -> None:
    assert second[system]["count"] <= 30


@pytest.mark.parametrize("system", SECOND_SYSTEMS)
def test_second_review_wrong_findings_stay_gone(
    system: str, second: dict[str, dict[str, Any]]
) -> None:
    assert second[system]["wrong_back"] == []


def test_payment_tool_heads_excessive_agency(second: dict[str, dict[str, Any]]) -> None:
    # The tool that moves money ranks first in its group; the read-only flight search is out.
    (f,) = [
        f
        for f in second["travel-booking-agent"]["findings"]
        if f["rule_id"] == "MLH-LLM-EXCESSIVE-AGENCY"
    ]
    assert f["affected"][0] == "payment-tool" and "flight-tool" not in f["affected"]


def test_query_attacks_only_where_a_party_sees_the_output(
    second: dict[str, dict[str, Any]],
) -> None:
    query = {"MLH-ML-EXTRACTION-API", "MLH-ML-MEMBERSHIP-INFERENCE", "MLH-ML-MODEL-INVERSION"}
    kyc = second["kyc-identity-verification"]["findings"]
    assert not [f["id"] for f in kyc if f["rule_id"] in query]


# Third review: scored before and after the fixes made on it (see its judgement.md files and
# the README); every bar is met after them.
@pytest.fixture(scope="module")
def third() -> dict[str, dict[str, Any]]:
    return {s: score(s, THIRD) for s in THIRD_SYSTEMS}


def test_third_review_has_two_systems() -> None:
    assert THIRD_SYSTEMS == ["compressor-predictive-maintenance", "cv-screening-agent"]


def test_third_review_recall(third: dict[str, dict[str, Any]]) -> None:
    met = sum(s["met"] for s in third.values())
    expected = sum(s["expected"] for s in third.values())
    missed = {name: s["missed"] for name, s in third.items() if s["missed"]}
    assert met / expected >= 0.95, missed


@pytest.mark.parametrize("system", THIRD_SYSTEMS)
def test_third_review_must_haves_in_top_ten(system: str, third: dict[str, dict[str, Any]]) -> None:
    s = third[system]
    assert (s["must_haves_missed"], s["must_haves_late"]) == ([], [])


@pytest.mark.parametrize("system", THIRD_SYSTEMS)
def test_third_review_at_most_thirty_findings(
    system: str, third: dict[str, dict[str, Any]]
) -> None:
    assert third[system]["count"] <= 30


@pytest.mark.parametrize("system", THIRD_SYSTEMS)
def test_third_review_at_most_one_in_ten_wrong(
    system: str, third: dict[str, dict[str, Any]]
) -> None:
    # The reviewer's bar: the findings judged wrong that still come back, over all findings.
    s = third[system]
    assert len(s["wrong_back"]) <= s["count"] / 10, s["wrong_back"]


# Fourth review: scored before and after the fix made on it (see its judgement.md files and
# the README); every bar is met after it.
@pytest.fixture(scope="module")
def fourth() -> dict[str, dict[str, Any]]:
    return {s: score(s, FOURTH) for s in FOURTH_SYSTEMS}


def test_fourth_review_has_two_systems() -> None:
    assert FOURTH_SYSTEMS == ["grid-load-forecaster", "text-to-sql-assistant"]


def test_fourth_review_recall(fourth: dict[str, dict[str, Any]]) -> None:
    # 28 expectations: 95% allows one miss over both systems (the SQL agent's shared-role
    # repudiation is the one).
    met = sum(s["met"] for s in fourth.values())
    expected = sum(s["expected"] for s in fourth.values())
    missed = {name: s["missed"] for name, s in fourth.items() if s["missed"]}
    assert met / expected >= 0.95, missed


@pytest.mark.parametrize("system", FOURTH_SYSTEMS)
def test_fourth_review_must_haves_in_top_ten(
    system: str, fourth: dict[str, dict[str, Any]]
) -> None:
    s = fourth[system]
    assert (s["must_haves_missed"], s["must_haves_late"]) == ([], [])


@pytest.mark.parametrize("system", FOURTH_SYSTEMS)
def test_fourth_review_at_most_thirty_findings(
    system: str, fourth: dict[str, dict[str, Any]]
) -> None:
    assert fourth[system]["count"] <= 30


@pytest.mark.parametrize("system", FOURTH_SYSTEMS)
def test_fourth_review_at_most_one_in_ten_wrong(
    system: str, fourth: dict[str, dict[str, Any]]
) -> None:
    s = fourth[system]
    assert len(s["wrong_back"]) <= s["count"] / 10, s["wrong_back"]


@pytest.mark.parametrize("system", FOURTH_SYSTEMS)
def test_fourth_review_wrong_findings_stay_gone(
    system: str, fourth: dict[str, dict[str, Any]]
) -> None:
    # Stricter than the reviewer's bar: none of the four judged wrong comes back after the fix.
    assert fourth[system]["wrong_back"] == []


# Fifth review: scored as it came out (see its judgement.md files and the README), with the
# bars it missed xfail (strict), then fixed (i22d): every bar is met, no xfail is left.
PHISHING = "phishing-report-retraining"
LEGAL = "legal-contract-rag-saas"


@pytest.fixture(scope="module")
def fifth() -> dict[str, dict[str, Any]]:
    return {s: score(s, FIFTH) for s in FIFTH_SYSTEMS}


def test_fifth_review_has_two_systems() -> None:
    assert FIFTH_SYSTEMS == [LEGAL, PHISHING]


def test_fifth_review_recall(fifth: dict[str, dict[str, Any]]) -> None:
    # 28 expectations: 95% allows one miss over both systems. As it came out the one was the
    # phishing system's automated-purge-abuse (12/13 there); the fix (i22d) meets it.
    met = sum(s["met"] for s in fifth.values())
    expected = sum(s["expected"] for s in fifth.values())
    missed = {name: s["missed"] for name, s in fifth.items() if s["missed"]}
    assert met / expected >= 0.95, missed


@pytest.mark.parametrize("system", FIFTH_SYSTEMS)
def test_fifth_review_must_haves_in_top_ten(system: str, fifth: dict[str, dict[str, Any]]) -> None:
    s = fifth[system]
    assert (s["must_haves_missed"], s["must_haves_late"]) == ([], [])


@pytest.mark.parametrize("system", FIFTH_SYSTEMS)
def test_fifth_review_at_most_thirty_findings(
    system: str, fifth: dict[str, dict[str, Any]]
) -> None:
    assert fifth[system]["count"] <= 30


@pytest.mark.parametrize("system", FIFTH_SYSTEMS)
def test_fifth_review_at_most_one_in_ten_wrong(
    system: str, fifth: dict[str, dict[str, Any]]
) -> None:
    # Stricter than the bar since the fix (i22d): none of the three judged wrong comes back.
    assert fifth[system]["wrong_back"] == []


# Sixth review: scored as it came out, then fixed (i22e, see the README). Recall, still missed,
# is xfail (strict), so a fix that meets it shows up as XPASS.
ANTICHEAT = "anticheat-autoban"
CODING = "medical-coding-llm"


@pytest.fixture(scope="module")
def sixth() -> dict[str, dict[str, Any]]:
    return {s: score(s, SIXTH) for s in SIXTH_SYSTEMS}


def test_sixth_review_has_two_systems() -> None:
    assert SIXTH_SYSTEMS == [ANTICHEAT, CODING]


@pytest.mark.xfail(
    strict=True,
    reason="26/28 (92.9%) after i22e: anti-cheat misses telemetry-dos (DoS found on the "
    "unlimited scorer, not the rate-limited entry), coding misses claim-repudiation (the tool "
    "states audit_logging)",
)
def test_sixth_review_recall(sixth: dict[str, dict[str, Any]]) -> None:
    # 28 expectations: 95% allows one miss over both systems.
    met = sum(s["met"] for s in sixth.values())
    expected = sum(s["expected"] for s in sixth.values())
    missed = {name: s["missed"] for name, s in sixth.items() if s["missed"]}
    assert met / expected >= 0.95, missed


@pytest.mark.parametrize("system", SIXTH_SYSTEMS)
def test_sixth_review_must_haves_in_top_ten(system: str, sixth: dict[str, dict[str, Any]]) -> None:
    s = sixth[system]
    assert (s["must_haves_missed"], s["must_haves_late"]) == ([], [])


@pytest.mark.parametrize("system", SIXTH_SYSTEMS)
def test_sixth_review_at_most_thirty_findings(
    system: str, sixth: dict[str, dict[str, Any]]
) -> None:
    assert sixth[system]["count"] <= 30


@pytest.mark.parametrize("system", SIXTH_SYSTEMS)
def test_sixth_review_at_most_one_in_ten_wrong(
    system: str, sixth: dict[str, dict[str, Any]]
) -> None:
    # Stricter than the bar since the fix (i22e): the admission finding judged wrong stays gone.
    assert sixth[system]["wrong_back"] == []


# Seventh review: scored as it came out and again after main's i22e fixes (made on the sixth
# review, not on this one), with the same result (see its judgement.md files and the README). A
# bar a system misses is xfail (strict), so a fix that meets it shows up as XPASS.
SEVENTH = HERE / "seventh-review"
SEVENTH_SYSTEMS = sorted(p.name for p in SEVENTH.iterdir() if (p / "expected.yaml").is_file())
ANPR = "anpr-enforcement"
TRADING = "news-trading-signals"


def seventh_param(system: str, misses: dict[str, str]) -> Any:
    """``system`` as a parameter, xfail (strict) with its misses where it misses the bar."""
    if system not in misses:
        return system
    return pytest.param(system, marks=pytest.mark.xfail(strict=True, reason=misses[system]))


@pytest.fixture(scope="module")
def seventh() -> dict[str, dict[str, Any]]:
    return {s: score(s, SEVENTH) for s in SEVENTH_SYSTEMS}


def test_seventh_review_has_two_systems() -> None:
    assert SEVENTH_SYSTEMS == [ANPR, TRADING]


@pytest.mark.xfail(
    strict=True,
    reason="26/29 (89.7%): ANPR misses edge-device-extraction; trading misses "
    "automated-trading-no-human, scraper-ssrf",
)
def test_seventh_review_recall(seventh: dict[str, dict[str, Any]]) -> None:
    # 29 expectations: 95% allows one miss over both systems.
    met = sum(s["met"] for s in seventh.values())
    expected = sum(s["expected"] for s in seventh.values())
    missed = {name: s["missed"] for name, s in seventh.items() if s["missed"]}
    assert met / expected >= 0.95, missed


@pytest.mark.parametrize(
    "system",
    [
        seventh_param(
            s,
            {
                ANPR: "unsigned-ota-model 11th, forged-reads 13th",
                TRADING: "forged-signals-bus 11th",
            },
        )
        for s in SEVENTH_SYSTEMS
    ],
)
def test_seventh_review_must_haves_in_top_ten(
    system: str, seventh: dict[str, dict[str, Any]]
) -> None:
    s = seventh[system]
    assert (s["must_haves_missed"], s["must_haves_late"]) == ([], [])


@pytest.mark.parametrize("system", SEVENTH_SYSTEMS)
def test_seventh_review_at_most_thirty_findings(
    system: str, seventh: dict[str, dict[str, Any]]
) -> None:
    assert seventh[system]["count"] <= 30


@pytest.mark.parametrize(
    "system",
    [
        seventh_param(
            s,
            {
                ANPR: "5/25 wrong: admission policy on a GPU VM, non-repudiation of the keeper "
                "lookup, extraction / membership / inversion on an on-device OCR nobody queries",
                TRADING: "4/26 wrong: sensitive-information disclosure and system-prompt leakage "
                "on an LLM whose replies nobody reads, profiling on a per-ticker scraper, "
                "natural corruption on a time-series model",
            },
        )
        for s in SEVENTH_SYSTEMS
    ],
)
def test_seventh_review_at_most_one_in_ten_wrong(
    system: str, seventh: dict[str, dict[str, Any]]
) -> None:
    s = seventh[system]
    assert len(s["wrong_back"]) <= s["count"] / 10, s["wrong_back"]
