"""``python -m bench serving``: latency of the fraud API under a fixed request rate.

Workload: the ``fraud-detection`` scenario (seed 0; built on first use into ``$MLHUNT_CACHE``,
else ``bench/out/cache``) served by mlhunt's prediction API (:func:`create_app`, FastAPI on
uvicorn, API-key auth, inference log written to a JSONL file as deployed) with
:func:`running` on 127.0.0.1 in this process.

Load generator: a separate process (so it does not share the server's GIL) on loopback, asyncio +
httpx with keep-alive connections, *open loop*: request ``k`` is sent at ``t0 + k / (2 * rate)``
whether or not earlier ones have answered, alternating ``POST /predict`` (a fresh, realistic
transaction from the scenario's benign sampler or a held-out fraud, by feature name) and
``GET /health``, so each route gets ``rate`` requests per second and both see the same machine,
the same connections and the same background noise. Full run: 100 req/s per route for 20 s
(4,000 requests); ``--quick``: 5 s. A one-second warm-up (separate client id, excluded) comes
first; every request has a 5 s timeout and the whole run a hard deadline.

Reported per route: requests, errors, achieved rate, p50 / p99 / mean / max latency from sending
the request to reading the whole response, and p99 measured from the *scheduled* send time
(includes any lag of the generator: the coordinated-omission-free figure). For predict, the
handler time recorded in the inference log (``latency_ms``: validation and model) as well.
``errors`` counts non-200 answers, transport errors and requests not answered within 5 s; they
are left out of the percentiles, so a run with errors was overloaded and its latencies are
optimistic.

``ratio`` = health p99 / predict p99: what the model, request validation and logging add on top
of the same app's bare route. It is at most about 1 by construction (predict does everything
health does, plus the model), so it reads as "the share of predict's tail latency that is plain
HTTP serving"; closer to 1 is better.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import log

RATE = 100  # requests per second, per route
FULL_S = 20.0
QUICK_S = 5.0
WARMUP_S = 1.0
REQUEST_TIMEOUT_S = 5.0
CONNECTIONS = 32
KEY, CLIENT = "bench-key", "bench-client"
WARMUP_KEY, WARMUP_CLIENT = "bench-warmup-key", "bench-warmup"
PAYLOADS = 1_000
SEED = 0


def _cache() -> Path:
    root = os.environ.get("MLHUNT_CACHE")
    base = Path(root) if root else Path(__file__).resolve().parent / "out" / "cache"
    return base / "scenarios" / f"fraud-detection-seed{SEED}"


def _stats(lat_ms: list[float]) -> dict[str, float]:
    if not lat_ms:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    a = np.asarray(lat_ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "mean_ms": round(float(a.mean()), 3),
        "max_ms": round(float(a.max()), 3),
    }


# --- the load generator (runs in a child process) -----------------------------------------------


async def _generate(
    url: str, rate: float, seconds: float, key: str, payloads: list[dict[str, Any]]
) -> list[tuple[str, float, float, float, int]]:
    """Open-loop schedule; returns (route, scheduled, sent, done, status) per request, times in
    seconds from the start; status 0 = transport error or timeout."""
    import asyncio

    import httpx

    n = round(2 * rate * seconds)
    interval = 1.0 / (2 * rate)
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    out: list[tuple[str, float, float, float, int]] = []
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT_S) as c:
        # Open the keep-alive connections before the clock starts.
        await asyncio.gather(*(c.get("/health") for _ in range(8)))
        t0 = time.perf_counter()

        async def one(k: int, scheduled: float) -> None:
            route = "health" if k % 2 == 0 else "predict"
            sent = time.perf_counter() - t0
            status = 0
            try:
                if route == "health":
                    call = c.get("/health")
                else:
                    body = {"features": payloads[(k // 2) % len(payloads)]}
                    call = c.post("/predict", json=body, headers=headers)
                # httpx's timeout is per phase (pool, connect, read): bound the whole request.
                r = await asyncio.wait_for(call, REQUEST_TIMEOUT_S)
                status = r.status_code
            except (httpx.HTTPError, TimeoutError):
                pass
            out.append((route, scheduled, sent, time.perf_counter() - t0, status))

        tasks = []
        for k in range(n):
            scheduled = k * interval
            delay = scheduled - (time.perf_counter() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(k, scheduled)))
        _done, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
        for task in pending:  # cannot happen with the per-request bound; counted as errors
            task.cancel()
    # Requests that never finished are reported as errors (status 0) with no latency.
    finished = {(route, sched) for route, sched, *_ in out}
    for k in range(n):
        route, sched = ("health" if k % 2 == 0 else "predict"), k * interval
        if (route, sched) not in finished:
            out.append((route, sched, sched, float("nan"), 0))
    return out


def _generator_main(conn: Any, url: str, rate: float, seconds: float, payloads: list) -> None:
    import asyncio

    asyncio.run(_generate(url, rate, WARMUP_S, WARMUP_KEY, payloads))
    conn.send(asyncio.run(_generate(url, rate, seconds, KEY, payloads)))
    conn.close()


def _route_report(rows: list, route: str, rate: float) -> dict[str, Any]:
    mine = [r for r in rows if r[0] == route]
    ok = [r for r in mine if r[4] == 200]
    service = [(done - sent) * 1000 for _, _, sent, done, _ in ok]
    scheduled = [(done - sched) * 1000 for _, sched, _, done, _ in ok]
    span = max(r[3] for r in ok) - min(r[1] for r in ok) if ok else float("nan")
    rep: dict[str, Any] = {
        "route": "POST /predict" if route == "predict" else "GET /health",
        "requests": len(mine),
        "errors": len(mine) - len(ok),
        "rate_target": rate,
        "rate_achieved": round(len(ok) / span, 2) if ok else 0.0,
        **_stats(service),
        "p99_from_schedule_ms": _stats(scheduled)["p99_ms"],
        "max_send_lag_ms": round(max((s - c) * 1000 for _, c, s, _, _ in mine), 3),
        "timeout_s": REQUEST_TIMEOUT_S,
    }
    return rep


def run(quick: bool = False, rate: float = RATE, seconds: float | None = None) -> dict[str, Any]:
    from mlhunt.scenarios import ensure_built
    from mlhunt.scenarios.server import KeyStore, create_app, running

    seconds = (QUICK_S if quick else FULL_S) if seconds is None else seconds
    directory = _cache()
    log(f"fraud-detection scenario (seed {SEED}) in {directory}")
    built, loaded = ensure_built("fraud-detection", seed=SEED, directory=directory, progress=log)

    rng = np.random.default_rng(12345)
    rows = loaded.sample_benign(PAYLOADS - 50, rng)
    frauds = loaded.x_holdout[loaded.y_holdout == 1][:50]
    mixed = np.vstack([rows, frauds])[rng.permutation(PAYLOADS)]
    payloads = [loaded.features(x) for x in mixed]

    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-serving-") as tmp:
        log_path = Path(tmp) / "inference.jsonl"
        keys = KeyStore({KEY: CLIENT, WARMUP_KEY: WARMUP_CLIENT})
        app = create_app(loaded, keys=keys, log_path=log_path)
        with running(app) as url:
            log(f"API on {url}; {rate:g} req/s per route for {seconds:g}s (+{WARMUP_S:g}s warm-up)")
            ctx = mp.get_context("spawn")
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_generator_main, args=(child, url, rate, seconds, payloads), daemon=True
            )
            proc.start()
            child.close()
            deadline = WARMUP_S + seconds + 2 * REQUEST_TIMEOUT_S + 60
            if not parent.poll(deadline):
                proc.kill()
                raise RuntimeError(f"load generator gave no result within {deadline:.0f}s")
            results = parent.recv()
            proc.join(timeout=10)
        records = [json.loads(line) for line in log_path.read_text("utf-8").splitlines()]
    handler = [r["latency_ms"] for r in records if r["client_id"] == CLIENT]

    predict = _route_report(results, "predict", rate)
    health = _route_report(results, "health", rate)
    hs = _stats(handler)
    predict["handler_p50_ms"], predict["handler_p99_ms"] = hs["p50_ms"], hs["p99_ms"]
    predict["logged"] = len(handler)
    for name, rep in (("predict", predict), ("health", health)):
        log(
            f"{name}: p50 {rep['p50_ms']} ms, p99 {rep['p99_ms']} ms, "
            f"{rep['rate_achieved']} req/s, {rep['errors']} errors"
        )
    ratio = round(health["p99_ms"] / predict["p99_ms"], 3) if predict["p99_ms"] else 0.0
    return {
        "mlhunt": predict,
        "peer": health,
        "ratio": ratio,
        "workload": {
            "scenario": "fraud-detection",
            "model": loaded.model_name,
            "trees": built.metrics.get("n_trees"),
            "rate_per_route": rate,
            "seconds": seconds,
            "connections": CONNECTIONS,
            "generator": "separate process, asyncio + httpx, open loop, keep-alive",
            "inference_log": True,
        },
    }
