"""``mlhunt guard --llm``: the guard in front of an OpenAI-compatible chat-completions API.

Per request, on the critical path: the caller's identity and address (as the classifier guard:
hashed client ids, trusted ``X-Forwarded-For`` only), one read of the client's actions from the
store (``block`` -> 403, ``throttle`` -> a token or 429), the body (bounded in size and time),
and for a chat call (``POST`` on ``llm_paths``) the newest user turn's injection score: a turn
whose own severity the policy blocks never reaches the model. The answer is passed on with the
sensitive values the policy redacts replaced (whole answers, and streamed answers delta by
delta, a value split over deltas redacted whole: :mod:`mlhunt.guard.llm.redact`). The call is
then handed, as a gateway-log record, to the scoring thread (:mod:`mlhunt.guard.llm.worker`),
whose verdicts hold for the client's next requests. Other paths are proxied unchanged.

The upstream client is the classifier guard's keep-alive pool (:mod:`mlhunt.guard.upstream`:
answers framed by httptools, strictly; ``max_answer_bytes`` per answer;
``upstream_max_connections``), whose ``stream`` hands the body on as it arrives (httpx for
``https://``, with the same bounds); server-sent events are framed by httpx-sse's decoders,
each line bounded. Each event is handled in its own error boundary: a malformed request, answer
or stream event is counted (``mlhunt_guard_events_malformed_total``) and passed, never fatal.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mlhunt.guard.alerts import AlertSink
from mlhunt.guard.app import (
    CLOSE,
    HOP_BY_HOP,
    TOO_LARGE,
    hop_headers,
    normal_path,
    read_body,
    request_target,
    respond,
)
from mlhunt.guard.build import Guard, networks
from mlhunt.guard.config import GuardConfig
from mlhunt.guard.llm.answers import (
    answer_headers,
    content_type,
    parse_request,
    read_answer,
    redact_answer,
    relay_stream,
)
from mlhunt.guard.llm.policy import INJECTION, LEAK, SENSITIVE, LlmPolicy, load_llm_policy
from mlhunt.guard.llm.redact import StreamRedactor, sent_text
from mlhunt.guard.llm.remote import LlmRemoteWorker
from mlhunt.guard.llm.worker import LlmWorker
from mlhunt.guard.metrics import Metrics
from mlhunt.guard.state import StateStore, make_store
from mlhunt.guard.upstream import HttpxUpstream, StreamPool, UpstreamError, make_upstream
from mlhunt.hunt.alerts import rfc3339
from mlhunt.llmhunt.detectors import Context, LlmDetector, registry
from mlhunt.llmhunt.detectors.text import score_turn

OWN = frozenset({"/guard/health", "/guard/metrics"})


@dataclasses.dataclass
class LlmGuard(Guard):
    """The LLM guard's parts (``app.state.guard``); identity and address as the classifier
    guard's (:class:`~mlhunt.guard.build.Guard`), no classifier mapping, scorer or population."""

    detectors: list[LlmDetector] = dataclasses.field(default_factory=list)
    ctx: Context = dataclasses.field(default_factory=Context)
    pool: StreamPool | HttpxUpstream | None = None  # while running

    def redacts(self, detector: str, weight: float) -> bool:
        """One value of this weight, scored alone, is redacted by the policy."""
        spec = next(d.spec for d in self.detectors if d.spec.id == detector)
        return "redact" in self.policy.actions(detector, spec.severity_for(weight) or "info")


def build_llm_worker(config: GuardConfig, store: StateStore, metrics: Metrics) -> LlmWorker:
    """The scoring worker and what it owns (alerts, log): on a thread of the proxy
    (``scoring="thread"``) or in the scoring process (:mod:`mlhunt.guard.llm.remote`)."""
    from mlhunt.llmhunt.api import tool_limits_of

    detectors = registry()
    return LlmWorker(
        store=store,
        policy=load_llm_policy(config.policy, {d.spec.id for d in detectors}),
        detectors=detectors,
        ctx=Context(tuple(config.canaries), tool_limits_of(config.tool_limits)),
        sink=AlertSink(config.alerts, config.webhook),
        metrics=metrics,
        log=config.log,
        window=min(config.window, 256),
        queue_max=config.queue_max,
        queue_bytes_max=config.queue_bytes_max,
        interval_s=config.score_interval_s,
    )


def build_llm_guard(config: GuardConfig) -> LlmGuard:
    """Load and validate everything (bad input raises InputError before anything listens)."""
    from mlhunt.llmhunt.api import tool_limits_of

    detectors = registry()
    policy = load_llm_policy(config.policy, {d.spec.id for d in detectors})
    ctx = Context(tuple(config.canaries), tool_limits_of(config.tool_limits))
    store = make_store(config.redis_url, config.key_prefix)
    metrics = Metrics()
    worker: LlmWorker | LlmRemoteWorker
    sink: AlertSink | None
    if config.scoring == "process":  # the scoring process owns the alerts and the log
        worker, sink = LlmRemoteWorker(config, store, metrics), None
    else:
        worker = build_llm_worker(config, store, metrics)
        sink = worker.sink
    metrics.gauges["mlhunt_guard_queue_depth"] = worker.qsize
    key = config.id_key.encode() if config.id_key else store.shared_key()
    return LlmGuard(
        config,
        policy,
        None,  # type: ignore[arg-type]  # no classifier mapping
        store,
        worker,  # type: ignore[arg-type]
        sink,
        metrics,
        None,  # type: ignore[arg-type]  # no classifier scorer
        None,  # type: ignore[arg-type]  # no population source
        None,
        id_key=key,
        trusted=networks(config.trusted_proxies),
        admin=networks(config.admin_allow),
        detectors=detectors,
        ctx=ctx,
    )


def deciders(g: LlmGuard) -> Callable[[str], bool]:
    """kind -> redact it? (each kind's single-value weight against the policy)."""
    sens = next(d for d in g.detectors if d.spec.id == SENSITIVE).spec.params
    leak = next(d for d in g.detectors if d.spec.id == LEAK).spec.params
    table = {
        kind: g.redacts(SENSITIVE, float(sens[f"w_{kind}"]))
        for kind in ("secret", "card_number", "iban", "national_id", "email", "phone")
    }
    table["canary"] = g.redacts(LEAK, float(leak["canary_weight"]))
    return lambda kind: table.get(kind, False)


def create_llm_guard_app(config: GuardConfig) -> Starlette:
    """The LLM guard's ASGI app (``create_guard_app`` with ``config.llm``)."""
    g = build_llm_guard(config)
    policy: LlmPolicy = g.policy  # type: ignore[assignment]
    decide = deciders(g)
    inj = next(d.spec for d in g.detectors if d.spec.id == INJECTION)
    chat_paths = {normal_path(p) for p in config.llm_paths}
    client_header = config.client_header.lower().encode("latin-1")
    canaries = tuple(config.canaries)
    worker: LlmWorker | LlmRemoteWorker = g.worker  # type: ignore[assignment]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        g.pool = make_upstream(
            config.upstream,
            config.upstream_timeout,
            config.upstream_max_connections,
            config.max_answer_bytes,
        )  # type: ignore[assignment]
        worker.start()
        try:
            yield
        finally:
            await g.pool.aclose()
            worker.stop()
            if g.sink is not None:
                g.sink.close()
            g.store.close()

    async def refuse(
        send: Send, status: int, outcome: str, detail: str, *extra: tuple[bytes, bytes]
    ) -> None:
        g.metrics.inc("mlhunt_guard_requests_total", outcome=outcome)
        out = json.dumps({"error": {"message": detail, "type": "mlhunt_guard"}}).encode()
        await respond(send, status, [(b"content-type", b"application/json"), *extra], out)

    async def gate(client: str, now: float) -> tuple[str, str] | None:
        """(status, outcome) refusing the request by the client's current actions, or None."""
        try:
            acts = (await g.store.actions([("client_id", client)], now))[0]
        except Exception:  # the state store is down: fail open or closed
            g.metrics.inc("mlhunt_guard_state_errors_total")
            return None if config.fail_open else ("503", "guard state unavailable")
        if not config.fail_open and not worker.healthy:
            return "503", "guard detectors unavailable"
        if "block" in acts:
            return "403", "blocked by mlhunt guard"
        if "throttle" in acts:
            t = policy.throttle
            try:
                wait = await g.store.take(f"client_id:{client}", t.rate, t.burst, now)
            except Exception:
                g.metrics.inc("mlhunt_guard_state_errors_total")
                wait = 0.0 if config.fail_open else 1.0
            if wait > 0:
                return f"429:{max(1, math.ceil(wait))}", "rate limited by mlhunt guard"
        return None

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        now = time.time()
        fwd = header = None
        length = 0
        drop = HOP_BY_HOP
        for k, v in scope["headers"]:
            if k == client_header and header is None:
                header = v.decode("latin-1")
            elif k == b"x-forwarded-for":
                fwd = v.decode("latin-1") if fwd is None else f"{fwd},{v.decode('latin-1')}"
            elif k == b"content-length":
                length = int(v)
            elif k == b"connection":
                drop = drop | hop_headers(v)
        peer = scope.get("client")
        client, source = g.client_of(header), g.source_of(fwd, peer[0] if peer else None)
        refused = await gate(client, now)
        if refused is not None:
            code, detail = refused
            status, _, after = code.partition(":")
            extra = [(b"retry-after", after.encode())] if after else []
            outcome = {"403": "block", "429": "throttle"}.get(status, "error")
            return await refuse(send, int(status), outcome, detail, *extra)
        if length > config.max_body_bytes:
            return await refuse(send, 413, "error", "request body too large", CLOSE)
        body = await read_body(receive, config.max_body_bytes)
        if body is None:
            return None
        if body is TOO_LARGE:
            return await refuse(send, 413, "error", "request body too large", CLOSE)
        url = request_target(scope)
        if url is None:
            return await refuse(send, 400, "error", "request target with control characters")
        headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in drop
        ]
        if not config.trust_forwarded and peer:
            headers = [(k, v) for k, v in headers if k != "x-forwarded-for"]
            headers.append(("x-forwarded-for", f"{fwd}, {peer[0]}" if fwd else peer[0]))
        method = scope["method"]
        req = None
        if method == "POST" and normal_path(scope["path"]) in chat_paths:
            req = parse_request(body)
            if req is None:
                g.metrics.inc("mlhunt_guard_events_malformed_total")
        record: dict[str, Any] | None = None
        if req is not None:
            record = {
                "ts": rfc3339(now),
                "client_id": client,
                "source_ip": source,
                "model": str(req["model"]) if isinstance(req.get("model"), str) else "",
                "request": {"messages": req["messages"], "tools": req.get("tools") or []},
            }
            if isinstance(req.get("user"), str):
                record["session_id"] = req["user"][:256]
            user = next((m.content for m in reversed(req["_msgs"]) if m.role == "user"), "")
            turn = score_turn(user) if user else None
            sev = inj.severity_for(turn.score) if turn is not None else None
            if sev is not None and "block" in policy.actions(inj.id, sev):
                record.update(status=403, guard={"actions": ["block"], "refused": "injection"})
                worker.submit(record, len(body))
                return await refuse(send, 403, "block", "prompt injection refused by mlhunt guard")
        assert g.pool is not None
        answer_size = 0
        try:
            async with g.pool.stream(method, url, headers, body) as ans:
                out_headers, encoded = answer_headers(ans.headers)
                if record is not None and encoded:  # cannot be read, so cannot be redacted
                    g.metrics.inc("mlhunt_guard_upstream_errors_total")
                    return await refuse(send, 502, "error", "encoded answer cannot be checked")
                status = ans.status
                sse = content_type(ans.headers).startswith(b"text/event-stream")
                if record is not None and sse:
                    redactor = StreamRedactor(decide, canaries, sent_text(req["_msgs"]))  # type: ignore[index]
                    await send(
                        {"type": "http.response.start", "status": status, "headers": out_headers}
                    )
                    text = await relay_stream(ans.chunks(), send, redactor, g.metrics)
                    answer_size = sum(map(len, text.parts))
                    record["status"] = status
                    record["response"] = {
                        "choices": [{"message": text.message}],
                        "usage": text.usage,
                    }
                    record["guard"] = {"actions": [], "redacted": redactor.kinds, "stream": True}
                    outcome = "redact" if redactor.kinds else "pass"
                    g.metrics.inc("mlhunt_guard_requests_total", outcome=outcome)
                else:
                    content = await read_answer(ans.chunks())
                    answer_size = len(content)
        except UpstreamError as exc:
            g.metrics.inc("mlhunt_guard_upstream_errors_total")
            if record is not None and record.get("status") is not None:
                return None  # the stream had begun: it ended early (counted)
            return await refuse(send, 502, "error", f"upstream unavailable ({exc})")
        if record is None or not sse:
            kinds: list[str] = []
            if record is not None:
                sent = sent_text(req["_msgs"])  # type: ignore[index]
                content, kinds, answer = redact_answer(content, decide, canaries, sent, status)
                if answer is None and 200 <= status < 300:
                    g.metrics.inc("mlhunt_guard_events_malformed_total")
                record["status"] = status
                record["response"] = answer or {}
                record["guard"] = {"actions": [], "redacted": kinds}
            out_headers = [(b"content-length", str(len(content)).encode()), *out_headers]
            g.metrics.inc("mlhunt_guard_requests_total", outcome="redact" if kinds else "pass")
            await respond(send, status, out_headers, content)
        if record is not None:
            record["latency_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
            # the queue's byte budget: the request and the answer as read (not serialised again)
            worker.submit(record, len(body) + answer_size)
        return None

    async def health(_request: Request) -> Response:
        store_ok = await run_in_threadpool(g.store.ping)
        ok = store_ok and worker.healthy
        doc = {
            "status": "ok" if ok else "degraded",
            "mode": "llm",
            "store": "redis" if config.redis_url else "memory",
            "store_ok": store_ok,
            "detectors_ok": worker.healthy,
            "last_error": worker.last_error or None,
            "queue_depth": worker.qsize(),
            "fail_open": config.fail_open,
            "upstream": config.upstream,
        }
        return JSONResponse(doc, status_code=200 if ok else 503)

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(g.metrics.render(), media_type="text/plain; version=0.0.4")

    class App(Starlette):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] not in OWN:
                await proxy(scope, receive, send)
            elif scope["type"] == "http" and not g.admin_ok((scope.get("client") or (None,))[0]):
                await respond(
                    send, 404, [(b"content-type", b"application/json")], b'{"detail":"Not Found"}'
                )
            else:
                await super().__call__(scope, receive, send)

    app = App(
        routes=[
            Route("/guard/health", health, methods=["GET"]),
            Route("/guard/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.guard = g
    return app
