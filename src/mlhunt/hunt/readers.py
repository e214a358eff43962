"""Inference-log reading: JSON Lines, CSV and Parquet; a file, a folder or a glob; ``.gz``.

:func:`read_batches` streams normalised :class:`pyarrow.Table` batches with the columns of
:func:`schema`. JSON Lines and Parquet are read by DuckDB (:mod:`.duckread`) with the record
checks of :mod:`.checks` in SQL; CSV and every record DuckDB cannot vouch for go through the
Python path here (``json``, ``csv`` and pyarrow read, :func:`~.checks.check_record` decides).
A malformed record is counted in the :class:`ReadReport` with its file, line and reason, and
reading goes on (never fatal, never silently dropped). A path that does not exist is an
:class:`~mlhunt.errors.InputError`. A damaged gzip stream keeps the records before the damage
and counts the damage as one error (line 0).

Common layouts are read too: a CSV with one column per feature (the numeric columns that are
not log fields become ``input``, in header order), and a ``features`` object in place of
``input`` (its values in the record's key order).
"""

from __future__ import annotations

import contextlib
import csv
import glob
import gzip
import io
import json
import zlib
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlhunt.errors import InputError
from mlhunt.hunt.checks import Malformed, check_record, field_checks

LOG_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".pq")
MAX_ERRORS = 100
BATCH_ROWS = 50_000
#: Longest line the Python path parses (a longer one is reported, not parsed).
MAX_LINE = 256 * 1024**2

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

    f64, text, vec = pa.float64(), pa.string(), pa.list_(pa.float64())
    types = (text, pa.int64(), f64, text, text, vec, text, f64, f64, vec, pa.int64(), f64, text)
    return pa.schema(list(zip(COLUMNS, types, strict=True)))


@dataclass
class ReadReport:
    """What the readers saw: records kept, malformed ones (the first 100 with file, line and
    reason), the files read, and warnings about what the logs lack."""

    records: int = 0
    malformed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    input_dim: int | None = None
    warnings: list[str] = field(default_factory=list)
    max_errors: int = MAX_ERRORS  # how many are listed; all are counted

    def error(self, file: str, line: int, reason: str) -> None:
        self.malformed += 1
        if len(self.errors) < self.max_errors:
            self.errors.append({"file": file, "line": line, "reason": reason})

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "files": list(self.files),
            "records": self.records,
            "malformed": self.malformed,
            "errors": list(self.errors),
        }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out

    def summary(self) -> str:
        out = f"read {self.records:,} records from {len(self.files)} file(s)"
        if self.malformed:
            first = self.errors[0]
            out += (
                f"; {self.malformed:,} malformed skipped (first: {first['file']}:"
                f"{first['line']}: {first['reason']})"
            )
        for w in self.warnings:
            out += f"; warning: {w}"
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
            found = sorted(q for q in p.rglob("*") if q.is_file() and is_log_name(q.name))
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


def is_log_name(name: str) -> bool:
    """A log file's name: ``.jsonl``, ``.ndjson``, ``.json``, ``.csv``, ``.parquet``, ``.pq``,
    each optionally ``.gz``."""
    return name.lower().removesuffix(".gz").endswith(LOG_SUFFIXES)


def kind_of(p: Path) -> str:
    """``jsonl``, ``csv`` or ``parquet``, from the name (``.gz`` aside)."""
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "jsonl"


def read_batches(
    paths: str | Path | Sequence[str | Path], report: ReadReport, *, batch_rows: int = BATCH_ROWS
) -> Iterator[Any]:
    """Normalised pyarrow Tables of at most ``batch_rows`` rows from every log file."""
    from mlhunt.hunt.duckread import Reader

    with Reader() as reader:
        for path in resolve(paths):
            report.files.append(str(path))
            yield from reader.read(path, report, batch_rows)


# --- the Python path -----------------------------------------------------------------------------


def row_of(file: str, line: int, rec: Any, report: ReadReport) -> tuple[Any, ...] | None:
    """One raw record checked: its normalised row (counted), or None (reported malformed)."""
    try:
        if isinstance(rec, Unreadable):
            raise Malformed(rec.reason)
        v = check_record(rec)
        x = v["input"]
        if x is not None:
            if report.input_dim is None:
                report.input_dim = len(x)
            elif len(x) != report.input_dim:
                raise Malformed(f"input: {len(x)} values, expected {report.input_dim}")
    except Malformed as exc:
        report.error(file, line, str(exc))
        return None
    report.records += 1
    return (file, line, *(v[c] for c in COLUMNS[2:]))


def rows_table(rows: list[tuple[Any, ...]]) -> Any:
    import pyarrow as pa

    sch = schema()
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in sch]
    return pa.table([pa.array(c, f.type) for c, f in zip(cols, sch, strict=True)], schema=sch)


def python_tables(
    path: Path,
    report: ReadReport,
    lines: Container[int] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[Any]:
    """Rows of ``path`` through the Python path (only ``lines``, 1-based, when given)."""
    file, rows = str(path), []
    for line, rec in records(path, report, lines):
        row = row_of(file, line, rec, report)
        if row is not None:
            rows.append(row)
        if len(rows) >= batch_rows:
            yield rows_table(rows)
            rows = []
    if rows:
        yield rows_table(rows)


def records(
    path: Path, report: ReadReport, want: Container[int] | None = None
) -> Iterator[tuple[int, Any]]:
    """(line, raw record) pairs of one file (only lines in ``want``); unreadable lines and
    files go to ``report``."""
    file, kind = str(path), kind_of(path)
    try:
        if kind == "jsonl":
            yield from _json_lines(path, report, want)
        elif kind == "csv":
            yield from _csv_rows(path, report, want)
        else:
            yield from _parquet_rows(path, want)
    except (OSError, EOFError, zlib.error, csv.Error, UnicodeError) as exc:
        report.error(file, 0, f"unreadable file ({type(exc).__name__}: {exc})")
    except Exception as exc:  # pyarrow errors on a damaged Parquet file
        if not type(exc).__module__.startswith("pyarrow"):
            raise
        report.error(file, 0, f"unreadable file ({type(exc).__name__}: {exc})")


def open_bytes(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _json_lines(
    path: Path, report: ReadReport, want: Container[int] | None
) -> Iterator[tuple[int, Any]]:
    file = str(path)
    with open_bytes(path) as fh:
        for i, raw in enumerate(lines_of(fh), 1):
            if want is not None and i not in want:
                continue
            if len(raw) > MAX_LINE:
                report.error(file, i, f"line longer than {MAX_LINE // 1024**2} MiB")
                continue
            if not (raw.removeprefix(b"\xef\xbb\xbf") if i == 1 else raw).strip():
                continue  # ASCII whitespace only, as DuckDB skips it
            try:
                yield i, parse_line(raw.decode("utf-8", errors="replace"), i == 1)
            except Malformed as exc:
                report.error(file, i, str(exc))


def parse_line(text: str, first: bool = False) -> Any:
    """One JSON Lines record parsed with ``json`` (a BOM opening the file skipped), or
    :class:`Malformed` with the reason."""
    try:
        return json.loads(text.removeprefix("\ufeff") if first else text)
    except ValueError as exc:
        raise Malformed(f"not JSON ({exc.args[0][:80]})") from None
    except RecursionError:  # json recurses per nesting level
        raise Malformed("not JSON (nested too deeply)") from None


def lines_of(fh: IO[bytes]) -> Iterator[bytes]:
    """The file's lines, each at most ``MAX_LINE`` + 1 bytes held (a longer one is cut)."""
    while True:
        raw = fh.readline(MAX_LINE + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while True:  # skip the rest of the over-long line
                more = fh.readline(MAX_LINE)
                if not more or more.endswith(b"\n"):
                    break
        yield raw


_LOG_FIELDS = {c.path[0] for c in field_checks()} | {"label", "scores", "score", "features"}


def _csv_rows(
    path: Path, report: ReadReport, want: Container[int] | None
) -> Iterator[tuple[int, Any]]:
    file = str(path)
    with open_bytes(path) as raw, io.TextIOWrapper(raw, "utf-8-sig", "replace", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = iter(reader)
        features: list[str] | None = None
        while True:
            try:
                rec = next(rows)
            except StopIteration:
                return
            except csv.Error as exc:  # one bad row; the reader goes on with the next
                report.error(file, reader.reader.line_num, f"not CSV ({exc})")
                continue
            if features is None:
                features = _feature_columns(reader.fieldnames or [], rec)
            if features and "input" not in rec:
                rec["features"] = {k: rec.pop(k) for k in features}
            if want is None or reader.line_num in want:
                yield reader.line_num, rec


def _feature_columns(names: Sequence[str], first: dict[str, Any]) -> list[str]:
    """One column per feature: the columns that are not log fields and hold a number in the
    first row (a CSV that has an ``input`` column has none)."""
    if "input" in names:
        return []
    out = []
    for name in names:
        if name in _LOG_FIELDS or name.startswith("output."):
            continue
        try:
            float(first.get(name) or "")
        except ValueError:
            continue
        out.append(name)
    return out


def _parquet_rows(path: Path, want: Container[int] | None) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    with contextlib.ExitStack() as stack:
        src: Any = path
        if path.name.lower().endswith(".gz"):
            src = stack.enter_context(gzip.open(path, "rb"))
        pf = pq.ParquetFile(src)
        start = 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            rows = range(start + 1, start + n + 1)
            picked = [r for r in rows if r in want] if want is not None else list(rows)
            if picked:
                table = pf.read_row_group(g)
                if want is not None:
                    table = table.take([r - start - 1 for r in picked])
                yield from zip(picked, pylist(table), strict=True)
            start += n


class Unreadable:
    """A Parquet row pyarrow cannot turn into Python values: reported as malformed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def pylist(data: Any) -> list[Any]:
    """The rows of an Arrow table as dicts. A value Python cannot hold (a timestamp past the
    year 9999) spoils only its own row, which becomes an :class:`Unreadable`."""
    try:
        return data.to_pylist()  # type: ignore[no-any-return]
    except (OverflowError, ValueError):
        out: list[Any] = []
        for i in range(data.num_rows):
            try:
                out.extend(data.slice(i, 1).to_pylist())
            except (OverflowError, ValueError) as exc:
                out.append(Unreadable(f"unreadable value ({type(exc).__name__}: {exc})"[:200]))
        return out
