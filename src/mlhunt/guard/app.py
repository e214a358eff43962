"""The guard as an ASGI app (Starlette): a reverse proxy to one upstream model API.

Per request, on the critical path: the caller's identity (``client_header``) and address, one
read of the client's and the address's current actions from the store, a token from the bucket
while throttled, the upstream call (httpx, keep-alive pool), and, for a degraded client only,
rewriting the answer. The new event is handed to the :class:`~mlhunt.guard.worker.Worker` and
scored right after, so the decision for a request rests on the caller's *previous* events.
"""

from __future__ import annotations

import gc
import hashlib
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mlhunt.assess.http import HttpConfig, load_http_config
from mlhunt.guard.alerts import AlertSink
from mlhunt.guard.config import GuardConfig, Policy, load_policy
from mlhunt.guard.mapping import Mapping, degrade
from mlhunt.guard.metrics import Metrics
from mlhunt.guard.online import PopulationSource, Scorer
from mlhunt.guard.scoring import RemoteWorker
from mlhunt.guard.state import StateStore, make_store
from mlhunt.guard.upstream import Upstream, UpstreamError, make_upstream
from mlhunt.guard.worker import Worker
from mlhunt.logschema import JsonlLogWriter

# hop-by-hop headers (RFC 9110 7.6.1) and those recomputed per hop; accept-encoding is not
# forwarded, so answers come back uncompressed and can be read and degraded
_DROP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                   "trailer", "transfer-encoding", "upgrade", "host", "content-length",
                   "accept-encoding"})  # fmt: skip


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

    def client_id(self, request: Request) -> str:
        raw = request.headers.get(self.config.client_header) or "anonymous"
        p = self.config.strip_prefix
        if p and raw.startswith(p) and len(raw) > len(p):
            raw = raw[len(p) :]
        if self.config.hash_client_ids:
            return "h-" + hashlib.sha256(raw.encode()).hexdigest()[:16]
        return raw

    def source(self, request: Request) -> str:
        if self.config.trust_forwarded:
            fwd = request.headers.get("x-forwarded-for")
            if fwd:
                return fwd.split(",")[0].strip()
        return request.client.host if request.client else "unknown"


def build_worker(config: GuardConfig, store: StateStore, metrics: Metrics,
                 duty: float | None = None) -> Worker:  # fmt: skip
    """The scoring worker and what it owns (population, alerts, log): in the proxy's process
    (``scoring="thread"``) or in the scoring process (:mod:`mlhunt.guard.scoring`)."""
    scorer = Scorer(config.detectors)
    policy = load_policy(config.policy, known=set(scorer.specs))
    http = load_http_config(config.http_config)
    population = PopulationSource(config.reference, config.warmup, tuple(http.classes))
    sink = AlertSink(config.alerts, config.webhook)
    log = JsonlLogWriter(config.log) if config.log is not None else None
    return Worker(store=store, scorer=scorer, population=population, policy=policy,
                  mapping=Mapping(http, config.feature_names), sink=sink, metrics=metrics,
                  log=log, window=config.window, source_window=config.source_window,
                  queue_max=config.queue_max, score_every=config.score_every,
                  score_interval_s=config.score_interval_s,
                  duty=config.worker_duty if duty is None else duty)  # fmt: skip


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
        population = PopulationSource(config.reference, config.warmup, tuple(http.classes))
        sink, log = None, None
        worker = RemoteWorker(config, store, metrics)
    else:
        local = build_worker(config, store, metrics)
        scorer, policy, population = local.scorer, local.policy, local.population
        http, sink, log = local.mapping.config, local.sink, local.log
        worker = local
    metrics.gauges["mlhunt_guard_queue_depth"] = worker.qsize
    return Guard(config, policy, http, store, worker, sink, metrics, scorer, population, log)


def create_guard_app(config: GuardConfig) -> Starlette:
    """The guard's ASGI app; serve it with uvicorn (``mlhunt guard`` does)."""
    g = build_guard(config)
    rng = np.random.default_rng()
    predict = {_normal_path(p) for p in config.predict_paths}
    if g.http.url:  # the mapping's own URL names the prediction route
        predict.add(_normal_path(urlsplit(g.http.url).path or "/"))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        g.upstream = make_upstream(config.upstream, config.upstream_timeout)
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

    def refuse(status: int, outcome: str, detail: str, **headers: str) -> Response:
        g.metrics.inc("mlhunt_guard_requests_total", outcome=outcome)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)

    async def proxy(request: Request) -> Response:
        start = time.perf_counter()
        now = time.time()
        client, source = g.client_id(request), g.source(request)
        keys = [("client_id", client), ("source_ip", source)]
        try:
            acts = await g.store.actions(keys, now)
        except Exception:  # the state store is down: fail open or closed
            g.metrics.inc("mlhunt_guard_state_errors_total")
            if not config.fail_open:
                return refuse(503, "error", "guard state unavailable (fail-closed)")
            acts = [set(), set()]
        if not config.fail_open and not g.worker.healthy:
            return refuse(503, "error", "guard detectors unavailable (fail-closed)")
        union = acts[0] | acts[1]
        if "block" in union:
            return refuse(403, "block", "blocked by mlhunt guard")
        if "throttle" in union:
            for (scope, key), a in zip(keys, acts, strict=True):
                if "throttle" in a:
                    t = g.policy.throttle
                    try:
                        wait = await g.store.take(f"{scope}:{key}", t.rate, t.burst, now)
                    except Exception:
                        g.metrics.inc("mlhunt_guard_state_errors_total")
                        wait = 0.0 if config.fail_open else 1.0
                    if wait > 0:
                        return refuse(429, "throttle", "rate limited by mlhunt guard",
                                      **{"Retry-After": str(max(1, math.ceil(wait)))})  # fmt: skip
        body = await request.body()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROP]
        if not config.trust_forwarded and request.client:
            prior = request.headers.get("x-forwarded-for")
            host = request.client.host
            headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
            headers.append(("x-forwarded-for", f"{prior}, {host}" if prior else host))
        url = _request_target(request.scope)
        if url is None:
            g.metrics.inc("mlhunt_guard_requests_total", outcome="bad_target")
            return refuse(400, "error", "request target with spaces or control characters")
        path = _normal_path(request.url.path)
        assert g.upstream is not None
        try:
            status, up_headers, content = await g.upstream.request(request.method, url,
                                                                   headers, body)  # fmt: skip
        except UpstreamError as exc:
            g.metrics.inc("mlhunt_guard_upstream_errors_total")
            return refuse(502, "error", f"upstream unavailable ({exc})")
        out = content
        degraded = "degrade" in union and status == 200
        if degraded:
            out = degrade(content, g.http, g.policy.degrade, rng)
        if path in predict and request.method == "POST":
            latency = (time.perf_counter() - start) * 1000.0
            g.worker.submit((now, client, source, status, body, content, latency,
                             tuple(sorted(union))))  # fmt: skip
        g.metrics.inc("mlhunt_guard_requests_total",
                      outcome="degrade" if degraded else "pass")  # fmt: skip
        resp = Response(out, status_code=status)
        resp.raw_headers = [(b"content-length", str(len(out)).encode())] + [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in up_headers if k.lower() not in _DROP
        ]  # fmt: skip
        return resp

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
        return PlainTextResponse(g.metrics.render(),
                                 media_type="text/plain; version=0.0.4")  # fmt: skip

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/guard/health", health, methods=["GET"]),
            Route("/guard/metrics", metrics, methods=["GET"]),
            Route("/{path:path}", proxy, methods=methods),
        ],
        lifespan=lifespan,
    )
    app.state.guard = g
    return app


def serve(config: GuardConfig, host: str = "127.0.0.1", port: int = 8080,
          announce: Callable[[], None] | None = None) -> None:  # fmt: skip
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
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _request_target(scope: dict[str, Any]) -> str | None:
    """The path and query as the client sent them (still percent-encoded), or None when they hold
    bytes that cannot stand in a request line (decoded paths could smuggle CR LF upstream)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string") or b""
    target = raw + (b"?" + query if query else b"")
    if any(b <= 0x20 or b >= 0x7F for b in target):
        return None
    return target.decode("ascii")


def _normal_path(path: str) -> str:
    """``//predict/`` and ``/predict`` are one route to most servers: score them alike."""
    return "/" + "/".join(part for part in path.split("/") if part)
