"""Read clickstream events and recommender API logs with DuckDB, told apart by content.

A *clickstream* record is a shop event: ``ts``, ``user``, ``item``, ``event`` (view, cart,
purchase), optionally ``source_ip`` and ``referrer``. A *recommender API* record is an inference
log record (``client_id``, ``output``) whose ``output.items`` is the recommended list, naming the
``user`` asked about and, when the shop sends it, the session's ``items``.

DuckDB reads JSON Lines (``.gz`` too) with every field as JSON (an unreadable line becomes an
empty row, so rows and non-blank lines stay in step) and Parquet natively; one SQL query types
each field and says why a record is malformed. Malformed records are counted with file, line
and reason (the first :data:`~mlhunt.hunt.readers.MAX_ERRORS` kept), never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlhunt.errors import InputError
from mlhunt.hunt.duckread import LineMap
from mlhunt.hunt.readers import ReadReport, open_bytes, resolve

CLICKSTREAM = "clickstream"
RECOMMENDER_API = "recommender-api"
EVENT_TYPES = ("view", "cart", "purchase")
#: Records read per hunt; beyond it the rest of the file is left unread and a warning says so.
MAX_EVENTS = 5_000_000
#: Longest id (user, item, address) kept; a longer one makes the record malformed.
MAX_ID = 256
#: Items in one API record's session list that are kept (the rest are ignored, with a warning).
MAX_SESSION_ITEMS = 500
SNIFF_LINES = 20
SNIFF_LINE_BYTES = 1 << 20
#: Columns of the events table the detectors read.
EVENTS_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("line", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("user", pa.string()),
        ("item", pa.string()),
        ("event", pa.string()),
        ("source_ip", pa.string()),
    ]
)


@dataclass
class ClickRead:
    """The valid events (:data:`EVENTS_SCHEMA`; an API record without session items keeps one
    row with a null item, so its user is still seen) and what reading them found."""

    events: pa.Table
    report: ReadReport
    kind: str


# --- recognising the log ------------------------------------------------------------------
def record_kind(obj: Any) -> str | None:
    """:data:`CLICKSTREAM`, :data:`RECOMMENDER_API`, ``"inference"`` or None for one record."""
    if not isinstance(obj, dict):
        return None
    if "output" in obj and "client_id" in obj:
        out = obj["output"]
        if "user" in obj and isinstance(out, dict) and isinstance(out.get("items"), list):
            return RECOMMENDER_API
        return "inference"
    if {"ts", "user", "item", "event"} <= obj.keys():
        return CLICKSTREAM
    return None


def file_kind(path: Path) -> str | None:
    """The kind of a file from its first records (Parquet: its column names)."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        try:
            import pyarrow.parquet as pq

            names = set(pq.read_schema(path).names)
        except (OSError, pa.ArrowException):
            return None
        if {"ts", "user", "item", "event"} <= names and "output" not in names:
            return CLICKSTREAM
        return None
    if not name.endswith((".jsonl", ".ndjson", ".json")):
        return None
    try:
        with open_bytes(path) as fh:
            for _ in range(SNIFF_LINES):
                raw = fh.readline(SNIFF_LINE_BYTES)
                if not raw:
                    break
                try:
                    kind = record_kind(json.loads(raw.removeprefix(b"\xef\xbb\xbf")))
                except (ValueError, RecursionError):
                    continue
                if kind is not None:
                    return kind
    except (OSError, EOFError):
        return None
    return None


def click_kind(paths: Any) -> str | None:
    """:data:`CLICKSTREAM` when the logs are clickstream events, :data:`RECOMMENDER_API` when
    they are inference logs of which one at least is a recommender's, else None (left to the
    other hunts). :class:`InputError` when clickstream events are mixed with other logs."""
    try:
        files = resolve(paths)
    except InputError:
        return None  # the inference hunt names the missing file in its own words
    kinds = {f: file_kind(f) for f in files}
    clicks = [f for f, k in kinds.items() if k == CLICKSTREAM]
    if clicks:
        other = next((f for f, k in kinds.items() if k != CLICKSTREAM), None)
        if other is not None:
            raise InputError(
                f"clickstream events ({clicks[0]}) mixed with other logs; hunt them separately",
                file=str(other),
            )
        return CLICKSTREAM
    return RECOMMENDER_API if RECOMMENDER_API in kinds.values() else None


# --- reading ------------------------------------------------------------------------------
_TS = """CASE
  WHEN json_type(ts) = 'VARCHAR' THEN TRY_CAST(json_extract_string(ts, '$') AS TIMESTAMPTZ)
  WHEN json_type(ts) IN ('BIGINT', 'UBIGINT', 'DOUBLE')
    AND TRY_CAST(ts AS DOUBLE) BETWEEN 0 AND 4102444800
    THEN to_timestamp(TRY_CAST(ts AS DOUBLE))
END"""


def _id_check(col: str, name: str, *, optional: bool = False) -> str:
    missing = "" if optional else f"WHEN {col} IS NULL THEN '{name}: missing' "
    return (
        f"{missing}WHEN {col} IS NOT NULL AND json_type({col}) NOT IN ('VARCHAR', 'NULL') "
        f"THEN '{name}: expected a string' "
        f"WHEN length(json_extract_string({col}, '$')) > {MAX_ID} "
        f"THEN '{name}: longer than {MAX_ID} characters' "
    )


# One row per record: its typed fields and, for a malformed one, the reason.
_CLICK_SQL = f"""
SELECT line, reason, tsv AS ts, json_extract_string(u, '$') AS "user",
       json_extract_string(item, '$') AS item, json_extract_string(event, '$') AS event,
       json_extract_string(source_ip, '$') AS source_ip
FROM (
  SELECT *, CASE
    WHEN ts IS NULL AND u IS NULL AND item IS NULL AND event IS NULL
      THEN 'not a JSON object with ts, user, item and event'
    WHEN ts IS NULL THEN 'ts: missing'
    WHEN tsv IS NULL THEN 'ts: expected an RFC 3339 timestamp or epoch seconds'
    {_id_check("u", "user")}
    {_id_check("item", "item")}
    WHEN event IS NULL THEN 'event: missing'
    WHEN json_extract_string(event, '$') NOT IN ('view', 'cart', 'purchase')
      THEN 'event: expected view, cart or purchase'
    {_id_check("source_ip", "source_ip", optional=True)}
  END AS reason
  FROM (SELECT *, {_TS} AS tsv FROM raw)
)
"""  # noqa: S608 (fixed names and numbers, no text from the logs)

_API_SQL = f"""
SELECT line, reason, tsv AS ts, coalesce(json_extract_string(u, '$'),
       'client:' || json_extract_string(client_id, '$')) AS "user",
       items, json_extract_string(source_ip, '$') AS source_ip
FROM (
  SELECT *, CASE
    WHEN ts IS NULL AND client_id IS NULL AND output IS NULL
      THEN 'not a JSON object with ts, client_id and output'
    WHEN ts IS NULL THEN 'ts: missing'
    WHEN tsv IS NULL THEN 'ts: expected an RFC 3339 timestamp or epoch seconds'
    {_id_check("client_id", "client_id")}
    {_id_check("u", "user", optional=True)}
    WHEN items IS NOT NULL AND json_type(items) NOT IN ('ARRAY', 'NULL')
      THEN 'items: expected a list of item ids'
    WHEN items IS NOT NULL AND json_type(items) = 'ARRAY' AND list_count(list_filter(
        json_extract(items, '$[*]'), lambda x: json_type(x) <> 'VARCHAR'
        OR length(json_extract_string(x, '$')) > {MAX_ID})) > 0
      THEN 'items: expected item ids (strings of at most {MAX_ID} characters)'
    {_id_check("source_ip", "source_ip", optional=True)}
  END AS reason
  FROM (SELECT *, {_TS} AS tsv FROM raw)
)
"""  # noqa: S608 (fixed names and numbers, no text from the logs)

_CLICK_FIELDS = {
    "ts": "ts",
    "user": "u",
    "item": "item",
    "event": "event",
    "source_ip": "source_ip",
}
_API_FIELDS = {
    "ts": "ts",
    "client_id": "client_id",
    "user": "u",
    "items": "items",
    "output": "output",
    "source_ip": "source_ip",
}


def read(paths: Any, *, kind: str | None = None, max_events: int = MAX_EVENTS) -> ClickRead:
    """Every valid event of the files (clickstream events or recommender API logs; ``kind``
    None: recognised by content) and the read report."""
    import duckdb

    files = resolve(paths)
    kind = kind or click_kind(files)
    if kind not in (CLICKSTREAM, RECOMMENDER_API):
        raise InputError(
            "not a clickstream events file (ts, user, item, event) or a recommender API log",
            file=str(files[0]),
        )
    report = ReadReport()
    parts: list[pa.Table] = []
    left = max_events
    con = duckdb.connect(config={"memory_limit": "512MB"})
    try:
        con.execute("SET enable_progress_bar = false")
        for path in files:
            report.files.append(str(path))
            if left <= 0:
                report.warn(f"stopped after {max_events:,} records: {path} and later not read")
                break
            try:
                table = _read_file(con, path, kind, left)
            except (duckdb.Error, OSError, EOFError, pa.ArrowException) as exc:
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                report.error(str(path), 0, f"unreadable file ({type(exc).__name__}: {first})")
                continue
            if table.num_rows >= left:
                report.warn(f"stopped after {max_events:,} records in {path}")
            left -= table.num_rows
            parts.append(_keep_valid(table, str(path), kind, report))
    finally:
        con.close()
    events = pa.concat_tables(parts) if parts else EVENTS_SCHEMA.empty_table()
    events = events.sort_by([("ts", "ascending"), ("user", "ascending")])
    return ClickRead(events=events, report=report, kind=kind)


def _read_file(con: Any, path: Path, kind: str, limit: int) -> pa.Table:
    """The typed records of one file (with ``line`` and ``reason``), at most ``limit``."""
    fields = _CLICK_FIELDS if kind == CLICKSTREAM else _API_FIELDS
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        have = set(pq.read_schema(path).names)
        sel = ", ".join(
            f'to_json("{f}") AS {alias}' if f in have else f"NULL::JSON AS {alias}"
            for f, alias in fields.items()
        )
        src = f"SELECT {sel} FROM read_parquet($path) LIMIT {int(limit)}"  # noqa: S608
        raw = con.sql(src, params={"path": str(path)}).to_arrow_table()
        lines = pa.array(range(1, raw.num_rows + 1), pa.int64())
    else:
        spec = ", ".join(f"'{f}': 'JSON'" for f in fields)
        alias = ", ".join(f'"{f}" AS {a}' for f, a in fields.items())
        src = (
            f"SELECT {alias} FROM read_json($path, format = 'newline_delimited', "  # noqa: S608
            f"columns = {{{spec}}}, ignore_errors = true, maximum_object_size = 16777216) "
            f"LIMIT {int(limit)}"
        )
        raw = con.sql(src, params={"path": str(path)}).to_arrow_table()
        lines = pa.array(LineMap.of(path).at(0, raw.num_rows), pa.int64())
    raw = raw.append_column("line", lines)
    con.register("raw", raw)
    try:
        sql = _CLICK_SQL if kind == CLICKSTREAM else _API_SQL
        return con.sql(sql).to_arrow_table()
    finally:
        con.unregister("raw")


def _keep_valid(table: pa.Table, file: str, kind: str, report: ReadReport) -> pa.Table:
    """Count and report the malformed rows; the valid ones as :data:`EVENTS_SCHEMA` rows."""
    import pyarrow.compute as pc

    bad = pc.is_valid(table["reason"])
    for row in table.filter(bad).select(["line", "reason"]).slice(0, 100).to_pylist():
        report.error(file, int(row["line"]), row["reason"])
    n_bad = int(pc.sum(bad).as_py() or 0)
    report.malformed += max(0, n_bad - min(n_bad, 100))  # counted beyond the listed ones
    good = table.filter(pc.invert(bad))
    report.records += good.num_rows
    if kind == RECOMMENDER_API:
        good = _expand_sessions(good, report)
    n = good.num_rows
    cols = {
        "file": pa.array([file] * n, pa.string()),
        "line": good["line"].cast(pa.int64()),
        "ts": good["ts"].cast(pa.timestamp("us", tz="UTC")),
        "user": good["user"],
        "item": good["item"],
        "event": good["event"],
        "source_ip": good["source_ip"],
    }
    return pa.table(cols, schema=EVENTS_SCHEMA)


def _expand_sessions(good: pa.Table, report: ReadReport) -> pa.Table:
    """One ``view`` row per session item of each API record (one null-item row without)."""
    rows: dict[str, list[Any]] = {k: [] for k in ("line", "ts", "user", "item", "source_ip")}
    for rec in good.to_pylist():
        items = json.loads(rec["items"]) if rec["items"] else None
        if items and len(items) > MAX_SESSION_ITEMS:
            report.warn(f"session lists over {MAX_SESSION_ITEMS} items were cut")
            items = items[:MAX_SESSION_ITEMS]
        for item in items or [None]:
            for key in ("line", "ts", "user", "source_ip"):
                rows[key].append(rec[key])
            rows["item"].append(item)
    n = len(rows["line"])
    return pa.table(
        {
            "line": pa.array(rows["line"], pa.int64()),
            "ts": pa.array(rows["ts"], pa.timestamp("us", tz="UTC")),
            "user": pa.array(rows["user"], pa.string()),
            "item": pa.array(rows["item"], pa.string()),
            "event": pa.array(["view"] * n, pa.string()),
            "source_ip": pa.array(rows["source_ip"], pa.string()),
        }
    )
