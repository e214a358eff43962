"""``mlhunt guard`` turned against the model it guards (issue #19), part 2: detection and
policy. Each test reproduces one reported attack through the guard on loopback and fails on
the code before the fix:

- row 2: one deeply nested JSON body dropped a whole scoring batch (fail-closed: 503 for all);
- row 3: the first batch's vector length fixed the population's dimension for good;
- row 4: ``--trust-forwarded`` believed the first ``X-Forwarded-For`` hop, which clients write;
- row 6: failed requests (401/422) were scored and made the warm-up;
- row 7: degrade missed batch answers, nested scores, compressed answers and 201s;
- row 10: API keys were recorded as they are;
- row 11: ``/guard/health`` and ``/guard/metrics`` answered every client.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlhunt.guard import GuardConfig
from mlhunt.scenarios.server import running
from tests.test_guard import (
    ask,
    guarded,
    loan,
    policy_file,
    reference,
    thief_queries,
    upstream,
    warm,
)

__all__ = ["loan", "reference", "upstream"]  # module fixtures shared with test_guard

EXACT = [0.73519, 0.26481]
DEEP = b"[" * 3000  # past the JSON parser's recursion limit


def any_body_stand_in() -> Starlette:
    """A stand-in model API that answers 200 with the same exact scores to any body, in the
    shapes real APIs use (what a permissive or batch API does with hostile input)."""

    def one(**kw: Any) -> dict[str, Any]:
        return {"label": "approve", "scores": list(EXACT), **kw}

    async def predict(_r: Request) -> JSONResponse:
        return JSONResponse(one())

    async def batch(_r: Request) -> JSONResponse:
        return JSONResponse([one(), one()])

    async def nested(_r: Request) -> JSONResponse:
        return JSONResponse({"predictions": [{"scores": list(EXACT)}, {"scores": list(EXACT)}]})

    async def many(_r: Request) -> JSONResponse:
        return JSONResponse({"label": ["approve"], "scores": [list(EXACT), list(EXACT)]})

    async def created(_r: Request) -> JSONResponse:
        return JSONResponse(one(), status_code=201)

    async def gz(_r: Request) -> Response:
        body = gzip.compress(json.dumps(one()).encode())
        return Response(body, headers={"content-encoding": "gzip"}, media_type="application/json")

    return Starlette(
        routes=[
            Route(f"/{name}", fn, methods=["POST"])
            for name, fn in [
                ("predict", predict),
                ("batch", batch),
                ("nested", nested),
                ("many", many),
                ("created", created),
                ("gz", gz),
            ]
        ]
    )


def vector(n: int, seed: int) -> list[float]:
    return np.random.default_rng(seed).uniform(0, 1, n).round(4).tolist()


def test_hostile_json_never_stops_detection(
    upstream: str, reference: Path, loan: Any, tmp_path: Path
) -> None:
    """Row 2: an extraction client interleaving deeply nested bodies is still blocked, and
    with ``--fail-closed`` no other client is refused because of them."""
    pol = policy_file(
        tmp_path, "detectors: {MLH-HUNT-EXTRACTION: {medium: block, high: block, critical: block}}"
    )
    cfg = GuardConfig(
        upstream=upstream,
        reference=reference,
        warmup=10,
        policy=pol,
        fail_open=False,
        strip_prefix="sim-",
    )
    with guarded(cfg) as (c, g):
        warm(c, g, loan)
        codes = []
        for i, x in enumerate(thief_queries(loan, 40)):
            codes.append(ask(c, "thief", x).status_code)
            if i % 4 == 0:  # the API refuses it (422): an event, its body never parsed
                c.post("/predict", content=DEEP, headers={"X-API-Key": "sim-thief"})
            assert g.worker.wait_idle()
            assert ask(c, "b1", loan.x_holdout[i]).status_code == 200  # never a 503
        assert 403 in codes, codes
        assert "mlhunt_guard_detector_errors_total" not in c.get("/guard/metrics").text
    with running(any_body_stand_in()) as api:  # answered 200: parsed, in its own boundary
        cfg = GuardConfig(upstream=api, reference=reference, warmup=10, fail_open=False)
        with guarded(cfg) as (c, g):
            for body in (DEEP, b'{"vector": ' + DEEP + b"]}", b"not json"):
                assert c.post("/predict", content=body).status_code == 200
                assert g.worker.wait_idle()
                assert c.post("/predict", json={"vector": vector(9, 0)}).status_code == 200
            assert g.metrics.get("mlhunt_guard_events_malformed_total") == 2
            assert g.metrics.get("mlhunt_guard_detector_errors_total") == 0
            assert c.get("/guard/health").status_code == 200


def test_population_dimension_is_not_set_by_the_first_request(upstream: str, loan: Any) -> None:
    """Row 3: one request with another vector length before the benign traffic kept the
    population from ever being built (detection never started)."""
    cfg = GuardConfig(upstream=upstream, warmup=20, strip_prefix="sim-")
    with guarded(cfg) as (c, g):  # the real API: other lengths are refused (401/422)
        assert c.post("/predict", json={"vector": [1.0, 2.0, 3.0]}).status_code == 401
        assert ask(c, "x", [1.0, 2.0, 3.0]).status_code == 422
        warm(c, g, loan)
        assert g.population.population is not None and g.population.population.d == 9
    with running(any_body_stand_in()) as api:  # an API answering any length with 200
        with guarded(GuardConfig(upstream=api, warmup=20)) as (c, g):
            for i in range(8):
                c.post("/predict", json={"vector": vector(3, i)}, headers={"X-API-Key": "a"})
            for i in range(16):
                c.post(
                    "/predict", json={"vector": vector(9, i)}, headers={"X-API-Key": f"b{i % 4}"}
                )
            assert g.worker.wait_idle() and g.worker.population_ready
            assert g.population.population.d == 9  # the length most clients sent
        with guarded(GuardConfig(upstream=api, warmup=20, input_dim=9)) as (c, g):
            for i in range(20):  # 20 keys agreeing on a wrong length change nothing
                c.post("/predict", json={"vector": vector(3, i)}, headers={"X-API-Key": f"s{i}"})
            for i in range(20):
                c.post("/predict", json={"vector": vector(9, i)}, headers={"X-API-Key": "b"})
            assert g.worker.wait_idle() and g.worker.population_ready
            assert g.population.population.d == 9


def test_forwarded_for_takes_the_right_most_untrusted_hop(upstream: str, tmp_path: Path) -> None:
    """Row 4: behind an ingress that appends the real address, a client writing its own first
    hop got one source address per query (no sybil alert). Now: the right-most hop."""
    cfg = GuardConfig(upstream=upstream, warmup=10_000, trust_forwarded=True, log=tmp_path / "l")
    body = {"vector": [1.0] * 9}
    with guarded(cfg) as (c, g):
        for key in range(6):
            for q in range(3):
                spoof = f"203.0.113.{key * 3 + q}, 198.51.100.7"  # the ingress appended .7
                hdrs = {"X-API-Key": f"sim-k{key}", "X-Forwarded-For": spoof}
                assert c.post("/predict", json=body, headers=hdrs).status_code == 200
        g.worker.wait_idle()
        deadline = time.monotonic() + 120
        while len((tmp_path / "l").read_text().splitlines()) < 18:
            assert time.monotonic() < deadline, "not logged"
            time.sleep(0.02)
    sources = {json.loads(line)["source_ip"] for line in (tmp_path / "l").read_text().splitlines()}
    assert sources == {"198.51.100.7"}
    # a chain of trusted proxies: the right-most address that is not one of them
    h = GuardConfig(upstream=upstream, trusted_proxies=("10.0.0.0/8", "127.0.0.1"))
    with guarded(h) as (_c, g):
        assert g.source_of("1.2.3.4, 203.0.113.5, 10.1.1.1", "127.0.0.1") == "203.0.113.5"
        assert g.source_of("203.0.113.5, 10.1.1.1", "192.0.2.1") == "192.0.2.1"  # untrusted peer
        assert g.source_of("junk, 10.1.1.1", "127.0.0.1") == "10.1.1.1"
        assert g.source_of("10.2.2.2", "127.0.0.1") == "10.2.2.2"  # all trusted: the left-most


def test_failed_requests_are_events_but_never_the_population(
    upstream: str, loan: Any, tmp_path: Path
) -> None:
    """Row 6: refused requests were scored as predictions and made the warm-up."""
    cfg = GuardConfig(upstream=upstream, warmup=10, strip_prefix="sim-", log=tmp_path / "log")
    with guarded(cfg) as (c, g):
        for i in range(12):
            assert c.post("/predict", json={"vector": vector(9, i)}).status_code == 401
            assert ask(c, "x", vector(5, i)).status_code == 422
        assert g.worker.wait_idle()
        assert not g.worker.population_ready and g.population.builder.n == 0
        events = g.store.window("source_ip", "127.0.0.1")  # floods and stuffing still count
        assert sorted({e[5] for e in events}) == [401, 422] and all(e[6] is None for e in events)
        warm(c, g, loan, n=10)
    assert len((tmp_path / "log").read_text().splitlines()) == 10  # answered predictions only


def test_degrade_cannot_be_sidestepped(tmp_path: Path) -> None:
    """Row 7: a batch answer, nested scores, a list of score lists and a 201 came back exact to
    a degraded client; a compressed answer cannot be rewritten, so it is refused."""
    pol = policy_file(tmp_path, "degrade: {mode: round, decimals: 1}\n")
    with running(any_body_stand_in()) as api:
        cfg = GuardConfig(upstream=api, policy=pol, warmup=10_000, hash_client_ids=False)
        with guarded(cfg) as (c, g):
            g.store.set_levels("client_id", "thief", {}, ["degrade"], until=time.time() + 3600)
            rounded = [round(s, 1) for s in EXACT]

            def get(path: str) -> httpx.Response:
                return c.post(path, json={"vector": [1.0]}, headers={"X-API-Key": "thief"})

            assert get("/predict").json()["scores"] == rounded
            assert [d["scores"] for d in get("/batch").json()] == [rounded, rounded]
            assert [d["scores"] for d in get("/nested").json()["predictions"]] == [rounded] * 2
            assert get("/many").json()["scores"] == [rounded, rounded]
            created = get("/created")
            assert created.status_code == 201 and created.json()["scores"] == rounded
            assert get("/gz").status_code == 502  # fail closed
            other = c.post("/gz", json={"vector": [1.0]}, headers={"X-API-Key": "benign"})
            assert other.status_code == 200 and other.json()["scores"] == EXACT


def test_api_keys_are_never_recorded(upstream: str, loan: Any, tmp_path: Path) -> None:
    """Row 10: client ids were the raw API keys in logs, alerts and state keys."""
    cfg = GuardConfig(upstream=upstream, warmup=10_000, log=tmp_path / "log", id_key="k1")
    with guarded(cfg) as (c, g):
        assert ask(c, "alice", loan.x_holdout[0]).status_code == 200
        g.worker.wait_idle()
        deadline = time.monotonic() + 120
        while not (tmp_path / "log").read_text():
            assert time.monotonic() < deadline, "not logged"
            time.sleep(0.02)
        assert g.store.count("client_id", g.client_of("sim-alice")) == 1  # state: the hash
        assert g.store.count("client_id", "alice") == g.store.count("client_id", "sim-alice") == 0
    text = (tmp_path / "log").read_text()
    assert "alice" not in text and json.loads(text)["client_id"] == g.client_of("sim-alice")
    again = GuardConfig(upstream=upstream, id_key="k1")
    other = GuardConfig(upstream=upstream, id_key="k2")
    with guarded(again) as (_c, g1), guarded(other) as (_d, g2):
        assert g1.client_of("sim-alice") == g.client_of("sim-alice")  # same key, same id
        assert g2.client_of("sim-alice") != g.client_of("sim-alice")  # keyed: not a plain hash


def test_health_and_metrics_are_not_for_every_client(upstream: str) -> None:
    """Row 11: the guard's own state (upstream, last error, warm-up, alert counts) answered
    every client; now only peers in ``admin_allow`` (loopback by default)."""
    cfg = GuardConfig(upstream=upstream, warmup=10_000, admin_allow=("10.0.0.0/8",))
    with guarded(cfg) as (c, _g):
        for path in ("/guard/health", "/guard/metrics"):
            r = c.get(path)
            assert r.status_code == 404 and "mlhunt_guard" not in r.text
            assert "population_ready" not in r.text
    with guarded(GuardConfig(upstream=upstream, warmup=10_000)) as (c, _g):
        assert c.get("/guard/health").json()["status"] == "ok"  # loopback: the operator
