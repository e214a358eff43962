"""MLH-HUNT-NATURAL-EXTRACTION (issue #23, item 5) on a small synthetic day, and the margin
buckets of its population baseline computed alike by numpy (the guard) and DuckDB SQL (the
hunt; the Spark engine's are compared in test_hunt_spark.py). The simulated ranges and the
measured margins are in test_hunt_acceptance.py and test_guard_acceptance.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mlhunt.hunt import hunt
from mlhunt.hunt.events import MARGIN_GRID, margin_bucket, margin_bucket_sql

NATURAL = "MLH-HUNT-NATURAL-EXTRACTION"


def test_sql_and_numpy_buckets_agree_at_every_cut_point() -> None:
    import duckdb

    g = MARGIN_GRID
    rng = np.random.default_rng(3)
    m = np.r_[0.0, 1.0, g, np.nextafter(g, 0), np.nextafter(g, 1), np.round(g, 6), rng.random(500)]
    sql = f"SELECT {margin_bucket_sql()} AS b FROM (SELECT unnest(?::DOUBLE[]) AS margin)"
    got = duckdb.connect().execute(sql, [[*m.tolist(), None]]).fetchnumpy()["b"]
    want = margin_bucket(np.r_[m, np.nan])
    assert got[:-1].tolist() == want[:-1].tolist() and np.ma.is_masked(got[-1])
    assert np.isnan(want[-1])
    for j, cut in enumerate(g):  # bucket <= LO + j exactly when the margin is below cut j
        assert ((m < cut) == (margin_bucket(m) <= margin_bucket(np.array([cut]))[0] - 1)).all()
        assert margin_bucket(np.array([cut]))[0] == margin_bucket(np.array([g[0]]))[0] + j


def _day(path: Path) -> None:
    """40 honest clients (200 natural queries each), a batch re-scorer (4,000) and a thief
    whose 600 natural queries are a third of them the pool points the model is least sure of
    (an adaptive copy's picks), the rest random: same inputs, different answers."""
    rng = np.random.default_rng(11)
    w = np.array([1.2, -0.8, 0.5])

    def natural(n: int) -> np.ndarray:
        return np.round(rng.normal(0, 1, (n, 3)), 4)

    def answers(x: np.ndarray) -> np.ndarray:
        return np.round(1 / (1 + np.exp(-(x @ w) * 3)), 6)

    clients = {f"honest-{i}": natural(200) for i in range(40)}
    clients["batch"] = natural(4000)
    pool = natural(3000)
    near = np.argsort(np.abs(answers(pool) - 0.5))[:200]
    rest = rng.choice(np.setdiff1d(np.arange(3000), near), 400, replace=False)
    clients["thief"] = pool[rng.permutation(np.r_[near, rest])]
    lines = []
    for cid, x in clients.items():
        p = answers(x)
        for i, (row, q) in enumerate(zip(x.tolist(), p.tolist(), strict=True)):
            rec = {
                "ts": 1_709_596_800 + i * 7,
                "client_id": cid,
                "input": row,
                "output": {"label": "yes" if q >= 0.5 else "no", "scores": [1 - q, q]},
            }
            lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")


def test_adaptive_thief_alerted_honest_heavy_client_not(tmp_path: Path) -> None:
    _day(tmp_path / "day.jsonl")
    res = hunt(tmp_path / "day.jsonl", detectors=[NATURAL])
    alerted = {a.target: a for a in res.alerts}
    assert set(alerted) == {"thief"}, sorted(alerted)
    ev = alerted["thief"].evidence
    assert ev["uncertain_share"] > 2 * ev["population_uncertain_share"]
    assert ev["counted_queries"] == 600 and ev["sample_queries"]
