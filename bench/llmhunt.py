"""``python -m bench llmhunt``: the LLM hunt's throughput on the simulated helpdesk range.

Workload: the LLM practice range (``mlhunt.llmhunt.simulate``: 200 benign users, every attack
style, campaigns; ~3,000 calls, ~7 MB of gateway log) or, full, the same generator with 2,000
benign users (~15,000 calls, ~32 MB). After a warm-up hunt on a small range (imports, compiled
patterns), measured in one process, alternating, ``rounds`` times each:

- **mlhunt**: ``hunt([gateway.jsonl])`` end to end (DuckDB reading with RE2 prefilters, every
  detector): CPU seconds of the process (DuckDB's threads included) and wall seconds, calls
  per second of each; then each stage alone (DuckDB's query, the prefilters, the whole read,
  each detector);
- **before**: the previous path, ``hunt_calls(read(paths))`` (``json`` per line into full
  calls, every detector on every text), to show the change and that the findings are equal;
- **peer**: the issue's goal, 50,000 calls/s (about 100 MB/s of logs), and for scale DuckDB's
  ``read_json`` of the same file with every field parsed (no detection).

``ratio`` = mlhunt's calls per wall second over the goal's. The machine's load average is
recorded before and after: on a shared machine wall time is what the other work leaves.
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
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


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, CPU seconds, wall seconds) of one cold call."""
    _cold()
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def _stages(path: Path, canary: str) -> dict[str, Any]:
    """CPU seconds of each stage of the new path, alone."""
    import duckdb

    from mlhunt.llmhunt import fastread, read, registry
    from mlhunt.llmhunt.detectors import Context, alerts

    ctx = Context((canary,))
    con = duckdb.connect()
    query = lambda: con.sql(  # noqa: E731
        fastread.QUERY, params={"path": str(path), "columns": fastread.COLUMNS}
    ).to_arrow_table()
    table, q_cpu, q_wall = _timed(query)
    marked, p_cpu, _ = _timed(lambda: fastread.suspects(table, ctx))
    con.close()
    got, r_cpu, r_wall = _timed(lambda: read([path], prefilter_for=ctx))
    by: dict[str, list[Any]] = defaultdict(list)
    for c in got.calls:
        by[c.client].append(c)
    detectors: dict[str, float] = {}
    for det in registry():
        _, cpu, _ = _timed(lambda det=det: alerts(det, by, ctx))
        detectors[det.spec.id.removeprefix("MLH-HUNT-LLM-").lower()] = round(cpu, 3)
    return {
        "duckdb_query_cpu_s": round(q_cpu, 3),
        "duckdb_query_wall_s": round(q_wall, 3),
        "prefilter_cpu_s": round(p_cpu, 3),
        "read_cpu_s": round(r_cpu, 3),
        "read_wall_s": round(r_wall, 3),
        "rows_marked": int(marked.sum()),
        "calls_read_whole_by_python": sum(not c.prefiltered for c in got.calls),
        "detector_cpu_s": detectors,
        "detectors_cpu_s": round(sum(detectors.values()), 3),
    }


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


def _rates(runs: list[tuple[float, float]], calls: int) -> dict[str, Any]:
    cpu = statistics.median(c for c, _ in runs)
    wall = statistics.median(w for _, w in runs)
    return {
        "cpu_s": [round(c, 3) for c, _ in runs],
        "wall_s": [round(w, 3) for _, w in runs],
        "calls_per_cpu_s": round(calls / cpu),
        "calls_per_wall_s": round(calls / wall),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from mlhunt.llmhunt import hunt, read, simulate
    from mlhunt.llmhunt.api import hunt_calls

    rounds = 3 if quick else 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-llm-") as tmp:
        warm = simulate(Path(tmp) / "warm", seed=1, benign_users=20)
        hunt([warm.gateway], canaries=[warm.canary])  # imports, compiled patterns
        hunt_calls(read([warm.gateway]), canaries=[warm.canary])
        users = 200 if quick else 2000
        log(f"llmhunt: simulating the range with {users} benign users")
        sim = simulate(Path(tmp) / "range", seed=0, benign_users=users)
        size = os.path.getsize(sim.gateway)
        log(f"llmhunt: {sim.calls:,} calls, {size / 1e6:.1f} MB; hunting, {rounds} rounds")
        new_runs, old_runs = [], []
        for _ in range(rounds):  # alternating: both see the same machine
            result, cpu, wall = _timed(lambda: hunt([sim.gateway], canaries=[sim.canary]))
            new_runs.append((cpu, wall))
            before, cpu, wall = _timed(
                lambda: hunt_calls(read([sim.gateway]), canaries=[sim.canary])
            )
            old_runs.append((cpu, wall))
        same = [f.to_dict() for f in result.findings] == [f.to_dict() for f in before.findings]
        calls, findings = len(result.read.calls), len(result.findings)
        del result, before  # (alive, their objects would slow the stages' garbage collection)
        gc.collect()
        log("llmhunt: stages")
        stages = _stages(sim.gateway, sim.canary)
        duck = _duckdb_read(sim.gateway)
    new = _rates(new_runs, calls)
    return {
        "mlhunt": {
            **new,
            "mb_per_wall_s": round(size / 1e6 / statistics.median(w for _, w in new_runs), 2),
            "findings": findings,
            "same_findings_as_before": same,
            **stages,
        },
        "before": _rates(old_runs, calls),
        "peer": {
            "goal_calls_per_s": GOAL_CALLS_PER_S,
            "duckdb_read_json_all_fields_s": round(duck, 3),
            "duckdb_read_json_calls_per_s": round(calls / duck),
        },
        "ratio": round(new["calls_per_wall_s"] / GOAL_CALLS_PER_S, 4),
        "workload": {"calls": calls, "bytes": size, "benign_users": users},
        "load_average": {"before": load_before[:2], "after": os.getloadavg()[:2]},
        "cores": os.cpu_count(),
    }
