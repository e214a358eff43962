"""The Spark engine raises the same alerts as DuckDB on the same logs.

Fixture: one simulated day of loan-approval traffic (every attack style, scale 0.3, ~12k
records) split by client into a gzipped JSON Lines file, a Parquet file and a CSV file, with
malformed records planted in the JSON Lines. One Spark session (local[2]) serves the module
(starting Spark takes 10-20 s): one Spark hunt of the folder, and the record checks of the
three engines (Python, DuckDB, Spark) compared line by line on a corpus of malformed records.
Also a crafted log of 1,931 events where a sweep's coverage is exactly on its threshold: the
engines batch its client differently and must still agree (issue 23).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlhunt.hunt import hunt
from mlhunt.hunt.readers import COLUMNS, ReadReport, read_batches, records, row_of

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
def spark_engine() -> Iterator[Any]:
    """The module's Spark session (a hunt reuses an active session and leaves it running)."""
    from mlhunt.hunt.engines.spark import SparkEngine

    engine = SparkEngine(master="local[2]")
    spark, owned = engine.session()
    yield engine, spark
    if owned:
        spark.stop()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, spark_engine: Any) -> tuple[Any, Any, Path]:
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
    # the per-client margin buckets (SQL, Spark expressions) give one uncertain-tail baseline
    assert len(a.margin_cdf) and np.array_equal(a.margin_cdf, b.margin_cdf)
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


# --- the record checks: one definition, three engines -----------------------------------------

GOOD = {
    "ts": "2024-03-05T10:00:01Z",
    "client_id": "c1",
    "source_ip": "10.0.0.1",
    "input": [0.5, 1, 2.25],
    "output": {"label": "approved", "scores": [0.25, 0.75], "score": 0.75},
    "model": "m",
    "status": 200,
    "latency_ms": 3.5,
}
ODD: list[Any] = [
    None,
    True,
    0,
    -0,
    7,
    2**63,
    -(2**63),
    10**30,
    1.0,
    1.5,
    -2.5e-300,
    1e308,
    [],
    [1, 2, 3],
    [1.5, None, 2],
    [1, "2", 3],
    ["a"],
    {"label": 1},
    {},
]
LINES = [
    "not JSON",
    "[]",
    "3",
    "[" * 5000 + "]" * 5000,
    '{"ts": 1709632800, "client_id": "x", "label": "a"}',  # output flattened
    '{"ts": 1709632800, "client_id": "x", "output": {"label": 1.0}}',
    '{"ts": 1709632800, "client_id": "x", "features": {"a": 1, "b": 2, "c": 3}, '
    '"output": {"label": "a"}}',
    '{"ts": "2024-02-30T10:00:00Z", "client_id": "x", "output": {"label": "a"}}',
    '{"ts": "2024-03-05t10:00:00z", "client_id": "x", "output": {"label": "a"}}',
    '{"ts": "2024-03-05 10:00:00.123456+05:30", "client_id": "x", "output": {"label": "a"}}',
    '{"ts": 1709632800, "client_id": "\\ud800", "output": {"label": "a"}}',
    '{"ts": 1709632800, "client_id": "x", "input": [1, 2], "output": {"label": "a"}}',
]


def malformed_corpus() -> list[str]:
    """Every field of a good record replaced, in turn, by each odd value (the fuzz tests'
    odd texts among them), and whole lines that are not records; the first line is malformed
    and the first input comes from ``features``, so the input length is fixed late."""
    from tests.test_fuzz_logs import ODD_TEXT

    out = []
    for name in [*GOOD, "output.label", "output.scores", "output.score"]:
        for odd in [*ODD, *ODD_TEXT]:
            rec = json.loads(json.dumps(GOOD))
            where, key = (rec["output"], name[7:]) if "." in name else (rec, name)
            where[key] = odd
            out.append(json.dumps(rec))
    return [out[0], *LINES, *out[1:]]


def _verdicts(rows: list[dict[str, Any]], report: ReadReport) -> dict[int, Any]:
    got: dict[int, Any] = {r["line"]: tuple(r[c] for c in COLUMNS[1:]) for r in rows}
    got.update({e["line"]: e["reason"] for e in report.errors})
    return got


def test_three_engines_one_verdict(spark_engine: Any, tmp_path: Path) -> None:
    """Python, DuckDB and Spark keep the same records with the same values and name the same
    reason for each malformed one: the checks are declared once (mlhunt.hunt.checks) and each
    engine's SQL is generated from them."""
    from mlhunt.hunt.engines.spark import _quiet_pandas

    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(malformed_corpus()) + "\n", "utf-8")
    py = ReadReport(max_errors=10_000)
    rows = [r for ln, rec in records(path, py) if (r := row_of(str(path), ln, rec, py))]
    want = _verdicts([dict(zip(COLUMNS, r, strict=True)) for r in rows], py)
    duck = ReadReport(max_errors=10_000)
    got_duck = _verdicts([r for t in read_batches(path, duck) for r in t.to_pylist()], duck)
    engine, spark = spark_engine
    sp = ReadReport(max_errors=10_000)
    with _quiet_pandas():
        events, cached = engine.read(spark, [path], sp, tmp_path)
        got_spark = _verdicts([r.asDict() for r in events.collect()], sp)
        cached.unpersist()
    assert 250 < py.malformed < len(want) - 200  # many of each
    assert got_duck == want
    assert got_spark == want
    assert (
        (sp.records, sp.malformed) == (duck.records, duck.malformed) == (py.records, py.malformed)
    )


# --- a sweep on its threshold: the same alert whatever shares its batch (issue 23) ------------

SWEEP = "MLH-HUNT-INVERSION-SWEEP"


def sweep_log(path: Path) -> None:
    """Twelve clients whose queries jump between 0 and 54 on feature 0 (so its 1..99% width is
    54) and, sorted last, one that sweeps it from 21 to 51 in steps of 3: at its 10th query the
    sweep covers 27 / 54 = exactly half of the range."""
    lines, ts = [], 1709596800.0
    for c in range(12):
        for j in range(160):  # every query changes both fields: 160 runs of one query
            ts += 1.0
            x = [0.0 if j % 2 else 54.0, float(j)]
            lines.append({"ts": ts, "client_id": f"c{c:02d}", "input": x})
    for v in range(21, 52, 3):
        ts += 1.0
        lines.append({"ts": ts, "client_id": "zz-sweeper", "input": [float(v), 7.0]})
    out = {"label": "approved", "scores": [0.25, 0.75]}
    text = "".join(json.dumps({**r, "source_ip": "10.0.0.9", "output": out}) + "\n" for r in lines)
    path.write_text(text, "utf-8")


def test_sweep_on_its_threshold_same_alert(spark_engine: Any, tmp_path: Path) -> None:
    """DuckDB scores the last client in a batch of its own, Spark with the clients of its hash
    bucket: a sweep's coverage used to be computed over the whole batch, so its rounding at
    exactly 0.5 differed (DuckDB fired at the 11th query, Spark at the 10th). Now both fire
    where the coverage is exactly 0.5."""
    sweep_log(tmp_path / "sweep.jsonl")
    kw: dict[str, Any] = {"detectors": [SWEEP], "params": {SWEEP: {"min_sweeps": 1}}}
    duck = hunt(tmp_path, **kw)
    spark = hunt(tmp_path, engine="spark", spark_master="local[2]", **kw)
    assert duck.population.width[0] == 54.0
    got = [(a.target, a.detected_at_event) for a in duck.alerts]
    assert got == [("zz-sweeper", 10)]
    assert _key(spark) == _key(duck)
