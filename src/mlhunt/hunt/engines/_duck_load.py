"""Loading logs into the DuckDB engine's ``events`` table.

Parquet files are read by DuckDB itself (:func:`._duck_sql.parquet_query`): good rows go
straight into the table, never through Python objects; the rows the SQL cannot vouch for are
read again with pyarrow and go through the Python path (:class:`mlhunt.hunt.readers._Normaliser`),
which keeps them or reports them with row number and reason, exactly as the Python reader would.
JSON Lines (the vectorised block reader) and CSV come through
:func:`mlhunt.hunt.readers.read_batches` as Arrow tables.

The table keeps only what the population and the detectors read, plus two verdicts: ``ok``
and ``in_len`` (input length). The input length is fixed by the first accepted record with an
input, so a row is an event when ``ok AND in_len IN (0, d)`` (:func:`good_view`). ``file_idx``
is the file's rank among the path strings, so ordering by it orders by file name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.readers import (
    BATCH_ROWS,
    ReadReport,
    _kind,
    _Normaliser,
    pylist,
    read_batches,
    schema,
)

EVENTS_DDL = """CREATE TABLE events (file_idx INTEGER, line BIGINT, ts DOUBLE, client_id VARCHAR,
  source_ip VARCHAR, input DOUBLE[], label VARCHAR, margin DOUBLE, status BIGINT, ok BOOLEAN,
  in_len INTEGER)"""
_FROM_BATCH = (
    "INSERT INTO events SELECT $1, line, ts, client_id, source_ip, input, label, "
    "margin, status, true, coalesce(len(input), 0) FROM batch"
)


def file_ranks(files: Sequence[Path]) -> dict[str, int]:
    """Each path string's rank in sorted order (DuckDB and Python both order by code point)."""
    return {f: i for i, f in enumerate(sorted({str(p) for p in files}))}


def load(con: Any, files: Sequence[Path], report: ReadReport, say: Any) -> list[str]:
    """Every file into ``events``; returns the file names indexed by ``file_idx``."""
    con.execute(EVENTS_DDL)
    ranks = file_ranks(files)
    for path in files:
        idx = ranks[str(path)]
        native = _kind(path) == "parquet" and not path.name.lower().endswith(".gz")
        if native and _load_parquet(con, path, idx, report):
            say(f"read {report.records:,} records")
            continue
        for table in read_batches(path, report):
            _insert(con, table, idx)
            say(f"read {report.records:,} records")
    return sorted(ranks, key=ranks.__getitem__)


def good_view(con: Any, d: int) -> None:
    """``good``: the rows that are events, once the input length ``d`` is final."""
    con.execute(
        f"CREATE OR REPLACE VIEW good AS SELECT * FROM events "  # noqa: S608 (an int)
        f"WHERE ok AND in_len IN (0, {int(d)})"
    )


def _insert(con: Any, table: Any, idx: int) -> None:
    if table.num_rows == 0:
        return
    con.register("batch", table)
    try:
        con.execute(_FROM_BATCH, [idx])
    finally:
        con.unregister("batch")


def _load_parquet(con: Any, path: Path, idx: int, report: ReadReport) -> bool:
    """The file read natively; False (nothing inserted) when DuckDB cannot read it, so the Python
    path reads it and reports the damage as it always has."""
    import duckdb
    import pyarrow.parquet as pq

    from mlhunt.hunt.engines._duck_sql import parquet_query

    try:
        query = parquet_query(pq.read_schema(path))
    except Exception as exc:  # not a Parquet file, damaged footer: the Python path reports it
        if _pyarrow_failed(exc):  # (a column name that is not UTF-8: UnicodeDecodeError)
            return False
        raise
    if query is None:
        return False
    try:
        con.execute(f"INSERT INTO events SELECT {int(idx)}, * FROM ({query})", [str(path)])  # noqa: S608
    except duckdb.Error:
        return False
    saved = (report.records, report.malformed, len(report.errors), report.input_dim)
    try:
        _vouch(con, path, idx, report)
    except Exception as exc:
        # pyarrow cannot re-read rows DuckDB did read (a damaged page, bytes that are not
        # UTF-8): undo, and let the Python path read the whole file and report the damage.
        if not _pyarrow_failed(exc):
            raise
        con.execute(f"DELETE FROM events WHERE file_idx = {int(idx)}")  # noqa: S608
        report.records, report.malformed, n_errors, report.input_dim = saved
        del report.errors[n_errors:]
        return False
    report.files.append(str(path))
    return True


def _pyarrow_failed(exc: Exception) -> bool:
    """pyarrow could not read a damaged file (its own errors, OSError, bad UTF-8)."""
    return type(exc).__module__.startswith("pyarrow") or isinstance(exc, OSError | UnicodeError)


def _vouch(con: Any, path: Path, idx: int, report: ReadReport) -> None:
    """The rows the SQL could not vouch for, through the Python path; the counts."""
    norm = _Normaliser(report)
    kept = 0
    slow = _lines(con, f"file_idx = {int(idx)} AND NOT ok")
    if report.input_dim is None:
        # Python-path rows before the first good row with an input go first: they may fix d.
        first = con.execute(
            f"SELECT line, in_len FROM events WHERE file_idx = {int(idx)} AND ok "  # noqa: S608
            "AND in_len > 0 ORDER BY line LIMIT 1"
        ).fetchall()
        first = first[0] if first else None
        stop = int(first[0]) if first else None
        early = slow[slow < stop] if stop is not None else slow
        kept += _python_rows(con, path, early, idx, norm)
        slow = slow[slow >= stop] if stop is not None else slow[:0]
        if report.input_dim is None and first:
            report.input_dim = int(first[1])
    d = report.input_dim
    if d is not None:
        wrong = _lines(con, f"file_idx = {int(idx)} AND ok AND in_len > 0 AND in_len <> {int(d)}")
        slow = np.union1d(slow, wrong)
    kept += _python_rows(con, path, slow, idx, norm)
    dims = f"(0, {int(d)})" if d is not None else "(0)"
    good = con.execute(
        f"SELECT count(*) FROM events WHERE file_idx = {int(idx)} AND ok "  # noqa: S608
        f"AND in_len IN {dims}"
    ).fetchall()[0]
    # the Python-path rows inserted above are counted by the normaliser already
    report.records += int(good[0]) - kept


def _lines(con: Any, where: str) -> np.ndarray:
    tbl = con.sql(f"SELECT line FROM events WHERE {where} ORDER BY line").to_arrow_table()  # noqa: S608
    return tbl.column("line").to_numpy().astype(np.int64)


def _python_rows(con: Any, path: Path, lines: np.ndarray, idx: int, norm: _Normaliser) -> int:
    """Rows ``lines`` (1-based, increasing) of a Parquet file through the Python path; returns
    how many it kept (inserted into ``events``)."""
    import pyarrow as pa

    if not len(lines):
        return 0
    sch = schema()
    rows: list[tuple[Any, ...]] = []
    kept = 0
    for line, rec in _parquet_rows(path, lines):
        row = norm.row(str(path), line, rec)
        if row is not None:
            rows.append(row)
        if len(rows) >= BATCH_ROWS:
            _insert(con, _table(rows, sch, pa), idx)
            kept, rows = kept + len(rows), []
    if rows:
        _insert(con, _table(rows, sch, pa), idx)
    return kept + len(rows)


def _table(rows: list[tuple[Any, ...]], sch: Any, pa: Any) -> Any:
    cols = list(zip(*rows, strict=True))
    return pa.table([pa.array(c, f.type) for c, f in zip(cols, sch, strict=True)], schema=sch)


def _parquet_rows(path: Path, lines: np.ndarray) -> Iterator[tuple[int, Any]]:
    """(row, record as the Python path sees it) for the given 1-based rows, reading only the row
    groups that hold them."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    start = 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        want = lines[(lines > start) & (lines <= start + n)]
        if len(want):
            recs = pylist(pf.read_row_group(g).take(want - start - 1))
            yield from zip(want.tolist(), recs, strict=True)
        start += n
