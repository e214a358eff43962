"""The guard as an ASGI app (Starlette): a reverse proxy to one upstream model API.

Per request, on the critical path: the caller's identity (``client_header``) and address, one
read of the client's and the address's current actions from the store, a token from the bucket
while throttled, the upstream call (httpx, keep-alive pool), and, for a degraded client only,
rewriting the answer. The new event is handed to the :class:`~mlhunt.guard.worker.Worker` and
scored right after, so the decision for a request rests on the caller's *previous* events.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mlhunt.assess.http import HttpConfig, load_http_config
from mlhunt.guard.alerts import AlertSink
from mlhunt.guard.config import GuardConfig, Policy, load_policy
from mlhunt.guard.mapping import Mapping, degrade
from mlhunt.guard.metrics import Metrics
from mlhunt.guard.online import PopulationSource, Scorer
from mlhunt.guard.scoring import RemoteWorker
from mlhunt.guard.server import uvicorn_config
from mlhunt.guard.state import StateStore, make_store
from mlhunt.guard.upstream import Upstream, UpstreamError, make_upstream
from mlhunt.guard.worker import Worker
from mlhunt.logschema import JsonlLogWriter

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
        # forwarded, the upstream's interim 100 would precede the real answer (issue #19)
        "expect",
    }
)
_DROP_B = frozenset(k.encode() for k in _DROP)
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OWN = frozenset({"/guard/health", "/guard/metrics"})  # served by Starlette, never proxied
MAX_HOPS = 32  # X-Forwarded-For hops looked at, from the right
Networks = tuple[IPv4Network | IPv6Network, ...]


def networks(cidrs: tuple[str, ...]) -> Networks:
    return tuple(ip_network(c, strict=False) for c in cidrs)


def within(addr: str | None, nets: Networks) -> bool:
    """``addr`` (an IP address) is in one of ``nets``; False for anything not an address."""
    if not addr or not nets:
        return False
    try:
        ip = ip_address(addr)
    except ValueError:
        return False
    return any(ip in n for n in nets)


@dataclass
class Guard:
    """The running guard's parts (``app.state.guard``): what tests and benchmarks inspect."""

    config: GuardConfig
    policy: Policy
    http: HttpConfig
    store: StateStore
    worker: Worker | RemoteWorker
    sink: AlertSink | None  # None with scoring="process" (the scoring process owns it)
    metrics: Metrics
    scorer: Scorer
    population: PopulationSource
    log: JsonlLogWriter | None
    upstream: Upstream | None = None  # while running
    id_key: bytes = b""
    trusted: Networks = field(default_factory=tuple)
    admin: Networks = field(default_factory=tuple)

    def client_id(self, request: Request) -> str:
        return self.client_of(request.headers.get(self.config.client_header))

    def source(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        fwd = ",".join(request.headers.getlist("x-forwarded-for")) or None
        return self.source_of(fwd, peer)

    def client_of(self, raw: str | None) -> str:
        """The client id from the ``client_header`` value (None: absent): with
        ``hash_client_ids`` a keyed hash (HMAC-SHA256), so the raw value (an API key) is never
        recorded and cannot be recovered from a log without the key."""
        if raw is None:
            return "anonymous"
        p = self.config.strip_prefix
        if p and raw.startswith(p) and len(raw) > len(p):
            raw = raw[len(p) :]
        if self.config.hash_client_ids:
            mac = hmac.new(self.id_key, raw.encode("utf-8", "surrogateescape"), hashlib.sha256)
            return "h-" + mac.hexdigest()[:24]
        return raw

    def source_of(self, forwarded: str | None, peer: str | None) -> str:
        """The source address: the peer, unless ``X-Forwarded-For`` is trusted; then the
        right-most hop not in ``trusted_proxies`` (a client writes the left-most hops itself:
        only what trusted proxies appended is believed). With ``trusted_proxies`` set, only a
        peer in them is believed at all; an unparsable hop ends the walk at the last proxy."""
        addr = peer or "unknown"
        if not self.config.trust_forwarded or not forwarded:
            return addr
        if self.trusted and not within(peer, self.trusted):
            return addr
        for hop in reversed(forwarded.rsplit(",", MAX_HOPS)[-MAX_HOPS:]):
            try:
                ip = ip_address(hop.strip())
            except ValueError:
                return addr
            if not any(ip in n for n in self.trusted):
                return str(ip)
            addr = str(ip)
        return addr

    def admin_ok(self, peer: str | None) -> bool:
        """The peer may read ``/guard/health`` and ``/guard/metrics`` (``admin_allow``)."""
        return within(peer, self.admin)


def build_worker(
    config: GuardConfig, store: StateStore, metrics: Metrics, duty: float | None = None
) -> Worker:
    """The scoring worker and what it owns (population, alerts, log): in the proxy's process
    (``scoring="thread"``) or in the scoring process (:mod:`mlhunt.guard.scoring`)."""
    from mlhunt.hunt.detectors._warm import warm_up

    scorer = Scorer(config.detectors)
    policy = load_policy(config.policy, known=set(scorer.specs))
    http = load_http_config(config.http_config)
    population = population_of(config, http)
    # the compiled detector kernels loaded (or compiled) now, not at the first rescoring (the
    # DuckDB engine's reading kernels are not the guard's)
    warm_up(engine=False)
    sink = AlertSink(config.alerts, config.webhook)
    log = JsonlLogWriter(config.log) if config.log is not None else None
    return Worker(
        store=store,
        scorer=scorer,
        population=population,
        policy=policy,
        mapping=Mapping(http, config.feature_names),
        sink=sink,
        metrics=metrics,
        log=log,
        window=config.window,
        source_window=config.source_window,
        queue_max=config.queue_max,
        queue_bytes_max=config.queue_bytes_max,
        max_input_dim=config.max_input_dim,
        score_every=config.score_every,
        score_interval_s=config.score_interval_s,
        duty=config.worker_duty if duty is None else duty,
    )


def build_guard(config: GuardConfig) -> Guard:
    """Load and validate everything (bad input raises InputError before anything listens)."""
    store = make_store(config.redis_url, config.key_prefix)
    metrics = Metrics()
    worker: Worker | RemoteWorker
    if config.scoring == "process":
        # validate here (policy, mapping, reference) so bad input fails before listening; the
        # scoring process loads its own copies and owns the alerts and the log
        scorer = Scorer(config.detectors)
        policy = load_policy(config.policy, known=set(scorer.specs))
        http = load_http_config(config.http_config)
        population = population_of(config, http)
        sink, log = None, None
        worker = RemoteWorker(config, store, metrics)
    else:
        local = build_worker(config, store, metrics)
        scorer, policy, population = local.scorer, local.policy, local.population
        http, sink, log = local.mapping.config, local.sink, local.log
        worker = local
    metrics.gauges["mlhunt_guard_queue_depth"] = worker.qsize
    key = config.id_key.encode() if config.id_key else store.shared_key()
    return Guard(
        config,
        policy,
        http,
        store,
        worker,
        sink,
        metrics,
        scorer,
        population,
        log,
        id_key=key,
        trusted=networks(config.trusted_proxies),
        admin=networks(config.admin_allow),
    )


def population_of(config: GuardConfig, http: HttpConfig) -> PopulationSource:
    """The population source; its input dimension from the configuration when it says
    (``input_dim``, else the number of ``feature_names``), else from the reference."""
    dim = config.input_dim or (len(config.feature_names) or None)
    return PopulationSource(
        config.reference,
        config.warmup,
        tuple(http.classes),
        dim=dim,
        max_dim=config.max_input_dim,
    )


def create_guard_app(config: GuardConfig) -> Starlette:
    """The guard's ASGI app; serve it with uvicorn (``mlhunt guard`` does)."""
    g = build_guard(config)
    rng = np.random.default_rng()
    predict = {_normal_path(p) for p in config.predict_paths}
    if g.http.url:  # the mapping's own URL names the prediction route
        predict.add(_normal_path(urlsplit(g.http.url).path or "/"))

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
        await _respond(send, status, [(b"content-type", b"application/json"), *extra], out)

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        """The proxied route as a bare ASGI app: no routing, Request or Response objects."""
        start = time.perf_counter()
        now = time.time()
        fwd = header = None
        length = 0
        drop = _DROP_B
        for k, v in scope["headers"]:  # names are lower case in ASGI
            if k == client_header and header is None:
                header = v.decode("latin-1")
            elif k == b"x-forwarded-for":  # every line, in order: the right-most hop counts
                fwd = v.decode("latin-1") if fwd is None else f"{fwd},{v.decode('latin-1')}"
            elif k == b"content-length":
                length = int(v)  # validated by the server's parser (digits only)
            elif k == b"connection":
                drop = drop | _named(v)  # headers the client named hop-by-hop
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
            return await refuse(send, 413, "error", "request body too large", _CLOSE)
        try:
            async with asyncio.timeout(config.body_timeout_s):
                body = await _body(receive, config.max_body_bytes)
        except TimeoutError:
            return await refuse(send, 408, "error", "request body not received in time", _CLOSE)
        if body is None:  # the client went away
            return None
        if body is _TOO_LARGE:
            return await refuse(send, 413, "error", "request body too large", _CLOSE)
        headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in drop
        ]
        if not config.trust_forwarded and peer:
            headers = [(k, v) for k, v in headers if k != "x-forwarded-for"]
            headers.append(("x-forwarded-for", f"{fwd}, {peer[0]}" if fwd else peer[0]))
        url = _request_target(scope)
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
        up_drop = _DROP_B
        encoded = False
        raw: list[tuple[bytes, bytes]] = []
        for k, v in up_headers:
            k = k.lower()
            if k == b"connection":
                up_drop = up_drop | _named(v)
            elif k == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
                encoded = True
            raw.append((k, v))
        raw = [(b"content-length", b""), *((k, v) for k, v in raw if k not in up_drop)]
        out = content
        degraded = "degrade" in union and ok
        if degraded:
            # fail closed: an answer the guard cannot read and rewrite is not passed on
            got = None if encoded else degrade(content, g.http, g.policy.degrade, rng)
            if got is None:
                return await refuse(send, 502, "degrade", "answer could not be degraded")
            out = got
        if method == "POST" and _normal_path(scope["path"]) in predict:
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
        g.metrics.inc("mlhunt_guard_requests_total", outcome="degrade" if degraded else "pass")
        raw[0] = (b"content-length", str(len(out)).encode())
        await _respond(send, status, raw, out)
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
            await _respond(
                send, 404, [(b"content-type", b"application/json")], b'{"detail":"Not Found"}'
            )
        else:
            await super().__call__(scope, receive, send)


_TOO_LARGE = b"\0too large"  # a sentinel (compared by identity)
_CLOSE = (b"connection", b"close")


def _named(value: bytes) -> frozenset[bytes]:
    """The header names a ``Connection`` header lists (hop-by-hop, RFC 9110 7.6.1)."""
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


async def _body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body (None when the client disconnected first, ``_TOO_LARGE`` past
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
            return _TOO_LARGE
        chunks.append(part)
        if not msg.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
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


def _request_target(scope: dict[str, Any]) -> str | None:
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


def _normal_path(path: str) -> str:
    """``//predict/`` and ``/predict`` are one route to most servers: score them alike."""
    return "/" + "/".join(part for part in path.split("/") if part)
