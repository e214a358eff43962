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
    rec = {"ts": f"2024-03-05T10:00:{i % 60:02d}.000Z", "client_id": f"c{i % 3}",
           "input": [float(i), 1.0, 2.0], "output": {"label": "approved", "scores": [0.3, 0.7]},
           "source_ip": "10.0.0.1", "status": 200, "latency_ms": 2.5, "model": "m"}  # fmt: skip
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
            w.writerow([1709632800 + 1, r["client_id"], json.dumps(r["input"]),
                        json.dumps(r["output"]), 200])  # fmt: skip
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
