"""Loading logs into the DuckDB engine's ``events`` table.

Every file is read by :class:`mlhunt.hunt.duckread.Reader` on the engine's connection (DuckDB
with the record checks in SQL, the Python path for what it cannot vouch for): the rows the SQL
vouches for are inserted inside DuckDB, the Python path's Arrow batches are appended.
The table keeps only what the population and the detectors read; ``file_idx`` is the file's
rank among the path strings, so ordering by it orders by file name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlhunt.hunt.readers import BATCH_ROWS, ReadReport

EVENTS_DDL = """CREATE TABLE events (file_idx INTEGER, line BIGINT, ts DOUBLE, client_id VARCHAR,
  source_ip VARCHAR, input DOUBLE[], label VARCHAR, margin DOUBLE, status BIGINT)"""
_FROM_BATCH = (
    "INSERT INTO events SELECT $1, line, ts, client_id, source_ip, input, label, "
    "margin, status FROM batch"
)


def file_ranks(files: Sequence[Path]) -> dict[str, int]:
    """Each path string's rank in sorted order (DuckDB and Python both order by code point)."""
    return {f: i for i, f in enumerate(sorted({str(p) for p in files}))}


def load(con: Any, files: Sequence[Path], report: ReadReport, say: Any) -> list[str]:
    """Every file into ``events``; returns the file names indexed by ``file_idx``."""
    from mlhunt.hunt.duckread import Reader

    con.execute(EVENTS_DDL)
    ranks = file_ranks(files)
    with Reader(con=con) as reader:
        for path in files:
            report.files.append(str(path))
            into = ("events", ranks[str(path)])
            for table in reader.events(path, report, BATCH_ROWS * 4, into):
                _insert(con, table, ranks[str(path)])
            say(f"read {report.records:,} records")
    return sorted(ranks, key=ranks.__getitem__)


def _insert(con: Any, table: Any, idx: int) -> None:
    if table.num_rows == 0:
        return
    con.register("batch", table)
    try:
        con.execute(_FROM_BATCH, [idx])
    finally:
        con.unregister("batch")
