"""OpenTelemetry GenAI spans of a simulated agent run, as an OTLP JSON export request.

One trace per session: an ``invoke_agent`` root span carrying the client and conversation
ids, a ``chat`` span per model call (its messages as ``gen_ai.*.message`` events and the
answer as a ``gen_ai.choice`` event) and an ``execute_tool`` span per tool call, so the run
reads LLM call -> tool call -> LLM call.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlhunt.llmhunt import simworld as w

_EVENTS = {
    "system": "gen_ai.system.message",
    "user": "gen_ai.user.message",
    "assistant": "gen_ai.assistant.message",
    "tool": "gen_ai.tool.message",
}


def _id(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _nanos(ts: float) -> str:
    return str(round(ts * 1e6) * 1000)


def _span(
    trace: str,
    span: str,
    parent: str,
    name: str,
    start: float,
    end: float,
    attrs: dict[str, Any],
    events: list[dict[str, Any]] = (),
) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "traceId": trace,
        "spanId": span,
        "parentSpanId": parent,
        "name": name,
        "kind": 3 if name.startswith("chat") else 1,
        "startTimeUnixNano": _nanos(start),
        "endTimeUnixNano": _nanos(end),
        "attributes": [_attr(k, v) for k, v in attrs.items()],
        "events": list(events),
        "status": {"code": 1},
    }


def otlp_request(client: str, sid: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The OTLP JSON ``ExportTraceServiceRequest`` of one session's calls."""
    trace = _id(sid, 32)
    root = _id(sid + "/root", 16)
    end = calls[-1]["ts"] + calls[-1]["latency_ms"] / 1e3
    spans = [
        _span(
            trace,
            root,
            "",
            f"invoke_agent {w.APP}",
            calls[0]["ts"],
            end,
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": w.APP,
                "gen_ai.conversation.id": sid,
                "enduser.id": client,
                "mlhunt.simulated": True,
            },
        )
    ]
    for i, c in enumerate(calls):
        chat = _id(f"{sid}/chat/{i}", 16)
        done = c["ts"] + c["latency_ms"] / 1e3
        events = [
            {
                "name": _EVENTS.get(m["role"], "gen_ai.user.message"),
                "timeUnixNano": _nanos(c["ts"]),
                "attributes": [_attr("content", m.get("content") or "")],
            }
            for m in c["messages"]
        ]
        answer: dict[str, Any] = {"role": "assistant", "content": c["completion"]}
        if c["tool_calls"]:
            answer["tool_calls"] = c["tool_calls"]
        events.append(
            {
                "name": "gen_ai.choice",
                "timeUnixNano": _nanos(done),
                "attributes": [_attr("index", 0), _attr("message", json.dumps(answer))],
            }
        )
        spans.append(
            _span(
                trace,
                chat,
                root,
                f"chat {w.MODEL}",
                c["ts"],
                done,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "simulated",
                    "gen_ai.request.model": w.MODEL,
                    "gen_ai.usage.input_tokens": c["prompt_tokens"],
                    "gen_ai.usage.output_tokens": c["completion_tokens"],
                    "gen_ai.tool.definitions": json.dumps(w.TOOLS),
                },
                events,
            )
        )
        for j, tc in enumerate(c["tool_calls"]):
            t0 = done + 0.01 * (j + 1)
            spans.append(
                _span(
                    trace,
                    _id(f"{sid}/tool/{i}/{j}", 16),
                    root,
                    f"execute_tool {tc['function']['name']}",
                    t0,
                    t0 + 0.2,
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": tc["function"]["name"],
                        "gen_ai.tool.call.id": tc["id"],
                        "gen_ai.tool.call.arguments": tc["function"]["arguments"],
                    },
                )
            )
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", w.APP)]},
                "scopeSpans": [{"scope": {"name": "mlhunt.simulate"}, "spans": spans}],
            }
        ]
    }
