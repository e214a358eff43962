"""Fuzzing of the inference-log reader (issues #9, #23): JSON Lines and Parquet (DuckDB's
reading with the checks in SQL, and the per-line Python path), CSV, gzip.

DESIGN.md: a malformed record never stops a hunt and is never dropped silently. So besides "no
exception but InputError", every test checks the books balance on the generated file: records
kept + malformed == records in the file, each malformed one reported with its line, and the
fast paths (DuckDB) agree with the Python path record for record (same rows, same values, same
malformed lines). Counts: :mod:`tests.fuzzcount`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlhunt.hunt.readers import ReadReport, read_batches, records, row_of
from tests.fuzzcount import Tally, ci_scaled, flush_after_module, outcome, scaled

pytestmark = pytest.mark.fuzz
TALLY = Tally()


_write_counts = flush_after_module(TALLY)


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mlhunt-fuzz-logs-") as d:
        yield Path(d)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------

ODD_TEXT = [
    "",
    " ",
    "NaN",
    "nan",
    "-Infinity",
    "inf",
    "1e400",
    "-0",
    "0x10",
    "1_0",
    "١٢",
    "2024-03-05T10:00:00Z",
    "2024-03-05T10:00:00",
    "2024-03-05 10:00:00.1234567+01:00",
    "2024-02-30T10:00:00Z",
    "2024-03-05T24:00:00Z",
    "1709632800",
    "1709632800.5",
    " 1709632800 ",
    "+1709632800",
    "true",
    "null",
    "[1, 2]",
    '{"label": 1}',
    "[1,]",
    "[nan]",
    "[1e999]",
    "[]",
    "\ud800",
    "\x00",
    "é\u0301",
    "\u202egnp",
    "x" * 300,
    "1" * 30,
    "-" + "9" * 400,
]
WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**30), 10**30),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(ODD_TEXT),
    st.lists(st.floats() | st.integers() | st.sampled_from(ODD_TEXT[:6]) | st.none(), max_size=4),
    st.dictionaries(
        st.sampled_from(["label", "scores", "score", "x"]),
        st.floats() | st.none() | st.text(max_size=3) | st.lists(st.floats(), max_size=3),
        max_size=3,
    ),
)
GOOD = {
    "ts": st.sampled_from(
        [
            "2024-03-05T10:00:01Z",
            "2024-03-05T10:00:01.123456+02:00",
            1709632800,
            1709632800.25,
            "1709632800",
        ]
    ),
    "client_id": st.sampled_from(["c1", "c2", "ключ", "7"]) | st.integers(0, 5),
    "input": st.lists(st.floats(-1e6, 1e6) | st.integers(-5, 5), min_size=3, max_size=3),
    "source_ip": st.sampled_from(["10.0.0.1", "::1", ""]),
    "status": st.sampled_from([200, 429, 500, 200.0]),
    "latency_ms": st.floats(0, 1e4) | st.integers(0, 100),
    "model": st.sampled_from(["m", "v2", ""]),
}
OUTPUT_GOOD = {
    "label": st.sampled_from(["approved", "denied", 0, 1, 1.0]),
    "scores": st.lists(st.floats(0, 1), min_size=2, max_size=2),
    "score": st.floats(0, 1),
}


@st.composite
def record(draw: st.DrawFn) -> Any:
    """A log record: mostly valid, each field sometimes missing or replaced by an odd value."""
    if draw(st.integers(0, 30)) == 0:
        return draw(WEIRD)  # not an object at all
    rec: dict[str, Any] = {}
    broken = draw(st.integers(0, 3))  # how eagerly this record's fields are broken
    for name, good in GOOD.items():
        roll = draw(st.integers(0, 12))
        if roll < broken:
            rec[name] = draw(WEIRD)
        elif roll != 12 or name in ("ts", "client_id"):
            rec[name] = draw(good)
    out: dict[str, Any] = {}
    for name, good in OUTPUT_GOOD.items():
        roll = draw(st.integers(0, 12))
        if roll < broken:
            out[name] = draw(WEIRD)
        elif roll < 10:
            out[name] = draw(good)
    rec["output"] = out if draw(st.integers(0, 20)) else draw(WEIRD)
    if draw(st.integers(0, 10)) == 0:
        rec[draw(st.text(max_size=5))] = draw(WEIRD)
    return rec


@st.composite
def jsonl_line(draw: st.DrawFn, lenient: bool) -> bytes:
    """One line's bytes (without its end): a JSON record, maybe damaged as text or bytes.

    ``lenient``: the line may use what DuckDB's JSON reader accepts and Python's does not
    (docs/hunt.md: a trailing comma, lower-case ``nan``, a repeated key)."""
    text = json.dumps(draw(record()), ensure_ascii=draw(st.booleans()))
    how = draw(st.integers(0, 24))
    if how == 0:
        text = text[: draw(st.integers(0, len(text)))]
    elif how == 1:
        pos = draw(st.integers(0, len(text)))
        damage = ["}", "\\", '"', "NaN", "INF", "\x00", "\t", " ", "\u2028", "\x85", "{"]
        text = text[:pos] + draw(st.sampled_from(damage + ([",", "nan"] if lenient else [])))
        text += text[pos:]
    elif how == 2 and lenient:
        text = text.replace("}", ",}", 1)  # a trailing comma (DuckDB accepts it)
    elif how == 3 and lenient:
        text = text.replace("{", '{"client_id": "dup", ', 1)  # a repeated key
    elif how == 4:
        text = draw(
            st.sampled_from(
                [
                    "",
                    "   ",
                    "\t",
                    "[]",
                    "[1,2]",
                    "3",
                    "null",
                    '"s"',
                    "{}",
                    "\ufeff{}",
                    "\x1c",
                    '{"ts": 1}',
                ]
            )
        )
    data = text.encode("utf-8", "surrogatepass")
    if how == 5 and data:  # raw bytes: invalid UTF-8, stray CRs
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + draw(st.sampled_from([b"\xff", b"\xc3", b"\r", b"\x00", b"\xe2\x80"]))
        data += data[i:]
    return data


@st.composite
def jsonl_file(draw: st.DrawFn, lenient: bool = True) -> bytes:
    lines = draw(st.lists(jsonl_line(lenient), max_size=25))
    end = draw(st.sampled_from([b"\n", b"\n", b"\r\n", b"\r"]))
    data = end.join(lines) + (end if lines and draw(st.booleans()) else b"")
    if draw(st.integers(0, 10)) == 0:
        data = b"\xef\xbb\xbf" + data  # a BOM
    return data


def nonblank_lines(data: bytes) -> list[int]:
    """The numbers of the lines that hold a record: lines end with \n (a lone \r is inside a
    line); a line of ASCII whitespace holds none."""
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    return [i for i, line in enumerate(lines, 1) if line.strip()]


def python_path(path: Path) -> tuple[ReadReport, list[tuple[Any, ...]]]:
    """The reference reading: per-line Python path only (no DuckDB)."""
    report = ReadReport()
    rows = [
        r
        for line, rec in records(path, report)
        if (r := row_of(str(path), line, rec, report)) is not None
    ]
    return report, rows


def read_all(path: Path) -> tuple[ReadReport, list[dict[str, Any]]]:
    report = ReadReport()
    tables = list(read_batches(path, report, batch_rows=7))
    rows = [r for t in tables for r in t.to_pylist()]
    return report, rows


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def assert_books_balance(report: ReadReport, rows: list[dict[str, Any]], lines: list[int]) -> None:
    """Every record line is either a row or a malformed record, once, with its line number."""
    assert report.records == len(rows)
    assert report.records + report.malformed == len(lines), (
        report.records,
        report.malformed,
        len(lines),
        report.errors,
    )
    kept = [r["line"] for r in rows]
    bad = [e["line"] for e in report.errors]
    assert len(set(kept)) == len(kept) and not set(kept) & set(bad)
    assert set(kept) | set(bad) <= set(lines)
    if report.malformed <= 100:
        assert sorted(set(kept) | set(bad)) == lines
    assert all(e["reason"] and e["file"] for e in report.errors)


def assert_same_as_python(path: Path, report: ReadReport, rows: list[dict[str, Any]]) -> None:
    ref, ref_rows = python_path(path)
    assert (report.records, report.malformed) == (ref.records, ref.malformed)
    assert [e["line"] for e in report.errors] == [e["line"] for e in ref.errors]
    names = list(rows[0]) if rows else []
    for got, want in zip(sorted(rows, key=lambda r: r["line"]), ref_rows, strict=True):
        for name, value in zip(names, want, strict=True):
            assert same(got[name], value), (name, got, want)


# ---------------------------------------------------------------------------------------------
# JSON Lines
# ---------------------------------------------------------------------------------------------


@ci_scaled(2)
@given(data=st.data())
def test_jsonl_books_balance_and_fast_path_matches_python(work: Path, data: st.DataObject) -> None:
    lenient = data.draw(st.booleans())  # DuckDB's documented leniencies (docs/hunt.md)
    raw = data.draw(jsonl_file(lenient))
    path = work / "fuzz.jsonl"
    path.write_bytes(raw)
    got = outcome(TALLY, "log-jsonl", read_all, path)
    assert got is not None  # a file that exists is never an InputError
    assert_books_balance(*got, nonblank_lines(raw))
    if not lenient:
        assert_same_as_python(path, *got)


@ci_scaled(2)
@given(data=st.binary(max_size=400))
def test_jsonl_random_bytes(work: Path, data: bytes) -> None:
    path = work / "bytes.jsonl"
    path.write_bytes(data)
    got = outcome(TALLY, "log-jsonl", read_all, path)
    assert got is not None
    assert_books_balance(*got, nonblank_lines(data))


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "ts",
    "client_id",
    "input",
    "output",
    "output.label",
    "output.scores",
    "output.score",
    "label",
    "scores",
    "score",
    "source_ip",
    "status",
    "latency_ms",
    "model",
]


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


@st.composite
def csv_file(draw: st.DrawFn) -> bytes:
    cols = draw(
        st.lists(st.sampled_from(CSV_COLUMNS) | st.text(max_size=4), min_size=1, max_size=8)
    )  # duplicates and unknown columns included
    buf = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    w = csv.writer(buf, quoting=quoting, lineterminator=draw(st.sampled_from(["\r\n", "\n"])))
    w.writerow(cols)
    for _ in range(draw(st.integers(0, 15))):
        rec = draw(record())
        flat = rec if isinstance(rec, dict) else {}
        out = flat.get("output") if isinstance(flat.get("output"), dict) else {}
        cells = []
        for c in cols:
            v = out.get(c.split(".", 1)[1]) if c.startswith("output.") else flat.get(c)
            cells.append(_cell(v))
        cells += [_cell(draw(WEIRD))] * draw(st.sampled_from([0, 0, 0, 1]))  # a ragged row
        w.writerow(cells[: len(cells) - draw(st.sampled_from([0, 0, 0, 1]))])
    text = buf.getvalue()
    if draw(st.integers(0, 30)) == 0:  # a field over the csv module's 131,072-character limit
        text += f"1709632800,c,{'x' * 140_000}\n"
    if draw(st.integers(0, 6)) == 0:  # damage: a stray quote, NUL, truncation
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(st.sampled_from(['"', "\x00", "\r", ",", ""])) + text[pos:]
    return text.encode("utf-8", "surrogatepass")


def csv_records(data: bytes) -> int:
    """How many rows csv.DictReader yields or fails on (one malformed record each)."""
    fh = io.StringIO(data.decode("utf-8-sig", "replace"), newline="")
    rows = iter(csv.DictReader(fh))
    n = 0
    while True:
        try:
            next(rows)
        except StopIteration:
            return n
        except csv.Error:
            pass
        n += 1


@ci_scaled(2)
@given(data=csv_file())
def test_csv_books_balance(work: Path, data: bytes) -> None:
    path = work / "fuzz.csv"
    path.write_bytes(data)
    got = outcome(TALLY, "log-csv", read_all, path)
    assert got is not None
    report, rows = got
    assert report.records + report.malformed == csv_records(data), report.errors
    assert report.records == len(rows)


# ---------------------------------------------------------------------------------------------
# Parquet: DuckDB's native reading (the engine) against the Python path (pyarrow)
# ---------------------------------------------------------------------------------------------

ARROW_TYPES = {
    "ts": [pa.string(), pa.int64(), pa.float64(), pa.float32(), pa.timestamp("ms"), pa.bool_()],
    "client_id": [pa.string(), pa.int32(), pa.large_string(), pa.binary(), pa.float64()],
    "input": [
        pa.list_(pa.float64()),
        pa.list_(pa.int64()),
        pa.large_list(pa.float32()),
        pa.string(),
        pa.list_(pa.string()),
    ],
    "status": [pa.int64(), pa.float64(), pa.string(), pa.int8()],
    "latency_ms": [pa.float64(), pa.string(), pa.int16()],
    "source_ip": [pa.string(), pa.int64()],
    "model": [pa.string(), pa.dictionary(pa.int32(), pa.string())],
}
OUT_TYPES = {
    "label": [pa.string(), pa.int64(), pa.float64()],
    "scores": [pa.list_(pa.float64()), pa.string(), pa.list_(pa.float32())],
    "score": [pa.float64(), pa.string()],
}


def _arrow_column(values: list[Any], t: pa.DataType) -> pa.Array:
    """``values`` as type ``t``; a value that does not convert becomes null."""
    out = []
    for v in values:
        try:
            pa.array([v], t)
            out.append(v)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            out.append(None)
    return pa.array(out, t)


@st.composite
def parquet_table(draw: st.DrawFn) -> pa.Table:
    recs = [r if isinstance(r, dict) else {} for r in draw(st.lists(record(), max_size=20))]
    cols: dict[str, pa.Array] = {}
    for name, types in ARROW_TYPES.items():
        if draw(st.integers(0, 8)):
            cols[name] = _arrow_column([r.get(name) for r in recs], draw(st.sampled_from(types)))
    how = draw(st.sampled_from(["struct", "struct", "struct", "json", "flat", "none"]))
    outs = [r.get("output") if isinstance(r.get("output"), dict) else {} for r in recs]
    if how == "struct":
        fields = {
            k: _arrow_column([o.get(k) for o in outs], draw(st.sampled_from(t)))
            for k, t in OUT_TYPES.items()
            if draw(st.integers(0, 5))
        }
        if fields:
            cols["output"] = pa.StructArray.from_arrays(list(fields.values()), list(fields))
    elif how == "json":
        cols["output"] = pa.array([json.dumps(o) for o in outs], pa.string())
    elif how == "flat":
        cols["output.label"] = _arrow_column([o.get("label") for o in outs], pa.string())
    if not cols:
        cols["x"] = pa.array([1] * len(recs), pa.int64())
    return pa.table(cols)


def native_load(path: Path) -> tuple[ReadReport, list[dict[str, Any]]]:
    """The DuckDB engine's loading of one file (native Parquet reading when it can)."""
    import duckdb

    from mlhunt.hunt.engines._duck_load import load

    report = ReadReport()
    con = duckdb.connect()
    try:
        load(con, [path], report, lambda _: None)
        rows = (
            con.sql(
                "SELECT line, ts, client_id, source_ip, input, label, margin, status "
                "FROM events ORDER BY line"
            )
            .to_arrow_table()
            .to_pylist()
        )
    finally:
        con.close()
    return report, rows


@scaled(2)
@given(table=parquet_table(), row_group=st.sampled_from([3, 1000]))
def test_parquet_native_matches_python(work: Path, table: pa.Table, row_group: int) -> None:
    path = work / "fuzz.parquet"
    pq.write_table(table, path, row_group_size=row_group)
    got = outcome(TALLY, "log-parquet", native_load, path)
    assert got is not None
    report, rows = got
    ref, ref_rows = python_path(path)
    assert (report.records, report.malformed) == (ref.records, ref.malformed), (
        report.errors,
        ref.errors,
    )
    assert [e["line"] for e in report.errors] == [e["line"] for e in ref.errors]
    assert report.records + report.malformed == table.num_rows
    keep = ("line", "ts", "client_id", "source_ip", "input", "label", "margin", "status")
    idx = [0, 1, 2, 3, 4, 5, 7, 9]  # positions of ``keep`` in a readers.COLUMNS row (+file)
    for got_row, want in zip(rows, ref_rows, strict=True):
        for name, i in zip(keep, idx, strict=True):
            assert same(got_row[name], want[i + 1]), (name, got_row, want)


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    how = draw(st.sampled_from(["truncate", "flip", "raw"]))
    if how == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if how == "flip" and data:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
        return data
    return draw(st.binary(max_size=300))


@scaled(2)
@given(data=st.data())
def test_parquet_damaged(work: Path, data: st.DataObject) -> None:
    buf = io.BytesIO()
    pq.write_table(data.draw(parquet_table()), buf)
    path = work / "damaged.parquet"
    path.write_bytes(data.draw(damaged(buf.getvalue())))
    for read in (native_load, read_all):
        got = outcome(TALLY, "log-parquet", read, path)
        assert got is not None


# ---------------------------------------------------------------------------------------------
# gzip, and a whole hunt over generated logs
# ---------------------------------------------------------------------------------------------


@ci_scaled(2)
@given(data=st.data())
def test_gzip_logs(work: Path, data: st.DataObject) -> None:
    suffix = data.draw(st.sampled_from([".jsonl", ".csv"]))
    plain = data.draw(jsonl_file() if suffix == ".jsonl" else csv_file())
    packed = gzip.compress(plain)
    intact = data.draw(st.booleans())
    path = work / f"fuzz{suffix}.gz"
    path.write_bytes(packed if intact else data.draw(damaged(packed)))
    got = outcome(TALLY, "log-gzip", read_all, path)
    assert got is not None
    if intact:
        (work / f"plain{suffix}").write_bytes(plain)
        want = read_all(work / f"plain{suffix}")
        assert (got[0].records, got[0].malformed) == (want[0].records, want[0].malformed)


@scaled(10, floor=30)
@given(data=st.data())
def test_hunt_over_generated_logs(work: Path, data: st.DataObject) -> None:
    """`mlhunt hunt` (all detectors, DuckDB engine) on a generated folder of logs."""
    from mlhunt.hunt.api import hunt

    folder = work / "hunt"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / "a.jsonl").write_bytes(data.draw(jsonl_file()))
    if data.draw(st.booleans()):
        (folder / "b.csv").write_bytes(data.draw(csv_file()))
    if data.draw(st.booleans()):
        pq.write_table(data.draw(parquet_table()), folder / "c.parquet")
    result = outcome(TALLY, "hunt", hunt, folder)
    if result is not None:
        doc = result.document()
        json.dumps(doc)
        assert doc["read"]["records"] == result.read.records


# ---------------------------------------------------------------------------------------------
# Regressions: the minimal inputs of the bugs the fuzzing found
# ---------------------------------------------------------------------------------------------

GOOD_LINE = b'{"ts": 1709632800, "client_id": "c1", "output": {"label": "a"}}'


def test_regression_status_beyond_int64(tmp_path: Path) -> None:
    """OverflowError building the int64 column: 9223372036854775296 reads as 2**63 via float."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(
        GOOD_LINE + b'\n{"ts": 1, "client_id": "c", "status": 9223372036854775296, '
        b'"output": {"label": "a"}}\n'
    )
    report, _rows = read_all(path)
    assert (report.records, report.malformed) == (1, 1)
    assert report.errors[0]["line"] == 2 and "status" in report.errors[0]["reason"]


def test_regression_duckdb_result_not_utf8(tmp_path: Path) -> None:
    """DuckDB's JSON parser, given a BOM-prefixed line with a trailing comma, handed back a
    string that is not UTF-8 (UnicodeDecodeError out of the block reader)."""
    bad = (
        b'\xef\xbb\xbf{"ts": 1, "client_id": "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", '
        b'"output": {"label": null, "score": null,}}'
    )
    path = tmp_path / "a.jsonl"
    path.write_bytes(GOOD_LINE + b"\n" + bad + b"\n")
    report, _rows = read_all(path)
    assert (report.records, report.malformed) == (1, 1) and report.errors[0]["line"] == 2


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".jsonl.gz"])
def test_regression_leading_bom(tmp_path: Path, suffix: str) -> None:
    """A UTF-8 BOM (Windows tools) made the first JSON line malformed and, in CSV, renamed the
    first column (every record lost its 'ts')."""
    text = (
        b"ts,client_id,label\n1709632800,c1,a\n1709632801,c2,b\n"
        if suffix == ".csv"
        else GOOD_LINE + b"\n" + GOOD_LINE + b"\n"
    )
    data = b"\xef\xbb\xbf" + text
    path = tmp_path / f"a{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    report, _rows = read_all(path)
    assert (report.records, report.malformed) == (2, 0), report.errors


def test_regression_csv_gz_damaged_deflate(tmp_path: Path) -> None:
    """zlib.error from a damaged deflate stream escaped the CSV reader."""
    packed = bytearray(gzip.compress(b"ts,client_id,label\n" + b"1,c,a\n" * 50, mtime=0))
    packed[12] ^= 0x55
    path = tmp_path / "a.csv.gz"
    path.write_bytes(bytes(packed))
    report, _rows = read_all(path)
    assert report.malformed == 1 and "unreadable file (error" in report.errors[0]["reason"]


def test_regression_csv_field_over_limit_loses_one_row(tmp_path: Path) -> None:
    """csv.Error (a field over 131,072 characters) ended the file: the rows after it were lost
    behind one 'unreadable file' error. Now it is one malformed row, with its line."""
    rows = ["ts,client_id,label"] + [f"{1709632800 + i},c{i},a" for i in range(5)]
    rows[2] = "1709632800,c," + "x" * 140_000
    path = tmp_path / "a.csv"
    path.write_text("\n".join(rows) + "\n")
    report, _rows = read_all(path)
    assert (report.records, report.malformed) == (4, 1) and report.errors[0]["line"] == 3


def test_regression_truncated_gzip_keeps_lines_before(tmp_path: Path) -> None:
    """A .jsonl.gz cut short (copied while written) lost every record: GzipFile.read drops what
    it decompressed before the error. Now the lines before the damage are read, and the damage
    is one reported error."""
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress((GOOD_LINE + b"\n") * 100)[:-10])
    report, _rows = read_all(path)
    assert report.records >= 90 and report.malformed == 1
    assert report.errors[-1]["line"] == 0 and "unreadable" in report.errors[-1]["reason"]


def test_regression_parquet_column_name_not_utf8(tmp_path: Path) -> None:
    """UnicodeDecodeError out of pq.read_schema in the DuckDB engine's native Parquet path."""
    buf = io.BytesIO()
    pq.write_table(pa.table({"ts": [1.0], "client_id": ["a"], "zzcol": [1]}), buf)
    path = tmp_path / "a.parquet"
    path.write_bytes(buf.getvalue().replace(b"zzcol", b"zz\xffol"))
    for read in (native_load, read_all):
        report, _rows = read(path)
        assert report.malformed == 1 and report.errors[0]["line"] == 0


def test_regression_parquet_timestamp_past_year_9999(tmp_path: Path) -> None:
    """OverflowError ('date value out of range') from to_pylist ended the hunt; now it is one
    malformed row and the other rows are read."""
    ts = pa.array([1709632800000, 253402300800000, 1709632801000], pa.timestamp("ms"))
    table = pa.table(
        {"ts": ts, "client_id": ["a", "b", "c"], "output": pa.array([{"label": "x"}] * 3)}
    )
    path = tmp_path / "a.parquet"
    pq.write_table(table, path)
    for read in (native_load, read_all):
        report, _rows = read(path)
        assert (report.records, report.malformed) == (2, 1), report.errors
        assert report.errors[0]["line"] == 2 and "OverflowError" in report.errors[0]["reason"]


def test_cli_hunt_damaged_logs_exit_0_and_reported(tmp_path: Path) -> None:
    """Damaged logs are not bad usage: the hunt runs (exit 0) and the summary line names the
    first malformed record with its file and line."""
    from typer.testing import CliRunner

    from mlhunt.cli import app

    (tmp_path / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + GOOD_LINE + b"\n{not json\n")
    packed = bytearray(gzip.compress(b"ts,client_id,label\n" + b"1,c,a\n" * 50, mtime=0))
    packed[12] ^= 0x55
    (tmp_path / "b.csv.gz").write_bytes(bytes(packed))
    result = CliRunner().invoke(app, ["hunt", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["read"]["records"] == 1 and doc["read"]["malformed"] == 2
    assert f"{tmp_path / 'a.jsonl'}:2:" in result.stderr


@pytest.mark.parametrize(
    "hostile",
    [
        b'{"ts": 1, "client_id": "c", "output": {"label": "a"}, "x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
        b'{"ts": 1e999, "client_id": "c", "output": {"label": "a"}}',
        b'{"ts": 1, "client_id": "c", "output": {"label": "a"}, "status": ' + b"9" * 5000 + b"}",
        b'{"ts": 1, "client_id": "c\xff\xfe", "output": {"label": "a"}}',
        b'{"ts": 1, "client_id": "c", "client_id": {"x": 1}, "output": {"label": "a"}}',
        b'{"ts": 1, "client_id": "c\x00", "output": {"label": "a"}}\x00',
        b'{"ts": 1, "client_id": "' + b"x" * (17 * 1024**2) + b'", "output": {"label": "a"}}',
    ],
    ids=["deep", "huge-float", "huge-int", "bad-utf8", "duplicate-key", "nul", "17-mib-line"],
)
def test_regression_hostile_lines_end_in_a_report(tmp_path: Path, hostile: bytes) -> None:
    # the 17 MiB line is past DuckDB's 16 MiB object limit: the same path as a 100 MB one
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(GOOD_LINE + b"\n" + hostile + b"\n" + GOOD_LINE + b"\n")
    report, rows = read_all(path)
    assert_books_balance(report, rows, [1, 2, 3])
    assert {r["line"] for r in rows} >= {1, 3}
