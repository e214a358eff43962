"""The gateway log through DuckDB: a declared schema, only the fields the detectors read, and
the texts prefiltered as whole Arrow columns (:mod:`.prefilter`).

DuckDB reads each line into typed columns; the small fields are read as JSON so that their
JSON type can be checked as :func:`.gateway.to_call` checks it. A row is *vouched* when every
field is what ``to_call`` accepts without a doubt (the canonical chat-completions shape, no
variant keys, texts within bounds). A vouched row none of whose texts a prefilter marks becomes
a :class:`~.records.Call` with its metadata, tools and tool calls but no messages or completion
(no detector could use them). Every other row (unreadable, a variant shape, a marked text) is
read again by the Python path (``json`` and ``to_call``, or the malformed-record report, with
file and line), so its call is exactly the one ``readers.read`` makes.

Line numbers: DuckDB returns one row per non-blank line (:class:`Lines` finds them); when the
counts differ, or the first line is not JSON (it may open a pretty-printed document), the whole
file goes the Python path. Known differences: a record with a key repeated keeps DuckDB's
first value where ``json`` keeps the last; ``"resourceSpans": null`` (DuckDB reads a null as an
absent key) makes a call here and an OpenTelemetry export for the Python reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.llmhunt import prefilter, readers
from mlhunt.llmhunt.detectors.base import Context
from mlhunt.llmhunt.gateway import MAX_MESSAGES, MAX_TEXT, MAX_TOOLS, parse_ts
from mlhunt.llmhunt.readers import GATEWAY, Sink, parse
from mlhunt.llmhunt.records import Call, ToolCall

_TC = "STRUCT(id JSON, function STRUCT(name JSON, arguments JSON))[]"
COLUMNS: dict[str, str] = {
    **{
        k: "JSON"
        for k in [
            "ts",
            "client_id",
            "session_id",
            "model",
            "status",
            "latency_ms",
            "simulated",
            "label",
            "tool_calls",
            "usage",
            "resourceSpans",
            "resource_spans",
            "traceId",
            "trace_id",
            "context",
            "attributes",
        ]
    },
    "request": "STRUCT(model JSON, messages STRUCT(role JSON, content JSON)[], tools JSON)",
    "response": f"STRUCT(choices STRUCT(message STRUCT(content JSON, tool_calls {_TC}))[], "
    "usage STRUCT(prompt_tokens JSON, completion_tokens JSON))",
}
DUCKDB_MAX_OBJECT = 16 << 20  # a longer line fails DuckDB's query: the file goes the Python path
SCAN_CHUNK = 64 << 20
NON_SPACE = re.compile(rb"\S")  # (bytes.strip's whitespace: space, \t \n \r \f \v)
SAMPLE = 1000  # completions from which the prompt-leak prefilter learns which words are rare
_NUM = "('UBIGINT', 'BIGINT', 'DOUBLE')"


def _text_ok(x: str) -> str:
    # the JSON text is at least as long as the string it holds (quotes, escapes): a bound on it
    # bounds the string without decoding it
    return f"({x} IS NULL OR (json_type({x}) = 'VARCHAR' AND length({x}::VARCHAR) <= {MAX_TEXT}))"


def _str(x: str) -> str:
    return f"(json_type({x}) = 'VARCHAR' AND {x}->>'$' <> '')"


# Each condition is one of to_call's checks passing for sure (or a variant left to Python).
_OK = " AND ".join(
    [
        f"(json_type(ts) = 'VARCHAR' OR (json_type(ts) IN {_NUM} AND "
        "TRY_CAST(ts AS DOUBLE) IS NOT NULL))",
        _str("client_id"),
        _str("session_id"),
        "(model IS NULL OR json_type(model) = 'VARCHAR')",
        "(request.model IS NULL OR json_type(request.model) = 'VARCHAR')",
        "(status IS NULL OR (json_type(status) IN ('UBIGINT', 'BIGINT') AND "
        "TRY_CAST(status AS BIGINT) IS NOT NULL))",
        f"(latency_ms IS NULL OR json_type(latency_ms) IN {_NUM})",
        "tool_calls IS NULL AND usage IS NULL",
        "resourceSpans IS NULL AND resource_spans IS NULL",
        "traceId IS NULL AND trace_id IS NULL AND context IS NULL AND attributes IS NULL",
        f"len(request.messages) BETWEEN 1 AND {MAX_MESSAGES}",
        # (list_bool_and skips NULLs, as bool_and does: each element's NULL is made false)
        "list_bool_and(list_transform(request.messages, lambda m: coalesce(json_type(m.role) = "
        f"'VARCHAR' AND {_text_ok('m.content')}, false)))",
        "len(response.choices) >= 1",
        _text_ok("response.choices[1].message.content"),
        f"(tcs IS NULL OR (len(tcs) <= {MAX_TOOLS} AND list_bool_and(list_transform(tcs, "
        "lambda t: coalesce(json_type(t.function.name) = 'VARCHAR' AND "
        f"{_text_ok('t.function.arguments')} AND t.function.arguments IS NOT NULL AND "
        "(t.id IS NULL OR json_type(t.id) = 'VARCHAR'), false)))))",
        "(pt IS NULL OR (json_type(pt) = 'UBIGINT' AND TRY_CAST(pt AS UBIGINT) IS NOT NULL))",
        "(ct IS NULL OR (json_type(ct) = 'UBIGINT' AND TRY_CAST(ct AS UBIGINT) IS NOT NULL))",
    ]
)

QUERY = f"""
WITH raw AS (
  SELECT *, response.choices[1].message.tool_calls AS tcs,
         response.usage.prompt_tokens AS pt, response.usage.completion_tokens AS ct
  FROM read_json($path, format = 'newline_delimited', columns = $columns,
                 ignore_errors = true, maximum_object_size = {DUCKDB_MAX_OBJECT})
)
SELECT
  coalesce({_OK}, false) AS ok,
  CASE WHEN json_type(ts) = 'VARCHAR' THEN NULL ELSE TRY_CAST(ts AS DOUBLE) END AS ts_num,
  CASE WHEN json_type(ts) = 'VARCHAR' THEN ts->>'$' END AS ts_text,
  client_id->>'$' AS client, session_id->>'$' AS session,
  coalesce(nullif(model->>'$', ''), nullif(request.model->>'$', ''), '') AS model,
  TRY_CAST(status AS BIGINT) AS status, TRY_CAST(latency_ms AS DOUBLE) AS latency_ms,
  coalesce(json_type(simulated) = 'BOOLEAN' AND simulated::VARCHAR = 'true', false) AS simulated,
  CASE WHEN json_type(label) = 'VARCHAR' THEN label->>'$' END AS label,
  request.tools::VARCHAR AS tools,
  coalesce(TRY_CAST(pt AS UBIGINT), 0) AS prompt_tokens,
  coalesce(TRY_CAST(ct AS UBIGINT), 0) AS completion_tokens,
  list_filter(request.messages, lambda m: m.role->>'$' = 'user')[-1].content->>'$' AS user_text,
  list_transform(list_filter(request.messages, lambda m: m.role->>'$' = 'tool'),
                 lambda m: m.content->>'$') AS tool_texts,
  list_transform(list_filter(request.messages, lambda m: m.role->>'$' = 'system'),
                 lambda m: m.content->>'$') AS system_texts,
  response.choices[1].message.content->>'$' AS completion,
  list_transform(tcs, lambda t: t.function.name->>'$') AS tc_names,
  list_transform(tcs, lambda t: t.function.arguments->>'$') AS tc_args,
  list_transform(tcs, lambda t: coalesce(t.id->>'$', '')) AS tc_ids
FROM raw
"""  # noqa: S608 (no user input in the text; the path is a parameter)


def _any_in_lists(lists: Any, pattern_marks: Any) -> np.ndarray:
    """Per row of a list column: whether any element is marked (``pattern_marks`` on the
    flattened values)."""
    import pyarrow.compute as pc

    n = len(lists)
    flat = pc.list_flatten(lists)
    if len(flat) == 0:
        return np.zeros(n, bool)
    hit = pattern_marks(flat)
    rows = pc.list_parent_indices(lists).to_numpy()
    return np.bincount(rows[hit], minlength=n)[:n] > 0


def suspects(table: Any, ctx: Context) -> np.ndarray:
    """Rows with a text some detector's prefilter marks."""
    import pyarrow.compute as pc

    from mlhunt.llmhunt.detectors.leak import PromptLeak

    sens = prefilter.sensitive_pattern()
    leak = PromptLeak.load().spec.params
    systems = pc.unique(pc.list_flatten(table.column("system_texts"))).drop_null().to_pylist()
    completion = table.column("completion")
    step = max(1, len(completion) // SAMPLE)
    sample = completion.take(np.arange(0, len(completion), step)).drop_null().to_pylist()
    n, share = int(leak["shingle_words"]), float(leak["min_share"])
    words = prefilter.leak_words(systems, n, share, sample)
    canaries = [c.lower() for c in ctx.canaries if c]
    if words is None:  # too many system prompts to cover: every answer is read by Python
        out = pc.fill_null(pc.greater(pc.utf8_length(completion), 0), False).to_numpy(
            zero_copy_only=False
        )
    else:
        out = prefilter.marks(completion, prefilter.literal_pattern([*words, *canaries]))
    out = out | prefilter.marks(completion, sens)
    out |= prefilter.injection_marks(table.column("user_text"))
    out |= _any_in_lists(table.column("tool_texts"), prefilter.injection_marks)
    out |= _any_in_lists(table.column("tc_args"), lambda a: prefilter.marks(a, sens))
    return out


class Lines:
    """The non-blank lines of a file (what DuckDB makes rows of): number, start and end, from
    a memory map scanned with numpy (no copy of the file)."""

    def __init__(self, path: Path) -> None:
        import mmap

        self.fh = path.open("rb")
        self.map = mmap.mmap(self.fh.fileno(), 0, access=mmap.ACCESS_READ)
        data = np.frombuffer(self.map, np.uint8)
        # newlines found chunk by chunk: the scan's memory stays bounded whatever the file
        found = [
            np.flatnonzero(data[at : at + SCAN_CHUNK] == 10) + at
            for at in range(0, len(data), SCAN_CHUNK)
        ]
        ends = np.concatenate(found) if found else np.zeros(0, np.int64)
        if not len(ends) or ends[-1] != len(data) - 1:
            ends = np.append(ends, len(data))  # a last line without a newline
        starts = np.concatenate([[0], ends[:-1] + 1])
        number = np.arange(1, len(ends) + 1)
        # a line is blank when empty or whitespace only; only lines that start with
        # whitespace can be, and those few are looked at one by one
        first = np.where(starts < ends, data[np.minimum(starts, len(data) - 1)], 32)
        maybe = np.flatnonzero(np.isin(first, list(b" \t\r\f\v")))
        blank = [i for i in maybe.tolist() if not NON_SPACE.search(self.map, starts[i], ends[i])]
        keep = np.ones(len(ends), bool)
        keep[blank] = False
        self.number, self.start, self.end = number[keep], starts[keep], ends[keep]
        del data  # the map can close only without views on it

    def raw(self, i: int) -> bytes:
        return self.map[int(self.start[i]) : int(self.end[i]) + 1]

    def close(self) -> None:
        self.map.close()
        self.fh.close()


def read_gateway(path: Path, sink: Sink, ctx: Context) -> bool:
    """Read one plain gateway JSON Lines file into ``sink``; False (nothing read) when the
    file must go the Python path as a whole."""
    import duckdb

    if path.stat().st_size == 0:
        return False
    con = duckdb.connect(config={"memory_limit": "1GB"})
    try:
        con.execute("SET enable_progress_bar = false")
        table = con.sql(QUERY, params={"path": str(path), "columns": COLUMNS}).to_arrow_table()
    except duckdb.Error:
        return False
    finally:
        con.close()
    lines = Lines(path)
    try:
        return _read(path, sink, ctx, table, lines)
    finally:
        lines.close()


def _read(path: Path, sink: Sink, ctx: Context, table: Any, lines: Lines) -> bool:
    if table.num_rows != len(lines.number) or table.num_rows == 0:
        return False
    ok = table.column("ok").to_numpy(zero_copy_only=False)
    limit = readers.MAX_LINE_BYTES  # (read now: the Python reader's bound, whatever it is)
    long = (lines.end - lines.start) > limit  # as iter_lines: without the newline
    if long[0]:  # the Python reader may then take the next line for a document's start
        return False
    if not ok[0]:
        try:  # a first line that is no JSON may open a pretty-printed document: Python's case
            parse(lines.raw(0))
        except ValueError:
            return False
    slim = ok & ~suspects(table, ctx) & ~long
    name = str(path)
    by_line, doubtful = _slim_calls(table, np.flatnonzero(slim), lines.number, name)
    python = ~slim
    python[np.searchsorted(lines.number, np.array(sorted(doubtful), np.int64))] = True
    calls = sink.out.calls
    taken: list[tuple[int, Call]] = []
    for i in np.flatnonzero(python).tolist():
        n = int(lines.number[i])
        obj: Any
        if long[i]:
            obj = ValueError(f"line longer than {limit} bytes")
        else:
            try:
                obj = parse(lines.raw(i))
            except ValueError as exc:
                obj = exc
        before = len(calls)
        sink.take(name, n, GATEWAY, obj)
        taken += [(n, c) for c in calls[before:]]
        del calls[before:]
    sink.out.records += len(by_line)
    taken += by_line.items()
    taken.sort(key=lambda lc: lc[0])  # line order, as the Python path (ties in time stay so)
    calls += [c for _, c in taken]
    return True


def _slim_calls(
    table: Any, idx: np.ndarray, line_of: np.ndarray, name: str
) -> tuple[dict[int, Call], set[int]]:
    """Calls without texts for the rows ``idx`` (vouched, no text marked), by line; and the
    lines whose time text or tools ``to_call`` would judge (left to the Python path)."""
    import pyarrow as pa

    out: dict[int, Call] = {}
    doubtful: set[int] = set()
    if not len(idx):
        return out, doubtful
    import pyarrow.compute as pc

    t = table.select([*_SLIM, "tools"]).take(pa.array(idx))  # (not the texts: no copy)
    # the tools offered repeat from call to call: each distinct text is parsed once
    coded = pc.dictionary_encode(t.column("tools")).combine_chunks()
    parsed = [_tools(raw) for raw in coded.dictionary.to_pylist()]
    tool_index = coded.indices.fill_null(-1).to_pylist()
    none: tuple[dict[str, Any], ...] | None = _tools(None)
    cols = [t.column(c).to_pylist() for c in _SLIM[:-3]]
    # most calls ask for no tool: only the lists of those that do are made Python lists
    has = np.flatnonzero(
        pc.fill_null(pc.list_value_length(t.column("tc_names")), 0).to_numpy(zero_copy_only=False)
    )
    for c in _SLIM[-3:]:
        lists: list[Any] = [None] * t.num_rows
        for j, v in zip(has.tolist(), t.column(c).take(pa.array(has)).to_pylist(), strict=True):
            lists[j] = v
        cols.append(lists)
    rows = zip(line_of[idx].tolist(), tool_index, *cols, strict=True)
    for line, k, ts, ts_text, client, session, model, status, latency, sim, label, *rest in rows:
        tools = parsed[k] if k >= 0 else none
        if ts is None:
            try:
                ts = parse_ts(ts_text)
            except ValueError:
                tools = None
        if tools is None:
            doubtful.add(line)
            continue
        p_tokens, c_tokens, names, args, ids = rest
        out[line] = Call(
            ts=float(ts),
            client=client,
            session=session,
            model=model,
            tools=tools,
            tool_calls=tuple(map(ToolCall, names, args, ids)) if names else (),
            prompt_tokens=p_tokens,
            completion_tokens=c_tokens,
            status=status,
            latency_ms=latency,
            simulated=sim,
            label=label,
            where=f"{name}:{line}",
            prefiltered=True,
        )
    return out, doubtful


_SLIM = [  # in the order _slim_calls unpacks them
    "ts_num",
    "ts_text",
    "client",
    "session",
    "model",
    "status",
    "latency_ms",
    "simulated",
    "label",
    "prompt_tokens",
    "completion_tokens",
    "tc_names",
    "tc_args",
    "tc_ids",
]


def _tools(raw: str | None) -> tuple[dict[str, Any], ...] | None:
    """``request.tools`` as ``to_call`` keeps it (None: not a list)."""
    try:
        value = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None
    value = value or ()
    if not isinstance(value, list | tuple):
        return None
    return tuple(t for t in value[:MAX_TOOLS] if isinstance(t, Mapping))
