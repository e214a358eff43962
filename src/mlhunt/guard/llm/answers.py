"""The answers of ``guard --llm``: chat requests read, whole answers redacted, event streams
relayed delta by delta with the content redacted across deltas (:mod:`mlhunt.guard.llm.app`
calls these on the request path). Every parse is bounded and contained: what cannot be read is
passed on as it came and counted, never fatal."""

from __future__ import annotations

import codecs
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.types import Send

from mlhunt.guard.app import HOP_BY_HOP, hop_headers
from mlhunt.guard.llm.redact import StreamRedactor, redact
from mlhunt.guard.metrics import Metrics
from mlhunt.guard.upstream import UpstreamError
from mlhunt.llmhunt.gateway import messages_of

MAX_LINE = 1 << 20  # characters of one server-sent-events line


def parse_request(body: bytes) -> dict[str, Any] | None:
    """The chat request (its messages also read as :class:`Message` s under ``_msgs``), or
    None when it is not one (not JSON, too deep, no messages)."""
    try:
        req = json.loads(body)
        if not isinstance(req, dict):
            return None
        req["_msgs"] = messages_of(req.get("messages"))
    except (ValueError, RecursionError):
        return None
    return req


def answer_headers(raw: list[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The upstream's headers less hop-by-hop ones and the length (recomputed), and whether the
    body is content-encoded (then it cannot be read: ``Accept-Encoding`` is not forwarded)."""
    drop = HOP_BY_HOP
    out = [(k.lower(), v) for k, v in raw]
    encoded = False
    for k, v in out:
        if k == b"connection":
            drop = drop | hop_headers(v)
        elif k == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
            encoded = True
    return [(k, v) for k, v in out if k not in drop], encoded


def content_type(headers: list[tuple[bytes, bytes]]) -> bytes:
    return next((v.lower() for k, v in headers if k == b"content-type"), b"")


async def read_answer(chunks: AsyncIterator[bytes]) -> bytes:
    """The whole answer (the upstream client bounds its size)."""
    return b"".join([part async for part in chunks])


def redact_answer(
    content: bytes,
    decide: Callable[[str], bool],
    canaries: tuple[str, ...],
    sent: str,
    status: int,
) -> tuple[bytes, list[str], dict[str, Any] | None]:
    """(the answer to send, kinds redacted, the answer as the model gave it, for the log and
    the detectors, or None when it is no chat completion)."""
    if not 200 <= status < 300:
        return content, [], None
    try:
        doc = json.loads(content)
        choices = doc.get("choices") if isinstance(doc, dict) else None
        if not isinstance(choices, list):
            return content, [], None
    except (ValueError, RecursionError):
        return content, [], None
    kinds: list[str] = []
    changed: dict[int, str] = {}
    for i, ch in enumerate(choices[:64]):
        msg = ch.get("message") if isinstance(ch, dict) else None
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            text, k = redact(msg["content"], decide, canaries, sent)
            if k:
                changed[i] = text
                kinds += k
    if changed:
        out = json.loads(content)  # the client's copy; ``doc`` stays as the model wrote it
        for i, text in changed.items():
            out["choices"][i]["message"]["content"] = text
        content = json.dumps(out, ensure_ascii=False).encode()
    return content, kinds, doc


#: the keys the guard reads to find a delta's content: ``choices[0].delta.content``
READ_KEYS = ('"choices"', '"delta"', '"content"')


def unambiguous(data: str) -> bool:
    """An event every JSON reader reads as the guard did, so it may be passed on as the upstream
    wrote it: each key the guard reads at most once and no ``\\u`` escape (which could spell
    one more). Readers differ on duplicate keys (first or last wins): another event is
    re-serialised, and the client gets exactly what was checked. (A quote inside a JSON string
    is always escaped, so ``"content"`` in the text is a key or a whole string value.)"""
    return "\\u" not in data and all(data.count(k) <= 1 for k in READ_KEYS)


@dataclasses.dataclass
class Streamed:
    """What a stream said, for the log: the completion (as sent, redacted) and its usage."""

    parts: list[str] = dataclasses.field(default_factory=list)  # as the model wrote them
    usage: dict[str, Any] = dataclasses.field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def add_tool_deltas(self, deltas: list[Any]) -> None:
        """Tool calls arrive in pieces (the name once, the arguments in fragments), by index."""
        for d in deltas[:64]:
            fn = d.get("function") if isinstance(d, dict) else None
            i = d.get("index", 0) if isinstance(d, dict) else None
            if not isinstance(fn, dict) or not isinstance(i, int) or not 0 <= i < 64:
                continue
            while len(self.tool_calls) <= i:
                self.tool_calls.append({"type": "function", "function": {"arguments": ""}})
            tc = self.tool_calls[i]
            if isinstance(d.get("id"), str):
                tc["id"] = d["id"]
            if isinstance(fn.get("name"), str):
                tc["function"]["name"] = fn["name"]
            if isinstance(fn.get("arguments"), str) and len(tc["function"]["arguments"]) < 1 << 18:
                tc["function"]["arguments"] += fn["arguments"]

    @property
    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(self.parts)}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg


async def relay_stream(
    chunks: AsyncIterator[bytes], send: Send, redactor: StreamRedactor, metrics: Metrics
) -> Streamed:
    """Pass a chat-completions event stream on as it arrives, the first choice's content
    redacted across deltas (held text goes out in the next content delta, or in one more
    delta before the final event)."""
    # httpx-sse's byte-level decoders (its public API wraps an httpx response, not the guard's
    # own pool); pyproject pins the minor version they are read from
    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    lines, events = SSELineDecoder(), SSEDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")("replace")
    got = Streamed()
    template: dict[str, Any] | None = None  # the last content chunk: the flushing delta's model

    async def emit(data: str) -> None:
        # one ``data:`` line per line of the event's data (the decoder joined them with \n)
        lines = data.replace("\n", "\ndata: ") if "\n" in data else data
        await send(
            {"type": "http.response.body", "body": f"data: {lines}\n\n".encode(), "more_body": True}
        )

    async def flush_held() -> None:
        rest = redactor.finish()
        if rest and template is not None:
            doc = {k: v for k, v in template.items() if k not in ("choices", "usage")}
            doc["choices"] = [{"index": 0, "delta": {"content": rest}, "finish_reason": None}]
            await emit(json.dumps(doc, ensure_ascii=False))

    async def on_event(data: str) -> None:
        nonlocal template
        if data.strip() == "[DONE]":
            await flush_held()
            await emit(data)
            return
        try:
            doc = json.loads(data)
            choice = doc["choices"][0] if doc.get("choices") else None
        except (ValueError, RecursionError, TypeError, KeyError, AttributeError):
            metrics.inc("mlhunt_guard_events_malformed_total")
            await emit(data)  # not a chunk: passed on as it came
            return
        if isinstance(doc.get("usage"), dict):
            got.usage = doc["usage"]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        same = unambiguous(data)  # the event may go on as the upstream wrote it
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            template = doc
            content = delta["content"]
            got.parts.append(content)
            delta["content"] = released = redactor.feed(content)
            same = same and released == content
        if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
            got.add_tool_deltas(delta["tool_calls"])
        if isinstance(choice, dict) and choice.get("finish_reason"):
            await flush_held()
        await emit(data if same else json.dumps(doc, ensure_ascii=False))

    try:
        async for chunk in chunks:  # bounded in size and per read by the upstream client
            for line in lines.decode(utf8.decode(chunk)):
                ev = events.decode(line.rstrip("\n"))
                if ev is not None:
                    await on_event(ev.data)
            if sum(map(len, lines.buffer)) > MAX_LINE:
                metrics.inc("mlhunt_guard_events_malformed_total")
                lines.buffer.clear()
                break
    except (UpstreamError, TimeoutError):  # cut: the client sees the stream end early
        metrics.inc("mlhunt_guard_upstream_errors_total")
    for line in lines.flush():
        ev = events.decode(line)
        if ev is not None:
            await on_event(ev.data)
    await flush_held()
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return got
