"""``python -m bench.guard_cpu``: CPU seconds per request the guard spends, per process.

Latency on the shared 2-core VM swings by 100x between runs (it is set by the CPU share the
guard gets), but the CPU a process spends per request barely moves with the load: this is the
number to compare when changing the proxy or the scoring process. Setting as ``bench guard``
(bench/guard.py: light upstream, loan benign traffic from 50 clients, shipped policy, memory
state, inference log and alerts written, ``--trust-forwarded``), but every request goes
through the guard, at a modest fixed rate from one open-loop generator process.

After a warm-up (which also builds the guard's population), the run reads utime + stime from
``/proc/<pid>/stat`` of the guard's proxy process, its scoring process and the light upstream
(a control: its work per request is fixed, so a drift there is the machine, not the guard)
before and after ``seconds`` of load, waiting for the scoring process to go idle before the
last reading. Printed: one JSON object per run with CPU ms per request per process (and its
system-call share), the same in units of the upstream's CPU per request (``*_in_upstreams``:
the steadiest number on a shared machine) and the latency p50 / p99 of the measured requests.
Bounded: ``rate * seconds`` requests (4,000 by default), loopback only, ~20 s per run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import log
from bench.guard import _answers, _free_port, _generate, _light_main, _serve_guard, _wait

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` in seconds: stime is mostly the socket system calls."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def children(pid: int) -> list[int]:
    out: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def _gen_main(
    conn: Any, url: str, rate: float, seconds: int, payloads: list[list[float]], first: int
) -> None:
    rows = asyncio.run(_generate({"guard": url}, rate, ["guard"] * seconds, payloads, 0, 1, first))
    conn.send(rows)
    conn.close()


def _load(
    ctx: Any, url: str, rate: float, seconds: int, payloads: list[list[float]], first: int
) -> list[Any]:
    parent, child = ctx.Pipe(duplex=False)
    gen = ctx.Process(
        target=_gen_main, args=(child, url, rate, seconds, payloads, first), daemon=True
    )
    gen.start()
    child.close()
    if not parent.poll(seconds + 60):
        gen.kill()
        raise RuntimeError("load generator gave no result")
    rows: list[Any] = parent.recv()
    gen.join(timeout=10)
    return rows


def _settle(pid: int, quiet_s: float = 0.6, limit_s: float = 30.0) -> None:
    """Wait until ``pid`` spends (almost) no CPU for ``quiet_s`` (the scorer caught up)."""
    end = time.monotonic() + limit_s
    last = cpu_s(pid)
    while time.monotonic() < end:
        time.sleep(quiet_s)
        now = cpu_s(pid)
        if now - last <= 0.02:
            return
        last = now


def measure(rate: float, seconds: int, scoring: str, warmup_s: int = 3) -> dict[str, Any]:
    from mlhunt.scenarios import ensure_built

    _b, loaded = ensure_built("loan-approval", progress=log)
    rng = np.random.default_rng(0)
    n = round(rate * (warmup_s + seconds))
    payloads = [[float(v) for v in r] for r in loaded.sample_benign(n, rng)]
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-guard-cpu-") as tmp:
        np.savez(Path(tmp) / "ref.npz", x=loaded.x_train)
        api_port, guard_port = _free_port(), _free_port()
        api, guard = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{guard_port}"
        table, default = _answers(loaded, payloads)
        procs = [
            ctx.Process(target=_light_main, args=(api_port, table, default), daemon=True),
            ctx.Process(target=_serve_guard, args=(guard_port, api, tmp, scoring)),
        ]
        try:
            for p in procs:
                p.start()
            _wait(f"{api}/health")
            _wait(f"{guard}/guard/health")
            up_pid, proxy_pid = procs[0].pid, procs[1].pid
            assert up_pid is not None and proxy_pid is not None
            kids = children(proxy_pid)
            scorer_pid = kids[0] if kids else None
            log(
                f"guard cpu: {rate:g} req/s, warm-up {warmup_s} s, {seconds} s measured, "
                f"scoring {scoring} (proxy {proxy_pid}, scorer {scorer_pid})"
            )
            _load(ctx, guard, rate, warmup_s, payloads, 0)
            if scorer_pid is not None:
                _settle(scorer_pid)
            pids = {"proxy": proxy_pid, "upstream": up_pid}
            if scorer_pid is not None:
                pids["scorer"] = scorer_pid
            before = {k: cpu_split(p) for k, p in pids.items()}
            load_before = os.getloadavg()[0]
            rows = _load(ctx, guard, rate, seconds, payloads, round(rate * warmup_s))
            after = {"proxy": cpu_split(proxy_pid), "upstream": cpu_split(up_pid)}
            if scorer_pid is not None:
                _settle(scorer_pid)
                after["scorer"] = cpu_split(scorer_pid)
        finally:
            for p in procs:
                p.terminate()
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
    ok = [r for r in rows if r[4] == 200]
    service = np.array([(done - sent) * 1000 for _, _, sent, done, _ in ok])
    n_ok = max(len(ok), 1)
    out: dict[str, Any] = {
        "rate": rate,
        "seconds": seconds,
        "scoring": scoring,
        "requests": len(rows),
        "errors": len(rows) - len(ok),
        "p50_ms": round(float(np.percentile(service, 50)), 3) if len(ok) else None,
        "p99_ms": round(float(np.percentile(service, 99)), 3) if len(ok) else None,
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    for k in before:
        user, sys = (after[k][i] - before[k][i] for i in (0, 1))
        out[f"{k}_cpu_ms_per_req"] = round((user + sys) * 1000 / n_ok, 4)
        out[f"{k}_sys_share"] = round(sys / (user + sys), 2) if user + sys else 0.0
    # in units of the light upstream's CPU per request (its work is fixed: 1 recv, 1 send, a
    # dict lookup): steadier across a shared machine's slow and fast minutes than raw seconds
    up = out["upstream_cpu_ms_per_req"]
    for k in ("proxy", "scorer"):
        if up and f"{k}_cpu_ms_per_req" in out:
            out[f"{k}_in_upstreams"] = round(out[f"{k}_cpu_ms_per_req"] / up, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.guard_cpu", description=__doc__)
    ap.add_argument("--rate", type=float, default=400.0)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--scoring", choices=("process", "thread", "off"), default="process")
    ap.add_argument("--repeat", type=int, default=1, help="runs, each with a fresh guard")
    args = ap.parse_args(argv)
    for _ in range(args.repeat):
        print(json.dumps(measure(args.rate, args.seconds, args.scoring)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
