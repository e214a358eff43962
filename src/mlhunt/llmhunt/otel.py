"""OpenTelemetry GenAI traces: OTLP JSON (``{"resourceSpans": ...}``, a document or one export
request per line) and JSON Lines of spans (``attributes`` as a plain mapping, as the SDK's
console/file exporters write them).

A chat span (``gen_ai.operation.name`` "chat"/"text_completion"/"generate_content") becomes a
:class:`Call` with the messages of its ``gen_ai.*.message`` / ``gen_ai.choice`` events or of the
``gen_ai.input.messages`` / ``gen_ai.output.messages`` attributes; an ``execute_tool`` span
becomes a tool :class:`Call` unless the chat span that asked for it already carries that call.
Client and session are inherited from ancestor spans and the resource (agent runs set them once
on the root span). Every span is kept in the run's tree (:class:`AgentRun`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlhunt.llmhunt.gateway import MAX_MESSAGES, MAX_TEXT, parse_ts
from mlhunt.llmhunt.records import AgentRun, Call, Malformed, Message, SpanNode, ToolCall

MAX_DEPTH = 16  # nesting of OTLP AnyValues
CLIENT_KEYS = ("enduser.id", "user.id", "client.id", "gen_ai.client.id", "api_key.id")
SESSION_KEYS = ("gen_ai.conversation.id", "session.id")
CHAT_OPS = {"chat", "text_completion", "generate_content"}
_ROLE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start: float
    end: float
    attrs: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    where: str
    error: bool = False
    children: list[str] = field(default_factory=list)


def any_value(v: Any, depth: int = 0) -> Any:
    """An OTLP JSON AnyValue to a Python value (bounded depth)."""
    if depth > MAX_DEPTH:
        raise ValueError("attribute value: nested too deep")
    if not isinstance(v, Mapping):
        return v
    if "stringValue" in v:
        return str(v["stringValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [any_value(x, depth + 1) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return kv_list((v["kvlistValue"] or {}).get("values", []), depth + 1)
    if "bytesValue" in v:
        return str(v["bytesValue"])
    return None


def kv_list(items: Any, depth: int = 0) -> dict[str, Any]:
    """OTLP ``[{"key": k, "value": AnyValue}]`` or an already flat mapping to a dict."""
    if isinstance(items, Mapping):
        return dict(items)
    if not isinstance(items, list):
        raise ValueError("attributes: expected a list of key/value pairs or a mapping")
    out: dict[str, Any] = {}
    for kv in items:
        if isinstance(kv, Mapping) and isinstance(kv.get("key"), str):
            out[kv["key"]] = any_value(kv.get("value"), depth)
    return out


def _time(v: Any, name: str) -> float:
    if v is None:
        return 0.0
    if isinstance(v, str) and v.isdigit():
        return int(v) / 1e9
    if isinstance(v, int) and not isinstance(v, bool) and v > 10**12:
        return v / 1e9
    return parse_ts(v, name)


def _span(raw: Any, resource: dict[str, Any], where: str) -> Span:
    if not isinstance(raw, Mapping):
        raise ValueError("span: expected an object")
    ctx = raw.get("context") if isinstance(raw.get("context"), Mapping) else raw
    trace_id = str(ctx.get("traceId") or ctx.get("trace_id") or "")
    span_id = str(ctx.get("spanId") or ctx.get("span_id") or "")
    if not trace_id or not span_id:
        raise ValueError("traceId/spanId: expected the span's ids")
    parent = raw.get("parentSpanId") or raw.get("parent_id") or raw.get("parent_span_id") or ""
    events = []
    for ev in raw.get("events") or []:
        if isinstance(ev, Mapping):
            attrs = kv_list(ev.get("attributes") or [])
            if isinstance(ev.get("body"), Mapping):  # log-record style events
                attrs = {**attrs, **ev["body"]}
            events.append((str(ev.get("name") or ""), attrs))
    status = raw.get("status") if isinstance(raw.get("status"), Mapping) else {}
    code = status.get("code", status.get("status_code"))
    res = raw.get("resource")
    if isinstance(res, Mapping):
        resource = {**resource, **kv_list(res.get("attributes") or {})}
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=str(parent),
        name=str(raw.get("name") or ""),
        start=_time(raw.get("startTimeUnixNano", raw.get("start_time")), "startTimeUnixNano"),
        end=_time(raw.get("endTimeUnixNano", raw.get("end_time")), "endTimeUnixNano"),
        attrs=kv_list(raw.get("attributes") or []),
        events=events,
        resource=resource,
        where=where,
        error=code in (2, "STATUS_CODE_ERROR", "ERROR"),
    )


def is_otel(obj: Any) -> bool:
    """Content test: an OTLP export request, or a span with ``gen_ai.*`` attributes."""
    if isinstance(obj, list):
        return bool(obj) and is_otel(obj[0])
    if not isinstance(obj, Mapping):
        return False
    if "resourceSpans" in obj or "resource_spans" in obj:
        return True
    attrs = obj.get("attributes")
    keys = attrs.keys() if isinstance(attrs, Mapping) else []
    if isinstance(attrs, list):
        keys = [kv.get("key", "") for kv in attrs if isinstance(kv, Mapping)]
    ids = ("traceId" in obj) or isinstance(obj.get("context"), Mapping) or "trace_id" in obj
    return ids and any(str(k).startswith("gen_ai.") for k in keys)


def spans_of(obj: Any, where: str) -> list[Span]:
    """Every span in one parsed record (an export request, a list of spans, or one span)."""
    if isinstance(obj, list):
        return [s for item in obj for s in spans_of(item, where)]
    if not isinstance(obj, Mapping):
        raise ValueError("expected an OTLP export request or a span object")
    rs_list = obj.get("resourceSpans", obj.get("resource_spans"))
    if rs_list is None:
        return [_span(obj, {}, where)]
    out = []
    for rs in rs_list or []:
        resource = kv_list(((rs or {}).get("resource") or {}).get("attributes") or [])
        for ss in rs.get("scopeSpans", rs.get("scope_spans")) or []:
            out += [_span(s, resource, where) for s in (ss or {}).get("spans") or []]
    return out


def _json_field(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except (ValueError, RecursionError):
            return v
    return v


def _parts_text(msg: Mapping[str, Any]) -> tuple[str, list[ToolCall]]:
    """Text and tool calls of a new-convention message (``parts``) or a plain one."""
    texts, calls = [], []
    for p in msg.get("parts") or []:
        if not isinstance(p, Mapping):
            continue
        if p.get("type") == "tool_call":
            args = p.get("arguments")
            args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            calls.append(
                ToolCall(str(p.get("name") or ""), args[:MAX_TEXT], str(p.get("id") or ""))
            )
        elif isinstance(p.get("content"), str):
            texts.append(p["content"])
    if isinstance(msg.get("content"), str):
        texts.append(msg["content"])
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") if isinstance(tc, Mapping) else None
        if isinstance(fn, Mapping):
            args = fn.get("arguments")
            args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            calls.append(
                ToolCall(str(fn.get("name") or ""), args[:MAX_TEXT], str(tc.get("id") or ""))
            )
    return "\n".join(texts)[:MAX_TEXT], calls


def _conversation(span: Span) -> tuple[list[Message], str, list[ToolCall]]:
    messages: list[Message] = []
    completion, calls = "", []
    sys_instr = _json_field(span.attrs.get("gen_ai.system_instructions"))
    if isinstance(sys_instr, str):
        messages.append(Message("system", sys_instr[:MAX_TEXT]))
    elif isinstance(sys_instr, list):
        messages.append(Message("system", _parts_text({"parts": sys_instr})[0]))
    inputs = _json_field(span.attrs.get("gen_ai.input.messages"))
    for m in inputs if isinstance(inputs, list) else []:
        if isinstance(m, Mapping):
            messages.append(Message(str(m.get("role") or "user"), _parts_text(m)[0]))
    outputs = _json_field(span.attrs.get("gen_ai.output.messages"))
    for m in outputs if isinstance(outputs, list) else []:
        if isinstance(m, Mapping):
            text, tcs = _parts_text(m)
            completion, calls = completion + text, calls + tcs
    for name, attrs in span.events:
        if name in _ROLE_EVENTS:
            content = attrs.get("content")  # text as sent: tool results are often JSON text
            text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
            messages.append(Message(_ROLE_EVENTS[name], (text or "")[:MAX_TEXT]))
        elif name == "gen_ai.choice":
            msg = _json_field(attrs.get("message"))
            msg = msg if isinstance(msg, Mapping) else attrs
            text, tcs = _parts_text(msg)
            completion, calls = completion + text, calls + tcs
    return messages[-MAX_MESSAGES:], completion, calls


SpanIndex = dict[tuple[str, str], Span]  # (trace id, span id) -> span


def _inherited(span: Span, index: SpanIndex, keys: tuple[str, ...]) -> str:
    seen = 0
    node: Span | None = span
    while node is not None and seen < 64:
        for k in keys:
            if node.attrs.get(k) not in (None, ""):
                return str(node.attrs[k])
        node = index.get((node.trace_id, node.parent_id)) if node.parent_id else None
        seen += 1
    for k in keys:
        if span.resource.get(k) not in (None, ""):
            return str(span.resource[k])
    return ""


def _operation(span: Span) -> str:
    op = span.attrs.get("gen_ai.operation.name")
    return str(op) if op else span.name.split(" ", 1)[0]


def calls_of(spans: list[Span], runs: dict[str, AgentRun]) -> tuple[list[Call], list[Malformed]]:
    """Calls from spans (all files together, so that a run split over files is one tree)."""
    index: SpanIndex = {}
    for s in spans:  # a repeated (trace, span) id keeps its first span
        index.setdefault((s.trace_id, s.span_id), s)
    nodes = {
        key: SpanNode(s.span_id, s.parent_id, s.name, _operation(s), s.start)
        for key, s in index.items()
    }
    for key, s in index.items():
        parent = nodes.get((s.trace_id, s.parent_id)) if s.parent_id != s.span_id else None
        if parent is not None:
            parent.children.append(nodes[key])
        else:
            runs.setdefault(s.trace_id, AgentRun(s.trace_id)).roots.append(nodes[key])
    calls: list[Call] = []
    bad: list[Malformed] = []
    requested: set[tuple[str, str]] = set()
    for s in spans:
        try:
            call = _call_of(s, index)
        except (ValueError, TypeError) as exc:
            file, _, line = s.where.rpartition(":")
            bad.append(Malformed(file, int(line), str(exc).splitlines()[0][:200]))
            continue
        if call is not None:
            calls.append(call)
            if call.kind == "chat":
                requested.update((s.trace_id, tc.call_id) for tc in call.tool_calls if tc.call_id)
    # A tool span whose call the model's answer already carries is not counted twice.
    calls = [
        c
        for c in calls
        if c.kind == "chat"
        or (c.trace_id, c.tool_calls[0].call_id) not in requested
        or not c.tool_calls[0].call_id
    ]
    return calls, bad


def _call_of(s: Span, index: SpanIndex) -> Call | None:
    """The call a span stands for, None for spans that are structure only (agent, retrieval)."""
    op = _operation(s)
    if op not in CHAT_OPS and op != "execute_tool":
        return None
    client = _inherited(s, index, CLIENT_KEYS)
    if not client:
        raise ValueError(
            "enduser.id: expected a client id on the span, an ancestor or the resource"
        )
    session = _inherited(s, index, SESSION_KEYS) or f"trace:{s.trace_id}"
    common: dict[str, Any] = {
        "ts": s.start,
        "client": client,
        "session": session,
        "simulated": _inherited(s, index, ("mlhunt.simulated",)) in ("True", "true"),
        "label": _inherited(s, index, ("mlhunt.label",)) or None,
        "where": s.where,
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_id,
        "status": 500 if s.error else None,
        "latency_ms": (s.end - s.start) * 1e3 if s.end >= s.start > 0 else None,
    }
    if op == "execute_tool":
        args = s.attrs.get("gen_ai.tool.call.arguments", "")
        args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        tc = ToolCall(
            str(s.attrs.get("gen_ai.tool.name") or ""),
            args[:MAX_TEXT],
            str(s.attrs.get("gen_ai.tool.call.id") or ""),
        )
        return Call(**common, kind="tool", tool_calls=(tc,))
    messages, completion, tcs = _conversation(s)
    tools = _json_field(s.attrs.get("gen_ai.tool.definitions"))
    a = s.attrs
    usage_in = a.get("gen_ai.usage.input_tokens", a.get("gen_ai.usage.prompt_tokens"))
    usage_out = a.get("gen_ai.usage.output_tokens", a.get("gen_ai.usage.completion_tokens"))
    return Call(
        **common,
        model=str(a.get("gen_ai.request.model") or ""),
        messages=tuple(messages),
        completion=completion,
        tool_calls=tuple(tcs),
        tools=tuple(t for t in tools if isinstance(t, Mapping)) if isinstance(tools, list) else (),
        prompt_tokens=int(usage_in or 0),
        completion_tokens=int(usage_out or 0),
    )
