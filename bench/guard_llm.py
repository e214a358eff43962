"""``python -m bench guard_llm``: what ``mlhunt guard --llm`` adds to an LLM call.

Upstream: the stand-in LLM API (:mod:`mlhunt.guard.llm.standin`, named so: fixed answers, no
model) under uvicorn in its own process; streamed answers one word per delta, 2 ms apart, so a
stream has a first token to wait for and a tail. Guard: ``create_guard_app(GuardConfig(llm=True,
…))`` under uvicorn in its own process, scoring in its own process as ``mlhunt guard --llm``
does by default (``GUARD_LLM_BENCH_SCORING=thread``: on a thread of the proxy), the shipped LLM
policy (every kind redacted), memory state, log and alerts written to files as deployed. Load
generator: one process, httpx, *open loop* at ``rate`` requests per second (sent on schedule
whether or not earlier ones answered), alternating one-second slices between the direct route
and the guarded route so both see the same machine; 50 benign clients asking helpdesk questions.
Two phases: non-streamed calls (latency = the whole answer read) and streamed calls (time to the
first content delta, TTFT, and to the end). Full run: 200 req/s, 2 x 10 s per phase;
``--quick``: 50 req/s, 2 x 3 s (``GUARD_LLM_BENCH_RATE`` / ``GUARD_LLM_BENCH_SECONDS``
override). A warm-up second through the guard comes first and is excluded.

``mlhunt`` = the guarded route with ``p50_added_ms`` / ``p99_added_ms`` (non-streamed) and
``ttft_p50_added_ms`` / ``ttft_p99_added_ms`` (streamed); ``peer`` = the direct route;
``ratio`` = direct p99 / guarded p99 of the non-streamed calls (at most about 1).
``cpu_ms_per_request``: the guard process's CPU time (``/proc``, as ``bench.guard_cpu``) over
the run divided by the requests it proxied: the number a busy machine barely moves;
``scoring_cpu_ms_per_request``: the same for its scoring process (0 with a scoring thread, whose
CPU is in the first).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import log
from bench.guard import _wait
from bench.guard_cpu import children, cpu_s

QUESTIONS = [
    "How do I connect to the VPN from home?",
    "The printer on floor 3 is jammed again.",
    "My laptop is really slow since yesterday.",
    "I can't see the shared mailbox for finance.",
]
SYSTEM = "You are HelpBot, the IT helpdesk assistant of ACME. CANARY-bench-7f3a. Be brief."
TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_upstream(port: int) -> None:
    import uvicorn

    from mlhunt.guard.llm import StandinOptions, create_standin_app
    from mlhunt.guard.server import uvicorn_config

    app = create_standin_app(StandinOptions(token_delay_s=0.002))
    uvicorn.Server(uvicorn_config(app, port=port)).run()


def _serve_guard(port: int, upstream: str, tmp: str, scoring: str = "process") -> None:
    from mlhunt.guard import GuardConfig, serve

    d = Path(tmp)
    cfg = GuardConfig(
        upstream=upstream,
        llm=True,
        canaries=("CANARY-bench-7f3a",),
        log=d / "gateway.jsonl",
        alerts=d / "alerts.jsonl",
        scoring=scoring,  # type: ignore[arg-type]  # "thread" or "process"
    )
    serve(cfg, port=port)


Row = tuple[str, float, float, float, float, int]  # route, scheduled, sent, first, done, status


async def _generate(urls: dict[str, str], rate: float, slices: list[str], stream: bool) -> list:
    import asyncio
    import json

    import httpx

    out: list[Row] = []
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    client = httpx.AsyncClient(limits=limits, timeout=TIMEOUT_S)
    per = round(rate)
    t0 = time.perf_counter()

    async def one(route: str, k: int, scheduled: float) -> None:
        sent = time.perf_counter() - t0
        first = done = float("nan")
        status = 0
        body = {
            "model": "standin",
            "stream": stream,
            "user": f"bench-{k % 50}",
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTIONS[k % len(QUESTIONS)]},
            ],
        }
        headers = {"x-api-key": f"bench-{k % 50}"}
        try:
            url = urls[route] + "/v1/chat/completions"
            async with client.stream("POST", url, json=body, headers=headers) as r:
                status = r.status_code
                async for line in r.aiter_lines():
                    if (
                        line.startswith("data: {")
                        and first != first
                        and json.loads(line[6:])["choices"][0]["delta"].get("content")
                    ):
                        first = time.perf_counter() - t0
                done = time.perf_counter() - t0
        except httpx.HTTPError:
            status = 0
        out.append((route, scheduled, sent, first, done, status))

    tasks = []
    for s, route in enumerate(slices):
        for j in range(per):
            scheduled = s + j / rate
            await asyncio.sleep(max(scheduled - (time.perf_counter() - t0), 0.0))
            tasks.append(asyncio.ensure_future(one(route, s * per + j, scheduled)))
    if tasks:
        await asyncio.wait(tasks, timeout=TIMEOUT_S + 5)
    await client.aclose()
    return out


def _generator_main(conn: Any, urls: dict[str, str], rate: float, seconds: int) -> None:
    import asyncio

    asyncio.run(_generate(urls, rate, ["guard"], False))  # warm-up, excluded
    rows = {}
    for stream in (False, True):
        rows[stream] = asyncio.run(_generate(urls, rate, ["direct", "guard"] * seconds, stream))
    conn.send(rows)
    conn.close()


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def _route(rows: list[Row], route: str, seconds: int) -> dict[str, Any]:
    mine = [r for r in rows if r[0] == route]
    ok = [r for r in mine if r[5] == 200]
    total = [(done - sent) * 1000 for _, _, sent, _, done, _ in ok]
    ttft = [(first - sent) * 1000 for _, _, sent, first, _, _ in ok if first == first]
    return {
        "requests": len(mine),
        "errors": len(mine) - len(ok),
        "rate_achieved": round(len(ok) / seconds, 1),
        "p50_ms": _pct(total, 50),
        "p99_ms": _pct(total, 99),
        "ttft_p50_ms": _pct(ttft, 50),
        "ttft_p99_ms": _pct(ttft, 99),
    }


def run(quick: bool = False) -> dict[str, Any]:
    env = os.environ.get
    rate = float(env("GUARD_LLM_BENCH_RATE", 50 if quick else 200))
    seconds = int(env("GUARD_LLM_BENCH_SECONDS", 3 if quick else 10))
    scoring = env("GUARD_LLM_BENCH_SCORING", "process")  # as `mlhunt guard --llm` by default
    ctx = mp.get_context("spawn")
    up_port, guard_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-guard-llm-") as tmp:
        procs = [
            ctx.Process(target=_serve_upstream, args=(up_port,), daemon=True),
            ctx.Process(  # not a daemon: it starts its scoring process
                target=_serve_guard,
                args=(guard_port, f"http://127.0.0.1:{up_port}", tmp, scoring),
            ),
        ]
        for p in procs:
            p.start()
        try:
            _wait(f"http://127.0.0.1:{up_port}/v1/models")
            _wait(f"http://127.0.0.1:{guard_port}/guard/health")
            urls = {
                "direct": f"http://127.0.0.1:{up_port}",
                "guard": f"http://127.0.0.1:{guard_port}",
            }
            log(f"guard_llm: {rate:g} req/s, 2 x {seconds} s, non-streamed then streamed")
            recv, send = ctx.Pipe(duplex=False)
            gen = ctx.Process(target=_generator_main, args=(send, urls, rate, seconds))
            # the guard's process, and its scoring process (``--scoring process``)
            scorers = children(procs[1].pid)  # type: ignore[arg-type]
            cpu0 = cpu_s(procs[1].pid)  # type: ignore[arg-type]
            score0 = sum(cpu_s(p) for p in scorers)
            gen.start()
            rows = recv.recv()
            gen.join(timeout=30)
            time.sleep(1.0)  # the scoring worker finishes the last calls
            guard_cpu = cpu_s(procs[1].pid) - cpu0  # type: ignore[arg-type]
            scoring_cpu = sum(cpu_s(p) for p in scorers) - score0
            load = os.getloadavg()[0]
        finally:
            for p in procs:
                p.terminate()
                p.join(timeout=10)
    plain = {r: _route(rows[False], r, seconds) for r in ("direct", "guard")}
    streamed = {r: _route(rows[True], r, seconds) for r in ("direct", "guard")}
    guard, direct = plain["guard"], plain["direct"]

    def added(key: str, phase: dict[str, dict[str, Any]]) -> float:
        return round(phase["guard"][key] - phase["direct"][key], 3)

    return {
        "mlhunt": {
            **guard,
            "p50_added_ms": added("p50_ms", plain),
            "p99_added_ms": added("p99_ms", plain),
            "ttft_p50_added_ms": added("ttft_p50_ms", streamed),
            "ttft_p99_added_ms": added("ttft_p99_ms", streamed),
            "streamed": streamed["guard"],
            # CPU the guard's process spent per guarded request (proxy, redaction, scoring):
            # what the load on a shared machine barely moves
            "cpu_ms_per_request": round(1000 * guard_cpu / (rate * (1 + 2 * seconds)), 3),
            # with --scoring process: the scoring process's CPU per guarded request
            "scoring_cpu_ms_per_request": round(1000 * scoring_cpu / (rate * (1 + 2 * seconds)), 3),
        },
        "peer": {**direct, "streamed": streamed["direct"]},
        "ratio": round(direct["p99_ms"] / guard["p99_ms"], 3) if guard["p99_ms"] else None,
        "workload": {
            "rate": rate,
            "seconds_per_route": seconds,
            "scoring": scoring,
            "load_avg_after": load,
        },
    }
