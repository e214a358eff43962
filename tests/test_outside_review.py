"""Issue #22 acceptance: `mlhunt model` on systems outside reviewers wrote (tests/outside_review).

Each system's ``expected.yaml`` was written before mlhunt ran on it and before its rule catalogue
was read; ``judgement.md`` judges every finding. This test scores the threat model against the
expectations as the acceptance states them: recall >= 95% (on the right element or flow), the
must-haves among the ten highest risks, at most 30 findings, and none of the findings judged
wrong for the system (``wrong`` in ``expected.yaml``) comes back, or, where the reviewer set that
bar, at most one in ten of the findings is one judged wrong.

Every review is scored the same way, on its own, from the table ``REVIEWS`` below: its folder,
its systems, the bars it is held to and the bars it is known to miss, which are xfail (strict)
with the misses named, so a fix that meets one turns the test red (XPASS). The README tells each
review's story (scored as it came out, the fixes made on its misses, which is why all but the
seventh are seen now).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhunt.system import load_system
from mlhunt.threatmodel import build_threat_model

HERE = Path(__file__).parent / "outside_review"


def systems_in(folder: Path) -> list[str]:
    """The systems of one review: the folders under it with an ``expected.yaml``."""
    return sorted(p.name for p in folder.iterdir() if (p / "expected.yaml").is_file())


SYSTEMS = systems_in(HERE)

# The bars a review can be held to (besides recall, which every review is held to).
TOP_TEN = "must_haves_in_top_ten"
THIRTY = "at_most_thirty_findings"
ONE_IN_TEN = "at_most_one_in_ten_wrong"
GONE = "findings_judged_wrong_stay_gone"
RECALL = "recall"


@dataclass(frozen=True)
class Review:
    """One outside review: where it is, what it holds, which bars it is held to and misses."""

    folder: Path
    systems: tuple[str, ...]  # what the folder must hold; () for the first (three or more)
    bars: tuple[str, ...]
    # Whether a must-have not found at all also fails the top ten (the first two reviews
    # counted only the must-haves found late).
    musts_missed_count: bool = True
    # (bar, system) -> why it is missed; system None for recall (over the review's systems).
    misses: dict[tuple[str, str | None], str] = field(default_factory=dict)


REVIEWS: dict[str, Review] = {
    # Three systems by the first reviewer; recall is over the three together, each system's
    # misses are named in its judgement.md.
    "first": Review(HERE, (), (TOP_TEN, THIRTY, GONE), musts_missed_count=False),
    # A KYC pipeline and a travel-booking agent, by another reviewer: scored before any fix; the
    # fixes since were made on its misses, so it is no longer unseen either. 28 expectations:
    # 95% allows one miss over both systems.
    "second-review": Review(
        HERE / "second-review",
        ("kyc-identity-verification", "travel-booking-agent"),
        (TOP_TEN, THIRTY, GONE),
        musts_missed_count=False,
    ),
    # Compressor predictive maintenance and a CV-screening agent, in the reviewer's own layout
    # (``expectations`` with one ``at`` plus ``also_at`` and ``must``): missed recall and the
    # must-haves before and after the second review's fixes; the fixes made on its misses meet
    # every bar. The reviewer's wrong bar: the findings judged wrong that come back, over all.
    "third-review": Review(
        HERE / "third-review",
        ("compressor-predictive-maintenance", "cv-screening-agent"),
        (TOP_TEN, THIRTY, ONE_IN_TEN),
    ),
    # A grid load forecaster driving automatic dispatch and a text-to-SQL agent in Slack: met
    # recall, must-haves and count as it came out, not the grid's wrong fraction; the fix made on
    # it (query attacks need a party that chooses the model's input, automated decisions an
    # output about a person) meets every bar, and stricter than the reviewer's bar none of the
    # four judged wrong comes back. Of 28 expectations the one miss is the SQL agent's
    # shared-role repudiation.
    "fourth-review": Review(
        HERE / "fourth-review",
        ("grid-load-forecaster", "text-to-sql-assistant"),
        (TOP_TEN, THIRTY, ONE_IN_TEN, GONE),
    ),
    # A phishing classifier retrained on employees' reports and a multi-tenant contract-review
    # RAG SaaS: missed must-haves, count and the wrong fraction as it came out (its one recall
    # miss of 28 was the phishing system's automated-purge-abuse, 12/13 there); the fix made on
    # it (i22d: a process that consumes a score is no oracle, privileged automation driven by
    # outsiders' input, ``multi_tenant``, causes grouped) meets every bar, and stricter than the
    # bar since the fix none of the three judged wrong comes back.
    "fifth-review": Review(
        HERE / "fifth-review",
        ("legal-contract-rag-saas", "phishing-report-retraining"),
        (TOP_TEN, THIRTY, GONE),
    ),
    # A game anti-cheat model with automatic bans and a multi-hospital medical-coding LLM agent:
    # missed recall and a must-have as it came out; the fixes made on it (i22e: automated bans on
    # a score, decisions about children, a vendor-run fine-tune, outsiders' content rendered to
    # staff, tenants behind an application, broad grants at a partner's source, input in
    # another's name) meet every bar but recall, and the admission finding judged wrong stays
    # gone.
    "sixth-review": Review(
        HERE / "sixth-review",
        ("anticheat-autoban", "medical-coding-llm"),
        (TOP_TEN, THIRTY, GONE),
        misses={
            (RECALL, None): "26/28 (92.9%) after i22e: anti-cheat misses telemetry-dos (DoS "
            "found on the unlimited scorer, not the rate-limited entry), coding misses "
            "claim-repudiation (the tool states audit_logging)",
        },
    ),
    # A city's ANPR traffic enforcement with on-device OCR and automatic fines, and a hedge
    # fund's trading signals from LLM-scored news and social posts: scored as it came out and
    # again after main's i22e fixes (made on the sixth review, not on this one), with the same
    # result; no fix made on it. 29 expectations: 95% allows one miss over both systems.
    "seventh-review": Review(
        HERE / "seventh-review",
        ("anpr-enforcement", "news-trading-signals"),
        (TOP_TEN, THIRTY, ONE_IN_TEN),
        misses={
            (RECALL, None): "26/29 (89.7%): ANPR misses edge-device-extraction; trading misses "
            "automated-trading-no-human, scraper-ssrf",
            (TOP_TEN, "anpr-enforcement"): "unsigned-ota-model 11th, forged-reads 13th",
            (TOP_TEN, "news-trading-signals"): "forged-signals-bus 11th",
            (ONE_IN_TEN, "anpr-enforcement"): "5/25 wrong: admission policy on a GPU VM, "
            "non-repudiation of the keeper lookup, extraction / membership / inversion on an "
            "on-device OCR nobody queries",
            (ONE_IN_TEN, "news-trading-signals"): "4/26 wrong: sensitive-information disclosure "
            "and system-prompt leakage on an LLM whose replies nobody reads, profiling on a "
            "per-ticker scraper, natural corruption on a time-series model",
        },
    ),
}


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


def bar_params(bar: str) -> list[Any]:
    """(review, system) for each system of each review held to ``bar``, xfail where missed."""
    params = []
    for name, review in REVIEWS.items():
        if bar not in review.bars:
            continue
        for system in systems_in(review.folder):
            reason = review.misses.get((bar, system))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(name, system, marks=marks, id=f"{name}-{system}"))
    return params


def recall_params() -> list[Any]:
    """Each review, xfail where its recall is missed."""
    params = []
    for name, review in REVIEWS.items():
        reason = review.misses.get((RECALL, None))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(scope="module")
def scored() -> Callable[[str], dict[str, dict[str, Any]]]:
    """Each review's systems scored, once per module, on first use."""
    cache: dict[str, dict[str, dict[str, Any]]] = {}

    def of(review: str) -> dict[str, dict[str, Any]]:
        if review not in cache:
            folder = REVIEWS[review].folder
            cache[review] = {s: score(s, folder) for s in systems_in(folder)}
        return cache[review]

    return of


def test_three_outside_systems() -> None:
    assert len(SYSTEMS) >= 3


@pytest.mark.parametrize("review", [name for name, r in REVIEWS.items() if r.systems])
def test_review_has_two_systems(review: str) -> None:
    assert systems_in(REVIEWS[review].folder) == list(REVIEWS[review].systems)


def test_every_miss_names_a_bar_and_system_held() -> None:
    # A miss that names no bar or system the review is held to would silently drop its xfail.
    for name, review in REVIEWS.items():
        held = {(RECALL, None)} | {
            (bar, s) for bar in review.bars for s in systems_in(review.folder)
        }
        assert set(review.misses) <= held, (name, set(review.misses) - held)


@pytest.mark.parametrize("review", recall_params())
def test_recall(review: str, scored: Callable[[str], dict[str, dict[str, Any]]]) -> None:
    # Over the review's systems together; each system's misses are named in its judgement.md.
    scores = scored(review)
    met = sum(s["met"] for s in scores.values())
    expected = sum(s["expected"] for s in scores.values())
    missed = {name: s["missed"] for name, s in scores.items() if s["missed"]}
    assert met / expected >= 0.95, missed


@pytest.mark.parametrize(("review", "system"), bar_params(TOP_TEN))
def test_must_haves_in_top_ten(
    review: str, system: str, scored: Callable[[str], dict[str, dict[str, Any]]]
) -> None:
    s = scored(review)[system]
    missed = s["must_haves_missed"] if REVIEWS[review].musts_missed_count else []
    assert (missed, s["must_haves_late"]) == ([], [])


@pytest.mark.parametrize(("review", "system"), bar_params(THIRTY))
def test_at_most_thirty_findings(
    review: str, system: str, scored: Callable[[str], dict[str, dict[str, Any]]]
) -> None:
    assert scored(review)[system]["count"] <= 30


@pytest.mark.parametrize(("review", "system"), bar_params(ONE_IN_TEN))
def test_at_most_one_in_ten_wrong(
    review: str, system: str, scored: Callable[[str], dict[str, dict[str, Any]]]
) -> None:
    # The reviewer's bar: the findings judged wrong that still come back, over all findings.
    s = scored(review)[system]
    assert len(s["wrong_back"]) <= s["count"] / 10, s["wrong_back"]


@pytest.mark.parametrize(("review", "system"), bar_params(GONE))
def test_findings_judged_wrong_stay_gone(
    review: str, system: str, scored: Callable[[str], dict[str, dict[str, Any]]]
) -> None:
    assert scored(review)[system]["wrong_back"] == []


def test_payment_tool_heads_excessive_agency(
    scored: Callable[[str], dict[str, dict[str, Any]]],
) -> None:
    # The tool that moves money ranks first in its group; the read-only flight search is out.
    (f,) = [
        f
        for f in scored("second-review")["travel-booking-agent"]["findings"]
        if f["rule_id"] == "MLH-LLM-EXCESSIVE-AGENCY"
    ]
    assert f["affected"][0] == "payment-tool" and "flight-tool" not in f["affected"]


def test_query_attacks_only_where_a_party_sees_the_output(
    scored: Callable[[str], dict[str, dict[str, Any]]],
) -> None:
    query = {"MLH-ML-EXTRACTION-API", "MLH-ML-MEMBERSHIP-INFERENCE", "MLH-ML-MODEL-INVERSION"}
    kyc = scored("second-review")["kyc-identity-verification"]["findings"]
    assert not [f["id"] for f in kyc if f["rule_id"] in query]
