"""``mlhunt guard`` (issue #10): pass-through, policy actions, policy validation, health and
metrics, fail-closed — real HTTP on 127.0.0.1 (uvicorn) in front of the real loan API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlhunt.errors import InputError
from mlhunt.guard import Guard, GuardConfig, create_guard_app, load_policy
from mlhunt.scenarios import ensure_built
from mlhunt.scenarios.server import KeyStore, create_app, running

DIM = 9  # loan features


@pytest.fixture(scope="module")
def loan() -> Any:
    return ensure_built("loan-approval")[1]


@pytest.fixture(scope="module")
def upstream(loan: Any) -> Iterator[str]:
    app = create_app(loan, keys=KeyStore({"k-alice": "alice"}, prefix="sim-"), trust_forwarded=True)
    with running(app) as url:
        yield url


@pytest.fixture(scope="module")
def reference(loan: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "ref.npz"
    np.savez(path, x=loan.x_train)
    return path


@contextmanager
def guarded(cfg: GuardConfig, per_event: bool = True) -> Iterator[tuple[httpx.Client, Guard]]:
    """The guard on a free port; ``per_event``: rescore after every event (so a test can say
    exactly which request is the first one acted on) instead of the deployed batching."""
    if per_event:
        cfg.score_every, cfg.score_interval_s = 1, 0.0
    app = create_guard_app(cfg)
    with running(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c, app.state.guard


def ask(c: httpx.Client, client: str, x: Any) -> httpx.Response:
    return c.post(
        "/predict", json={"vector": [float(v) for v in x]}, headers={"X-API-Key": f"sim-{client}"}
    )


def warm(c: httpx.Client, g: Guard, loan: Any, n: int = 20) -> None:
    """Benign traffic that completes the warm-up (the population's label and margin shares)."""
    for i in range(n):
        assert ask(c, f"b{i % 5}", loan.x_holdout[i]).status_code == 200
    assert g.worker.wait_idle()
    assert g.worker.population_ready


def thief_queries(loan: Any, n: int, seed: int = 0) -> np.ndarray:
    """Uniform random inputs over the whole input box: what extraction looks like."""
    lo, hi = np.array(loan.spec.lower), np.array(loan.spec.upper)
    return lo + np.random.default_rng(seed).uniform(size=(n, DIM)) * (hi - lo)


def policy_file(tmp: Path, text: str) -> Path:
    p = tmp / "policy.yaml"
    p.write_text(text)
    return p


def steal(c: httpx.Client, g: Guard, loan: Any, n: int = 40) -> list[httpx.Response]:
    """One query at a time, each scored before the next (the worker is given time)."""
    out = []
    for x in thief_queries(loan, n):
        out.append(ask(c, "thief", x))
        g.worker.wait_idle()
    return out


def test_pass_through_unchanged(upstream: str, reference: Path, loan: Any, tmp_path: Path) -> None:
    cfg = GuardConfig(
        upstream=upstream,
        reference=reference,
        warmup=10,
        log=tmp_path / "log.jsonl",
        strip_prefix="sim-",
    )
    with guarded(cfg) as (c, g), httpx.Client(base_url=upstream) as direct:
        for i in range(12):
            x = loan.x_holdout[i]
            via, raw = ask(c, "alice", x), ask(direct, "alice", x)
            assert via.status_code == raw.status_code == 200
            assert via.json() == raw.json()
        # other routes, errors and the API's own auth pass through as they are
        assert c.get("/health").json() == direct.get("/health").json()
        assert c.post("/predict", json={"vector": [1.0]}).status_code == 401
        bad = c.post("/predict", json={"vector": [1.0]}, headers={"X-API-Key": "sim-alice"})
        assert (
            bad.status_code == 422
            and bad.json()
            == direct.post(
                "/predict", json={"vector": [1.0]}, headers={"X-API-Key": "sim-alice"}
            ).json()
        )
        assert c.get("/nope").status_code == 404
        assert g.worker.wait_idle()
        health = c.get("/guard/health").json()
        assert health["status"] == "ok" and health["population_ready"]
        metrics = c.get("/guard/metrics").text
        assert 'mlhunt_guard_requests_total{outcome="pass"}' in metrics
        assert "# TYPE mlhunt_guard_queue_depth gauge" in metrics
    # every prediction in the inference log, in the DESIGN.md schema, with the guard's view
    recs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(recs) == 12
    from mlhunt.logschema import InferenceRecord

    for r in recs:
        InferenceRecord.model_validate(r)
        assert r["client_id"] == g.client_of("sim-alice") and len(r["input"]) == DIM
        assert r["guard"] == {"actions": []}


@pytest.mark.parametrize(
    ("action", "check"),
    [
        ("block", lambda r: r.status_code == 403),
        ("throttle", lambda r: r.status_code == 429 and int(r.headers["Retry-After"]) >= 1),
        ("degrade", lambda r: r.status_code == 200 and "scores" not in r.json()),
        ("alert", lambda r: r.status_code == 200 and len(r.json()["scores"]) == 2),
    ],
)
def test_policy_actions(
    action: str, check: Any, upstream: str, reference: Path, loan: Any, tmp_path: Path
) -> None:
    pol = policy_file(
        tmp_path,
        f"""
default: {{medium: alert, high: alert, critical: alert}}
detectors:
  MLH-HUNT-EXTRACTION: {{medium: {action}, high: {action}, critical: {action}}}
throttle: {{rate: 0.01, burst: 2}}
degrade: {{mode: labels}}
""",
    )
    cfg = GuardConfig(
        upstream=upstream,
        reference=reference,
        warmup=10,
        policy=pol,
        alerts=tmp_path / "alerts.jsonl",
        strip_prefix="sim-",
    )
    with guarded(cfg) as (c, g):
        warm(c, g, loan)
        answers = steal(c, g, loan)
        assert all(r.status_code == 200 for r in answers[:20])  # not before min_events
        after = answers[24:]  # the throttle's burst is spent by then
        assert after and all(check(r) for r in after), [r.status_code for r in after]
        # benign clients are never touched
        assert ask(c, "b1", loan.x_holdout[99]).json().get("scores")
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    mine = [a for a in alerts if a["target"] == g.client_of("sim-thief")]
    assert mine and mine[0]["source"] == "guard" and mine[0]["rule_id"] == "MLH-HUNT-EXTRACTION"
    ev = mine[0]["evidence"]
    assert ev["detected_at_event"] >= 20 and action in ev["actions"]
    assert all(a["target"] != g.client_of("sim-b1") for a in alerts)


@pytest.mark.parametrize("mode", ["round", "noise"])
def test_degrade_keeps_the_decision(
    mode: str, upstream: str, reference: Path, loan: Any, tmp_path: Path
) -> None:
    pol = policy_file(
        tmp_path,
        f"""
detectors: {{MLH-HUNT-EXTRACTION: {{medium: degrade, high: degrade, critical: degrade}}}}
degrade: {{mode: {mode}, decimals: 1, noise: 0.2}}
""",
    )
    cfg = GuardConfig(
        upstream=upstream, reference=reference, warmup=10, policy=pol, strip_prefix="sim-"
    )
    with guarded(cfg) as (c, g), httpx.Client(base_url=upstream) as direct:
        warm(c, g, loan)
        steal(c, g, loan, 30)
        changed = 0
        for x in thief_queries(loan, 20, seed=1):
            got, true = ask(c, "thief", x).json(), ask(direct, "thief", x).json()
            assert got["label"] == true["label"]
            assert np.argmax(got["scores"]) == np.argmax(true["scores"])
            if mode == "round":
                assert got["scores"] == [round(s, 1) for s in true["scores"]]
            changed += got["scores"] != true["scores"]
        assert changed >= 15


def test_policy_validation_names_file_and_field(tmp_path: Path) -> None:
    load_policy()  # the shipped default is valid
    bad = policy_file(tmp_path, "default: {medium: blokc}\n")
    with pytest.raises(InputError) as e:
        load_policy(bad)
    assert e.value.file == str(bad) and "default" in (e.value.field or "")
    assert "blokc" in str(e.value)
    typo = policy_file(tmp_path, "detectors: {MLH-HUNT-EXTRACTON: {medium: block}}\n")
    with pytest.raises(InputError, match="MLH-HUNT-EXTRACTON"):
        load_policy(typo, known={"MLH-HUNT-EXTRACTION"})
    extra = policy_file(tmp_path, "throttle: {rate: 1, brust: 3}\n")
    with pytest.raises(InputError) as e:
        load_policy(extra)
    assert "brust" in (e.value.field or "")
    with pytest.raises(InputError, match="upstream"):
        GuardConfig(upstream="localhost:8000")


def test_fail_closed_when_state_errors(upstream: str, reference: Path, loan: Any) -> None:
    cfg = GuardConfig(
        upstream=upstream, reference=reference, warmup=10, fail_open=False, strip_prefix="sim-"
    )
    with guarded(cfg) as (c, g):
        assert ask(c, "alice", loan.x_holdout[0]).status_code == 200

        async def broken(*_a: Any) -> list[set[str]]:
            raise ConnectionError("state store down")

        g.store.actions = broken  # type: ignore[method-assign]
        assert ask(c, "alice", loan.x_holdout[0]).status_code == 503
        g.config.fail_open = True
        assert ask(c, "alice", loan.x_holdout[0]).status_code == 200
        assert "mlhunt_guard_state_errors_total 2" in c.get("/guard/metrics").text


def test_webhook_gets_alerts_and_never_blocks(
    upstream: str, reference: Path, loan: Any, tmp_path: Path
) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    got: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        got.append(await request.json())
        return JSONResponse({"ok": True})

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with running(receiver) as hook_url:
        cfg = GuardConfig(
            upstream=upstream,
            reference=reference,
            warmup=10,
            webhook=f"{hook_url}/hook",
            strip_prefix="sim-",
        )
        with guarded(cfg) as (c, g):
            warm(c, g, loan)
            steal(c, g, loan, 25)
            for _ in range(50):
                if got:
                    break
                import time

                time.sleep(0.05)
    assert got and got[0]["source"] == "guard" and got[0]["target"] == g.client_of("sim-thief")


def test_upstream_pool_chunked_query_headers_and_dead_upstream(tmp_path: Path) -> None:
    """The guard's own HTTP/1.1 pool: chunked answers, query strings, headers both ways, kept
    connections reused, and a dead upstream answered 502 (not a hang)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "q": request.url.query,
                "x": request.headers.get("x-trace"),
                "len": len(body),
                "ae": request.headers.get("accept-encoding"),
            },
            headers={"x-upstream": "yes"},
        )

    async def stream(_request: Request) -> StreamingResponse:
        async def parts() -> Any:
            for i in range(50):
                yield f"part-{i};".encode()

        return StreamingResponse(parts(), media_type="text/plain")

    up = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"]), Route("/stream", stream)])
    with running(up) as url, guarded(GuardConfig(upstream=url, warmup=10)) as (c, _g):
        for _ in range(3):  # the same kept connection answers again
            r = c.post(
                "/echo?a=1&b=two",
                content=b"x" * 5000,
                headers={"x-trace": "t1", "accept-encoding": "gzip"},
            )
            assert r.status_code == 200 and r.headers["x-upstream"] == "yes"
            assert r.json() == {"q": "a=1&b=two", "x": "t1", "len": 5000, "ae": None}
        s = c.get("/stream")
        assert s.text == "".join(f"part-{i};" for i in range(50))
    with guarded(GuardConfig(upstream=url, warmup=10, upstream_timeout=2)) as (c, _g):
        r = c.get("/echo")  # the upstream is gone now
        assert r.status_code == 502 and "upstream unavailable" in r.json()["detail"]


def test_upstream_pool_survives_server_closing_idle_connections() -> None:
    """A kept connection the upstream closed while idle is retried once on a new one."""
    import asyncio
    import threading
    import time

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from mlhunt.guard.upstream import StreamPool

    async def ok(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", ok)])
    server = uvicorn.Server(uvicorn.Config(app, port=0, log_level="warning", timeout_keep_alive=1))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert t.is_alive() and time.monotonic() < deadline, "test server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]

    async def go() -> list[int]:
        pool = StreamPool(f"http://127.0.0.1:{port}", 5.0, idle_s=30.0)  # trust kept ones
        out = [(await pool.request("GET", "/", [], b""))[0]]
        await asyncio.sleep(1.6)  # the server has closed the kept connection by now
        out.append((await pool.request("GET", "/", [], b""))[0])
        await pool.aclose()
        return out

    try:
        assert asyncio.run(go()) == [200, 200]
    finally:
        server.should_exit = True
        t.join(timeout=10)


def test_client_identity_and_source_address(upstream: str) -> None:
    from starlette.requests import Request

    def req(headers: dict[str, str]) -> Request:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        return Request({"type": "http", "headers": raw, "client": ("192.0.2.7", 5555)})

    raw_ids = GuardConfig(upstream=upstream, strip_prefix="sim-", hash_client_ids=False)
    g = create_guard_app(raw_ids).state.guard
    r = req({"X-API-Key": "sim-alice", "X-Forwarded-For": "203.0.113.9"})
    assert g.client_id(r) == "alice" and g.source(r) == "192.0.2.7"  # XFF not trusted
    assert g.client_id(req({})) == "anonymous"
    h = create_guard_app(GuardConfig(upstream=upstream, trust_forwarded=True)).state.guard
    hashed = h.client_id(r)  # hashed by default (keyed): API keys never reach logs or alerts
    assert hashed.startswith("h-") and "alice" not in hashed and hashed == h.client_id(r)
    assert h.source(r) == "203.0.113.9"


def test_warmup_population_then_retroactive_scoring(
    upstream: str, loan: Any, tmp_path: Path
) -> None:
    """Without a reference the first ``warmup`` events build the population (nothing is scored
    before); a thief that started during the warm-up keeps its events in its window and is
    judged on all of them once the population exists (a thief inside the warm-up also shapes
    the population a little: ``--reference`` avoids that)."""
    pol = policy_file(
        tmp_path,
        "detectors: {MLH-HUNT-EXTRACTION: {medium: block, high: block, critical: block}}\n",
    )
    cfg = GuardConfig(
        upstream=upstream,
        warmup=200,
        policy=pol,
        strip_prefix="sim-",
        alerts=tmp_path / "alerts.jsonl",
    )
    with guarded(cfg) as (c, g):
        for x in thief_queries(loan, 30):
            assert ask(c, "thief", x).status_code == 200  # nothing is scored yet
        for i in range(170):
            assert ask(c, f"b{i % 17}", loan.x_holdout[i]).status_code == 200
        assert g.worker.wait_idle()
        pop = g.population.population
        assert pop is not None and pop.n_events == 200 and not pop.reference
        codes = [
            ask(c, "thief", x).status_code
            for x in thief_queries(loan, 30, seed=3)
            if g.worker.wait_idle()
        ]
        assert 403 in codes and codes.index(403) <= 25, codes
        assert ask(c, "b3", loan.x_holdout[300]).status_code == 200
    alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    first = next(a for a in alerts if a["rule_id"] == "MLH-HUNT-EXTRACTION")
    assert first["target"] == g.client_of("sim-thief") and first["evidence"]["events"] > 30


def test_fail_closed_when_detectors_error(upstream: str, reference: Path, loan: Any) -> None:
    cfg = GuardConfig(
        upstream=upstream, reference=reference, warmup=10, fail_open=False, strip_prefix="sim-"
    )
    with guarded(cfg) as (c, g):
        warm(c, g, loan)

        def broken(*_a: Any) -> Any:
            raise RuntimeError("detector bug")

        g.scorer.score = broken  # type: ignore[method-assign]
        assert ask(c, "alice", loan.x_holdout[0]).status_code == 200  # scored after answering
        g.worker.wait_idle()
        assert ask(c, "alice", loan.x_holdout[1]).status_code == 503
        health = c.get("/guard/health")
        assert health.status_code == 503 and "detector bug" in health.json()["last_error"]
        assert "mlhunt_guard_detector_errors_total" in c.get("/guard/metrics").text
        g.config.fail_open = True  # fail-open: requests pass while the detectors are broken
        assert ask(c, "alice", loan.x_holdout[2]).status_code == 200


def test_scoring_process(upstream: str, reference: Path, loan: Any, tmp_path: Path) -> None:
    """``scoring="process"``: the same decisions, alerts and log from a separate scoring
    process; fail-closed once that process is gone, until the supervisor's restart (a
    ``kill -9`` of the scoring process left requests unscored for good: issue #19)."""
    pol = policy_file(
        tmp_path,
        "detectors: {MLH-HUNT-EXTRACTION: "
        "{medium: throttle, high: throttle, critical: throttle}}\n"
        "throttle: {rate: 0.01, burst: 2}\n",
    )
    cfg = GuardConfig(
        upstream=upstream,
        reference=reference,
        warmup=10,
        policy=pol,
        alerts=tmp_path / "alerts.jsonl",
        log=tmp_path / "log.jsonl",
        strip_prefix="sim-",
        scoring="process",
        fail_open=False,
    )
    with guarded(cfg) as (c, g):
        assert c.get("/guard/health").json()["scoring"] == "process"
        warm(c, g, loan)
        answers = steal(c, g, loan)
        assert all(r.status_code == 200 for r in answers[:20])
        assert all(r.status_code == 429 for r in answers[24:]), [r.status_code for r in answers]
        assert ask(c, "b1", loan.x_holdout[99]).status_code == 200
        assert g.worker.wait_idle()
        assert g.metrics.get("mlhunt_guard_events_scored_total") >= 40  # 429s are not scored
        assert "mlhunt_guard_alerts_total" in c.get("/guard/metrics").text
        g.worker._proc.kill()  # type: ignore[union-attr]
        g.worker._proc.join(5)  # type: ignore[union-attr]
        assert ask(c, "b2", loan.x_holdout[98]).status_code == 503
        health = c.get("/guard/health")
        assert health.status_code == 503 and "scoring process exited" in health.json()["last_error"]
        # supervised (issue #19): restarted, counted and reported; scoring resumes
        assert g.worker.wait_ready(timeout=120)  # type: ignore[union-attr]
        assert ask(c, "b2", loan.x_holdout[97]).status_code == 200
        assert g.worker.wait_idle()
        assert g.metrics.get("mlhunt_guard_scoring_restarts_total") == 1
        assert g.metrics.get("mlhunt_guard_events_scored_total") >= 1  # the new process's
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [a["evidence"]["restarts"] for a in alerts if a["rule_id"] == "MLH-GUARD-SCORER"] == [1]
    thief, b2 = g.client_of("sim-thief"), g.client_of("sim-b2")
    assert [a["target"] for a in alerts if a["rule_id"] == "MLH-HUNT-EXTRACTION"] == [thief]
    recs = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(recs) >= 40 and json.loads(recs[-1])["client_id"] == b2  # after the restart


def test_encoded_crlf_in_the_path_is_never_decoded_into_the_upstream_request(
    tmp_path: Path,
) -> None:
    """A decoded ``%0d%0a`` in the request line would smuggle headers, or a whole unscored
    second request, into the kept upstream connection."""
    import socket

    from mlhunt.guard.app import normal_path as _normal_path

    seen: list[tuple[bytes, dict[bytes, bytes]]] = []

    async def rec(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Records what arrives (a bare ASGI app: no router to reject odd paths)."""
        if scope["type"] != "http":
            return
        seen.append((scope["raw_path"], dict(scope["headers"])))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with running(rec) as up:
        cfg = GuardConfig(upstream=up, warmup=10_000, log=tmp_path / "log.jsonl")
        with guarded(cfg) as (c, _g):
            host, port = c.base_url.host, c.base_url.port
            evil = (
                b"GET /a%20HTTP/1.1%0d%0aX-Evil:%201%0d%0a%0d%0aGET%20/b HTTP/1.1\r\n"
                b"Host: x\r\nConnection: close\r\n\r\n"
            )
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(evil)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            assert not answer.startswith(b"HTTP/1.1 200")  # refused; never sent upstream
            # a decoded space or a non-Latin-1 character would break the upstream request line
            assert c.get("/a%20HTTP/1.1%E2%82%AC").status_code == 200
            assert c.get("/plain/ok?q=1").status_code == 200
    assert [raw for raw, _ in seen] == [b"/a%20HTTP/1.1%E2%82%AC", b"/plain/ok"]
    assert all(b"x-evil" not in headers for _, headers in seen)
    assert _normal_path("//predict/") == _normal_path("/predict") == "/predict"


def test_memory_state_keeps_only_the_most_recently_active_targets() -> None:
    """Ids are caller-chosen (an API-key header): rotating them must not grow memory."""
    import asyncio

    from mlhunt.guard.state import MemoryStore

    store = MemoryStore(max_targets=3)
    for i in range(10):
        key = f"c{i}"
        store.append("client_id", key, [[float(i), key, "10.0.0.1", "a", 0.5, 200, None]], 4)
        store.set_levels("client_id", key, {"d": 1}, ["block"], until=1e12)
    store.append("client_id", "c7", [[11.0, "c7", "10.0.0.1", "a", 0.5, 200, None]], 4)
    store.append("client_id", "c10", [[12.0, "c10", "10.0.0.1", "a", 0.5, 200, None]], 4)
    kept = {k for (_, k) in store._recent}
    assert kept == {"c9", "c7", "c10"}
    assert store.count("client_id", "c0") == 0 and store.window("client_id", "c0") == []
    acts = asyncio.run(store.actions([("client_id", "c7"), ("client_id", "c1")], 0.0))
    assert acts == [{"block"}, set()]


def test_served_as_deployed(upstream: str, loan: Any, tmp_path: Path) -> None:
    """``serve``'s uvicorn set-up (uvloop, httptools, one write per answer, no proxy-headers
    rewriting): answers are the upstream's, byte for byte; the guard's own routes still answer;
    a local caller cannot choose its source address with ``X-Forwarded-For``."""
    import threading
    import time

    import uvicorn

    from mlhunt.guard.server import OneWriteProtocol, uvicorn_config

    cfg = GuardConfig(upstream=upstream, warmup=10_000, log=tmp_path / "log.jsonl")
    app = create_guard_app(cfg)
    config = uvicorn_config(app, port=0)
    assert config.http is OneWriteProtocol and config.loop == "uvloop"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        body = {"vector": [float(v) for v in loan.x_holdout[0]]}
        spoof = {"X-API-Key": "sim-alice", "X-Forwarded-For": "203.0.113.9"}
        with httpx.Client(base_url=url, timeout=10) as c, httpx.Client(base_url=upstream) as d:
            for _ in range(3):  # keep-alive: several answers on one connection
                got = c.post("/predict", json=body, headers=spoof)
                assert got.status_code == 200
                assert got.content == d.post("/predict", json=body, headers=spoof).content
            assert c.get("/guard/health").json()["status"] == "ok"
            assert c.post("/guard/health").status_code == 405
            assert "mlhunt_guard_requests_total" in c.get("/guard/metrics").text
        log = tmp_path / "log.jsonl"  # no population yet (warm-up): the worker only logs
        while time.monotonic() < deadline and len(log.read_text().splitlines()) < 3:
            time.sleep(0.02)
        recs = [json.loads(line) for line in log.read_text().splitlines()]
        assert len(recs) == 3 and {r["source_ip"] for r in recs} == {"127.0.0.1"}
    finally:
        server.should_exit = True
        thread.join(timeout=15)
