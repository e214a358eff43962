"""The Spark engine raises the same alerts as DuckDB on the same logs.

Fixture: one simulated day of loan-approval traffic (every attack style, scale 0.3, ~12k
records) split by client into a gzipped JSON Lines file, a Parquet file and a CSV file, with
malformed records planted in the JSON Lines. One Spark session (local[2]) hunts the folder;
starting Spark takes 10-20 s, so the whole module runs one Spark hunt.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest

from mlhunt.hunt import hunt

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java (scripts/system-deps.sh installs it)", allow_module_level=True)

BAD_LINES = {
    3: "this is not JSON",
    7: '{"ts": "yesterday", "client_id": "x", "output": {"label": "approved"}}',
    11: '{"ts": 1709596800, "output": {"label": "approved"}}',
    15: '{"ts": 1709596800, "client_id": "x", "input": [1, 2], "output": {"label": "approved"}}',
    19: '{"ts": 1709596800, "client_id": "x", "output": {"scores": [0.5, 0.5]}}',
}


def _write_fixture(records: list[dict[str, Any]], folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts: list[list[dict[str, Any]]] = [[], [], []]
    for rec in records:
        parts[zlib.crc32(rec["client_id"].encode()) % 3].append(rec)
    lines = [json.dumps(r) for r in parts[0]]
    lines.insert(5, "")  # a blank line: skipped, but it still counts in the numbering
    for at, text in sorted(BAD_LINES.items()):
        lines.insert(at - 1, text)
    with gzip.open(folder / "a.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    pq.write_table(pa.Table.from_pylist(parts[1]), folder / "b.parquet")
    with (folder / "c.csv").open("w", newline="", encoding="utf-8") as fh:
        cols = ["ts", "client_id", "source_ip", "input", "output", "model", "status", "latency_ms"]
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        for r in parts[2]:
            w.writerow(
                {
                    **{c: r.get(c) for c in cols},
                    "input": json.dumps(r["input"]),
                    "output": json.dumps(r["output"]),
                }
            )


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    from mlhunt.scenarios import ensure_built
    from mlhunt.scenarios.traffic import simulate

    _, loaded = ensure_built("loan-approval")
    sim = simulate(loaded, tmp_path_factory.mktemp("sim"), scale=0.3)
    records = [json.loads(x) for x in sim.logs_path.read_text("utf-8").splitlines()]
    folder = tmp_path_factory.mktemp("logs")
    _write_fixture(records, folder)
    duck = hunt(folder)
    spark = hunt(folder, engine="spark", spark_master="local[2]")
    return duck, spark, folder


def _key(result: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (a.detector, a.scope, a.target, a.detected_at_event, a.severity, a.score, a.events)
        for a in result.alerts
    )


def test_same_alerts(both: tuple[Any, Any, Path]) -> None:
    duck, spark, _ = both
    assert _key(spark) == _key(duck)
    # a meaningful fixture: many detectors fire, on clients and on a source address
    assert len({a.detector for a in duck.alerts}) >= 5
    assert {a.scope for a in duck.alerts} == {"client_id", "source_ip"}
    assert [f.id for f in spark.findings] == [f.id for f in duck.findings]
    assert spark.stats["engine"] == "spark" and spark.stats["master"] == "local[2]"


def test_same_population(both: tuple[Any, Any, Path]) -> None:
    import numpy as np

    a, b = both[0].population, both[1].population
    assert (a.n_events, a.n_clients, a.d, a.classes) == (b.n_events, b.n_clients, b.d, b.classes)
    assert a.label_shares == b.label_shares and a.volume_q == b.volume_q
    assert a.near_share == b.near_share
    assert np.array_equal(a.lower, b.lower) and np.array_equal(a.upper, b.upper)
    assert np.allclose(a.mean, b.mean, rtol=1e-12) and np.allclose(a.std, b.std, rtol=1e-9)
    for ea, eb, pa_, pb in zip(a.edges, b.edges, a.bin_probs, b.bin_probs, strict=True):
        assert np.array_equal(ea, eb) and np.array_equal(pa_, pb)


def test_same_malformed_accounting(both: tuple[Any, Any, Path]) -> None:
    duck, spark, folder = both
    assert spark.read.records == duck.read.records > 10_000
    assert spark.read.malformed == duck.read.malformed == len(BAD_LINES)
    where = [(e["file"], e["line"]) for e in spark.read.errors]
    assert where == [(e["file"], e["line"]) for e in duck.read.errors]
    assert where == [(str(folder / "a.jsonl.gz"), line) for line in sorted(BAD_LINES)]
    assert spark.read.files == duck.read.files
    reasons = [e["reason"] for e in spark.read.errors]
    assert reasons[1].startswith("ts:") and reasons[2].startswith("client_id:")
    assert reasons[3].startswith("input: 2 values") and reasons[4].startswith("output.label")
