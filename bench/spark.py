"""``python -m bench spark [--quick]``: the Spark engine's scaling, vs DuckDB on the same file.

Workload (:mod:`bench.hunt_data`): 400,000 events (``--quick``: 100,000) of a loan API's day as
Parquet, cached under ``.mlhunt-cache/bench/``.

- **peer**: the DuckDB engine's full hunt of the file (the default engine, one process).
- **mlhunt**: the Spark engine's full hunt of the same file on ``local[1]``, ``local[2]`` and a
  real standalone cluster on 127.0.0.1 (master + two workers of one core each, started with
  ``spark-class``; the executors get mlhunt's code shipped as on any cluster). Each hunt runs
  in a child process, so its driver (Python and JVM) is its own; reported: events/s, the
  engine's read/detect stages, and the driver's peak memory (the Python process's and the
  driver JVM's ``VmHWM``).
- **driver memory vs events**: the cluster hunts a folder holding the file once and four times
  (twice with ``--quick``): the same clients, four times the events. Per-client state and the
  scoring stay on the executors, so the driver's peak memory should not follow the events.

``ratio`` = the cluster's events/s / DuckDB's events/s (both on this machine's cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import log
from bench.hunt_data import ensure

FULL_EVENTS = 400_000
QUICK_EVENTS = 100_000

# The child: one hunt through the library API; the driver JVM's peak RSS is read before the
# session stops (the engine leaves a session it did not start running).
_CHILD = r"""
import json, sys, time
from mlhunt.hunt import hunt
from mlhunt.hunt.engines.spark import SparkEngine
paths, engine, master, out = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
def hwm(pid):
    return int([l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM:")][0])
jvm = None
if engine == "spark":
    spark, _ = SparkEngine(master).session()  # the session the hunt will reuse
    jvm = spark.sparkContext._gateway.proc.pid
start = time.perf_counter()
result = hunt(paths, engine=engine, spark_master=master if engine == "spark" else None)
seconds = time.perf_counter() - start
with open(out, "w") as fh:
    json.dump({"seconds": seconds, "stats": result.stats, "records": result.read.records,
               "alerts": len(result.alerts), "python_hwm_kb": hwm("self"),
               "jvm_hwm_kb": hwm(jvm) if jvm else None}, fh, default=str)
if jvm:
    spark.stop()
"""


def child_hunt(
    paths: list[Path], engine: str, master: str = "", env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One hunt in a child process (its own driver): seconds, stats, peak memory."""
    full_env = dict(os.environ, PYTHONPATH=str(Path.cwd() / "src"), **(env or {}))
    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-c", _CHILD, ",".join(map(str, paths)), engine, master]
        cmd.append(str(result))
        subprocess.run(cmd, check=True, env=full_env, stdout=subprocess.DEVNULL)
        data: dict[str, Any] = json.loads(result.read_text("utf-8"))
    stats = data["stats"]
    out = {
        "seconds": round(data["seconds"], 3),
        "events": data["records"],
        "events_per_s": round(data["records"] / data["seconds"]),
        "read_seconds": stats.get("read_seconds"),
        "detect_seconds": stats.get("detect_seconds"),
        "alerts": data["alerts"],
        "driver_python_peak_mib": round(data["python_hwm_kb"] / 1024),
        "load_average": round(os.getloadavg()[0], 2),
    }
    if data["jvm_hwm_kb"]:
        out["driver_jvm_peak_mib"] = round(data["jvm_hwm_kb"] / 1024)
    log(f"spark: {engine} {master or ''}: {out['events_per_s']:,} events/s ({out['seconds']} s)")
    return out


def _copies(path: Path, k: int, folder: Path) -> list[Path]:
    """``k`` hard links (copies where links fail) of ``path`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(k):
        dst = folder / f"part{i}{path.suffix}"
        if not dst.exists():
            try:
                os.link(path, dst)
            except OSError:
                dst.write_bytes(path.read_bytes())
        out.append(dst)
    return out


def run(quick: bool) -> dict[str, Any]:
    from bench.spark_cluster import standalone_cluster

    n = QUICK_EVENTS if quick else FULL_EVENTS
    work = ensure(n, seed=0, log=log)
    log(f"spark: {n:,} events, {work.clients:,} clients, {work.parquet_bytes / 2**20:.0f} MiB")
    file = [work.parquet]
    duck = child_hunt(file, "duckdb")
    local1 = child_hunt(file, "spark", "local[1]")
    local2 = child_hunt(file, "spark", "local[2]")
    k = 2 if quick else 4
    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-spark-") as tmp:
        many = _copies(work.parquet, k, Path(tmp) / "copies")
        env = {"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
        with standalone_cluster(Path(tmp) / "cluster", workers=2, cores=1, memory="1g") as c:
            log(f"spark: cluster up at {c.url}")
            cluster = child_hunt(file, "spark", c.url, env)
            cluster_k = child_hunt(many, "spark", c.url, env)
    same = duck["alerts"] == local1["alerts"] == local2["alerts"] == cluster["alerts"]
    return {
        "mlhunt": {"local[1]": local1, "local[2]": local2, "cluster_2x1": cluster},
        "peer": {"duckdb": duck},
        "ratio": round(cluster["events_per_s"] / duck["events_per_s"], 3),
        "same_alert_count": same,
        "driver_memory_vs_events": {
            "events": [cluster["events"], cluster_k["events"]],
            "python_peak_mib": [
                cluster["driver_python_peak_mib"],
                cluster_k["driver_python_peak_mib"],
            ],
            "jvm_peak_mib": [
                cluster.get("driver_jvm_peak_mib"),
                cluster_k.get("driver_jvm_peak_mib"),
            ],
            "seconds": [cluster["seconds"], cluster_k["seconds"]],
        },
        "workload": {"events": work.events, "clients": work.clients, "file": "parquet"},
    }
