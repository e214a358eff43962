"""Vectorised JSON Lines reading for :mod:`mlhunt.hunt.readers`: blocks of lines parsed by DuckDB.

A file (or its gzip stream) is read in blocks of about :data:`BLOCK_BYTES` cut at line ends. Each
block becomes a zero-copy Arrow string array of its lines, which one DuckDB query parses
(``json_transform``) and normalises (RFC 3339 / epoch ``ts``, top score, margin, numbers).

The fast path only *accepts* a record when it can show that the per-line Python path
(``readers._Normaliser``) would accept it with the same values; every other line — invalid JSON,
a wrong type, a missing field, a value whose text could be read two ways, a wrong input length —
goes to that Python path, which keeps it or reports it with its file, line and reason. So the
malformed-record report is the Python path's, line for line. A block whose bytes are not UTF-8 or
that holds a lone carriage return (Python counts lines differently there) is read wholly by the
Python path.

DuckDB's JSON parser is laxer than Python's ``json``: it accepts trailing commas and
``nan``/``inf`` literals in any case. Lines with a trailing comma are sent to Python; lines with
such a literal are too when the block holds the letters ``nan``/``inf`` at all. Known difference:
a record that repeats a key keeps the first value here and the last in Python.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: Bytes of text per parsed block (~60k log records): bounds the reader's memory.
BLOCK_BYTES = 16 << 20

#: One raw line through the Python path: (line, text) -> normalised row or None.
SlowLine = Callable[[int, str], "tuple[Any, ...] | None"]

_STRUCT = (
    '{"ts":"VARCHAR","client_id":"VARCHAR","source_ip":"VARCHAR","input":"VARCHAR",'
    '"output":{"label":"VARCHAR","scores":"VARCHAR","score":"VARCHAR"},'
    '"status":"VARCHAR","latency_ms":"VARCHAR","model":"VARCHAR"}'
)
# RFC 3339 with an explicit zone and at most microseconds: exactly what both DuckDB's cast and
# Python's fromisoformat read to the same instant (anything else goes to Python).
_RFC3339 = (
    r"\d{4}-\d{2}-\d{2}[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
)
# Text that Python's str() of the parsed JSON value might spell differently (floats, booleans,
# objects, arrays, nan/inf literals): such values are checked by the Python path.
_AMBIGUOUS = (
    r"(?i)[-+]?(nan|inf|infinity)|true|false|[\[{].*"
    r"|-?[0-9]*[.]?[0-9]*([eE][-+]?[0-9]+)?"
)
_SIMPLE_INT = r"[1-9][0-9]{0,17}|0"


def _text_ok(col: str) -> str:
    return (
        f"(NOT regexp_full_match({col}, '{_AMBIGUOUS}') "
        f"OR regexp_full_match({col}, '{_SIMPLE_INT}'))"
    )


def _num_ok(raw: str, val: str) -> str:
    """An optional number: missing/null is fine, else its text must read as finite."""
    return f"({raw} IS NULL OR coalesce(isfinite({val}), false))"


def _vec(col: str) -> str:
    return f"CASE WHEN starts_with({col}, '[') THEN json_transform({col}, '[\"DOUBLE\"]') END"


def _vec_ok(raw: str, val: str) -> str:
    """An optional array of numbers (``val`` parsed from its JSON text ``raw``): no strings
    (Python's float() reads more spellings than DuckDB), no nulls, all finite."""
    return (
        f"({raw} IS NULL OR (starts_with({raw}, '[') AND NOT contains({raw}, '\"') "
        f"AND len({val}) > 0 AND list_count({val}) = len({val}) "
        f"AND coalesce(isfinite(list_sum({val})), false)))"
    )  # a sum overflow: Python decides


def _query(strict_literals: bool, tolerant: bool) -> str:
    """The block query; ``tolerant`` wraps the parse in TRY (per-line NULL for invalid JSON,
    twice the cost, so only after the plain parse failed on the block)."""
    parse = f"json_transform(j, '{_STRUCT}')"
    parse = f"TRY({parse})" if tolerant else parse
    lit = " AND NOT regexp_matches(j, '[:\\[,]\\s*[-+]?(?i:nan|inf)')" if strict_literals else ""
    # Each stage computes every value once; later stages only refer to columns. Only fixed
    # fragments of this module enter the text (the lines come in as a registered table).
    return f"""
    WITH f AS (
      SELECT i, r IS NOT NULL AND starts_with(j, '{{') AND NOT regexp_matches(j, ',\\s*[\\]}}]')
          {lit} AS valid,
        r.ts AS ts_t, r.client_id AS cid, r.source_ip AS src, r.input AS in_t,
        r.output.label AS label, r.output.scores AS sc_t, r.output.score AS o_score,
        r.status AS status_t, r.latency_ms AS lat_t, r.model AS model_t
      FROM (SELECT i, j, {parse} AS r FROM lines)
    ), g AS (
      SELECT *,
        CASE WHEN regexp_full_match(ts_t, '{_RFC3339}')
               THEN epoch_us(TRY_CAST(ts_t AS TIMESTAMPTZ)) / 1e6
             WHEN regexp_full_match(ts_t, '-?[0-9]+([.][0-9]+)?')
               THEN TRY_CAST(ts_t AS DOUBLE) END AS ts,
        {_vec("in_t")} AS input, {_vec("sc_t")} AS scores, TRY_CAST(o_score AS DOUBLE) AS score0,
        TRY_CAST(status_t AS DOUBLE) AS status_d, TRY_CAST(lat_t AS DOUBLE) AS latency_ms
      FROM f
    ), h AS (
      SELECT *, list_sort(scores, 'DESC') AS top, TRY_CAST(trunc(status_d) AS BIGINT) AS status
      FROM g
    )
    SELECT i, ts, cid AS client_id, nullif(src, '') AS source_ip, input, label,
      CASE WHEN scores IS NOT NULL THEN top[1] ELSE score0 END AS score,
      CASE WHEN len(top) > 1 THEN top[1] - top[2]
           WHEN scores IS NOT NULL THEN abs(2 * top[1] - 1)
           WHEN score0 BETWEEN 0 AND 1 THEN abs(2 * score0 - 1) END AS margin,
      scores, status, latency_ms, nullif(model_t, '') AS model,
      coalesce(len(input), 0) AS in_len,
      valid AND coalesce(isfinite(ts), false)
        AND cid IS NOT NULL AND cid <> '' AND {_text_ok("cid")}
        AND label IS NOT NULL AND label <> '' AND {_text_ok("label")}
        AND (src IS NULL OR src = '' OR {_text_ok("src")})
        AND (model_t IS NULL OR model_t = '' OR {_text_ok("model_t")})
        AND {_vec_ok("in_t", "input")} AND {_vec_ok("sc_t", "scores")}
        AND {_num_ok("o_score", "score0")} AND {_num_ok("lat_t", "latency_ms")}
        AND {_num_ok("status_t", "status_d")} AND (status_t IS NULL OR status IS NOT NULL) AS ok
    FROM h
    """  # noqa: S608


def blocks(path: Path) -> Iterator[bytes]:
    """The file's bytes (gunzipped for ``.gz``, without a leading UTF-8 BOM) in blocks that end
    at a line end (the last block may lack one). A damaged gzip stream raises after the blocks
    of the lines before the damage, so those records are still read."""
    gz = path.name.lower().endswith(".gz")
    opener: Any = gzip.open if gz else open
    with opener(path, "rb") as fh:
        rest = b""
        first = True
        while True:
            chunk, failed = _read(fh, gz)
            if first:
                chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
            if not chunk:
                if failed is not None:  # `rest` is a line the damage cut short
                    raise failed
                if rest:
                    yield rest
                return
            buf = rest + chunk if rest else chunk
            cut = buf.rfind(b"\n")
            if cut < 0:  # one line longer than a block: keep reading
                rest = buf
            else:
                yield buf[: cut + 1]
                rest = buf[cut + 1 :]
            if failed is not None:
                raise failed


def _read(fh: Any, gz: bool) -> tuple[bytes, Exception | None]:
    """About a block of bytes, and the error that stopped a gzip stream early (the bytes
    decompressed before it are kept: GzipFile.read would drop them)."""
    if not gz:
        return fh.read(BLOCK_BYTES), None
    parts: list[bytes] = []
    size = 0
    try:
        while size < BLOCK_BYTES:
            part = fh.read1(min(1 << 16, BLOCK_BYTES - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
    except (OSError, EOFError, zlib.error) as exc:
        return b"".join(parts), exc
    return b"".join(parts), None


class BlockParser:
    """Turns blocks of one file into normalised Arrow tables (see the module docstring)."""

    def __init__(self, con: Any, file: str, report: Any, slow: SlowLine, sch: Any) -> None:
        self.con = con
        self.file = file
        self.report = report
        self.slow = slow
        self.schema = sch
        self.line = 0  # lines before the current block, as Python's line iteration counts them

    def parse(self, block: bytes) -> Any:
        import pyarrow as pa

        if (b"\r" in block and block.count(b"\r") != block.count(b"\r\n")) or not _utf8(block):
            return self._slow_block(block)
        a = np.frombuffer(block, np.uint8)
        ends = np.flatnonzero(a == 10) + 1
        if not len(ends) or ends[-1] != len(block):
            ends = np.append(ends, len(block))
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        n = len(ends)
        offsets = np.concatenate([[0], ends]).astype(np.int32)
        lines = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(block))
        low = block.lower()
        strict = b"nan" in low or b"inf" in low
        del low
        tbl = pa.table({"i": pa.array(np.arange(n, dtype=np.int64)), "j": lines})
        self.con.register("lines", tbl)
        try:
            try:
                out = self.con.sql(_query(strict, tolerant=False)).to_arrow_table()
            except Exception as exc:  # invalid JSON somewhere in the block
                if not _duckdb_failed(exc):
                    raise
                out = self.con.sql(_query(strict, tolerant=True)).to_arrow_table()
        except Exception as exc:  # DuckDB could not hand the block back: Python reads it
            if not _duckdb_failed(exc):
                raise
            return self._slow_block(block)
        finally:
            self.con.unregister("lines")
        idx = out.column("i").to_numpy()
        if len(idx) > 1 and (np.diff(idx) < 0).any():  # DuckDB keeps the order; make sure
            out = out.sort_by("i")
        first = self.line + 1
        self.line += n
        return self._merge(out, block, starts, ends, first)

    def _merge(
        self, out: Any, block: bytes, starts: np.ndarray, ends: np.ndarray, first: int
    ) -> Any:
        import pyarrow as pa

        ok = out.column("ok").to_numpy(zero_copy_only=False).astype(bool)
        in_len = out.column("in_len").to_numpy(zero_copy_only=False)
        report = self.report
        pending = np.flatnonzero(~ok)
        rows: list[tuple[Any, ...]] = []

        def slow(idx: np.ndarray) -> None:
            for k in idx.tolist():
                text = block[starts[k] : ends[k]].decode("utf-8", "replace")
                row = self.slow(first + k, text)
                if row is not None:
                    rows.append(row)

        if report.input_dim is None:
            # The first accepted record with an input fixes the length: Python-path lines before
            # the first fast one with an input go first, in order, as they may set it.
            cand = np.flatnonzero(ok & (in_len > 0))
            stop = int(cand[0]) if len(cand) else len(ok)
            slow(pending[pending < stop])
            pending = pending[pending >= stop]
            if report.input_dim is None and len(cand):
                report.input_dim = int(in_len[cand[0]])
        if report.input_dim is not None:
            wrong = ok & (in_len > 0) & (in_len != report.input_dim)
            if wrong.any():
                ok &= ~wrong
                pending = np.union1d(pending, np.flatnonzero(wrong))
        slow(pending)
        fast = out.filter(pa.array(ok))
        report.records += fast.num_rows
        cols = {c: fast.column(c) for c in self.schema.names if c not in ("file", "line")}
        lines = fast.column("i").to_numpy() + first
        table = pa.table(
            {
                "file": pa.array(np.full(fast.num_rows, self.file, dtype=object), pa.string()),
                "line": pa.array(lines, pa.int64()),
                **cols,
            }
        ).cast(self.schema)
        if not rows:
            return table
        cols_py = list(zip(*rows, strict=True))
        extra = pa.table(
            [pa.array(c, f.type) for c, f in zip(cols_py, self.schema, strict=True)],
            schema=self.schema,
        )
        return pa.concat_tables([table, extra]).sort_by("line")

    def _slow_block(self, block: bytes) -> Any:
        """Python's own line splitting (universal newlines) and decoding, for odd blocks."""
        import pyarrow as pa

        rows: list[tuple[Any, ...]] = []
        text = io.StringIO(block.decode("utf-8", "replace"), newline="")
        for k, line in enumerate(text, self.line + 1):
            self.line = k
            row = self.slow(k, line)
            if row is not None:
                rows.append(row)
        if not rows:
            return pa.Table.from_pylist([], schema=self.schema)
        cols = list(zip(*rows, strict=True))
        return pa.table(
            [pa.array(c, f.type) for c, f in zip(cols, self.schema, strict=True)],
            schema=self.schema,
        )


def _duckdb_failed(exc: Exception) -> bool:
    """A DuckDB error, or a result DuckDB built that Python cannot decode (its lenient JSON
    parser can cut a multi-byte character in a malformed line: tests/test_fuzz_logs.py)."""
    return "duckdb" in type(exc).__module__ or isinstance(exc, UnicodeDecodeError)


def _utf8(block: bytes) -> bool:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
