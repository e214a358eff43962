"""The DuckDB engine's in-memory path (:mod:`mlhunt.hunt.engines._mem`): the same reading, the
same alerts and the same population as the table path, and a clean decline (table path, report
untouched) for every log it does not take. The kernels against plain
numpy: ``test_hunt_kernels_mem.py``.

References: the per-record Python reader (``_python`` of test_hunt_duckdb) for reading, and
``DuckDBEngine(memory_budget=0)`` (the table path) for whole hunts."""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mlhunt.hunt import readers
from mlhunt.hunt.detectors import load_detectors
from mlhunt.hunt.engines import _mem, _mem_prep, _mem_read
from mlhunt.hunt.engines.duckdb import DuckDBEngine
from mlhunt.hunt.readers import ReadReport
from tests.test_hunt_duckdb import (
    ODD,
    SCHEMA,
    _first_python,
    _fixture,
    _good,
    _python,
    _write,
    counting_rows,
)

BIG = 10**12  # a memory budget every test log fits


# --- helpers -------------------------------------------------------------------------------------


def _read_mem(
    files: list[Path], report: ReadReport | None = None, width: int = 0
) -> tuple[Any, list[str], ReadReport]:
    plan = _mem.survey(files)._replace(width=width)
    report = ReadReport() if report is None else report
    store, names = _mem_read.read(files, plan, report, lambda _: None)
    return store, names, report


def _store_rows(store: Any, names: list[str]) -> list[dict[str, Any]]:
    """The store's rows decoded into the reference's columns."""
    out = []
    for i in range(store.n):
        x = None
        if store.x is not None:
            row = store.x[i]
            assert np.isnan(row).all() or np.isfinite(row).all(), f"row {i}: partly NaN"
            x = None if np.isnan(row[0]) else row.tolist()
        m = float(store.margin[i])
        src = int(store.source[i])
        out.append(
            {
                "file": names[store.file[i]],
                "line": int(store.line[i]),
                "ts": float(store.ts[i]),
                "client_id": store.clients.names[store.client[i]],
                "source_ip": None if src == -1 else store.sources.names[src],
                "input": x,
                "label": store.labels.names[store.label[i]],
                "margin": None if math.isnan(m) else m,
                "status": int(store.status[i]),
            }
        )
    return sorted(out, key=lambda r: (r["file"], r["line"]))


def _reference(files: list[Path]) -> tuple[list[dict[str, Any]], ReadReport]:
    rows, report = _python(files)
    for r in rows:
        r["status"] = 0 if r["status"] is None else r["status"]  # the store's "no status"
    return sorted(rows, key=lambda r: (r["file"], r["line"])), report


def _assert_same_read(files: list[Path], width: int = 0) -> tuple[ReadReport, int]:
    """The store equals the Python reader; returns the report and the rows Python checked."""
    want_rows, want = _reference(files)
    with pytest.MonkeyPatch.context() as mp:
        calls = counting_rows(mp)
        store, names, got = _read_mem(files, width=width)
    assert store.n == got.records == want.records
    assert _store_rows(store, names) == want_rows
    assert dataclasses.asdict(got) == dataclasses.asdict(want)
    return want, calls["n"]


def _hunt(
    files: list[Path],
    budget: int,
    reference: np.ndarray | None = None,
    say: list[str] | None = None,
) -> tuple[Any, ReadReport]:
    report = ReadReport()
    res = DuckDBEngine(memory_budget=budget).run(
        files,
        load_detectors(),
        report,
        reference=reference,
        progress=None if say is None else say.append,
    )
    return res, report


def _assert_pop_equal(a: Any, b: Any) -> None:
    assert a.to_dict() == b.to_dict()
    for f in dataclasses.fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if f.name in ("mean", "std"):  # exact sums on one side, DuckDB's on the other
            np.testing.assert_allclose(va, vb, rtol=1e-12, err_msg=f.name)
        elif isinstance(va, tuple) and va and isinstance(va[0], np.ndarray):
            assert len(va) == len(vb), f.name
            for ea, eb in zip(va, vb, strict=True):
                np.testing.assert_array_equal(ea, eb, err_msg=f.name)
        elif isinstance(va, np.ndarray):
            np.testing.assert_array_equal(va, vb, err_msg=f.name)
        else:
            assert va == vb, f.name


def _rows(alerts: list[Any]) -> list[str]:
    return sorted(json.dumps(a.to_row(), sort_keys=True) for a in alerts)


def _same_hunt(files: list[Path], reference: np.ndarray | None = None) -> list[Any]:
    """Memory and table paths agree; returns the alerts."""
    mem, m_rep = _hunt(files, BIG, reference)
    tab, t_rep = _hunt(files, 0, reference)
    assert (mem.stats["path"], tab.stats["path"]) == ("memory", "table")
    assert dataclasses.asdict(m_rep) == dataclasses.asdict(t_rep)
    assert _rows(mem.alerts) == _rows(tab.alerts)
    _assert_pop_equal(mem.population, tab.population)
    return list(mem.alerts)


# --- 1. reading equals the Python path ----------------------------------------------------------


def test_survey_takes_plain_parquet_and_json_lines_only(tmp_path: Path) -> None:
    a, b, c, flat, bad = _fixture(tmp_path)
    for ok in (a, c):
        plan = _mem.survey([ok])
        assert len(plan.sels) == 1 and plan.need > 0 and plan.rows > 0
    for no in (b, flat, bad):  # int ids and labels / flattened output / damaged footer
        with pytest.raises(_mem.Declined):
            _mem.survey([no])
    with pytest.raises(_mem.Declined):
        _mem.survey([a, b])  # one file it does not take declines them all
    plan = _mem.survey([a, _jsonl(tmp_path)])  # JSON Lines: an estimate from the first lines
    assert plan.estimated and plan.sels[1] == {} and plan.width == 3
    assert 30 <= plan.rows - _mem.survey([a]).rows <= 30 * 1.1 + 1024
    with pytest.raises(_mem.Declined):
        _mem.survey([_jsonl_gz(tmp_path)])
    # rows times the record size, plus 8 bytes per input value (c: 10 rows of 3 values)
    need_c = _mem.survey([c]).need
    assert need_c == 10 * _mem.ROW_BYTES + 30 * 8


@pytest.mark.parametrize("variant", ["plain", "python-first"])
def test_read_equals_python_path(tmp_path: Path, variant: str) -> None:
    a, _, c, _, _ = _fixture(tmp_path)
    files = [a, c]
    if variant == "python-first":  # a first row only Python can vouch for fixes d = 2
        files = _first_python(files, tmp_path)
    want, python_rows = _assert_same_read(files)
    if variant == "python-first":
        assert want.input_dim == 2 and want.malformed > 40
        return
    assert want.input_dim == 3 and want.malformed >= 15 and want.records > 40
    # the kernels vouched for the good rows: Python saw (about) the odd ones only
    assert python_rows < len(ODD) + 5


def test_read_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # odd rows at the edges of 7-row batches; the first vouched input only in the second batch,
    # after a row only Python vouches for (zone-less ts, 2 values): d = 2 must come from it;
    # over 100 malformed rows, so the report keeps the first 100 in the Python path's order
    recs = [{**_good(i), "input": None} for i in range(300)]
    recs[5] = {**_good(5), "ts": "2024-03-05T10:00:01", "input": [1.0, 2.0]}
    for i in range(9, 300):
        recs[i]["input"] = [float(i), 2.0] if i % 2 else [float(i), 2.0, 3.0]
    for i, odd in zip((6, 7, 13, 14, 20, 21, 299), ODD[::5], strict=False):
        recs[i] = {**recs[i], **odd}
    path = _write(tmp_path / "edges.parquet", recs, SCHEMA)
    monkeypatch.setattr(_mem_read, "READ_ROWS", 7)
    seen = []
    real = _mem_read._batches

    def counted(*args: Any) -> Any:
        for rb in real(*args):
            seen.append(rb.num_rows)
            yield rb

    monkeypatch.setattr(_mem_read, "_batches", counted)
    want, _ = _assert_same_read([path])
    assert len(seen) >= 40 and max(seen) <= 7
    assert want.input_dim == 2 and want.malformed > readers.MAX_ERRORS == len(want.errors)


@pytest.mark.parametrize("width", [2, 3, 7])
def test_reserved_input_width(tmp_path: Path, width: int) -> None:
    # the inputs' memory is mapped ahead for a guessed width (survey); a wrong guess is
    # replaced when the first input fixes the length, rows before it NaN either way
    a, _, c, _, _ = _fixture(tmp_path)
    assert _mem.survey([a]).width == 3
    want, _ = _assert_same_read(_first_python([a, c], tmp_path), width)
    assert want.input_dim == 2
    want, _ = _assert_same_read([a, c], width)
    assert want.input_dim == 3


def test_read_input_column_in_second_file_only(tmp_path: Path) -> None:
    no_input = pa.schema([f for f in SCHEMA if f.name != "input"])
    first = [{k: v for k, v in _good(i).items() if k != "input"} for i in range(12)]
    first[3]["ts"] = "soon"
    a = _write(tmp_path / "a.parquet", first, no_input)
    b = _write(tmp_path / "b.parquet", [_good(i) for i in range(12)], SCHEMA)
    want, _ = _assert_same_read([a, b])
    assert want.input_dim == 3 and want.records == 23
    # and the other way round (inputs first, then a file without them)
    want, _ = _assert_same_read([b, _write(tmp_path / "c.parquet", first, no_input)])
    assert want.input_dim == 3


def test_declined_read_restores_report(tmp_path: Path) -> None:
    a, _, c, _, _ = _fixture(tmp_path)
    bad = _write(tmp_path / "z.parquet", [_good(i) for i in range(200)], SCHEMA)
    col = pq.ParquetFile(bad).metadata.row_group(0).column(1)
    data = bytearray(bad.read_bytes())
    data[col.data_page_offset : col.data_page_offset + 12] = b"\xff" * 12  # a page header
    bad.write_bytes(bytes(data))
    _mem.survey([bad])  # the footer is fine: only decoding finds the damage
    report = ReadReport(records=7, malformed=1, files=["earlier.jsonl"])
    report.error("earlier.jsonl", 3, "ts: missing")
    before = copy.deepcopy(report)
    with pytest.raises(_mem.Declined):
        _read_mem([a, c, bad], report)  # a and c were read (and reported) before z failed
    assert dataclasses.asdict(report) == dataclasses.asdict(before)
    # the engine then takes the table path, which reports the damage as the Python path does
    say: list[str] = []
    res, rep = _hunt([a, bad], BIG, say=say)
    tab, t_rep = _hunt([a, bad], 0)
    assert res.stats["path"] == "table" and any("DuckDB tables" in s for s in say)
    assert dataclasses.asdict(rep) == dataclasses.asdict(t_rep)
    assert _rows(res.alerts) == _rows(tab.alerts)


# --- 2. declines ------------------------------------------------------------------------------


def _jsonl(tmp_path: Path) -> Path:
    p = tmp_path / "g.jsonl"
    p.write_text("".join(json.dumps(_good(i)) + "\n" for i in range(30)), "utf-8")
    return p


def _jsonl_gz(tmp_path: Path) -> Path:
    out = tmp_path / "g.jsonl.gz"
    out.write_bytes(gzip.compress(_jsonl(tmp_path).read_bytes()))
    return out


def _gz(tmp_path: Path) -> Path:
    a = _write(tmp_path / "h.parquet", [_good(i) for i in range(30)], SCHEMA)
    out = tmp_path / "h2.parquet.gz"
    out.write_bytes(gzip.compress(a.read_bytes()))
    return out


def _timestamps(tmp_path: Path) -> Path:
    recs = [{**_good(i), "ts": datetime(2024, 3, 5, 10, i, 1, tzinfo=UTC)} for i in range(30)]
    sch = SCHEMA.set(0, pa.field("ts", pa.timestamp("ms", tz="UTC")))
    return _write(tmp_path / "t.parquet", recs, sch)


@pytest.mark.parametrize(
    "case",
    ["int-ids", "flat-output", "damaged", "gz", "jsonl-gz", "mixed", "timestamp-ts", "budget"],
)
def test_declines_take_table_path(tmp_path: Path, case: str) -> None:
    a, b, _, flat, bad = _fixture(tmp_path)
    make = {
        "int-ids": lambda: [b],
        "flat-output": lambda: [flat],
        "damaged": lambda: [bad],
        "gz": lambda: [_gz(tmp_path)],
        "jsonl-gz": lambda: [_jsonl_gz(tmp_path)],
        "mixed": lambda: [_jsonl(tmp_path), b],
        "timestamp-ts": lambda: [_timestamps(tmp_path)],
        "budget": lambda: [a],
    }
    files = make[case]()
    budget = _mem.survey([a]).need - 1 if case == "budget" else BIG
    say: list[str] = []
    res, rep = _hunt(files, budget, say=say)
    tab, t_rep = _hunt(files, 0)
    assert res.stats["path"] == tab.stats["path"] == "table"
    assert any("reading through DuckDB tables" in s for s in say)
    assert dataclasses.asdict(rep) == dataclasses.asdict(t_rep)
    assert rep.records + rep.malformed > 0 or case == "damaged"
    assert _rows(res.alerts) == _rows(tab.alerts)
    _assert_pop_equal(res.population, tab.population)
    if case == "budget":  # one byte more and it fits
        assert _hunt(files, budget + 1)[0].stats["path"] == "memory"


def test_fixture_hunt_memory_equals_table(tmp_path: Path) -> None:
    a, _, c, _, _ = _fixture(tmp_path)
    _same_hunt([a, c])
    _same_hunt(_first_python([a, c], tmp_path))


def test_zero_budget_forces_table_path_for_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty.parquet", [], SCHEMA)
    assert _hunt([path], 0)[0].stats["path"] == "table"


def test_label_only_output(tmp_path: Path) -> None:
    sch = pa.schema(
        [
            ("ts", pa.string()),
            ("client_id", pa.string()),
            ("input", pa.list_(pa.float64())),
            ("output", pa.struct([("label", pa.string())])),
        ]
    )
    recs = [
        {
            "ts": f"2024-03-05T10:00:{i:02d}Z",
            "client_id": f"c{i % 2}",
            "input": [1.0, float(i)],
            "output": {"label": "a"},
        }
        for i in range(6)
    ]
    path = _write(tmp_path / "x.parquet", recs, sch)
    _assert_same_read([path])
    _same_hunt([path])


def test_text_not_utf8_declines(tmp_path: Path) -> None:
    # pyarrow does not check Parquet strings when it reads them: the path checks each
    # dictionary, and declines (the table path reports the file as it always has)
    recs = [_good(i) for i in range(30)]
    tbl = pa.Table.from_pylist(recs, schema=SCHEMA)
    ids = pa.array(
        [b"c\xff\xfe" if i == 7 else f"c{i % 4}".encode() for i in range(30)], pa.binary()
    ).view(pa.string())
    path = tmp_path / "bad.parquet"
    pq.write_table(tbl.set_column(1, "client_id", ids), path)
    with pytest.raises(_mem.Declined, match="not UTF-8"):
        _read_mem([path])
    say: list[str] = []
    res, rep = _hunt([path], BIG, say=say)
    _, t_rep = _hunt([path], 0)
    assert res.stats["path"] == "table" and any("DuckDB tables" in s for s in say)
    assert dataclasses.asdict(rep) == dataclasses.asdict(t_rep)


def test_dictionaries_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # many long distinct ids in one row group: the writer's dictionary overflows and the rest
    # of the column chunk is plain; pyarrow hands each batch a copy of the dictionary; a ts
    # column stored as a dictionary (pandas categoricals) and float32 inputs on the way
    n = 4_000
    recs = [
        {
            **_good(i),
            "client_id": f"client-{i % 1_500:05d}-" + "x" * 600,
            "ts": f"2024-03-05T10:{i % 60:02d}:{i % 7:02d}Z",
        }
        for i in range(n)
    ]
    recs[9] = {**recs[9], **ODD[0]}
    sch = SCHEMA.set(3, pa.field("input", pa.list_(pa.float32())))
    tbl = pa.Table.from_pylist(recs, schema=sch)
    tbl = tbl.set_column(0, "ts", tbl.column("ts").dictionary_encode())
    path = tmp_path / "wide.parquet"
    pq.write_table(tbl, path, row_group_size=3_000, dictionary_pagesize_limit=64 * 1024)
    enc = pq.ParquetFile(path).metadata.row_group(0).column(1).encodings
    assert "PLAIN" in enc and "RLE_DICTIONARY" in enc  # the fallback happened
    monkeypatch.setattr(_mem_read, "READ_ROWS", 500)
    want, _ = _assert_same_read([path])
    assert want.records == n - 1 and want.malformed == 1


# --- 3. whole hunts on a realistic log ----------------------------------------------------------


@pytest.fixture(scope="module")
def traffic() -> tuple[pa.Table, str]:
    """A bench-style loan-approval day (30k events) with extraction, sybil and probing
    attackers at 400 queries each (bench.hunt_data's generator, rescaled to a small log), and
    the sybil group's address."""
    from bench.hunt_data import _chunk, _clients

    n, per = 30_000, 400
    rng = np.random.default_rng(7)
    cl = _clients(60_000, rng)
    w = cl.weight.copy()
    hostile = np.zeros(len(w), bool)
    hostile[-26:] = True  # 3 extractors, 20 sybil ids, 3 probers (the last 26 clients)
    w[~hostile] = w[~hostile] / w[~hostile].sum() * (n - per * 26) / n
    w[hostile] = per / n
    cl = dataclasses.replace(cl, weight=w / w.sum())
    # (the generator's fixed-width address array clips SYBIL_IP: take the address it wrote)
    sybil = {str(a) for a in cl.ips[np.isin(cl.ids, cl.attackers["sybil-extraction"])]}
    assert len(sybil) == 1
    return _chunk(0, n, n, cl, rng), sybil.pop()  # type: ignore[return-value]


def _spy_order(monkeypatch: pytest.MonkeyPatch) -> dict[int, bool]:
    """Per store size, whether the store prepare() got was in (ts, file, line) order (the engine
    also warms its kernels up on a small synthetic store)."""
    seen: dict[int, bool] = {}
    real = _mem_prep.prepare

    def spy(store: Any, *args: Any, **kwargs: Any) -> Any:
        n = store.n
        key = list(
            zip(
                store.ts[:n].tolist(), store.file[:n].tolist(), store.line[:n].tolist(), strict=True
            )
        )
        seen[n] = all(key[i - 1] <= key[i] for i in range(1, n))
        return real(store, *args, **kwargs)

    monkeypatch.setattr(_mem_prep, "prepare", spy)
    return seen


def test_hunt_realistic_log(
    tmp_path: Path, traffic: tuple[pa.Table, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    traffic, sybil = traffic
    path = tmp_path / "events.parquet"
    pq.write_table(traffic, path, row_group_size=8_000)
    order = _spy_order(monkeypatch)
    alerts = _same_hunt([path])
    assert order[traffic.num_rows] is True
    kinds = {(a.scope, a.detector) for a in alerts}
    assert len(alerts) >= 5 and len({d for _, d in kinds}) >= 3
    assert any(a.scope == "source_ip" and a.target == sybil for a in alerts)
    # with a reference population (exact aggregates of the reference, not of the traffic)
    ref = np.asarray(traffic.column("input").combine_chunks().flatten()).reshape(-1, 9)[::7]
    _same_hunt([path], reference=ref)


def test_hunt_shuffled_across_files(
    tmp_path: Path, traffic: tuple[pa.Table, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    traffic = traffic[0]
    rng = np.random.default_rng(3)
    t = traffic.take(pa.array(rng.permutation(traffic.num_rows)))
    parts = np.array_split(np.arange(t.num_rows), 3)
    files = []
    for name, idx in zip(("b", "c", "a"), parts, strict=True):
        files.append(tmp_path / f"{name}.parquet")
        pq.write_table(t.take(pa.array(idx)), files[-1], row_group_size=4_000)
    order = _spy_order(monkeypatch)
    # small detector batches and partial sums: groups and chunks cut at many places
    monkeypatch.setattr(_mem_prep, "BATCH_EVENTS", 700)
    monkeypatch.setattr(_mem_prep, "SUM_CHUNK", 1_000)
    assert _same_hunt(files)
    assert order[t.num_rows] is False  # sorted by (ts, file, line) first


@pytest.mark.parametrize("split", ["contiguous", "round-robin"])
def test_hunt_equal_timestamps_across_files(
    tmp_path: Path, traffic: tuple[pa.Table, str], monkeypatch: pytest.MonkeyPatch, split: str
) -> None:
    # whole minutes: many events share a ts, within and across files (ties: file, then line)
    ts = pc.replace_substring_regex(traffic[0].column("ts"), r":\d\d(\.\d+)?Z$", ":00Z")
    assert ts[0].as_py().endswith(":00Z")
    t = traffic[0].set_column(0, "ts", ts)
    n = t.num_rows
    parts = (
        np.array_split(np.arange(n), 3)
        if split == "contiguous"
        else [np.arange(k, n, 3) for k in range(3)]
    )
    files = []
    for k, idx in enumerate(parts):
        files.append(tmp_path / f"part{k}.parquet")
        pq.write_table(t.take(pa.array(idx)), files[-1])
    edge = [pq.read_table(f, columns=["ts"]).column(0) for f in files]
    if split == "contiguous":  # a file's first minute is the previous file's last one
        assert any(edge[k][-1] == edge[k + 1][0] for k in range(2))
    order = _spy_order(monkeypatch)
    # round-robin: the files also given in reverse (the index is the name's rank)
    assert _same_hunt(files if split == "contiguous" else files[::-1])
    assert order[n] is (split == "contiguous")
