"""The PRADA-style query-distance test (window nearest neighbours, online binned KS against the
population) and the engine-side speed-ups that must not change alerts: the DuckDB prefilter of
targets no detector can fire on, and scoring batches in worker threads."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlhunt.hunt.api import hunt
from mlhunt.hunt.detectors import _kern_distance as kern
from mlhunt.hunt.detectors import distance as dist_mod
from mlhunt.hunt.detectors import load_detectors
from tests.hunt_segments import seg_position
from tests.test_hunt_detectors import D, _rec


def _logs(rng: np.random.Generator) -> list[dict[str, Any]]:
    """60 benign clients drawing real-looking cases (a mixture of a few profiles), one uniform
    extractor over the population's range, one address flooding, one stuffing credentials,
    and a sybil group of 6 uniform ids behind one address."""
    centres = rng.normal(0, 1, (6, D)) * [1, 2, 1, 3, 1] + [0, 5, 1, 10, 2]
    recs = []
    for c in range(60):
        for k in range(int(rng.integers(20, 90))):
            x = centres[rng.integers(0, 6)] + rng.normal(0, 0.6, D)
            recs.append(_rec(c * 200 + k * 30.0, f"user{c:02d}", x, f"10.0.{c}.1"))
    lo, hi = centres.min(axis=0) - 2, centres.max(axis=0) + 2
    for k in range(200):
        recs.append(_rec(50 + k * 20.0, "extractor", rng.uniform(lo, hi), "198.51.100.9"))
    for s in range(6):
        for k in range(40):
            recs.append(_rec(90 + k * 25.0 + s, f"sybil{s}", rng.uniform(lo, hi), "203.0.113.5"))
    for k in range(1500):  # 150 requests/s for 10 s
        recs.append(_rec(5000 + k / 150, "flooder", centres[0], "192.0.2.66"))
    for k in range(30):
        recs.append(_rec(7000 + k * 3.0, f"guess{k}", centres[1], "192.0.2.77", status=401))
    return recs


def _write(tmp: Path, recs: list[dict[str, Any]]) -> Path:
    p = tmp / "logs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def test_window_distances_and_online_ks_match_loops() -> None:
    rng = np.random.default_rng(5)
    offsets = np.array([0, 30, 30, 75, 120])
    n = int(offsets[-1])
    z = rng.normal(size=(n, 3)).astype(np.float32)
    valid = rng.random(n) > 0.1
    diff = rng.integers(1, 4, n)
    edges = np.array([0.5, 1.0, 1.5, 2.5])
    cdf = np.array([0.1, 0.3, 0.6, 0.9])
    limits = np.array([3.0, 0.3, 5.0])
    got = kern.distance_test(z, offsets, valid, diff, 4, edges, cdf.astype(np.float32), limits)
    dist, weight, m, d_plus, lam, online = got
    pos = seg_position(offsets)
    for i in range(n):
        prev = [j for j in range(i - min(pos[i], 4), i) if valid[j]]
        want = min((float(np.linalg.norm(z[i] - z[j])) for j in prev), default=np.inf)
        assert dist[i] == pytest.approx(want, rel=1e-5)
    assert (weight == (valid & (diff >= 2) & (pos >= 4) & np.isfinite(dist))).all()
    for a, b in itertools.pairwise(offsets):
        for i in range(a, b):
            seen = dist[a : i + 1][weight[a : i + 1]]
            assert m[i] == len(seen)
            fc = np.array([(seen <= e).mean() if len(seen) else 0.0 for e in edges])
            assert d_plus[i] == pytest.approx(max(0.0, (cdf - fc).max()), abs=1e-6)
    assert lam == pytest.approx(d_plus * np.sqrt(m))
    score = np.minimum(lam / 3.0, d_plus / 0.3)
    assert online == pytest.approx(np.where(m >= 5, score, 0.0))


def test_query_distance_flags_spread_out_queries_only(tmp_path: Path) -> None:
    path = _write(tmp_path, _logs(np.random.default_rng(11)))
    res = hunt(path, detectors=["MLH-HUNT-QUERY-DISTANCE"])
    assert len(res.population.nn_edges) > 5
    targets = {a.target: a for a in res.alerts}
    assert "extractor" in targets and not any(t.startswith("user") for t in targets)
    ev = targets["extractor"].evidence
    assert ev["ks_d_plus"] >= 0.3 and ev["ks_lambda"] >= 3
    assert ev["median_nn_distance"] > ev["population_median_nn_distance"]
    # needs a full history window and min_events counted distances
    assert targets["extractor"].detected_at_event >= dist_mod.WINDOW + 20


def test_prefilter_and_threads_leave_alerts_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    from mlhunt.hunt.detectors.base import Detector
    from mlhunt.hunt.engines import _duck_prep
    from mlhunt.hunt.engines import duckdb as eng
    from mlhunt.hunt.readers import ReadReport, resolve

    path = _write(tmp_path, _logs(np.random.default_rng(12)))

    def run(workers: int) -> list[dict[str, Any]]:
        out = eng.DuckDBEngine(workers=workers).run(resolve([path]), load_detectors(), ReadReport())
        return [a.to_row() for a in out.alerts]

    fast = run(2)
    # no necessary conditions: every source address is scanned
    monkeypatch.setattr(Detector, "prefilter", lambda self: None)
    plain = run(0)
    assert fast == plain
    fired = {(r["detector"], r["target"]) for r in fast}
    assert {
        ("MLH-HUNT-REQUEST-FLOOD", "192.0.2.66"),
        ("MLH-HUNT-CREDENTIAL-STUFFING", "192.0.2.77"),
        ("MLH-HUNT-SYBIL-EXTRACTION", "203.0.113.5"),
    } <= fired
    # the prefilter keeps exactly the addresses that can fire, and drops the rest
    monkeypatch.undo()
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_json('{path}')")
    dets = [d for d in load_detectors() if d.spec.scope == "source_ip"]
    kept = set(_duck_prep.candidates(con, dets))
    assert kept == {"192.0.2.66", "192.0.2.77", "203.0.113.5"}
