"""``python -m bench guard``: latency the guard adds at a fixed request rate (guard vs direct).

Upstream (``GUARD_BENCH_UPSTREAM``): ``light`` (default) is a raw asyncio HTTP/1.1 server in its
own process that answers ``POST /predict`` with the loan API's response shape and the loan
model's real scores for each benchmark request, computed before the run (a table keyed by the
request body), so the run measures the guard, not the model API's capacity (a 2-core machine
cannot serve the FastAPI loan API at 1,000 req/s). ``loan`` is the real ``loan-approval`` API
(:func:`create_app` under uvicorn, 4 workers in a full run).

Guard: :func:`create_guard_app` under uvicorn in its own process, shipped default policy,
memory state, the loan training inputs as ``--reference``, inference log and alerts written to
files as deployed; scoring (``GUARD_BENCH_SCORING``) ``process`` (default: a separate scoring
process), ``thread`` (in the proxy's process) or ``off`` (the population is never built: the
proxy path alone).

Load generator: separate processes (``GUARD_BENCH_GENERATORS``, 2 in a full run, 1 in a quick
one), asyncio with the guard's own keep-alive HTTP/1.1 pool (up to 64 idle connections per
route, the same client for both routes), *open loop*: requests are sent on a fixed schedule at
``rate`` per second whether or not earlier ones have answered (a closed loop would wait for
answers and hide latency). The run alternates one-second slices between the direct route and
the guarded route, so both see the same machine, the same upstream load and the same
background noise. Each request is a fresh realistic application (the scenario's benign sampler,
by vector) from one of 50 benign clients, each from its own address (``X-Forwarded-For``,
trusted by the guard: 1,000 req/s from one address *is* a flood). Full run: 1,000 req/s for
2 x 10 s; ``--quick``: 200 req/s for 2 x 3 s (``GUARD_BENCH_RATE`` / ``GUARD_BENCH_SECONDS``
override). A two-second warm-up through the guard (it also builds the guard's population)
comes first and is excluded.

Reported per route: p50 / p99 / p99.9 / mean / max latency from sending the request to reading
the whole response, p99 from the *scheduled* send time, errors (non-200, transport errors, 5 s
timeouts; left out of the percentiles), the achieved rate (answered requests per second of the
route's slices) and the generator's worst send lag. ``mlhunt`` = the guarded route plus
``p50_added_ms``, ``p99_added_ms`` and ``p999_added_ms`` (guarded minus direct); ``peer`` = the
direct route; ``ratio`` = direct p99 / guarded p99 (at most about 1 by construction: closer to
1 is better). ``workload.load_avg`` is the 1-minute load average before and after the run.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench import log
from bench.serving import _stats

FULL_RATE, QUICK_RATE = 1000.0, 200.0
FULL_S, QUICK_S = 10, 3  # seconds per route, in one-second slices
WARMUP_S = 2.0
REQUEST_TIMEOUT_S = 5.0
CONNECTIONS = 64
CLIENTS = 50
API_WORKERS_FULL = 4  # uvicorn workers of the loan API in a full run
GENERATORS_FULL = 2  # load-generator processes in a full run (each sends every 2nd request of
# the one shared schedule; more would only compete for a 2-core machine's cores)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_factory() -> Any:
    """The loan API (what each uvicorn worker process serves)."""
    from mlhunt.scenarios import ensure_built
    from mlhunt.scenarios.server import KeyStore, create_app

    _b, loaded = ensure_built("loan-approval")
    return create_app(loaded, keys=KeyStore({}, prefix="sim-"))


def _start_api(port: int, workers: int) -> subprocess.Popen[bytes]:
    """The API under uvicorn's own CLI (its multi-worker mode needs a real process, not a
    multiprocessing child): several workers in a full run, so the API is not what saturates."""
    return subprocess.Popen(  # our interpreter and uvicorn, fixed arguments
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.guard:api_factory",
            "--factory",
            "--workers",
            str(workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=str(Path(__file__).resolve().parent.parent),
    )


def _light_main(port: int, table: dict[bytes, bytes], default: bytes) -> None:
    """The light upstream: HTTP/1.1 keep-alive on asyncio streams; ``POST`` answers the
    precomputed loan answer for the body (``default`` for an unknown one), ``GET`` a health
    document. Microseconds per request, so the guard is what the run measures."""
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        n = int(line[15:])
                body = await reader.readexactly(n) if n else b""
                out = b'{"status":"ok"}' if head.startswith(b"GET") else table.get(body, default)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(out), out)
                )
                if writer.transport.get_write_buffer_size() > 1 << 16:
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _answers(loaded: Any, payloads: list[list[float]]) -> tuple[dict[bytes, bytes], bytes]:
    """The loan API's answer to each benchmark request (what ``create_app`` would return)."""
    import json

    probs = loaded.predict_proba(np.asarray(payloads, dtype=np.float64))
    classes = list(loaded.classes)
    table = {}
    for x, p in zip(payloads, probs, strict=True):
        doc = {
            "label": classes[int(np.argmax(p))],
            "scores": [round(float(v), 6) for v in p],
            "classes": classes,
            "model": loaded.model_name,
        }
        table[json.dumps({"vector": x}).encode()] = json.dumps(doc).encode()
    return table, next(iter(table.values()))


def _serve_guard(port: int, upstream: str, tmp: str, scoring: str) -> None:
    from mlhunt.guard import GuardConfig, serve

    d = Path(tmp)
    # scoring "off": the population is never built, so nothing is scored (the proxy alone)
    warmup = 1_000_000_000 if scoring == "off" else 200
    serve(
        GuardConfig(
            upstream=upstream,
            reference=d / "ref.npz",
            log=d / "guard-log.jsonl",
            alerts=d / "alerts.jsonl",
            strip_prefix="sim-",
            warmup=warmup,
            trust_forwarded=True,
            scoring="thread" if scoring == "off" else scoring,
        ),  # type: ignore[arg-type]
        port=port,
    )


def _wait(url: str, deadline_s: float = 60.0) -> None:
    import httpx

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {deadline_s:.0f}s")


Row = tuple[str, float, float, float, int]


async def _generate(
    urls: dict[str, str],
    rate: float,
    slices: list[str],
    payloads: list[list[float]],
    part: int,
    parts: int,
    first: int = 0,
) -> list[Row]:
    """Open loop over one-second slices (``slices``: route per second): this process sends the
    requests ``k`` with ``k % parts == part``; (route, scheduled, sent, done, status) per
    request, times from the shared start; status 0 = transport error or timeout. The client is
    the guard's own keep-alive pool, lighter than a general client, for both routes alike."""
    import asyncio
    import json

    from mlhunt.guard.upstream import StreamPool, UpstreamError

    out: list[Row] = []
    pools = {r: StreamPool(u, REQUEST_TIMEOUT_S, max_idle=CONNECTIONS) for r, u in urls.items()}
    per = round(rate)
    t0 = time.perf_counter()

    async def one(route: str, k: int, scheduled: float) -> None:
        sent = time.perf_counter() - t0
        status = 0
        body = json.dumps({"vector": payloads[(first + k) % len(payloads)]}).encode()
        c = k % CLIENTS  # each benign client calls from its own address
        headers = [
            ("content-type", "application/json"),
            ("x-api-key", f"sim-bench-{c}"),
            ("x-forwarded-for", f"10.0.{c}.1"),
        ]
        with contextlib.suppress(UpstreamError):
            status = (await pools[route].request("POST", "/predict", headers, body))[0]
        out.append((route, scheduled, sent, time.perf_counter() - t0, status))

    tasks = []
    for s, route in enumerate(slices):
        for j in range(part, per, parts):
            scheduled = s + j / rate
            delay = scheduled - (time.perf_counter() - t0)
            # when behind, still yield, so sent requests are served while new ones start
            await asyncio.sleep(max(delay, 0.0))
            tasks.append(asyncio.ensure_future(one(route, s * per + j, scheduled)))
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
    for p in pools.values():
        await p.aclose()
    return out


def _generator_main(
    conn: Any,
    urls: dict[str, str],
    rate: float,
    seconds: int,
    payloads: list[list[float]],
    part: int,
    parts: int,
    start_at: float,
) -> None:
    import asyncio

    time.sleep(max(0.0, start_at - time.time()))  # all generator processes start together
    asyncio.run(_generate(urls, rate, ["guard"] * int(WARMUP_S), payloads, part, parts))
    slices = ["direct", "guard"] * seconds
    warm = round(rate * WARMUP_S)  # fresh applications after the warm-up's
    conn.send(asyncio.run(_generate(urls, rate, slices, payloads, part, parts, warm)))
    conn.close()


def _report(rows: list, route: str, rate: float, seconds: int) -> dict[str, Any]:
    mine = [r for r in rows if r[0] == route]
    ok = [r for r in mine if r[4] == 200]
    service = [(done - sent) * 1000 for _, _, sent, done, _ in ok]
    scheduled = [(done - sched) * 1000 for _, sched, _, done, _ in ok]
    p999 = round(float(np.percentile(service, 99.9)), 3) if service else float("nan")
    return {
        "route": route,
        "requests": len(mine),
        "errors": len(mine) - len(ok),
        "error_statuses": dict(Counter(str(r[4]) for r in mine if r[4] != 200)),
        "rate": rate,
        "rate_achieved": round(len(ok) / seconds, 1),
        **_stats(service),
        "p999_ms": p999,
        "p99_from_schedule_ms": _stats(scheduled)["p99_ms"],
        "max_send_lag_ms": round(max(((s - c) * 1000 for _, c, s, _, _ in mine), default=0), 3),
    }


def _settings(quick: bool) -> dict[str, Any]:
    env = os.environ.get
    return {
        "upstream": env("GUARD_BENCH_UPSTREAM", "light"),
        "scoring": env("GUARD_BENCH_SCORING", "process"),
        "rate": float(env("GUARD_BENCH_RATE", QUICK_RATE if quick else FULL_RATE)),
        "seconds": int(env("GUARD_BENCH_SECONDS", QUICK_S if quick else FULL_S)),
        "generators": int(env("GUARD_BENCH_GENERATORS", 1 if quick else GENERATORS_FULL)),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from mlhunt.scenarios import ensure_built

    cfg = _settings(quick)
    rate, seconds, parts = cfg["rate"], cfg["seconds"], cfg["generators"]
    if cfg["upstream"] not in ("light", "loan") or cfg["scoring"] not in (
        "process",
        "thread",
        "off",
    ):
        raise ValueError(
            f"GUARD_BENCH_UPSTREAM light|loan, GUARD_BENCH_SCORING process|thread|off: got {cfg}"
        )
    load_before = os.getloadavg()[0]
    _b, loaded = ensure_built("loan-approval", progress=log)
    rng = np.random.default_rng(0)
    # a fresh realistic application per request (the scenario's benign sampler): a client that
    # re-sent the same few applications over and over would itself look like an attack
    n = round(rate * (WARMUP_S + 2 * seconds))
    payloads = [[float(v) for v in r] for r in loaded.sample_benign(n, rng)]
    ctx = mp.get_context("spawn")
    procs = []
    api_proc: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-guard-") as tmp:
        np.savez(Path(tmp) / "ref.npz", x=loaded.x_train)
        api_port, guard_port = _free_port(), _free_port()
        api = f"http://127.0.0.1:{api_port}"
        guard = f"http://127.0.0.1:{guard_port}"
        try:
            if cfg["upstream"] == "light":
                table, default = _answers(loaded, payloads)
                procs.append(
                    ctx.Process(target=_light_main, args=(api_port, table, default), daemon=True)
                )
            else:
                api_proc = _start_api(api_port, API_WORKERS_FULL if rate > 50 else 1)
            procs.append(
                ctx.Process(target=_serve_guard, args=(guard_port, api, tmp, cfg["scoring"]))
            )
            for p in procs:
                p.start()
            _wait(f"{api}/health")
            _wait(f"{guard}/guard/health")
            log(
                f"{cfg['upstream']} upstream {api}, guard {guard} (scoring {cfg['scoring']}): "
                f"{rate:g} req/s, {seconds} s per route (+ warm-up), {parts} generator(s)"
            )
            start_at = time.time() + 3.0
            gens, pipes = [], []
            for i in range(parts):
                parent, child = ctx.Pipe(duplex=False)
                gen = ctx.Process(
                    target=_generator_main,
                    args=(
                        child,
                        {"direct": api, "guard": guard},
                        rate,
                        seconds,
                        payloads,
                        i,
                        parts,
                        start_at,
                    ),
                    daemon=True,
                )
                gen.start()
                child.close()
                gens.append(gen)
                pipes.append(parent)
            budget = 3 + WARMUP_S + 2 * seconds + 2 * REQUEST_TIMEOUT_S + 60
            results = []
            for parent, gen in zip(pipes, gens, strict=True):
                if not parent.poll(budget):
                    gen.kill()
                    raise RuntimeError(f"load generator gave no result within {budget:.0f}s")
                results.extend(parent.recv())
                gen.join(timeout=10)
            import httpx

            metrics = httpx.get(f"{guard}/guard/metrics", timeout=5).text
            alerts_path = Path(tmp) / "alerts.jsonl"
            alerts = len(alerts_path.read_text().splitlines()) if alerts_path.exists() else 0
        finally:
            for p in procs:
                p.terminate()  # the guard stops its scoring process on SIGTERM
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
            if api_proc is not None:
                api_proc.terminate()
                api_proc.wait(timeout=15)
    direct = _report(results, "direct", rate, seconds)
    guarded = _report(results, "guard", rate, seconds)
    for k in ("p50", "p99", "p999"):
        guarded[f"{k}_added_ms"] = round(guarded[f"{k}_ms"] - direct[f"{k}_ms"], 3)
    guarded["alerts"] = alerts
    guarded["events_scored"] = _metric(metrics, "mlhunt_guard_events_scored_total")
    guarded["events_dropped"] = _metric(metrics, "mlhunt_guard_events_dropped_total")
    for rep in (direct, guarded):
        log(
            f"{rep['route']}: p50 {rep['p50_ms']} ms, p99 {rep['p99_ms']} ms, p99.9 "
            f"{rep['p999_ms']} ms, {rep['errors']} errors of {rep['requests']}, "
            f"{rep['rate_achieved']} req/s"
        )
    ratio = round(direct["p99_ms"] / guarded["p99_ms"], 3) if guarded["p99_ms"] else 0.0
    return {
        "mlhunt": guarded,
        "peer": direct,
        "ratio": ratio,
        "workload": {
            "scenario": "loan-approval",
            "upstream": cfg["upstream"],
            "rate": rate,
            "seconds_per_route": seconds,
            "slices": "alternating 1 s direct / 1 s guarded",
            "clients": CLIENTS,
            "connections": CONNECTIONS,
            "guard_state": "memory",
            "policy": "default",
            "scoring": cfg["scoring"],
            "generator": f"{parts} separate process(es), asyncio, keep-alive HTTP/1.1 pool,"
            " open loop",
            "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
    }


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
