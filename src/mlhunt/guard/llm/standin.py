"""A STAND-IN for an OpenAI-compatible LLM API, for tests, benchmarks and the practice range:
``POST /v1/chat/completions`` answered like the real API (a JSON completion, or with
``"stream": true`` server-sent events of ``chat.completion.chunk`` deltas ending in
``data: [DONE]``), but by a few fixed rules and no model. Every answer says so
(``system_fingerprint: "mlhunt-standin"``). Loopback only.

The rules (the newest user turn, lower case): "card" -> a Luhn-valid card number, "email" ->
an e-mail address, "key" -> an AWS-shaped access key, "instructions" or "system prompt" -> the
system prompt verbatim (with any canary in it), anything else -> a short canned answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

FINGERPRINT = "mlhunt-standin"
CARD = "4539 1488 0343 6467"
EMAIL = "jane.doe@example.com"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
_WORDS = re.compile(r"\S+\s*|\s+")


@dataclass
class StandinOptions:
    """``chunk_chars``: characters per streamed delta (0: one word each); ``token_delay_s``:
    the pause between deltas; ``hold``: after the first delta, wait for this event (tests see
    the first delta arrive while the answer is still being written)."""

    chunk_chars: int = 0
    token_delay_s: float = 0.0
    hold: threading.Event | None = None
    calls: int = 0  # chat requests answered so far (tests: did a request reach the model?)


def completion_for(messages: list[dict[str, Any]]) -> str:
    """The stand-in's answer to a conversation (see the module docstring)."""
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    user = next(
        (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), ""
    )
    low = user.lower()
    if "card" in low:
        return f"The card on file is {CARD}, expiring 09/29."
    if "email" in low:
        return f"You can reach the account owner at {EMAIL} today."
    if "key" in low:
        return f"Use the access key {AWS_KEY} for the backup bucket."
    if "instructions" in low or "system prompt" in low:
        return f"My instructions are: {system}"
    return f"Here is how to fix that: restart the service, then try again ({len(user)} chars)."


def pieces(text: str, chunk_chars: int) -> list[str]:
    if chunk_chars > 0:
        return [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
    return _WORDS.findall(text)


def create_standin_app(options: StandinOptions | None = None) -> Starlette:
    """The stand-in LLM API as an ASGI app (serve it on 127.0.0.1, e.g. with :func:`running`)."""
    opts = options or StandinOptions()

    async def chat(request: Request) -> Response:
        try:
            req = json.loads(await request.body())
            messages = [m for m in req["messages"] if isinstance(m, dict)]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": {"message": "invalid request"}}, status_code=400)
        opts.calls += 1
        text = completion_for(messages)
        model = str(req.get("model") or "standin")
        prompt_tokens = sum(len(str(m.get("content") or "")) for m in messages) // 4 + 1
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text) // 4 + 1}
        base = {"id": "chatcmpl-standin", "created": int(time.time()), "model": model}
        base["system_fingerprint"] = FINGERPRINT
        if req.get("stream") is not True:
            msg = {"role": "assistant", "content": text}
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                    "usage": usage,
                }
            )

        async def events() -> AsyncIterator[bytes]:
            def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                doc = {**base, "object": "chat.completion.chunk", "choices": [choice], **extra}
                return b"data: " + json.dumps(doc).encode() + b"\n\n"

            yield event({"role": "assistant", "content": ""})
            for i, piece in enumerate(pieces(text, opts.chunk_chars)):
                yield event({"content": piece})
                if i == 0 and opts.hold is not None:
                    await asyncio.to_thread(opts.hold.wait, 30.0)
                if opts.token_delay_s:
                    await asyncio.sleep(opts.token_delay_s)
            yield event({}, "stop", usage=usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(_request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "standin", "object": "model"}]})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


@contextmanager
def running(app: Any, timeout: float = 30.0) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn

    from mlhunt.guard.server import uvicorn_config

    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=0))
    thread = threading.Thread(target=server.run, name="mlhunt-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
