"""Acceptance of ``mlhunt hunt`` on simulated traffic (issue #5): every attacker caught by a
relevant detector, at most 1% of benign clients alerted at medium or above (the batch clients
and the shared NAT addresses never), median detected_at_event <= 150. Three seeds, so the
thresholds are not tuned to one."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from mlhunt.findings import Severity
from mlhunt.hunt.api import hunt
from mlhunt.scenarios import ensure_built
from mlhunt.scenarios.traffic import simulate

RELEVANT = {
    "uniform-extraction": {"MLH-HUNT-EXTRACTION", "MLH-HUNT-QUERY-DISTANCE"},
    "jbda-extraction": {"MLH-HUNT-EXTRACTION", "MLH-HUNT-QUERY-DISTANCE"},
    "knockoff-extraction": {"MLH-HUNT-EXTRACTION", "MLH-HUNT-QUERY-DISTANCE"},
    "low-and-slow-extraction": {
        "MLH-HUNT-EXTRACTION",
        "MLH-HUNT-LOW-CONFIDENCE",
        "MLH-HUNT-QUERY-DISTANCE",
    },
    "evasion-probing": {"MLH-HUNT-EVASION-PROBING"},
    "membership-probing": {"MLH-HUNT-MEMBERSHIP-PROBING"},
    "inversion-sweep": {"MLH-HUNT-INVERSION-SWEEP"},
    "sybil-extraction": {"MLH-HUNT-SYBIL-EXTRACTION"},
    "patch-probing": {"MLH-HUNT-EVASION-PROBING", "MLH-HUNT-EXTRACTION"},
    "synthetic-extraction": {"MLH-HUNT-EXTRACTION"},
    # Knockoff Nets with in-distribution data: seen from where its queries fall (near the
    # decision boundary, the adaptive rounds), not from the data itself
    "natural-extraction": {"MLH-HUNT-EXTRACTION", "MLH-HUNT-LOW-CONFIDENCE"},
}
MEDIUM = Severity.MEDIUM.rank


def _score(findings: list[dict[str, Any]], labels: dict[str, Any]) -> dict[str, Any]:
    by_target: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        if Severity(f["severity"]).rank >= MEDIUM:
            by_target.setdefault(f["target"], []).append(f)
    missed, detected_at = [], []
    for style, info in labels["attacks"].items():
        targets = info["source_ips"] if style == "sybil-extraction" else info["clients"]
        for target in targets:
            hits = [f for f in by_target.get(target, []) if f["rule_id"] in RELEVANT[style]]
            if not hits:
                missed.append((style, target))
            else:
                detected_at.append(min(f["evidence"]["detected_at_event"] for f in hits))
    benign = [c for c, lab in labels["clients"].items() if lab == "benign"]
    alerted = [c for c in benign if c in by_target]
    quiet = labels["traps"].get("batch_rescoring", []) + list(labels["traps"]["nat"])
    # the PRADA-style distance test on its own: which attack styles it fired on
    distance = {
        labels["clients"].get(f["target"], "?")
        for fs in by_target.values()
        for f in fs
        if f["rule_id"] == "MLH-HUNT-QUERY-DISTANCE"
    }
    return {
        "distance_styles": distance,
        "missed": missed,
        "benign_alerted": alerted,
        "benign": len(benign),
        "traps_alerted": [t for t in quiet if t in by_target],
        "median_detected_at": statistics.median(detected_at) if detected_at else None,
    }


def _run(scenario: str, seed: int, tmp: Path) -> dict[str, Any]:
    _built, loaded = ensure_built(scenario)
    out = simulate(loaded, tmp / f"{scenario}-{seed}", seed=seed)
    doc = hunt(out.logs_path).document()
    assert doc["read"]["malformed"] == 0
    return _score(doc["findings"], json.loads(out.labels_path.read_text()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loan_traffic_every_attacker_caught_no_false_alarms(seed: int, tmp_path: Path) -> None:
    r = _run("loan-approval", seed, tmp_path)
    assert r["missed"] == []
    # spread-out query designs (uniform, low-and-slow, the sybil ids) are caught by the
    # distance test too; benign clients never (measured separation: docs/hunt.md)
    want = {"uniform-extraction", "low-and-slow-extraction", "sybil-extraction"}
    assert want <= r["distance_styles"] and "benign" not in r["distance_styles"]
    assert len(r["benign_alerted"]) <= 0.01 * r["benign"], r["benign_alerted"]
    assert r["traps_alerted"] == []
    assert r["median_detected_at"] is not None and r["median_detected_at"] <= 150


@pytest.mark.parametrize("scenario", ["image-moderation", "fraud-detection"])
def test_other_scenarios_attackers_caught(scenario: str, tmp_path: Path) -> None:
    r = _run(scenario, 0, tmp_path)
    # the natural-data extractor is caught on loan-approval only: on fraud traffic (a rare
    # positive class) its uncertain queries are not near the model's boundary (docs/hunt.md)
    assert {style for style, _ in r["missed"]} <= {"natural-extraction"}, r["missed"]
    assert len(r["benign_alerted"]) <= 0.01 * r["benign"], r["benign_alerted"]
    assert r["traps_alerted"] == []
