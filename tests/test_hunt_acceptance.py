"""Acceptance of ``mlhunt hunt`` on simulated traffic (issue #5): every attacker caught by a
relevant detector, at most 1% of benign clients alerted at medium or above (the batch clients
and the shared NAT addresses never), median detected_at_event <= 150. Three seeds, so the
thresholds are not tuned to one.

The natural-data extractor (issue #23, item 5) must be alerted by MLH-HUNT-NATURAL-EXTRACTION
itself on every range, with its peak score clear of the highest benign client's peak score on
that detector (measured, docs/hunt.md: attacker 1.37-3.45, highest benign 0.50-0.78; asserted:
attacker >= 1.15, every benign client <= 0.9)."""

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
    # Knockoff Nets with in-distribution data: seen from where its answers fall (the model's
    # uncertain tail, where its adaptive rounds pick), not from the data itself
    "natural-extraction": {
        "MLH-HUNT-EXTRACTION",
        "MLH-HUNT-LOW-CONFIDENCE",
        "MLH-HUNT-NATURAL-EXTRACTION",
    },
}
MEDIUM = Severity.MEDIUM.rank
NATURAL = "MLH-HUNT-NATURAL-EXTRACTION"


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


def _natural_peaks(result: Any, logs: Path, labels: dict[str, Any]) -> tuple[float, float]:
    """(the natural extractor's peak score, the highest benign client's peak score) of
    MLH-HUNT-NATURAL-EXTRACTION, alerted or not: the detector run on every client's events
    against the hunt's own population."""
    import numpy as np
    import pyarrow as pa

    from mlhunt.hunt.events import GroupBatch
    from mlhunt.hunt.readers import ReadReport, read_batches

    det = next(d for d in result.detectors if d.spec.id == NATURAL)
    table = pa.concat_tables(read_batches(logs, ReadReport()))
    table = table.sort_by([("client_id", "ascending"), ("ts", "ascending"), ("line", "ascending")])
    pop = result.population
    batch = GroupBatch.from_arrow("client_id", table, pop.classes, pop.d)
    peaks = np.maximum.reduceat(det.score(batch, pop).online, batch.offsets[:-1]).tolist()
    by_client = dict(zip(batch.keys, peaks, strict=True))
    thief = max(by_client[c] for c in labels["attacks"]["natural-extraction"]["clients"])
    benign = max(p for c, p in by_client.items() if labels["clients"][c] == "benign")
    return thief, benign


def _run(scenario: str, seed: int, tmp: Path) -> dict[str, Any]:
    _built, loaded = ensure_built(scenario)
    out = simulate(loaded, tmp / f"{scenario}-{seed}", seed=seed)
    result = hunt(out.logs_path)
    doc = result.document()
    assert doc["read"]["malformed"] == 0
    labels = json.loads(out.labels_path.read_text())
    r = _score(doc["findings"], labels)
    if "natural-extraction" in labels["attacks"]:
        thief = labels["attacks"]["natural-extraction"]["clients"]
        r["natural_by"] = {f["rule_id"] for f in doc["findings"] if f["target"] in thief}
        r["natural_peaks"] = _natural_peaks(result, out.logs_path, labels)
    return r


def _natural_caught(r: dict[str, Any]) -> None:
    """Caught by its own detector, with the stated margin over every benign client."""
    thief, benign = r["natural_peaks"]
    print(f"natural-extraction peak {thief:.2f}, highest benign {benign:.2f}")
    assert NATURAL in r["natural_by"], r["natural_by"]
    assert thief >= 1.15 and benign <= 0.9, (thief, benign)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loan_traffic_every_attacker_caught_no_false_alarms(seed: int, tmp_path: Path) -> None:
    r = _run("loan-approval", seed, tmp_path)
    assert r["missed"] == []
    _natural_caught(r)
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
    assert r["missed"] == []
    if scenario == "fraud-detection":  # its only detector there: the fraud answers sit > 0.99
        _natural_caught(r)
    assert len(r["benign_alerted"]) <= 0.01 * r["benign"], r["benign_alerted"]
    assert r["traps_alerted"] == []
