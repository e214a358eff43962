"""The one reading path: DuckDB reads JSON Lines (``.gz`` too) and Parquet.

DuckDB's ``read_json`` (every top-level field as JSON, unreadable lines as empty rows) and
``read_parquet`` (plain column types as they are, others re-encoded with ``to_json``) feed the
query that :func:`mlhunt.hunt.checks.duckdb_select` generates from the log schema; its rows
are kept in a table. Rows it vouches for are kept as they are (inserted into the engine's
table inside DuckDB, or streamed as Arrow batches); every other row (not JSON, a wrong type,
an input of the wrong length, anything the SQL cannot vouch for) is read again by the Python
path of :mod:`.readers`, which parses only those lines with ``json`` (or pyarrow) and keeps
the record or reports it with its file, line and reason. So a malformed record is never
dropped silently and never fatal.

Line numbers: DuckDB returns one row per non-blank line, in order (a row's ``rowid`` in the
kept table is its place in the file). The file's lines are counted first (newlines, and blank
lines found with a regular expression); where the file has blank lines, the Python path lists
the non-blank line numbers once. If DuckDB returns another number of rows than that, the
difference is reported. A file DuckDB cannot read whole (not UTF-8 throughout is fine; a
damaged gzip stream or a line over DuckDB's 16 MiB object limit is not) is read by the Python
path, which reports the damage.
"""

from __future__ import annotations

import json
import re
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.checks import TYPED_AS, duckdb_select, field_checks
from mlhunt.hunt.readers import (
    COLUMNS,
    ReadReport,
    kind_of,
    lines_of,
    open_bytes,
    python_tables,
)

#: The top-level fields DuckDB reads (as JSON), from the log schema.
FIELDS = tuple(dict.fromkeys(c.path[0] for c in field_checks()))
_CHUNK = 16 * 1024**2
_BOM = b"\xef\xbb\xbf"
_BLANK = re.compile(rb"\n[ \t\r\f\v]*\n")


class Reader:
    """Reads log files through DuckDB: its own small in-memory database (closed on exit, with
    its spill folder) or a borrowed connection (the engine's)."""

    def __init__(self, memory_limit: str = "512MB", con: Any = None) -> None:
        import duckdb

        self.tmp = None if con is not None else tempfile.TemporaryDirectory(prefix="mlhunt-read-")
        if self.tmp is not None:
            cfg = {"memory_limit": memory_limit, "temp_directory": self.tmp.name}
            con = duckdb.connect(config=cfg)
        self.con = con
        self.con.execute("SET enable_progress_bar = false")  # drawn on stdout: the report's

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            self.con.close()
            self.tmp.cleanup()

    def read(self, path: Path, report: ReadReport, batch_rows: int) -> Iterator[Any]:
        """Normalised Arrow tables (the columns of :data:`~.readers.COLUMNS`) of one file."""
        import pyarrow as pa

        file = str(path)
        for t in self.events(path, report, batch_rows):
            yield t.add_column(0, "file", pa.array([file] * t.num_rows, pa.string()))

    def events(
        self, path: Path, report: ReadReport, batch_rows: int, into: tuple[str, int] | None = None
    ) -> Iterator[Any]:
        """As :meth:`read`, without the ``file`` column. ``into`` (table, file index): the rows
        the SQL vouches for go into that table inside DuckDB, not through Python (unless the
        file has blank lines); only the Python path's tables are yielded.

        The checking query's rows are kept in a table first, whose ``rowid`` is the row's place
        in the file (DuckDB keeps the insertion order). A file DuckDB cannot read whole (not
        Parquet, a damaged gzip stream, a line over its 16 MiB object limit) is read by the
        Python path, which reports what is wrong."""
        import pyarrow as pa

        kind = kind_of(path)
        try:
            if kind == "csv" or (kind == "parquet" and path.name.lower().endswith(".gz")):
                raise _PythonPath
            query, params, lines = self._query(path, kind)
            self.con.execute(
                "CREATE OR REPLACE TABLE mlhunt_checked AS SELECT "  # noqa: S608 (fixed)
                f"{', '.join(COLUMNS[2:])}, ok, in_len FROM ({query})",
                params,
            )
        except Exception as exc:
            if not _library_error(exc):
                raise
            self.con.execute("DROP TABLE IF EXISTS mlhunt_checked")
            yield from _without_file(python_tables(path, report, batch_rows=batch_rows))
            return

        def one(sql: str, *args: Any) -> Any:  # the first value of a query on the checked rows
            return self.con.execute(sql.replace("$t", "mlhunt_checked"), list(args)).fetchall()[0][
                0
            ]

        def lines_of(where: str, *args: Any) -> np.ndarray:
            rows = one(f"SELECT list(rowid) FROM $t WHERE {where}", *args) or []  # noqa: S608
            return at[np.array(rows, np.int64)]

        done = one("SELECT count(*) FROM $t")
        at = lines.at(0, done)  # line of each row
        first = one("SELECT coalesce(min(rowid), -1) FROM $t WHERE ok AND in_len > 0")
        early = np.empty(0, np.int64)
        if report.input_dim is None and first >= 0:
            # Python decides the unvouched rows before the first vouched input first: one of
            # them may fix the input length, as in line order
            early = lines_of("NOT ok AND rowid < ?", first)
            yield from _without_file(python_tables(path, report, set(early.tolist())))
            if report.input_dim is None:
                report.input_dim = one("SELECT in_len FROM $t WHERE rowid = ?", first)
        keep, d = "ok AND in_len IN (0, ?)", report.input_dim or 0
        cols = ", ".join(COLUMNS[2:])
        if into is not None and lines.lines is None:
            report.records += one(
                f"INSERT INTO {into[0]} SELECT ?, rowid + 1, ts, client_id, source_ip, input, "  # noqa: S608 (fixed)
                f"label, margin, status FROM $t WHERE {keep}",
                into[1],
                d,
            )
        else:  # through a cursor: the caller may use this connection meanwhile
            with self.con.cursor() as cur:
                q = f"SELECT rowid, {cols} FROM mlhunt_checked WHERE {keep}"  # noqa: S608
                for rb in cur.sql(q, params=[d]).to_arrow_reader(batch_rows):
                    report.records += rb.num_rows
                    line = pa.array(at[rb.column(0).to_numpy()])
                    yield pa.Table.from_batches([rb]).set_column(0, "line", line)
        slow = np.setdiff1d(lines_of(f"NOT ({keep})", d), early)
        self.con.execute("DROP TABLE mlhunt_checked")
        if lines.total >= 0 and done != lines.total:
            report.error(
                str(path), 0, f"read {done:,} records from {lines.total:,} non-blank lines"
            )
        if len(slow):
            yield from _without_file(python_tables(path, report, set(slow.tolist()), batch_rows))

    def _query(self, path: Path, kind: str) -> tuple[str, dict[str, Any], LineMap]:
        params: dict[str, Any] = {"path": str(path)}
        typed: dict[str, str] = {}  # Parquet columns read as they are
        if kind == "jsonl":
            lines = LineMap.of(path)
            keys = _json_feature_keys(path)
            cols = {f: "JSON" for f in (*FIELDS, "features")}
            spec = ", ".join(f"'{k}': '{v}'" for k, v in cols.items())
            source = (
                f"read_json($path, format = 'newline_delimited', columns = {{{spec}}}, "
                "ignore_errors = true)"
            )
        else:
            import pyarrow.parquet as pq

            sch = pq.read_schema(path)
            names = list(sch.names)
            if len(set(names)) != len(names):
                raise _PythonPath
            keys = _parquet_feature_keys(sch)
            cols = []
            for f in (*FIELDS, "features"):
                got = _typed(_KINDS.get(f, ""), f'"{f}"', sch.field(f).type) if f in names else None
                if got is not None:
                    typed[f] = got[1]
                sql = got[0] if got else f'to_json("{f}")' if f in names else "NULL::JSON"
                cols.append(f'{sql} AS "{f}"')
            source = f"(SELECT {', '.join(cols)} FROM read_parquet($path))"  # noqa: S608 (fixed)
            lines = LineMap(None, -1)
        if keys:
            params["keys"] = keys
        return duckdb_select(source, bool(keys), typed), params, lines


class _PythonPath(Exception):
    """This file is read by the Python path as a whole."""


def _library_error(exc: Exception) -> bool:
    import duckdb

    mod = type(exc).__module__
    return (
        isinstance(exc, _PythonPath | OSError | EOFError | zlib.error | UnicodeError | duckdb.Error)
        or mod.startswith("pyarrow")
        or mod.startswith("duckdb")
    )


def _without_file(tables: Iterator[Any]) -> Iterator[Any]:
    for t in tables:
        yield t.drop_columns(["file"])


class LineMap:
    """Row number -> line number of a JSON Lines file (``lines`` None: row i is line i + 1)."""

    def __init__(self, lines: np.ndarray | None, total: int) -> None:
        self.lines = lines
        self.total = total  # non-blank lines; -1: not counted

    def at(self, start: int, n: int) -> np.ndarray:
        if self.lines is None:
            return np.arange(start + 1, start + n + 1, dtype=np.int64)
        got = self.lines[start : start + n]
        if len(got) < n:  # more rows than lines: reported after the read
            got = np.concatenate([got, np.zeros(n - len(got), np.int64)])
        return got

    @classmethod
    def of(cls, path: Path) -> LineMap:
        """Count the lines (a pass with ``bytes.count``); list them only with blank lines."""
        total, carry, blank, first = 0, b"", False, True
        with open_bytes(path) as fh:
            while chunk := fh.read(_CHUNK):
                if first:  # a BOM is no part of the first line (DuckDB skips it too)
                    chunk, first = chunk.removeprefix(_BOM), False
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                whole, carry = data[:cut], data[cut:]
                total += whole.count(b"\n")
                if not blank and whole and (_BLANK.search(b"\n" + whole) is not None):
                    blank = True
        if carry:
            total += 1
            blank = blank or not carry.strip()
        if not blank:
            return cls(None, total)
        keep = []
        with open_bytes(path) as fh:
            for i, raw in enumerate(lines_of(fh), 1):
                if (raw.removeprefix(_BOM) if i == 1 else raw).strip():
                    keep.append(i)
        return cls(np.array(keep, dtype=np.int64), len(keep))


def _json_feature_keys(path: Path) -> list[str] | None:
    """The ``features`` keys of the first record when it has them in place of ``input``."""
    try:
        with open_bytes(path) as fh:
            for raw in lines_of(fh):
                if raw.strip():
                    rec = json.loads(raw.decode("utf-8", errors="replace").removeprefix("\ufeff"))
                    break
            else:
                return None
    except (ValueError, RecursionError, OSError, EOFError):
        return None
    return _keys(rec)


def _keys(rec: Any) -> list[str] | None:
    if not isinstance(rec, dict) or rec.get("input") is not None:
        return None
    feats = rec.get("features")
    if not isinstance(feats, dict) or not feats:
        return None
    return [str(k) for k in feats]


def _parquet_feature_keys(sch: Any) -> list[str] | None:
    import pyarrow as pa

    if "input" in sch.names or "features" not in sch.names:
        return None
    t = sch.field("features").type
    return [t.field(i).name for i in range(t.num_fields)] if pa.types.is_struct(t) else None


#: Check kinds per top-level field, and the checks of the fields of an object field.
_KINDS = {c.path[0]: c.kind for c in field_checks() if len(c.path) == 1}
_NESTED = [c for c in field_checks() if len(c.path) == 2]
_SQL_TYPE = {"VARCHAR": "VARCHAR", "DOUBLE": "DOUBLE", "ARRAY": "DOUBLE[]"}


def _typed(kind: str, col: str, t: Any) -> tuple[str, str] | None:
    """(SQL, type) reading a Parquet column of check kind ``kind`` as the typed value that
    :func:`~.checks.duckdb_select` checks without a JSON round trip: numbers as DOUBLE, text as
    VARCHAR, lists of numbers as DOUBLE[], the output STRUCT with its fields so typed; None
    for any other type (that column is read as JSON)."""
    import pyarrow as pa

    if kind in ("number", "integer", "time") and (
        pa.types.is_integer(t) or pa.types.is_floating(t)
    ):
        return f"CAST({col} AS DOUBLE)", "DOUBLE"
    if kind in ("text", "time") and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return col, "VARCHAR"
    lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    if kind == "vector" and any(f(t) for f in lists):
        v = t.value_type
        return (
            (f"CAST({col} AS DOUBLE[])", "ARRAY")
            if (pa.types.is_integer(v) or pa.types.is_floating(v))
            else None
        )
    if kind != "object" or not pa.types.is_struct(t):
        return None
    fields = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
    if len(fields) != t.num_fields:
        return None
    parts = []
    for c in _NESTED:
        name, want = c.path[1], TYPED_AS.get(c.kind)
        got = _typed(c.kind, f'{col}."{name}"', fields[name]) if name in fields else None
        if want is None or (name in fields and (got is None or got[1] != want)):
            return None
        parts.append(f'"{name}" := {got[0] if got else "NULL"}::{_SQL_TYPE[want]}')
    return f"CASE WHEN {col} IS NOT NULL THEN struct_pack({', '.join(parts)}) END", "OBJECT"
