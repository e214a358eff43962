"""JSON Lines through the DuckDB engine's in-memory path (:mod:`mlhunt.hunt.engines._mem_json`):
the store holds exactly what the per-line Python path keeps, the report is the Python path's
(same records, same malformed lines, same order), whole hunts equal the table path's, and the
store grows, or the engine takes the table path, when the size estimate was wrong. The
parser's own contract, line by line: ``test_hunt_kern_json.py``."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from mlhunt.hunt import readers
from mlhunt.hunt.engines import _mem, _mem_json, _mem_read
from mlhunt.hunt.readers import ReadReport
from tests.test_hunt_duckdb import ODD, _good
from tests.test_hunt_mem import _hunt, _same_hunt, _store_rows

# Lines only the Python path may vouch for, or must report (with its reason and line number).
RAW = [
    b'{"ts":"2024-03-05T10:00:01Z","client_id":"c\\u0041","output":{"label":"a"}}',  # escape
    b'{"ts":1709632800,"client_id":"a","client_id":"b","output":{"label":"x"}}',  # repeated
    b'{"ts":1709632800,"client_id":"a","source_ip":"10.1.1.1","source_ip":null,'
    b'"output":{"label":"x"}}',
    b'{"ts":1709632800,"client_id":"a\tb","output":{"label":"x"}}',  # a raw tab in a string
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x"},"z":"\x7f\x1f"}',
    b'{"ts":1709632800,"client_id":"\xff\xfe","output":{"label":"x"}}',  # not UTF-8
    b'{"ts":1709632800,"client_id":"\xed\xa0\x80","output":{"label":"x"}}',  # a surrogate
    b'{"ts":1709632800,"client_id":"Zo\xc3\xab","output":{"label":"x"},"k":"\xf0\x9f\x98\x80"}',
    b'{"x":' + b"[" * 100_000,  # json recurses per level: RecursionError
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x"},"n":' + b"[" * 70 + b"]" * 70 + b"}",
    b'{"ts":1709632800.5,"client_id":"a","output":{"label":1.0},"status":18446744073709551616}',
    b'{"ts":1e400,"client_id":"a","output":{"label":"x"}}',
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x"},"input":[0.1,2.5e-3,7]}',
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x"},"input":[01,2,3]}',
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x"},"input":[1.,2,3]}',
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x"},"input":[true,2,3]}',
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x"},"input":["1.5",2,3]}',
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x"},"input":[1.5,2,3],}',
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x"}} trailing',
    b'{"ts":1709632800,"client_id":"a","output":"{\\"label\\": \\"x\\"}"}',
    b'{"ts":1709632800,"client_id":7,"output":{"label":"x"}}',
    b'{"ts":"1709632800","client_id":"a","output":{"label":"x"},"status":"200"}',
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x","scores":[0.25,0.25,0.5]}}',
    b'{"ts":1709632800,"client_id":"a","output":{"label":"x","score":1.5,"z":[NaN]}}',
    b'{"ts":-0.0,"client_id":"a","output":{"label":"x"},"input":[-0,-0.0,1e-320]}',
    b'{"ts":1709632800,"client_id":"a","label":"x"}',  # a flattened output
    b"\xef\xbb\xbf{}",  # a BOM inside the file
    b"[1, 2]",
    b"  \t ",
    b"\x0c",
    b"",
    b'{"ts": 1709632800 , "client_id" : "a" ,\t"output" : { "label" : "x" } }\r',
    b'{"ts":"2024-03-05T10:00:01.123456+05:30","client_id":"a","output":{"label":"x"},'
    b'"source_ip":"","model":null,"latency_ms":null,"status":null}',
]


def _lines(n_good: int = 60) -> list[bytes]:
    lines = [json.dumps(_good(i)).encode() for i in range(n_good)]
    odd = [json.dumps({**_good(100 + k), **o}).encode() for k, o in enumerate(ODD)]
    # full-precision floats (Python's repr: up to 17 digits) are the parser's, not Python's
    odd += [
        json.dumps({**_good(200 + k), "input": [math.pi * 10**k, 1 / 3, -2.0]}).encode()
        for k in range(-8, 8)
    ]
    for k, line in enumerate(odd + RAW):
        lines.insert(1 + 2 * k, line)
    return lines


def _file(
    tmp_path: Path,
    lines: list[bytes],
    name: str = "logs.jsonl",
    bom: bool = True,
    end: bytes = b"\n",
) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + end)
    return path


def _reference(files: list[Path]) -> tuple[list[dict[str, Any]], ReadReport]:
    """The per-line Python path: ``json.loads`` and the normaliser, line by line."""
    report = ReadReport()
    norm = readers._Normaliser(report)
    rows = []
    for path in files:
        report.files.append(str(path))
        for line, rec in readers._records(path, report):
            row = norm.row(str(path), line, rec)
            if row is not None:
                rows.append(dict(zip(readers.COLUMNS, row, strict=True)))
    out = [
        {
            k: r[k]
            for k in (
                "file",
                "line",
                "ts",
                "client_id",
                "source_ip",
                "input",
                "label",
                "margin",
                "status",
            )
        }
        for r in rows
    ]
    for r in out:
        r["status"] = 0 if r["status"] is None else r["status"]
    return sorted(out, key=lambda r: (r["file"], r["line"])), report


def _read(files: list[Path], budget: int = _mem.MEMORY_BUDGET) -> tuple[Any, Any, ReadReport]:
    plan = _mem.survey(files)
    report = ReadReport()
    store, names = _mem_read.read(files, plan, report, lambda _: None, budget)
    return store, names, report


def _same_as_python(files: list[Path]) -> ReadReport:
    want_rows, want = _reference(files)
    store, names, got = _read(files)
    assert dataclasses.asdict(got) == dataclasses.asdict(want)
    got_rows = _store_rows(store, names)
    assert len(got_rows) == len(want_rows) == got.records
    for g, w in zip(got_rows, want_rows, strict=True):
        assert g == w, (g, w)
    return got


@pytest.mark.parametrize("block", [64, 700, _mem_json.BLOCK_BYTES])
def test_read_equals_python_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    # blocks of 64 bytes: every line is longer than a block; 700: lines cut anywhere
    monkeypatch.setattr(_mem_json, "BLOCK_BYTES", block)
    got = _same_as_python([_file(tmp_path, _lines(), end=b"")])  # no newline at the end
    assert got.input_dim == 3 and got.records > 100 and got.malformed > 25
    reasons = " ".join(e["reason"] for e in got.errors)
    assert "nested too deeply" in reasons and "out of range" in reasons


def test_fast_lines_are_not_read_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = readers.json_row

    def counted(*args: Any) -> Any:
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(_mem_json, "json_row", counted)
    lines = _lines(2_000)
    _same_as_python([_file(tmp_path, lines)])
    # the Python path saw the odd lines (and a few more), not the 2,000 plain ones
    assert calls["n"] <= len(ODD) + 16 + len(RAW)


def test_input_length_fixed_by_a_python_line(tmp_path: Path) -> None:
    # the first record with an input is one only Python vouches for (ts without a zone, two
    # values): it fixes the length at 2 and the 3-value lines after it are malformed
    first = {**_good(0), "ts": "2024-03-05T10:00:01", "input": [1.0, 2.0]}
    lines = [json.dumps({**_good(1), "input": None}).encode(), json.dumps(first).encode()]
    lines += [json.dumps(_good(i)).encode() for i in range(2, 40)]
    lines += [json.dumps({**_good(i), "input": [1.0, float(i)]}).encode() for i in range(9)]
    got = _same_as_python([_file(tmp_path, lines)])
    assert got.input_dim == 2 and got.records == 11


def test_lone_carriage_return_and_crlf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_mem_json, "BLOCK_BYTES", 4096)
    good = [json.dumps(_good(i)).encode() for i in range(40)]
    crlf = b"\r\n".join(good) + b"\r\n"
    lone = b"\r".join(good[:5]) + b"\n"  # Python ends lines at a lone CR too
    path = tmp_path / "cr.jsonl"
    path.write_bytes(crlf + lone + b"\n".join(good) + b"\n")
    got = _same_as_python([path])
    assert got.records == 85 and got.malformed == 0


def test_hunt_equals_table_path(tmp_path: Path) -> None:
    from tests.test_hunt_duckdb import SCHEMA, _write

    logs = _file(tmp_path, _lines(300))
    parquet = _write(tmp_path / "p.parquet", [_good(i) for i in range(50)], SCHEMA)
    _same_hunt([logs])
    assert _same_hunt([parquet, logs])  # both files' events: alerts


def test_store_grows_past_the_estimate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the first lines are long (a padding key), the rest short: the estimate is far too low
    monkeypatch.setattr(_mem_json, "_SAMPLE", 4096)
    monkeypatch.setattr(_mem_json, "BLOCK_BYTES", 8192)
    long = [json.dumps({**_good(i), "pad": "x" * 2000}).encode() for i in range(3)]
    short = [
        json.dumps(
            {
                "ts": 1709632800 + i,
                "client_id": f"c{i % 7}",
                "output": {"label": "a"},
                "input": [1.0, 2.0, float(i)],
            }
        ).encode()
        for i in range(3000)
    ]
    path = _file(tmp_path, long + short)
    plan = _mem.survey([path])
    assert plan.estimated and plan.rows < 3003
    got = _same_as_python([path])
    assert got.records == 3003
    # a budget the estimate fits but the events do not: the table path, the same results
    budget = plan.need + 1
    res, rep = _hunt([path], budget, say=(say := []))
    _, t_rep = _hunt([path], 0)
    assert res.stats["path"] == "table" and any("events" in s for s in say)
    assert dataclasses.asdict(rep) == dataclasses.asdict(t_rep)
    with pytest.raises(_mem.Declined):
        _read([path], budget)


def test_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    _same_as_python([path])
    assert _mem_json.estimate(path) == (1024, 0)  # an empty file: room for a few events
    path.write_bytes(b"\xef\xbb\xbf")
    got = _same_as_python([path])
    assert got.records == 0 and got.files == [str(path)]


def test_store_pages_faulted_in_background() -> None:
    # JSON Lines: the store's pages are faulted in by a thread, in steps (a single call holds
    # the process's memory-map lock, and any large allocation elsewhere would wait for it)
    import mmap
    import time

    size = 3 * _mem._STEP + 4097  # not a whole number of steps
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    assert _mem._populate(buf, size, _mem._STEP)
    store = _mem.Store(100_000, background=True)
    store.reserve_x(3)
    t = time.perf_counter()
    store.x[:] = 1.5  # writing while the thread populates is fine
    store.rec[-1] = 7
    assert time.perf_counter() - t < 5 and float(store.x.sum()) == 1.5 * 300_000
    assert store.rec[-1].tolist() == [7] * 6 and not store.rec[:-1].any()
