"""Inference-log readers: JSON Lines, CSV and Parquet; a file, a folder or a glob; ``.gz``.

:func:`read_batches` streams normalised :class:`pyarrow.Table` batches (never a whole file in
memory) with the columns of :data:`SCHEMA`. Each record is checked against the DESIGN.md log
schema; a malformed one is counted in the :class:`ReadReport` with its file, line and reason,
and reading goes on (never fatal, never silently dropped). A path that does not exist is an
:class:`~mlhunt.errors.InputError`. A UTF-8 BOM at the start of a file is skipped; a damaged
gzip stream keeps the records before the damage and counts the damage as one error (line 0).

Normalisation: ``ts`` to float epoch seconds (RFC 3339 or epoch accepted), ``label`` to a
string, ``score`` to the top-class probability (or the record's single ``score``), ``margin``
to top-1 minus top-2 probability (binary single score: ``|2 score - 1|``), and ``input`` to a
list of doubles whose length is fixed by the first record that has one.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import gzip
import io
import json
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mlhunt.errors import InputError

LOG_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".pq")
MAX_ERRORS = 100
BATCH_ROWS = 50_000

#: Normalised column names, in order (types: see :func:`schema`).
COLUMNS = (
    "file",
    "line",
    "ts",
    "client_id",
    "source_ip",
    "input",
    "label",
    "score",
    "margin",
    "scores",
    "status",
    "latency_ms",
    "model",
)


def schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("file", pa.string()),
            ("line", pa.int64()),
            ("ts", pa.float64()),
            ("client_id", pa.string()),
            ("source_ip", pa.string()),
            ("input", pa.list_(pa.float64())),
            ("label", pa.string()),
            ("score", pa.float64()),
            ("margin", pa.float64()),
            ("scores", pa.list_(pa.float64())),
            ("status", pa.int64()),
            ("latency_ms", pa.float64()),
            ("model", pa.string()),
        ]
    )


@dataclass
class ReadReport:
    """What the readers saw: records kept, malformed ones (the first 100 with file, line and
    reason) and the files read."""

    records: int = 0
    malformed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    input_dim: int | None = None

    def error(self, file: str, line: int, reason: str) -> None:
        self.malformed += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"file": file, "line": line, "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "records": self.records,
            "malformed": self.malformed,
            "errors": list(self.errors),
        }

    def summary(self) -> str:
        out = f"read {self.records:,} records from {len(self.files)} file(s)"
        if self.malformed:
            first = self.errors[0]
            out += (
                f"; {self.malformed:,} malformed skipped (first: {first['file']}:"
                f"{first['line']}: {first['reason']})"
            )
        return out


def resolve(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Log files named by files, folders (searched recursively) or globs, in a stable order."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    if not items:
        raise InputError("no log files given")
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and _is_log(q))
            if not found:
                raise InputError("folder holds no log files (.jsonl, .csv, .parquet)", file=str(p))
            out.extend(found)
        elif any(ch in str(item) for ch in "*?["):
            found = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            found = [q for q in found if q.is_file()]
            if not found:
                raise InputError("glob matches no files", file=str(item))
            out.extend(found)
        else:
            raise InputError("no such file or folder", file=str(item))
    return list(dict.fromkeys(out))


def _is_log(p: Path) -> bool:
    name = p.name.lower().removesuffix(".gz")
    return name.endswith(LOG_SUFFIXES)


def _kind(p: Path) -> str:
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "jsonl"


def read_batches(
    paths: str | Path | Sequence[str | Path], report: ReadReport, *, batch_rows: int = BATCH_ROWS
) -> Iterator[Any]:
    """Normalised pyarrow Tables of at most ``batch_rows`` rows from every log file.

    JSON Lines go through the vectorised block reader (:mod:`._fastjson`), which hands every
    line it cannot vouch for to the per-line path below, so both report the same malformed
    records; CSV and Parquet records take the per-line path."""
    sch = schema()
    norm = _Normaliser(report)
    con: Any = None
    try:
        for path in resolve(paths):
            report.files.append(str(path))
            if _kind(path) == "jsonl":
                if con is None:
                    con = _parser_connection()
                yield from _rebatch(_jsonl_tables(con, path, report, norm, sch), batch_rows)
                continue
            rows: list[tuple[Any, ...]] = []
            for line, rec in _records(path, report):
                row = norm.row(str(path), line, rec)
                if row is None:
                    continue
                rows.append(row)
                if len(rows) >= batch_rows:
                    yield _rows_table(rows, sch)
                    rows = []
            if rows:
                yield _rows_table(rows, sch)
    finally:
        if con is not None:
            con.close()


def _rows_table(rows: list[tuple[Any, ...]], sch: Any) -> Any:
    import pyarrow as pa

    cols = list(zip(*rows, strict=True))
    return pa.table([pa.array(c, f.type) for c, f in zip(cols, sch, strict=True)], schema=sch)


def _parser_connection() -> Any:
    import duckdb

    # Its own small in-memory database: parsing a block needs ~10x the block, never more.
    con = duckdb.connect(config={"memory_limit": "512MB"})
    con.execute("SET enable_progress_bar = false")  # it draws on stdout: the report's stream
    con.execute("SET enable_progress_bar = false")
    return con


def _jsonl_tables(
    con: Any, path: Path, report: ReadReport, norm: _Normaliser, sch: Any
) -> Iterator[Any]:
    from mlhunt.hunt._fastjson import BlockParser, blocks

    file = str(path)

    def slow(line: int, text: str) -> tuple[Any, ...] | None:
        return json_row(norm, file, line, text)

    parser = BlockParser(con, file, report, slow, sch)
    try:
        for block in blocks(path):
            yield parser.parse(block)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        report.error(file, 0, f"unreadable file ({type(exc).__name__}: {exc})")


def json_row(norm: _Normaliser, file: str, line: int, text: str) -> tuple[Any, ...] | None:
    """One JSON Lines line through the Python path: a row, or None (a blank line; a malformed
    record, reported)."""
    if not text.strip():
        return None
    rec = _json(norm.report, file, line, text)
    return None if rec is _NOT_JSON else norm.row(file, line, rec)


_NOT_JSON = object()


def _json(report: ReadReport, file: str, line: int, text: str) -> Any:
    """The parsed line, or ``_NOT_JSON`` (reported)."""
    try:
        return json.loads(text)
    except ValueError as exc:
        report.error(file, line, f"not JSON ({exc.args[0][:80]})")
    except RecursionError:  # json recurses per nesting level: a hostile line is not fatal
        report.error(file, line, "not JSON (nested too deeply)")
    return _NOT_JSON


def _rebatch(tables: Iterator[Any], batch_rows: int) -> Iterator[Any]:
    """Tables of exactly ``batch_rows`` rows (the last one fewer), zero-copy slices."""
    import pyarrow as pa

    parts: list[Any] = []
    held = 0
    for table in tables:
        while table.num_rows:
            take = min(batch_rows - held, table.num_rows)
            parts.append(table.slice(0, take))
            table = table.slice(take)
            held += take
            if held == batch_rows:
                yield pa.concat_tables(parts)
                parts, held = [], 0
    if held:
        yield pa.concat_tables(parts)


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: a BOM that Windows tools put first is not part of the first line or header
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")  # type: ignore[return-value]
    return path.open("r", encoding="utf-8-sig", errors="replace", newline="")


def _records(path: Path, report: ReadReport) -> Iterator[tuple[int, Any]]:
    """(line, raw record) pairs; unreadable lines go to ``report``."""
    kind = _kind(path)
    try:
        if kind == "jsonl":
            with _open_text(path) as fh:
                for i, text in enumerate(fh, 1):
                    if not text.strip():
                        continue
                    rec = _json(report, str(path), i, text)
                    if rec is not _NOT_JSON:
                        yield i, rec
        elif kind == "csv":
            with _open_text(path) as fh:
                reader = csv.DictReader(fh)
                rows = iter(reader)
                while True:
                    try:
                        rec = next(rows)
                    except StopIteration:
                        break
                    except csv.Error as exc:  # one bad row (a field over the size limit ...):
                        # the reader resets on the next call, so the rows after it still count
                        # (DictReader.line_num is only updated after a good row)
                        report.error(str(path), reader.reader.line_num, f"not CSV ({exc})")
                        continue
                    yield reader.line_num, rec
        else:
            yield from _parquet_records(path)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error, csv.Error, UnicodeError) as exc:
        report.error(str(path), 0, f"unreadable file ({type(exc).__name__}: {exc})")
    except Exception as exc:  # pyarrow errors on a damaged Parquet file
        if type(exc).__module__.startswith("pyarrow"):
            report.error(str(path), 0, f"unreadable file ({type(exc).__name__}: {exc})")
        else:
            raise


def _parquet_records(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    with contextlib.ExitStack() as stack:
        src: Any = path
        if path.name.lower().endswith(".gz"):
            src = stack.enter_context(gzip.open(path, "rb"))
        pf = pq.ParquetFile(src)
        row = 0
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            for rec in pylist(batch):
                row += 1
                yield row, rec


class _Unreadable:
    """A Parquet row pyarrow cannot turn into Python values: reported as malformed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def pylist(data: Any) -> list[Any]:
    """The rows of an Arrow table or batch as dicts. A value Python cannot hold (a timestamp
    past the year 9999: OverflowError) spoils only its own row, which becomes an
    :class:`_Unreadable`, not the rest of the file."""
    try:
        return data.to_pylist()  # type: ignore[no-any-return]
    except (OverflowError, ValueError):
        out: list[Any] = []
        for i in range(data.num_rows):
            try:
                out.extend(data.slice(i, 1).to_pylist())
            except (OverflowError, ValueError) as exc:
                out.append(_Unreadable(f"unreadable value ({type(exc).__name__}: {exc})"[:200]))
        return out


class _Normaliser:
    """Checks one raw record against the log schema; returns a row or reports why not."""

    def __init__(self, report: ReadReport) -> None:
        self.report = report

    def row(self, file: str, line: int, rec: Any) -> tuple[Any, ...] | None:
        try:
            out = self._row(file, line, rec)
        except _Bad as exc:
            self.report.error(file, line, str(exc))
            return None
        self.report.records += 1
        return out

    def _row(self, file: str, line: int, rec: Any) -> tuple[Any, ...]:
        if isinstance(rec, _Unreadable):
            raise _Bad(rec.reason)
        if not isinstance(rec, dict):
            raise _Bad("record is not an object")
        ts = _ts(rec.get("ts"))
        cid = rec.get("client_id")
        if cid is None or cid == "" or isinstance(cid, dict | list):
            raise _Bad("client_id: missing")
        label, score, margin, scores = _output(rec)
        x = _vector(rec.get("input"), "input")
        if x is not None:
            if self.report.input_dim is None:
                self.report.input_dim = len(x)
            elif len(x) != self.report.input_dim:
                raise _Bad(f"input: {len(x)} values, expected {self.report.input_dim}")
        src, model = rec.get("source_ip"), rec.get("model")
        return (
            file,
            line,
            ts,
            _str(cid, "client_id"),
            None if src in (None, "") else _str(src, "source_ip"),
            x,
            _str(label, "output.label"),
            score,
            margin,
            scores,
            _int(rec.get("status"), "status"),
            _float(rec.get("latency_ms"), "latency_ms"),
            None if model in (None, "") else _str(model, "model"),
        )


class _Bad(Exception):
    pass


def _ts(value: Any) -> float:
    if value is None or value == "":
        raise _Bad("ts: missing")
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            v = float(value)
        except OverflowError:  # an integer past the float range
            raise _Bad("ts: not a finite number") from None
    else:
        s = str(value).strip()
        try:
            v = float(s)
        except ValueError:
            try:
                v = datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise _Bad(f"ts: not RFC 3339 or epoch seconds: {s[:40]!r}") from None
    if not math.isfinite(v):
        raise _Bad("ts: not a finite number")
    return v


def _str(value: Any, name: str) -> str:
    s = str(value)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON \u escape
        raise _Bad(f"{name}: not valid Unicode text") from None
    return s


def _maybe_json(value: Any) -> Any:
    """CSV cells hold arrays and objects as JSON text."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise _Bad(f"not JSON: {value[:40]!r}") from None
    return value


def _vector(value: Any, name: str) -> list[float] | None:
    value = _maybe_json(value)
    if value is None or value == "":
        return None
    if not isinstance(value, list | tuple) or not value:
        raise _Bad(f"{name}: expected a non-empty array of numbers")
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        raise _Bad(f"{name}: expected an array of numbers") from None
    except OverflowError:  # an integer past the float range
        raise _Bad(f"{name}: holds NaN or infinity") from None
    if not all(math.isfinite(v) for v in out):
        raise _Bad(f"{name}: holds NaN or infinity")
    return out


def _float(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{name}: expected a number") from None
    except OverflowError:  # an integer past the float range
        raise _Bad(f"{name}: not a finite number") from None
    if not math.isfinite(v):
        raise _Bad(f"{name}: not a finite number")
    return v


def _int(value: Any, name: str) -> int | None:
    v = _float(value, name)
    if v is not None and not -(2.0**63) <= v < 2.0**63:  # the column is int64
        raise _Bad(f"{name}: out of range")
    return None if v is None else int(v)


def _output(rec: dict[str, Any]) -> tuple[str, float | None, float | None, list[float] | None]:
    out = _maybe_json(rec.get("output"))
    if out is None:  # CSV may flatten the object
        flat = {
            k.split(".", 1)[1]: v
            for k, v in rec.items()
            if isinstance(k, str) and k.startswith("output.")
        }
        if not flat and "label" in rec:
            flat = {k: rec.get(k) for k in ("label", "scores", "score")}
        out = flat or None
    if not isinstance(out, dict):
        raise _Bad("output: missing (expected an object with label)")
    label = out.get("label")
    if label is None or label == "" or isinstance(label, dict | list):
        raise _Bad("output.label: missing")
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    scores = _vector(out.get("scores"), "output.scores")
    score = _float(out.get("score"), "output.score")
    margin = None
    if scores is not None:
        top = sorted(scores, reverse=True)
        score = top[0]
        margin = top[0] - top[1] if len(top) > 1 else abs(2 * top[0] - 1)
    elif score is not None and 0.0 <= score <= 1.0:
        margin = abs(2 * score - 1)
    return str(label), score, margin, scores
