"""Read LLM logs: the gateway log and OpenTelemetry GenAI traces, told apart by content.

Files are read line by line with :mod:`json` (a pretty-printed OTLP JSON document is parsed
whole, up to :data:`MAX_DOC_BYTES`); with ``prefilter_for`` (what ``hunt`` does), plain gateway
JSON Lines go through DuckDB and the RE2 prefilters of :mod:`.fastread`, and only the lines it
cannot vouch for, or whose texts a prefilter marks, are read by :mod:`json`. A record that
cannot be read is a :class:`Malformed` with its file, line and reason; reading goes on. Lines
longer than :data:`MAX_LINE_BYTES` are malformed without being parsed.
"""

from __future__ import annotations

import glob
import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlhunt.errors import InputError
from mlhunt.llmhunt import gateway, otel
from mlhunt.llmhunt.records import Malformed, ReadResult

if TYPE_CHECKING:
    from mlhunt.llmhunt.detectors.base import Context

MAX_LINE_BYTES = 4 << 20
MAX_DOC_BYTES = 64 << 20
MAX_ERRORS = 100  # kept with their reasons; all are counted
SNIFF_RECORDS = 20
SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
# Tabular files can only be inference logs (the LLM formats are JSON): told apart by name.
TABULAR = (".csv", ".csv.gz", ".parquet", ".pq")

GATEWAY = "llm-gateway"
OTEL = "otel-genai"
INFERENCE = "inference"
LLM_KINDS = frozenset({GATEWAY, OTEL, "llm"})


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, files in folders named (by suffix, sorted) and glob matches."""
    out: list[Path] = []
    for raw in [paths] if isinstance(paths, str | Path) else paths:
        p = Path(raw)
        if p.is_dir():
            out += sorted(
                f for f in p.rglob("*") if f.is_file() and f.name.endswith(SUFFIXES + TABULAR)
            )
        elif p.is_file():
            out.append(p)
        elif any(ch in str(raw) for ch in "*?["):
            out += sorted(Path(m) for m in glob.glob(str(raw), recursive=True))
        else:
            raise InputError("no such file or folder", file=str(raw))
    if not out:
        raise InputError("no log files found", file=", ".join(map(str, paths)))
    return out


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def iter_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per non-empty line; ``None`` for a line over the size bound."""
    with _open(path) as fh:
        n = 0
        while True:
            n += 1
            try:
                raw = fh.readline(MAX_LINE_BYTES + 1)
            except (OSError, EOFError):  # a damaged gzip stream: what came before is kept
                yield n, b"\0damaged"
                return
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of the long line
                    raw = fh.readline(MAX_LINE_BYTES)
                yield n, None
                continue
            if raw.strip():
                yield n, raw


def parse(raw: bytes) -> Any:
    """One JSON value; ValueError with a short reason (bad JSON, too deep, not UTF-8)."""
    try:
        return json.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None


def _document(path: Path) -> Any | None:
    """The whole file as one JSON document (a pretty-printed OTLP export), or None."""
    try:
        if path.stat().st_size > MAX_DOC_BYTES:
            return None
        with _open(path) as fh:
            return parse(fh.read(MAX_DOC_BYTES + 1))
    except (OSError, EOFError, ValueError):
        return None


def kind_of(obj: Any) -> str | None:
    """The log kind one record belongs to, by its content."""
    if otel.is_otel(obj):
        return OTEL
    if gateway.is_gateway(obj):
        return GATEWAY
    if isinstance(obj, dict) and "output" in obj and ("client_id" in obj or "input" in obj):
        return INFERENCE
    return None


def _records(path: Path) -> Iterator[tuple[int, Any | ValueError]]:
    """(line, parsed value or the ValueError saying why not); a whole-file document is line 1."""
    first = True
    for n, raw in iter_lines(path):
        if raw is None:
            yield n, ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        if raw == b"\0damaged":
            yield n, ValueError("damaged compressed stream; records before it were read")
            return
        try:
            obj = parse(raw)
        except ValueError as exc:
            if first and raw.lstrip()[:1] in (b"{", b"["):
                doc = _document(path)
                if doc is not None:
                    yield 1, doc
                    return
            yield n, exc
            first = False
            continue
        first = False
        yield n, obj


def file_kind(path: Path) -> str | None:
    """The kind of the first records of a file that have one (None: nothing recognisable)."""
    if path.name.lower().endswith(TABULAR):
        return INFERENCE
    seen = 0
    for _, obj in _records(path):
        if isinstance(obj, ValueError):
            continue
        kind = kind_of(obj)
        if kind:
            return kind
        seen += 1
        if seen >= SNIFF_RECORDS:
            break
    return None


def detect_log_kind(paths: Iterable[str | Path] | str | Path) -> str:
    """``"inference"`` (classifier/regressor log), ``"llm-gateway"``, ``"otel-genai"``, or
    ``"llm"`` for gateway logs and traces together; :class:`InputError` naming the file when a
    file is none of these or inference logs are mixed with LLM logs."""
    kinds: dict[str, Path] = {}
    for path in expand(paths):
        kind = file_kind(path)
        if kind is None:
            raise InputError(
                "not a recognised log: expected inference records (client_id, output), "
                "chat-completions calls (ts, request.messages) or OpenTelemetry spans "
                "(resourceSpans or gen_ai.* attributes)",
                file=str(path),
            )
        kinds.setdefault(kind, path)
    if len(kinds) == 1:
        return next(iter(kinds))
    if INFERENCE in kinds:
        other = next(p for k, p in kinds.items() if k != INFERENCE)
        raise InputError(
            f"LLM logs mixed with inference logs ({kinds[INFERENCE]}); hunt them separately",
            file=str(other),
        )
    return "llm"


def llm_kind(paths: Iterable[str | Path] | str | Path) -> str | None:
    """The LLM log kind of ``paths`` when any file is an LLM log, else None (inference logs,
    and files nothing recognises, are left to the inference hunt, which reports bad records).
    :class:`InputError` when LLM logs are mixed with recognised inference logs."""
    try:
        files = expand(paths)
    except InputError:
        return None  # the inference hunt names the missing file in its own words
    kinds = {file_kind(f): f for f in files}
    llm = sorted(k for k in kinds if k in LLM_KINDS)
    if not llm:
        return None
    if INFERENCE in kinds:
        raise InputError(
            f"LLM logs mixed with inference logs ({kinds[INFERENCE]}); hunt them separately",
            file=str(kinds[llm[0]]),
        )
    return llm[0] if len(llm) == 1 else "llm"


class Sink:
    """Where records go while reading: the result, its malformed records, OTel spans."""

    def __init__(self) -> None:
        self.out = ReadResult()
        self.spans: list[otel.Span] = []

    def bad(self, file: str, line: int, reason: str) -> None:
        self.out.malformed_total += 1
        if len(self.out.malformed) < MAX_ERRORS:
            self.out.malformed.append(Malformed(file, line, reason))

    def take(self, name: str, n: int, kind: str | None, obj: Any) -> None:
        """One parsed record (or the ValueError saying why not) of file ``name``, line ``n``."""
        self.out.records += 1
        if isinstance(obj, ValueError):
            self.bad(name, n, str(obj))
            return
        where = f"{name}:{n}"
        try:
            # A record's own content decides; the file's kind says how to report a bad one.
            if otel.is_otel(obj):
                self.spans += otel.spans_of(obj, where)
            elif gateway.is_gateway(obj):
                self.out.calls.append(gateway.to_call(obj, where))
            elif kind == OTEL and isinstance(obj, dict | list):
                self.spans += otel.spans_of(obj, where)
            elif kind == GATEWAY:
                self.out.calls.append(gateway.to_call(obj, where))
            else:
                self.bad(name, n, "not an LLM call record or OpenTelemetry span")
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            self.bad(name, n, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)

    def result(self) -> ReadResult:
        out = self.out
        calls, span_bad = otel.calls_of(self.spans, out.runs)
        for m in span_bad:
            self.bad(m.file, m.line, m.reason)
        out.calls += calls
        out.calls.sort(key=lambda c: c.ts)
        return out


def read(
    paths: Iterable[str | Path] | str | Path, *, prefilter_for: Context | None = None
) -> ReadResult:
    """Every call in the files, in time order, and every malformed record.

    ``prefilter_for``: the hunt's context (canaries). Plain gateway JSON Lines files are then
    read by DuckDB (:mod:`.fastread`), and a call keeps its messages and completion only where
    a detector's prefilter marks one of its texts: the detectors find the same, but the calls
    do not carry the whole conversation.
    """
    sink = Sink()
    for path in expand(paths):
        name = str(path)
        kind = file_kind(path)
        sink.out.kinds[name] = kind or "unknown"
        if kind == INFERENCE:
            sink.bad(name, 0, "an inference (classifier) log, not an LLM log: hunt it separately")
            continue
        if prefilter_for is not None and kind == GATEWAY and not name.endswith(".gz"):
            from mlhunt.llmhunt.fastread import read_gateway

            if read_gateway(path, sink, prefilter_for):
                continue
        for n, obj in _records(path):
            sink.take(name, n, kind, obj)
    return sink.result()
