"""Issue #22 acceptance: `mlhunt model` on systems an outside reviewer wrote (tests/outside_review).

Each system's ``expected.yaml`` was written before mlhunt ran on it and before its rule catalogue
was read; ``judgement.md`` judges every finding. This test scores the threat model against the
expectations as the acceptance states them: recall >= 95% (on the right element or flow), the
must-haves among the ten highest risks, at most 30 findings, and none of the findings judged
wrong for the system (``wrong`` in ``expected.yaml``) comes back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhunt.system import load_system
from mlhunt.threatmodel import build_threat_model

HERE = Path(__file__).parent / "outside_review"
SYSTEMS = sorted(p.name for p in HERE.iterdir() if (p / "expected.yaml").is_file())

#: LINDDUN categories by the letter a reviewer writes (D and N each name two categories).
_LINDDUN_LETTER = {
    "linking": "L",
    "identifying": "I",
    "non-repudiation": "N",
    "detecting": "D",
    "data-disclosure": "D",
    "unawareness": "U",
    "non-compliance": "N",
}


def finding_ids(finding: dict[str, Any]) -> set[str]:
    """Every taxonomy id a finding carries, in the reviewer's spelling (STRIDE:T, LINDDUN:D)."""
    ids = set(finding.get("atlas", ())) | set(finding.get("owasp_ml", ()))
    ids |= set(finding.get("cwe", ()))
    for values in (finding.get("references") or {}).values():
        ids |= {v for v in values if isinstance(v, str)}
    ids |= {f"STRIDE:{letter}" for letter in finding.get("stride", ())}
    ids |= {f"LINDDUN:{_LINDDUN_LETTER.get(c, c)}" for c in finding.get("linddun", ())}
    return ids


def _id_matches(expected: str, carried: set[str]) -> bool:
    # A parent ATLAS technique (AML.T0024) accepts its sub-techniques (AML.T0024.002).
    return expected in carried or any(c.startswith(expected + ".") for c in carried)


def matches(threat: dict[str, Any], finding: dict[str, Any]) -> bool:
    """On one of the expected elements or flows, and with one of the expected ids."""
    where = set(finding.get("affected") or ()) | {finding["target"]}
    if not where & set(threat["at"]):
        return False
    carried = finding_ids(finding)
    return any(_id_matches(i, carried) for i in threat["ids"])


def score(system: str) -> dict[str, Any]:
    """Recall, must-haves outside the top ten, count and returned wrong findings of one system."""
    expected = yaml.safe_load((HERE / system / "expected.yaml").read_text(encoding="utf-8"))
    doc = build_threat_model(load_system(HERE / system / "system.yaml")).to_document()
    findings = doc["findings"]
    missed, late = [], []
    for threat in expected["threats"]:
        ranks = [i for i, f in enumerate(findings) if matches(threat, f)]
        if not ranks:
            missed.append(threat["id"])
        elif threat.get("must_have") and ranks[0] >= 10:
            late.append((threat["id"], ranks[0] + 1))
    total = len(expected["threats"])
    ids = {f["id"] for f in findings}
    return {
        "recall": (total - len(missed)) / total,
        "missed": missed,
        "must_haves_late": late,
        "count": len(findings),
        "wrong_back": sorted(ids & set(expected.get("wrong") or ())),
        "findings": findings,
    }


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, Any]]:
    return {s: score(s) for s in SYSTEMS}


def test_three_outside_systems() -> None:
    assert len(SYSTEMS) >= 3


@pytest.mark.parametrize("system", SYSTEMS)
def test_recall(system: str, scores: dict[str, dict[str, Any]]) -> None:
    result = scores[system]
    assert result["recall"] >= 0.95, f"missed {result['missed']}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_must_haves_in_top_ten(system: str, scores: dict[str, dict[str, Any]]) -> None:
    assert scores[system]["must_haves_late"] == []


@pytest.mark.parametrize("system", SYSTEMS)
def test_at_most_thirty_findings(system: str, scores: dict[str, dict[str, Any]]) -> None:
    assert scores[system]["count"] <= 30


@pytest.mark.parametrize("system", SYSTEMS)
def test_findings_judged_wrong_stay_gone(system: str, scores: dict[str, dict[str, Any]]) -> None:
    assert scores[system]["wrong_back"] == []
