"""The guard as an ASGI app (Starlette): a reverse proxy to one upstream model API.

Per request, on the critical path: the caller's identity (``client_header``, hashed) and
address (:mod:`mlhunt.guard.build`), one read of the client's and the address's current actions
from the store, a token from the bucket while throttled, the body (bounded in size and time),
the upstream call (:mod:`mlhunt.guard.upstream`, keep-alive pool), and, for a degraded client
only, rewriting the answer (refused when it cannot be rewritten). The new event is handed to
the :class:`~mlhunt.guard.worker.Worker` and scored right after, so the decision for a request
rests on the caller's *previous* events.
"""

from __future__ import annotations

import gc
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mlhunt.guard.build import build_guard
from mlhunt.guard.config import GuardConfig
from mlhunt.guard.mapping import degrade
from mlhunt.guard.server import uvicorn_config
from mlhunt.guard.upstream import UpstreamError, make_upstream

# hop-by-hop headers (RFC 9110 7.6.1) and those recomputed per hop; accept-encoding is not
# forwarded, so answers come back uncompressed and can be read and degraded
_DROP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
        # the guard answers 100-continue to its client itself (uvicorn, when the body is read);
        # forwarded, the upstream's interim 100 would precede the real answer
        "expect",
    }
)
HOP_BY_HOP = frozenset(k.encode() for k in _DROP)
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OWN = frozenset({"/guard/health", "/guard/metrics"})  # served by Starlette, never proxied


def create_guard_app(config: GuardConfig) -> Starlette:
    """The guard's ASGI app; serve it with uvicorn (``mlhunt guard`` does)."""
    if config.llm:  # in front of an LLM API: mlhunt.guard.llm
        from mlhunt.guard.llm.app import create_llm_guard_app

        return create_llm_guard_app(config)
    g = build_guard(config)
    rng = np.random.default_rng()
    predict = {normal_path(p) for p in config.predict_paths}
    if g.http.url:  # the mapping's own URL names the prediction route
        predict.add(normal_path(urlsplit(g.http.url).path or "/"))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        g.upstream = make_upstream(
            config.upstream,
            config.upstream_timeout,
            config.upstream_max_connections,
            config.max_answer_bytes,
        )
        g.worker.start()
        # what exists now lives as long as the guard: keep it out of the collector's passes
        # (a full collection over it is a pause every request waiting on the loop would see)
        gc.freeze()
        try:
            yield
        finally:
            await g.upstream.aclose()
            g.worker.stop()
            if g.sink is not None:
                g.sink.close()
            if g.log is not None:
                g.log.close()
            g.store.close()

    client_header = config.client_header.lower().encode("latin-1")

    async def refuse(
        send: Send, status: int, outcome: str, detail: str, *extra: tuple[bytes, bytes]
    ) -> None:
        g.metrics.inc("mlhunt_guard_requests_total", outcome=outcome)
        out = json.dumps({"detail": detail}, separators=(",", ":")).encode()
        await respond(send, status, [(b"content-type", b"application/json"), *extra], out)

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        """The proxied route as a bare ASGI app: no routing, Request or Response objects."""
        start = time.perf_counter()
        now = time.time()
        fwd = header = None
        length = 0
        drop = HOP_BY_HOP
        for k, v in scope["headers"]:  # names are lower case in ASGI
            if k == client_header and header is None:
                header = v.decode("latin-1")
            elif k == b"x-forwarded-for":  # every line, in order: the right-most hop counts
                fwd = v.decode("latin-1") if fwd is None else f"{fwd},{v.decode('latin-1')}"
            elif k == b"content-length":
                length = int(v)  # validated by the server's parser (digits only)
            elif k == b"connection":
                drop = drop | hop_headers(v)  # headers the client named hop-by-hop
        peer = scope.get("client")
        client, source = g.client_of(header), g.source_of(fwd, peer[0] if peer else None)
        keys = [("client_id", client), ("source_ip", source)]
        try:
            acts = await g.store.actions(keys, now)
        except Exception:  # the state store is down: fail open or closed
            g.metrics.inc("mlhunt_guard_state_errors_total")
            if not config.fail_open:
                return await refuse(send, 503, "error", "guard state unavailable (fail-closed)")
            acts = [set(), set()]
        if not config.fail_open and not g.worker.healthy:
            return await refuse(send, 503, "error", "guard detectors unavailable (fail-closed)")
        union = acts[0] | acts[1]
        if "block" in union:
            return await refuse(send, 403, "block", "blocked by mlhunt guard")
        if "throttle" in union:
            for (kind, key), a in zip(keys, acts, strict=True):
                if "throttle" in a:
                    t = g.policy.throttle
                    try:
                        wait = await g.store.take(f"{kind}:{key}", t.rate, t.burst, now)
                    except Exception:
                        g.metrics.inc("mlhunt_guard_state_errors_total")
                        wait = 0.0 if config.fail_open else 1.0
                    if wait > 0:
                        after = str(max(1, math.ceil(wait))).encode()
                        return await refuse(
                            send,
                            429,
                            "throttle",
                            "rate limited by mlhunt guard",
                            (b"retry-after", after),
                        )
        if length > config.max_body_bytes:  # refused before any 100 Continue
            return await refuse(send, 413, "error", "request body too large", CLOSE)
        # (the body's deadline is the server's: mlhunt.guard.server closes a connection whose
        # body is late, and receive() then reports the disconnect)
        body = await read_body(receive, config.max_body_bytes)
        if body is None:  # the client went away, or was too slow
            return None
        if body is TOO_LARGE:
            return await refuse(send, 413, "error", "request body too large", CLOSE)
        headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in drop
        ]
        if not config.trust_forwarded and peer:
            headers = [(k, v) for k, v in headers if k != "x-forwarded-for"]
            headers.append(("x-forwarded-for", f"{fwd}, {peer[0]}" if fwd else peer[0]))
        url = request_target(scope)
        if url is None:
            g.metrics.inc("mlhunt_guard_requests_total", outcome="bad_target")
            return await refuse(
                send, 400, "error", "request target with spaces or control characters"
            )
        method = scope["method"]
        assert g.upstream is not None
        try:
            status, up_headers, content = await g.upstream.request(method, url, headers, body)
        except UpstreamError as exc:
            g.metrics.inc("mlhunt_guard_upstream_errors_total")
            return await refuse(send, 502, "error", f"upstream unavailable ({exc})")
        ok = 200 <= status < 300
        up_drop = HOP_BY_HOP
        encoded = False
        raw: list[tuple[bytes, bytes]] = []
        for k, v in up_headers:
            k = k.lower()
            if k == b"connection":
                up_drop = up_drop | hop_headers(v)
            elif k == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
                encoded = True
            raw.append((k, v))
        raw = [(b"content-length", b""), *((k, v) for k, v in raw if k not in up_drop)]
        out: bytes | None = content
        degraded = "degrade" in union and ok
        if degraded:
            # fail closed: an answer the guard cannot read and rewrite is not passed on
            out = None if encoded else degrade(content, g.http, g.policy.degrade, rng)
        if method == "POST" and normal_path(scope["path"]) in predict:
            latency = (time.perf_counter() - start) * 1000.0
            # only successful answers are read and scored; a failed one counts as an event
            # (request floods, credential stuffing) without its bodies
            g.worker.submit(
                (
                    now,
                    client,
                    source,
                    status,
                    body if ok and not encoded else b"",
                    content if ok and not encoded else b"",
                    latency,
                    tuple(sorted(union)),
                )
            )
        if out is None:
            return await refuse(send, 502, "degrade", "answer could not be degraded")
        g.metrics.inc("mlhunt_guard_requests_total", outcome="degrade" if degraded else "pass")
        raw[0] = (b"content-length", str(len(out)).encode())
        await respond(send, status, raw, out)
        return None

    async def health(_request: Request) -> Response:
        store_ok = await run_in_threadpool(g.store.ping)
        ok = store_ok and g.worker.healthy
        doc = {
            "status": "ok" if ok else "degraded",
            "store": "redis" if config.redis_url else "memory",
            "store_ok": store_ok,
            "detectors_ok": g.worker.healthy,
            "last_error": g.worker.last_error or None,
            "population_ready": g.worker.population_ready,
            "queue_depth": g.worker.qsize(),
            "scoring": config.scoring,
            "fail_open": config.fail_open,
            "upstream": config.upstream,
        }
        return JSONResponse(doc, status_code=200 if ok else 503)

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(g.metrics.render(), media_type="text/plain; version=0.0.4")

    app = _GuardApp(
        proxy,
        g.admin_ok,
        routes=[
            Route("/guard/health", health, methods=["GET"]),
            Route("/guard/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.guard = g
    return app


class _GuardApp(Starlette):
    """Starlette for the lifespan and the guard's own endpoints (``_OWN``); every other HTTP
    request goes straight to the proxy: routing, ``Request`` and ``Response`` objects and the
    middleware stack cost more per request than the proxy's own logic."""

    def __init__(self, proxy: ASGIApp, admin_ok: Callable[[str | None], bool], **kw: Any) -> None:
        super().__init__(**kw)
        self._proxy = proxy
        self._admin_ok = admin_ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in _OWN:
            await self._proxy(scope, receive, send)
        elif scope["type"] == "http" and not self._admin_ok((scope.get("client") or (None,))[0]):
            # the guard's own state (warm-up, errors, alert counts) is not for every client
            await respond(
                send, 404, [(b"content-type", b"application/json")], b'{"detail":"Not Found"}'
            )
        else:
            await super().__call__(scope, receive, send)


TOO_LARGE = b"\0too large"  # a sentinel (compared by identity)
CLOSE = (b"connection", b"close")


def hop_headers(value: bytes) -> frozenset[bytes]:
    """The header names a ``Connection`` header lists (hop-by-hop, RFC 9110 7.6.1)."""
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body (None when the client disconnected first, ``TOO_LARGE`` past
    ``limit`` bytes: the rest is not read)."""
    chunks = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        part = msg.get("body", b"")
        size += len(part)
        if size > limit:
            return TOO_LARGE
        chunks.append(part)
        if not msg.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """Head and body back to back: the server's transport sends them in one write
    (:mod:`mlhunt.guard.server`)."""
    if not any(k == b"content-length" for k, _ in headers):
        headers = [(b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(
    config: GuardConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    announce: Callable[[], None] | None = None,
) -> None:
    """Run the guard with uvicorn until interrupted (the ``mlhunt guard`` command); bad input
    raises InputError before anything listens; ``announce`` is called once it is valid."""
    import sys

    import uvicorn

    # In-thread scoring shares the GIL with the event loop: a short switch interval (default
    # 5 ms) keeps the worker from holding it for long (this process only serves the guard).
    if config.scoring == "thread":
        sys.setswitchinterval(0.0005)
    app = create_guard_app(config)
    if announce is not None:
        announce()
    uvicorn.Server(uvicorn_config(app, host, port)).run()


def request_target(scope: dict[str, Any]) -> str | None:
    """The path and query as the client sent them (still percent-encoded), or None when they hold
    bytes that cannot stand in a request line (decoded paths could smuggle CR LF upstream), or
    when the path decodes to control characters (an encoded CR LF: a server behind that decodes
    before parsing could still split on it; the guard's earlier router never matched those)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string") or b""
    target = raw + (b"?" + query if query else b"")
    if _BAD_TARGET.search(target) or _CONTROL.search(scope["path"]):
        return None
    return target.decode("ascii")


def normal_path(path: str) -> str:
    """``//predict/`` and ``/predict`` are one route to most servers: score them alike."""
    return "/" + "/".join(part for part in path.split("/") if part)
