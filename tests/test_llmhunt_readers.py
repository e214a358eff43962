"""Reading LLM logs: the gateway log and OTel GenAI traces (OTLP JSON lines, a pretty-printed
OTLP document, JSON Lines of SDK-style spans), agent-run trees, malformed records reported with
file and line, bounds, and telling the log kinds apart by content."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from mlhunt.errors import InputError
from mlhunt.llmhunt import detect_log_kind, hunt, read
from mlhunt.llmhunt import readers as readers_mod


def gw(client: str = "k1", user: str = "hello", **extra: Any) -> dict[str, Any]:
    rec = {
        "ts": "2026-12-01T09:00:00Z",
        "client_id": client,
        "session_id": "s1",
        "model": "m",
        "request": {
            "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": user}]
        },
        "response": {
            "choices": [{"message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        },
        "status": 200,
        "latency_ms": 5.0,
    }
    rec.update(extra)
    return rec


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def sdk_span(
    name: str,
    span: str,
    parent: str | None,
    attrs: dict,
    events: list | None = None,
    start: str = "2026-12-01T09:00:00.000000Z",
) -> dict:
    return {
        "name": name,
        "context": {"trace_id": "0xabc", "span_id": span},
        "parent_id": parent,
        "start_time": start,
        "end_time": "2026-12-01T09:00:01.000000Z",
        "attributes": attrs,
        "events": events or [],
        "status": {"status_code": "UNSET"},
    }


def test_gateway_fields_are_read(tmp_path: Path) -> None:
    tc = {
        "id": "c1",
        "type": "function",
        "function": {"name": "query_asset", "arguments": '{"asset_tag": "LT-0001"}'},
    }
    rec = gw()
    rec["response"]["choices"][0]["message"]["tool_calls"] = [tc]
    res = read(write_lines(tmp_path / "g.jsonl", [json.dumps(rec)]))
    (call,) = res.calls
    assert (call.client, call.session, call.model, call.status) == ("k1", "s1", "m", 200)
    assert [m.role for m in call.messages] == ["system", "user"] and call.last_user == "hello"
    assert call.tool_calls[0].name == "query_asset" and call.total_tokens == 12
    assert call.ts == pytest.approx(1796115600.0) and call.where.endswith("g.jsonl:1")


def test_malformed_records_reported_with_file_and_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(readers_mod, "MAX_LINE_BYTES", 8192)
    deep = "[" * 3000 + "]" * 3000
    lines = [
        json.dumps(gw()),
        "{not json",
        json.dumps(gw(client="")),
        json.dumps(gw(ts="yesterday")),
        deep,
        json.dumps(gw(user="x" * 9000)),
        json.dumps(gw(status="ok")),
        json.dumps(gw(client="k2")),
    ]
    path = write_lines(tmp_path / "bad.jsonl", lines)
    res = hunt([path])
    assert len(res.read.calls) == 2 and res.read.malformed_total == 6
    got = {m.line: m.reason for m in res.read.malformed}
    assert set(got) == {2, 3, 4, 5, 6, 7}
    assert "not JSON" in got[2] and "client_id" in got[3] and "ts" in got[4]
    assert "deep" in got[5] and "longer than" in got[6] and "status" in got[7]
    assert all(m.file == str(path) for m in res.read.malformed)
    assert str(res.read.malformed[0]).startswith(f"{path}:2: ")


def test_damaged_gzip_keeps_records_before_the_damage(tmp_path: Path) -> None:
    data = gzip.compress(("\n".join(json.dumps(gw(client=f"k{i}")) for i in range(50))).encode())
    path = tmp_path / "g.jsonl.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    res = read(path)
    assert res.malformed_total >= 1 and res.malformed[-1].reason.startswith(("damaged", "not"))


def test_otel_sdk_spans_keep_the_agent_run_tree(tmp_path: Path) -> None:
    tool_call = {
        "id": "t1",
        "type": "function",
        "function": {"name": "reset_password", "arguments": '{"employee_id": "u1"}'},
    }
    spans = [
        sdk_span(
            "invoke_agent helpdesk",
            "0x1",
            None,
            {
                "gen_ai.operation.name": "invoke_agent",
                "enduser.id": "alice",
                "gen_ai.conversation.id": "conv-9",
            },
        ),
        sdk_span(
            "chat m",
            "0x2",
            "0x1",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.usage.input_tokens": 40,
                "gen_ai.usage.output_tokens": 3,
                "gen_ai.request.model": "m",
            },
            [
                {"name": "gen_ai.user.message", "attributes": {"content": "reset me"}},
                {
                    "name": "gen_ai.choice",
                    "attributes": {
                        "message": json.dumps(
                            {"role": "assistant", "content": "", "tool_calls": [tool_call]}
                        )
                    },
                },
            ],
        ),
        sdk_span(
            "execute_tool reset_password",
            "0x3",
            "0x1",
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "reset_password",
                "gen_ai.tool.call.id": "t1",
            },
            start="2026-12-01T09:00:02Z",
        ),
        sdk_span(
            "chat m",
            "0x4",
            "0x1",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "thanks"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "done"}]}]
                ),
            },
            start="2026-12-01T09:00:03Z",
        ),
    ]
    path = write_lines(tmp_path / "spans.jsonl", [json.dumps(s) for s in spans])
    assert detect_log_kind([path]) == "otel-genai"
    res = read(path)
    assert res.malformed_total == 0
    # two chat calls; the tool span is the call the first answer asked for, not counted twice
    assert [c.kind for c in res.calls] == ["chat", "chat"]
    first, second = res.calls
    assert (first.client, first.session, first.prompt_tokens) == ("alice", "conv-9", 40)
    assert first.last_user == "reset me" and first.tool_calls[0].name == "reset_password"
    assert second.last_user == "thanks" and second.completion == "done"
    walk = [(d, n.operation) for d, n in res.runs["0xabc"].walk()]
    assert walk == [(0, "invoke_agent"), (1, "chat"), (1, "execute_tool"), (1, "chat")]


def _otlp(attrs: list[dict], spans: list[dict]) -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attrs},
                "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}],
            }
        ]
    }


def test_pretty_printed_otlp_document_and_resource_client(tmp_path: Path) -> None:
    span = {
        "traceId": "aa",
        "spanId": "01",
        "name": "chat m",
        "startTimeUnixNano": "1796115600000000000",
        "endTimeUnixNano": "1796115601000000000",
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}},
        ],
        "events": [
            {
                "name": "gen_ai.user.message",
                "attributes": [{"key": "content", "value": {"stringValue": "hi"}}],
            }
        ],
    }
    doc = _otlp([{"key": "enduser.id", "value": {"stringValue": "svc-a"}}], [span])
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc, indent=2), "utf-8")
    assert detect_log_kind(path) == "otel-genai"
    (call,) = read(path).calls
    assert (call.client, call.prompt_tokens, call.last_user) == ("svc-a", 7, "hi")
    assert call.ts == pytest.approx(1796115600.0)


def test_span_without_client_is_malformed(tmp_path: Path) -> None:
    span = {
        "traceId": "aa",
        "spanId": "01",
        "name": "chat m",
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}],
    }
    path = write_lines(tmp_path / "o.jsonl", [json.dumps(_otlp([], [span]))])
    res = read(path)
    assert not res.calls and res.malformed_total == 1
    assert res.malformed[0].line == 1 and "enduser.id" in res.malformed[0].reason


def test_detect_log_kind(tmp_path: Path) -> None:
    g = write_lines(tmp_path / "g.jsonl", [json.dumps(gw())])
    o = write_lines(
        tmp_path / "o.jsonl",
        [json.dumps(sdk_span("chat", "1", None, {"gen_ai.operation.name": "chat"}))],
    )
    inf = write_lines(
        tmp_path / "i.jsonl",
        [json.dumps({"ts": 1.0, "client_id": "a", "input": [1.0], "output": {"label": 1}})],
    )
    junk = write_lines(tmp_path / "j.jsonl", [json.dumps({"hello": 1})])
    assert detect_log_kind([g]) == "llm-gateway"
    assert detect_log_kind([o]) == "otel-genai"
    assert detect_log_kind([inf]) == "inference"
    csv = tmp_path / "sub" / "infer.csv"
    csv.parent.mkdir()
    csv.write_text("ts,client_id,label\n1,a,0\n", "utf-8")
    assert detect_log_kind([tmp_path / "sub"]) == "inference"
    res = read([g, inf])
    assert len(res.calls) == 1 and res.malformed[0].file == str(inf)
    assert detect_log_kind([g, o]) == "llm"
    assert detect_log_kind(tmp_path / "*.jsonl".replace("*", "[go]")) == "llm"
    with pytest.raises(InputError, match="mixed"):
        detect_log_kind([g, inf])
    with pytest.raises(InputError) as exc:
        detect_log_kind([junk])
    assert str(junk) in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(InputError):
        detect_log_kind([tmp_path / "missing.jsonl"])


def test_span_cycles_and_repeated_ids_are_bounded(tmp_path: Path) -> None:
    chat = {"gen_ai.operation.name": "chat", "enduser.id": "eve"}
    spans = [
        sdk_span("chat", "0x1", "0x2", chat),
        sdk_span("chat", "0x2", "0x1", chat),  # a parent cycle
        sdk_span("chat", "0x3", "0x3", chat),  # its own parent
        sdk_span("chat", "0x3", None, chat),  # a repeated id
    ]
    res = read(write_lines(tmp_path / "c.jsonl", [json.dumps(s) for s in spans]))
    assert len(res.calls) == 4 and res.malformed_total == 0
    walk = res.runs["0xabc"].walk()
    assert [n.span_id for _, n in walk] == ["0x3"]


HOSTILE = [
    {"ts": 1, "client_id": "a", "request": {"messages": "x"}},
    {"ts": 1, "client_id": "a", "request": {"messages": [1, None]}},
    {"ts": 1, "client_id": "a", "request": {"messages": [{"role": "user", "content": 5}]}},
    {"ts": 1, "client_id": "a", "messages": [], "tools": "all"},
    {
        "ts": 1,
        "client_id": "a",
        "messages": [],
        "response": {"choices": [{"message": {"tool_calls": [{"function": {"name": 3}}]}}]},
    },
    {"ts": 1, "client_id": "a", "messages": [], "usage": {"prompt_tokens": -4}},
    {"ts": 1, "client_id": "a", "messages": [], "response": {"choices": "x", "usage": [1]}},
    {"ts": True, "client_id": "a", "messages": []},
    {"ts": "2026-12-01T09:00:00", "client_id": "a", "messages": []},
    {"resourceSpans": "x"},
    {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "t"}]}]}]},
    {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": "t", "spanId": "s", "attributes": "x"}]}]}
        ]
    },
    {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "t",
                                "spanId": "s",
                                "startTimeUnixNano": "soon",
                                "attributes": [],
                            }
                        ]
                    }
                ]
            }
        ]
    },
    {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "t",
                                "spanId": "s2",
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "chat"},
                                    },
                                    {"key": "enduser.id", "value": {"stringValue": "a"}},
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "many"},
                                    },
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    },
    {
        "trace_id": "t",
        "span_id": "s3",
        "attributes": {
            "gen_ai.operation.name": "chat",
            "enduser.id": "a",
            "gen_ai.input.messages": "[[[[",
            "gen_ai.output.messages": [1, "x"],
        },
        "events": [1, {"name": "gen_ai.choice", "attributes": {"message": "{bad"}}],
    },
    [1, 2, 3],
    "text",
]


def test_hostile_records_never_crash_the_reader(tmp_path: Path) -> None:
    lines = [json.dumps(gw())] + [json.dumps(h) for h in HOSTILE]
    path = write_lines(tmp_path / "h.jsonl", lines)
    res = hunt([path])
    assert res.errors == []
    assert res.read.records == len(lines)
    # every hostile line is either a call (read leniently) or a reported malformed record
    lines_with_calls = {int(c.where.rsplit(":", 1)[1]) for c in res.read.calls}
    reported = {m.line for m in res.read.malformed}
    assert lines_with_calls | reported == set(range(1, len(lines) + 1))
