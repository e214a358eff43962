"""``python -m bench llmhunt``: the LLM hunt's throughput on the simulated helpdesk range.

Workload: the LLM practice range (``mlhunt.llmhunt.simulate``: 200 benign users, every attack
style, campaigns; ~3,000 calls, ~7 MB of gateway log) or, full, the same generator with 2,000
benign users (~20,000 calls). Measured, each stage once after a warm-up hunt on the quick
range (imports, compiled patterns):

- **mlhunt**: ``hunt([gateway.jsonl])`` end to end (read + every detector), calls/s and MB/s,
  with the reading and each detector's seconds;
- **peer**: the issue's goal, 50,000 calls/s (about 100 MB/s of logs), and for scale DuckDB's
  ``read_json`` of the same file (every field parsed, no detection): how fast a library reads it.

``ratio`` = mlhunt's calls/s over the goal's.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import log

GOAL_CALLS_PER_S = 50_000


def _cold() -> None:
    """Forget the remembered turn scores and findings (a hunt of new logs starts without)."""
    from mlhunt.llmhunt.detectors.sensitive import forget_findings
    from mlhunt.llmhunt.detectors.text import forget_scores

    forget_findings()
    forget_scores()


def _stages(path: Path, canary: str) -> dict[str, Any]:
    from mlhunt.llmhunt import read, registry
    from mlhunt.llmhunt.detectors import Context, alerts

    _cold()
    t0 = time.perf_counter()
    got = read([path])
    read_s = time.perf_counter() - t0
    by: dict[str, list[Any]] = defaultdict(list)
    for c in got.calls:
        by[c.client].append(c)
    ctx = Context((canary,), {})
    detectors: dict[str, float] = {}
    for det in registry():
        t = time.perf_counter()
        alerts(det, by, ctx)
        detectors[det.spec.id] = round(time.perf_counter() - t, 3)
    return {"read_s": round(read_s, 3), "detector_s": detectors, "calls": len(got.calls)}


def _duckdb_read(path: Path) -> float:
    import duckdb

    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(
        "SELECT count(*), sum(len(request.messages)) FROM read_json(?, "
        "format='newline_delimited', maximum_object_size=16777216)",
        [str(path)],
    ).fetchall()
    return time.perf_counter() - t


def run(quick: bool = False) -> dict[str, Any]:
    from mlhunt.llmhunt import hunt, simulate

    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-llm-") as tmp:
        warm = simulate(Path(tmp) / "warm", seed=1, benign_users=20)
        hunt([warm.gateway], canaries=[warm.canary])  # imports, compiled patterns
        users = 200 if quick else 2000
        log(f"llmhunt: simulating the range with {users} benign users")
        sim = simulate(Path(tmp) / "range", seed=0, benign_users=users)
        size = os.path.getsize(sim.gateway)
        log(f"llmhunt: {sim.calls:,} calls, {size / 1e6:.1f} MB; hunting")
        _cold()
        t = time.perf_counter()
        result = hunt([sim.gateway], canaries=[sim.canary])
        total = time.perf_counter() - t
        stages = _stages(sim.gateway, sim.canary)
        duck = _duckdb_read(sim.gateway)
    calls = len(result.read.calls)
    rate = calls / total
    return {
        "mlhunt": {
            "seconds": round(total, 3),
            "calls_per_s": round(rate),
            "mb_per_s": round(size / 1e6 / total, 2),
            "findings": len(result.findings),
            **stages,
        },
        "peer": {
            "goal_calls_per_s": GOAL_CALLS_PER_S,
            "duckdb_read_json_s": round(duck, 3),
            "duckdb_read_calls_per_s": round(calls / duck),
        },
        "ratio": round(rate / GOAL_CALLS_PER_S, 4),
        "workload": {"calls": calls, "bytes": size, "benign_users": users},
    }
