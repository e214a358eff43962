"""The gateway log: one JSON object per LLM call, in the OpenAI chat-completions shape.

Canonical record (docs/llmhunt.md)::

    {"ts": "2026-12-01T09:00:00Z", "client_id": "key-17", "session_id": "s-3",
     "model": "gpt-4o-mini", "status": 200, "latency_ms": 812.5, "simulated": true,
     "request": {"messages": [{"role": "system", "content": "..."}, ...], "tools": [...]},
     "response": {"choices": [{"message": {"role": "assistant", "content": "...",
                                           "tool_calls": [...]}}],
                  "usage": {"prompt_tokens": 812, "completion_tokens": 95}}}

A flat variant (``messages``/``tools``/``usage`` at the top, ``completion`` as text or message)
is read too. :func:`to_call` raises ``ValueError("field: expected ...")`` on a bad record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mlhunt.llmhunt.records import Call, Message, ToolCall

MAX_MESSAGES = 512
MAX_TEXT = 262_144  # characters kept per message or completion
MAX_TOOLS = 128
CLIENT_KEYS = ("client_id", "api_key_id", "key_id", "user")
SESSION_KEYS = ("session_id", "conversation_id")


def parse_ts(value: Any, name: str = "ts") -> float:
    """RFC 3339 text or epoch seconds to float epoch seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected RFC 3339 time or epoch seconds")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{name}: expected RFC 3339 time, got {value[:40]!r}") from None
        if dt.tzinfo is None:
            raise ValueError(f"{name}: expected a time zone (e.g. Z)")
        return dt.timestamp()
    raise ValueError(f"{name}: expected RFC 3339 time or epoch seconds")


def text_of(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content[:MAX_TEXT]
    if isinstance(content, list):
        parts = [
            str(p.get("text") or p.get("content") or "")
            for p in content[:MAX_MESSAGES]
            if isinstance(p, Mapping)
        ]
        return "\n".join(parts)[:MAX_TEXT]
    raise ValueError("content: expected text or a list of content parts")


def tool_calls_of(raw: Any, name: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"{name}: expected a list")
    out = []
    for i, tc in enumerate(raw[:MAX_TOOLS]):
        fn = tc.get("function") if isinstance(tc, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ValueError(f"{name}[{i}].function.name: expected a tool name")
        args = fn.get("arguments", "")
        if not isinstance(args, str):  # some gateways log the parsed object
            import json

            args = json.dumps(args, ensure_ascii=False)
        out.append(ToolCall(fn["name"], args[:MAX_TEXT], str(tc.get("id") or "")))
    return tuple(out)


def messages_of(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list):
        raise ValueError("request.messages: expected a list of messages")
    out = []
    for i, m in enumerate(raw[-MAX_MESSAGES:]):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise ValueError(f"request.messages[{i}].role: expected a role")
        out.append(Message(m["role"], text_of(m.get("content"))))
    return tuple(out)


def _first(obj: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    for k in keys:
        v = obj.get(k)
        if isinstance(v, str | int) and not isinstance(v, bool) and str(v):
            return str(v)
    return ""


def _int(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name}: expected a non-negative count")
    return int(value)


def is_gateway(obj: Any) -> bool:
    """Content test: a chat-completions call record."""
    if not isinstance(obj, Mapping):
        return False
    req = obj.get("request")
    has_msgs = isinstance(obj.get("messages"), list) or (
        isinstance(req, Mapping) and isinstance(req.get("messages"), list)
    )
    return has_msgs and "ts" in obj


def to_call(obj: Any, where: str) -> Call:
    if not isinstance(obj, Mapping):
        raise ValueError("expected a JSON object per line")
    req = obj.get("request") if isinstance(obj.get("request"), Mapping) else obj
    resp = obj.get("response") if isinstance(obj.get("response"), Mapping) else obj
    client = _first(obj, CLIENT_KEYS)
    if not client:
        raise ValueError("client_id: expected the client or API key id")
    messages = messages_of(req.get("messages"))
    tools = req.get("tools") or ()
    if not isinstance(tools, list | tuple):
        raise ValueError("request.tools: expected a list")
    completion, tool_calls = "", ()
    choices = resp.get("choices")
    if isinstance(choices, list) and choices:
        msg = choices[0].get("message") if isinstance(choices[0], Mapping) else None
        if isinstance(msg, Mapping):
            completion = text_of(msg.get("content"))
            tool_calls = tool_calls_of(msg.get("tool_calls"), "response.choices[0].tool_calls")
    elif "completion" in obj:
        comp = obj["completion"]
        if isinstance(comp, Mapping):
            completion = text_of(comp.get("content"))
            tool_calls = tool_calls_of(comp.get("tool_calls"), "completion.tool_calls")
        else:
            completion = text_of(comp)
    if "tool_calls" in obj and not tool_calls:
        tool_calls = tool_calls_of(obj["tool_calls"], "tool_calls")
    usage = resp.get("usage") if isinstance(resp.get("usage"), Mapping) else {}
    if not usage and isinstance(obj.get("usage"), Mapping):
        usage = obj["usage"]
    status = obj.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise ValueError("status: expected an HTTP status code")
    latency = obj.get("latency_ms")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, int | float)):
        raise ValueError("latency_ms: expected milliseconds")
    return Call(
        ts=parse_ts(obj.get("ts")),
        client=client,
        session=_first(obj, SESSION_KEYS) or f"{client}/-",
        model=str(obj.get("model") or req.get("model") or ""),
        messages=messages,
        tools=tuple(t for t in tools[:MAX_TOOLS] if isinstance(t, Mapping)),
        tool_calls=tool_calls,
        completion=completion,
        prompt_tokens=_int(usage.get("prompt_tokens"), "usage.prompt_tokens"),
        completion_tokens=_int(usage.get("completion_tokens"), "usage.completion_tokens"),
        status=status,
        latency_ms=float(latency) if latency is not None else None,
        simulated=obj.get("simulated") is True,
        label=str(obj["label"]) if isinstance(obj.get("label"), str) else None,
        where=where,
    )
