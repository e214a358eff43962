"""The DuckDB engine's own paths: Parquet read natively with the record checks in SQL, and the
sorted scan that builds detector batches from integer codes.

Reference for both: the per-line Python path (:func:`mlhunt.hunt.readers.python_tables`) and
:meth:`GroupBatch.from_arrow` on the plainly sorted events."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlhunt.hunt import readers
from mlhunt.hunt.detectors.base import Detector, DetectorSpec
from mlhunt.hunt.engines import _duck_load, _duck_prep
from mlhunt.hunt.engines._duck_load import load
from mlhunt.hunt.events import PopulationBuilder, input_matrix, sample_per_client
from mlhunt.hunt.readers import ReadReport

COLS = ("file", "line", "ts", "client_id", "source_ip", "input", "label", "margin", "status")
OUT = pa.struct(
    [("label", pa.string()), ("scores", pa.list_(pa.float64())), ("score", pa.float64())]
)


def _good(i: int) -> dict[str, Any]:
    return {
        "ts": f"2024-03-05T10:{i % 60:02d}:01.25Z",
        "client_id": f"c{i % 4}",
        "source_ip": f"10.0.0.{i % 3}",
        "input": [float(i), 1.5, -2.0],
        "output": {"label": "approved" if i % 2 else "denied", "scores": [0.3, 0.7], "score": None},
        "model": "m",
        "status": 200,
        "latency_ms": 2.5,
    }


# Rows the SQL must treat exactly as the Python path: kept with the same values, or reported
# with the same row number and reason (most of them by handing the row to Python).
ODD: list[dict[str, Any]] = [
    {"client_id": None},
    {"client_id": ""},
    {"ts": None},
    {"ts": ""},
    {"ts": "soon"},
    {"ts": "2024-03-05T10:00:01"},
    {"ts": " 1709632800"},
    {"ts": "1709632800.5"},
    {"ts": "2024-02-30T00:00:00Z"},
    {"ts": "2024-03-05T10:00:01.1234567+01:00"},
    {"ts": "nan"},
    {"ts": "1e400"},
    {"input": None},
    {"input": []},
    {"input": [1.0, None, 2.0]},
    {"input": [1.0, math.nan, 2.0]},
    {"input": [1.0, math.inf, 2.0]},
    {"input": [1.0, 2.0]},
    {"input": [1e308, 1e308, 1e308]},
    {"output": None},
    {"output": {"label": None, "scores": [0.5, 0.5], "score": None}},
    {"output": {"label": "", "scores": None, "score": None}},
    {"output": {"label": "x", "scores": None, "score": 0.2}},
    {"output": {"label": "x", "scores": None, "score": 7.0}},
    {"output": {"label": "x", "scores": [], "score": None}},
    {"output": {"label": "x", "scores": [0.6], "score": 0.1}},
    {"output": {"label": "x", "scores": [0.1, 0.6, 0.3], "score": None}},
    {"output": {"label": "x", "scores": [0.1, math.nan], "score": None}},
    {"output": {"label": "x", "scores": None, "score": math.inf}},
    {"status": None},
    {"latency_ms": math.nan},
    {"latency_ms": None},
    {"source_ip": ""},
    {"source_ip": None},
    {"model": ""},
    {"model": None},
    {"client_id": "Zoë"},
]
SCHEMA = pa.schema(
    [
        ("ts", pa.string()),
        ("client_id", pa.string()),
        ("source_ip", pa.string()),
        ("input", pa.list_(pa.float64())),
        ("output", OUT),
        ("model", pa.string()),
        ("status", pa.int64()),
        ("latency_ms", pa.float64()),
    ]
)


def _write(
    path: Path,
    recs: list[dict[str, Any]],
    schema: pa.Schema | None = None,
    row_group_size: int | None = None,
) -> Path:
    pq.write_table(pa.Table.from_pylist(recs, schema=schema), path, row_group_size=row_group_size)
    return path


def _fixture(tmp_path: Path) -> list[Path]:
    recs = [_good(i) for i in range(40)]
    for k, odd in enumerate(ODD):
        recs.insert(2 + 3 * k, {**_good(100 + k), **odd})
    a = _write(tmp_path / "a.parquet", recs, SCHEMA, row_group_size=16)
    # other column types: numbers as text, integer ids and labels, float32 and int vectors,
    # JSON text vectors, text status; and a first record that only Python can vouch for
    typed = []
    for i in range(30):
        typed.append(
            {
                "ts": 1709632800 + i,
                "client_id": i % 5,
                "input": [i, 2, 3],
                "output": {"label": i % 2, "scores": "[0.25, 0.75]", "score": "0.4"},
                "status": str(200 + i % 2),
                "latency_ms": "1.5e1",
            }
        )
    typed[0] = {**typed[0], "status": "200.9"}
    typed[3] = {**typed[3], "output": {"label": 1, "scores": "[0.25,0.75,]", "score": "0.4"}}
    typed[4] = {**typed[4], "output": {"label": 1, "scores": "[1, 2", "score": " 0.4"}}
    typed[5] = {**typed[5], "status": "abc", "latency_ms": ""}
    b_schema = pa.schema(
        [
            ("ts", pa.int64()),
            ("client_id", pa.int32()),
            ("input", pa.list_(pa.int64())),
            (
                "output",
                pa.struct([("label", pa.int8()), ("scores", pa.string()), ("score", pa.string())]),
            ),
            ("status", pa.string()),
            ("latency_ms", pa.string()),
        ]
    )
    b = _write(tmp_path / "b.parquet", typed, b_schema)
    f32 = pa.schema(
        [
            ("ts", pa.float64()),
            ("client_id", pa.string()),
            ("input", pa.list_(pa.float32())),
            ("output", OUT),
        ]
    )
    c = _write(
        tmp_path / "c.parquet",
        [
            {
                "ts": 1.7e9 + i / 3,
                "client_id": "f",
                "input": [0.1 * i, 0.2, 0.3],
                "output": {"label": "a", "scores": None, "score": 0.9},
            }
            for i in range(10)
        ],
        f32,
    )
    # no output column: Python looks for flattened ones (every row on the Python path)
    flat = _write(
        tmp_path / "d.parquet",
        [
            {"ts": 5.0 + i, "client_id": "g", "label": "l", "input": [1.0, 2.0, 3.0]}
            for i in range(5)
        ],
    )
    bad = tmp_path / "e.parquet"
    bad.write_bytes(a.read_bytes()[:300])
    return [a, b, c, flat, bad]


def _python(files: list[Path]) -> tuple[list[dict[str, Any]], ReadReport]:
    report = ReadReport()
    rows = []
    for path in files:  # the reference: the per-record Python path
        report.files.append(str(path))
        for t in readers.python_tables(path, report):
            rows += t.select(list(COLS)).to_pylist()
    return rows, report


def _engine(files: list[Path]) -> tuple[list[dict[str, Any]], ReadReport, Any, list[str]]:
    report = ReadReport()
    con = duckdb.connect()
    names = load(con, files, report, lambda _: None)
    cols = ", ".join(COLS).replace("file,", "file_idx,")
    t = con.sql(f"SELECT {cols} FROM events ORDER BY file_idx, line").to_arrow_table()
    rows = t.to_pylist()
    for r in rows:
        r["file"] = names[r.pop("file_idx")]
    return [{c: r[c] for c in COLS} for r in rows], report, con, names


def counting_rows(mp: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the records the Python reader checks (``["n"]``) while ``mp`` is active."""
    calls = {"n": 0}
    real = readers.row_of

    def counting(file: str, line: int, rec: Any, report: ReadReport) -> Any:
        calls["n"] += 1
        return real(file, line, rec, report)

    mp.setattr(readers, "row_of", counting)
    return calls


def _first_python(files: list[Path], tmp_path: Path) -> list[Path]:
    # the first record with an input only passes in Python (zone-less ts) and fixes d = 2
    head = {**_good(0), "ts": "2024-03-05T10:00:01", "input": [1.0, 2.0]}
    return [
        _write(tmp_path / "0.parquet", [head, _good(1), {**_good(2), "input": [1.0, 2.0]}], SCHEMA),
        *files,
    ]


@pytest.mark.parametrize("variant", ["plain", "python-first"])
def test_native_parquet_equals_python_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    files = _fixture(tmp_path)
    if variant == "python-first":
        files = _first_python(files, tmp_path)
    want_rows, want = _python(files)
    calls = counting_rows(monkeypatch)
    got_rows, got, _, _ = _engine(files)
    key = lambda r: (r["file"], r["line"])  # noqa: E731
    assert sorted(got_rows, key=key) == sorted(want_rows, key=key)
    assert got.errors == want.errors and got.malformed == want.malformed
    assert got.records == want.records and got.input_dim == want.input_dim
    assert got.files == want.files
    if variant == "python-first":  # d = 2 from Python: every 3-value input is reported
        assert want.input_dim == 2 and want.malformed > 100
        return
    assert want.malformed > 20 and want.records > 60
    assert any("unreadable" in e["reason"] for e in want.errors)
    # Python saw the odd rows (and the two files it reads wholly), not the good ones
    assert calls["n"] < want.records + want.malformed - 50


class _NoNeed(Detector):
    """A source detector without a necessary condition (every address is a candidate)."""

    def __init__(self) -> None:
        super().__init__(
            DetectorSpec(
                id="MLH-HUNT-TEST",
                title="t",
                scope="source_ip",
                atlas=[],
                severity={"low": 1.0},
                description="t",
                false_positive_notes="t",
            )
        )


def test_scan_batches_equal_from_arrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlhunt.hunt.engines import duckdb as eng
    from mlhunt.hunt.events import GroupBatch

    recs = [
        {
            **_good(i),
            "client_id": f"c{i % 7}",
            "source_ip": None if i % 5 == 0 else f"10.0.0.{i % 3}",
            "ts": f"2024-03-05T10:00:{i % 13:02d}Z",
        }
        for i in range(300)
    ]
    recs[10]["input"] = None
    recs[11]["status"] = None
    files = [
        _write(tmp_path / "a.parquet", recs[:200], SCHEMA),
        _write(tmp_path / "b.parquet", recs[200:], SCHEMA),
    ]
    _, report, con, names = _engine(files)
    d = report.input_dim or 0
    # the plain reference, read before prepare() drops the events table
    plain = {
        scope: con.sql(
            f"SELECT * FROM events WHERE {scope} IS NOT NULL ORDER BY {scope}, ts, file_idx, line"
        ).to_arrow_table()
        for scope in ("client_id", "source_ip")
    }
    assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == 300
    monkeypatch.setattr(_duck_prep, "SCAN_ROWS", 17)  # many record batches, groups across them
    # no source detector offers a need: every address is scanned
    prep = _duck_prep.prepare(con, d, None, [_NoNeed()], names)
    pop = prep.pop
    for scope in ("client_id", "source_ip"):
        got = list(eng.batches(con, scope, prep.tables[scope], prep))
        assert len(got) > 1
        want_t = plain[scope].append_column(
            "file", pa.array([names[i] for i in plain[scope].column("file_idx").to_pylist()])
        )
        want = GroupBatch.from_arrow(scope, want_t, pop.classes, pop.d)
        assert sum(b.n for b in got) == want.n
        assert [k for b in got for k in b.keys] == want.keys
        for f in ("ts", "x", "label", "margin", "status", "client", "file", "line"):
            joined = np.concatenate([getattr(b, f) for b in got])
            np.testing.assert_array_equal(joined, getattr(want, f), err_msg=f)
        for b in got:  # whole groups in every batch
            assert len(set(b.keys)) == len(b.keys)
    # the population's one ordered pass equals the builder fed with every event at once
    ref = PopulationBuilder()
    allc = plain["client_id"]
    ref.update(
        np.array(allc.column("client_id").to_pylist(), dtype=object),
        input_matrix(allc.column("input"), d),
        np.array(allc.column("label").to_pylist(), dtype=object),
        allc.column("margin").to_numpy(zero_copy_only=False).astype(float),
    )
    x = input_matrix(allc.column("input"), d)
    keys = np.array(allc.column("client_id").to_pylist(), dtype=object)
    has = ~np.isnan(x).any(axis=1)
    per = sample_per_client(len(set(keys.tolist())))
    first = [
        i for i in range(len(keys)) if has[i] and (has[:i] & (keys[:i] == keys[i])).sum() < per
    ]
    ref.add_sample(x[first])
    want_pop = ref.build()
    got_k = (pop.n_events, pop.n_clients, pop.d, pop.classes)
    assert got_k == (want_pop.n_events, want_pop.n_clients, want_pop.d, want_pop.classes)
    np.testing.assert_array_equal(pop.lower, want_pop.lower)
    np.testing.assert_allclose(pop.mean, want_pop.mean, rtol=1e-12)
    for e1, e2 in zip(pop.edges, want_pop.edges, strict=True):
        np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(pop.nn_edges, want_pop.nn_edges)
    assert _duck_load.file_ranks(files[::-1]) == {str(files[0]): 0, str(files[1]): 1}
