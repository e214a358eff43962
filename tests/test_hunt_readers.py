"""Log readers: formats, paths, gzip, malformed records counted (never fatal)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlhunt.errors import InputError
from mlhunt.hunt.readers import ReadReport, read_batches, resolve


def _rec(i: int, **over: object) -> dict:
    rec = {
        "ts": f"2024-03-05T10:00:{i % 60:02d}.000Z",
        "client_id": f"c{i % 3}",
        "input": [float(i), 1.0, 2.0],
        "output": {"label": "approved", "scores": [0.3, 0.7]},
        "source_ip": "10.0.0.1",
        "status": 200,
        "latency_ms": 2.5,
        "model": "m",
    }
    rec.update(over)
    return rec


def _read(path: str | Path) -> tuple[pa.Table, ReadReport]:
    report = ReadReport()
    tables = list(read_batches(path, report, batch_rows=4))
    return pa.concat_tables(tables), report


def test_jsonl_normalised_and_malformed_reported(tmp_path: Path) -> None:
    lines = [json.dumps(_rec(i)) for i in range(10)]
    lines[2] = "{not json"
    lines[5] = json.dumps(_rec(5, client_id=""))
    lines[7] = json.dumps(_rec(7, input=[1.0, 2.0]))  # wrong length
    lines.insert(8, "")  # blank lines are not records
    p = tmp_path / "a.jsonl"
    p.write_text("\n".join(lines) + "\n")
    t, report = _read(p)
    assert t.num_rows == 7 and report.records == 7 and report.malformed == 3
    assert [e["line"] for e in report.errors] == [3, 6, 8]
    assert report.errors[1]["reason"].startswith("client_id")
    assert "expected 3" in report.errors[2]["reason"]
    row = t.slice(0, 1).to_pylist()[0]
    assert row["ts"] == pytest.approx(1709632800.0)
    assert row["score"] == 0.7 and row["margin"] == pytest.approx(0.4)
    assert row["line"] == 1 and row["file"] == str(p)
    assert "3 malformed" in report.summary() and ":3:" in report.summary()


def test_csv_parquet_gzip_folder_glob(tmp_path: Path) -> None:
    recs = [_rec(i) for i in range(6)]
    with (tmp_path / "b.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "client_id", "input", "output", "status"])
        for r in recs:
            w.writerow(
                [
                    1709632800 + 1,
                    r["client_id"],
                    json.dumps(r["input"]),
                    json.dumps(r["output"]),
                    200,
                ]
            )
        w.writerow(["bad-time", "c1", "[1,2,3]", '{"label": "x"}', 200])
    flat = [{**r, "input": r["input"], "output": r["output"]} for r in recs]
    pq.write_table(pa.Table.from_pylist(flat), tmp_path / "c.parquet")
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in recs)
    (tmp_path / "notes.txt").write_text("not a log")
    t, report = _read(tmp_path)
    assert len(report.files) == 3 and t.num_rows == 18
    assert report.malformed == 1 and report.errors[0]["line"] == 8  # header is line 1
    t2, _ = _read(str(tmp_path / "*.jsonl.gz"))
    assert t2.num_rows == 6
    assert set(t.column("label").to_pylist()) == {"approved"}


def test_missing_paths_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        resolve(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="glob matches no files"):
        resolve(str(tmp_path / "*.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no log files"):
        resolve(tmp_path / "empty")


def test_unreadable_file_is_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl.gz").write_bytes(b"definitely not gzip")
    (tmp_path / "y.jsonl").write_text(json.dumps(_rec(1)) + "\n")
    t, report = _read(tmp_path)
    assert t.num_rows == 1 and report.malformed == 1
    assert "unreadable" in report.errors[0]["reason"]


def test_streamed_in_bounded_batches(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    p.write_text("".join(json.dumps(_rec(i)) + "\n" for i in range(25)))
    report = ReadReport()
    sizes = [b.num_rows for b in read_batches(p, report, batch_rows=10)]
    assert sizes == [10, 10, 5]


# --- DuckDB reading (mlhunt.hunt.duckread) against the Python path ----------------------------

GOOD = {
    "ts": "2024-03-05T10:00:01Z",
    "client_id": "c1",
    "input": [1.0, 2.0, 3.0],
    "output": {"label": "approved", "scores": [0.25, 0.75]},
}
# Lines DuckDB's reading must treat exactly as the per-line Python path: kept with the same
# values, or reported with the same line and reason.
TRICKY: list[object] = [
    {**GOOD, "ts": "2024-03-05T10:00:01.123456+05:30"},
    {**GOOD, "ts": "2024-03-05 10:00:01.5Z"},
    {**GOOD, "ts": 1709632800},
    {**GOOD, "ts": "1709632800.25"},
    {**GOOD, "ts": 1.7e9},
    {**GOOD, "ts": " 2024-03-05T10:00:01Z"},
    {**GOOD, "ts": "2024-03-05T10:00:01.1234567Z"},
    {**GOOD, "ts": "soon"},
    {**GOOD, "ts": "2024-02-30T00:00:00Z"},
    {**GOOD, "ts": "2024-03-05T24:00:00Z"},
    {**GOOD, "ts": True},
    {**GOOD, "ts": None},
    {k: v for k, v in GOOD.items() if k != "ts"},
    {**GOOD, "client_id": 123},
    {**GOOD, "client_id": 1.5},
    {**GOOD, "client_id": True},
    {**GOOD, "client_id": {"a": 1}},
    {**GOOD, "client_id": [1]},
    {**GOOD, "client_id": ""},
    {**GOOD, "client_id": None},
    {**GOOD, "client_id": 12345678901234567890123},
    {**GOOD, "client_id": "007"},
    {**GOOD, "client_id": "Zoë"},
    {**GOOD, "client_id": "1e5"},
    {**GOOD, "source_ip": 5},
    {**GOOD, "source_ip": ""},
    {**GOOD, "source_ip": {"x": 1}},
    {**GOOD, "source_ip": "10.0.0.1"},
    {**GOOD, "model": 3},
    {**GOOD, "model": ""},
    {**GOOD, "input": [1, "2", 3]},
    {**GOOD, "input": [1, None, 3]},
    {**GOOD, "input": "abc"},
    {**GOOD, "input": "[4, 5, 6]"},
    {**GOOD, "input": []},
    {**GOOD, "input": [1.0, 2.0]},
    {**GOOD, "input": [True, 1, 2]},
    {**GOOD, "input": {"a": 1}},
    {**GOOD, "input": [[1], 2, 3]},
    {**GOOD, "input": None},
    {**GOOD, "input": ""},
    {**GOOD, "output": None},
    {**GOOD, "output": "x"},
    {**GOOD, "output": {"label": 1}},
    {**GOOD, "output": {"label": 1.0}},
    {**GOOD, "output": {"label": True}},
    {**GOOD, "output": {"label": ""}},
    {**GOOD, "output": {"label": "a", "score": 0.3}},
    {**GOOD, "output": {"label": "a", "score": "0.3"}},
    {**GOOD, "output": {"label": "a", "score": "abc"}},
    {**GOOD, "output": {"label": "a", "score": 7}},
    {**GOOD, "output": {"label": "a", "scores": [0.2]}},
    {**GOOD, "output": {"label": "a", "scores": "bad"}},
    {**GOOD, "output": {"label": "a", "scores": [0.1, 0.6, 0.3]}},
    {"ts": 5, "client_id": "c", "label": "flat", "scores": [0.4, 0.6]},
    {**GOOD, "status": 200.7},
    {**GOOD, "status": "404"},
    {**GOOD, "status": True},
    {**GOOD, "status": "abc"},
    {**GOOD, "latency_ms": "3.5"},
    {**GOOD, "latency_ms": "NaN"},
    {**GOOD, "latency_ms": 2},
    {**GOOD, "extra": {"nested": [1, 2]}},
    "[1, 2]",
    "5",
    "{bad",
    "",
    "   ",
    '{"ts": 5, "client_id": "c\\ud800", "output": {"label": "a"}}',
    '{"ts": 5, "client_id": "c", "output": {"label": "a"}, "x": NaN}',
    '{"ts": 5, "client_id": "c", "output": {"label": "a"}, "latency_ms": Infinity}',
    '{"ts": 5, "client_id": "c", "output": {"label": "a", "scores": [0.5, -inf]}}',
]


# Lines DuckDB's JSON reader reads although they are not strict JSON (a trailing comma, a
# lower-case nan outside the checked fields): the documented difference, records kept.
LENIENT = [
    '{"ts": 5, "client_id": "c", "output": {"label": "a"},}',
    '{"ts": 5, "client_id": "c", "output": {"label": "a"}, "x": nan}',
    '{"ts": 5, "client_id": "c", "output": {"label": "a"}, "model": "info", "x": [1 , ]}',
]


def test_lenient_json_is_the_documented_difference(tmp_path: Path) -> None:
    p = tmp_path / "l.jsonl"
    p.write_text("\n".join(LENIENT) + "\n")
    t, got = _read(p)
    assert got.records == 3 and got.malformed == 0
    assert t.column("client_id").to_pylist() == ["c"] * 3
    assert _python_path(p)[1].malformed == 3  # Python's json module rejects all three


def _python_path(path: Path) -> tuple[list[dict], ReadReport]:
    """The reference: every line through the Python path (json module, spec checks)."""
    from mlhunt.hunt.readers import COLUMNS, records, row_of

    report = ReadReport()
    rows = []
    for line, rec in records(path, report):
        row = row_of(str(path), line, rec, report)
        if row is not None:
            rows.append(dict(zip(COLUMNS, row, strict=True)))
    return rows, report


def _sorted_rows(t: pa.Table) -> list[dict]:
    return sorted(t.to_pylist(), key=lambda r: r["line"])


def _lines(items: list[object]) -> list[str]:
    return [x if isinstance(x, str) else json.dumps(x) for x in items]


@pytest.mark.parametrize("first", ["fast", "python"])
def test_duckdb_reading_equals_python_path(tmp_path: Path, first: str) -> None:
    # "python": the first record (which fixes the input length) takes the Python path
    head = {**GOOD, "client_id": 1.5, "input": [9.0, 9.0]} if first == "python" else GOOD
    lines = _lines([head, *TRICKY, GOOD, *TRICKY[::-1]])
    p = tmp_path / "t.jsonl"
    p.write_text("\r\n".join(lines[:20]) + "\r\n" + "\n".join(lines[20:]) + "\n")
    want_rows, want = _python_path(p)
    t, got = _read(p)
    assert _sorted_rows(t) == want_rows
    assert got.malformed == want.malformed
    if want.malformed <= 100:  # (past 100 only the count is kept, in reading order)
        assert sorted(got.errors, key=lambda e: e["line"]) == want.errors
    assert got.records == want.records == len(want_rows) and got.input_dim == want.input_dim
    assert want.malformed > 40 and len(want_rows) > (40 if first == "fast" else 5)


def test_lone_carriage_return_and_bad_utf8(tmp_path: Path) -> None:
    # lines end with \n (\r\n too); a lone \r is inside a line, which is then not JSON
    p = tmp_path / "odd.jsonl"
    good = json.dumps(GOOD).encode()
    p.write_bytes(
        good + b"\n" + good[:-1] + b', "model": "\xff"}\n' + good + b"\r" + good + b"\n{bad\n"
    )
    want_rows, want = _python_path(p)
    t, got = _read(p)
    assert _sorted_rows(t) == want_rows and got.errors == want.errors
    assert [r["line"] for r in want_rows] == [1, 2] and [e["line"] for e in want.errors] == [3, 4]


def _scattered(tmp_path: Path, n: int = 3000) -> tuple[list[str], list[int]]:
    import random

    rnd = random.Random(7)
    lines = _lines([_rec(i, client_id=f"c{i % 17}") for i in range(n)])
    bad_kinds = [
        "{broken",
        '{"ts": 1, "client_id": "c", "output": {"label": "a"}',
        json.dumps(_rec(0, ts="never")),
        json.dumps(_rec(0, input=[1.0])),
        json.dumps(_rec(0, client_id=None)),
        "[]",
    ]
    bad = sorted(rnd.sample(range(n), 60))
    for k, i in enumerate(bad):
        lines[i] = bad_kinds[k % len(bad_kinds)]
    return lines, [i + 1 for i in bad]


@pytest.mark.parametrize("gz", [False, True])
def test_malformed_scattered_named_by_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool
) -> None:
    from mlhunt.hunt import readers

    calls = {"n": 0}
    loads = json.loads

    def counting(text: str) -> object:
        calls["n"] += 1
        return loads(text)

    monkeypatch.setattr(readers.json, "loads", counting)
    lines, bad_lines = _scattered(tmp_path)
    p = tmp_path / ("s.jsonl.gz" if gz else "s.jsonl")
    data = ("\n".join(lines) + "\n").encode()
    p.write_bytes(gzip.compress(data) if gz else data)
    report = ReadReport()
    tables = list(read_batches(p, report, batch_rows=1000))
    assert [e["line"] for e in report.errors] == bad_lines and report.malformed == 60
    assert all(e["file"] == str(p) for e in report.errors)
    t = pa.concat_tables(tables)
    good = sorted(set(range(1, len(lines) + 1)) - set(bad_lines))
    assert sorted(t.column("line").to_pylist()) == good and report.records == len(good)
    assert max(b.num_rows for b in tables) <= 1000
    # only the malformed lines took the Python path (and the first line, read for its layout)
    assert calls["n"] == 61
