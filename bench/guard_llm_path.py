"""``python -m bench guard_llm_path``: the CPU of ``guard --llm``'s own work per call, in process.

No sockets, no server: what the guard's code costs per call, measured with the calling thread's
CPU clock (``time.thread_time``), so a machine shared with other work moves it little (the
latency benchmark, ``bench guard_llm``, measures the machine as much as the guard there).

- ``stream``: one streamed answer of the stand-in LLM API (``mlhunt.guard.llm.standin``: 14
  word deltas, then the usage chunk and ``[DONE]``, one event per upstream read) relayed through
  :func:`mlhunt.guard.llm.answers.relay_stream` with its redactor; ``first_delta_us`` is the CPU
  from the first upstream read to the ``send`` of the first content delta (the guard's share of
  the time to the first token), ``stream_us`` the whole stream.
- ``whole``: one non-streamed answer read and redacted (``redact_answer``).
- ``scoring``: the scoring worker (``LlmWorker``) reading, logging and rescoring the calls of
  50 clients in passes of 50 calls (a 0.25 s pass interval at 200 req/s), CPU per call.

- ``loop_lag_ms``: per round, (p50, p99, max) ms by which a 1 ms timer of an asyncio loop fires
  late while the scoring worker, as a thread of that process or as a scoring process, is handed
  200 calls per second: the wait a first delta has when it arrives during a rescoring pass.

``mlhunt`` holds the medians over ``repeats`` rounds; there is no peer (``ratio`` is None). The
detectors' memos are process-wide, so rounds after the first score with them warm, as a
running guard does.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import log

SYSTEM = "You are HelpBot, the IT helpdesk assistant of ACME. CANARY-bench-7f3a. Be brief."
QUESTION = "How do I connect to the VPN from home?"


def _events(text: str) -> list[bytes]:
    from mlhunt.guard.llm.standin import pieces

    base = {"id": "chatcmpl-standin", "created": 1, "model": "standin"}
    base["system_fingerprint"] = "mlhunt-standin"

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        doc = {**base, "object": "chat.completion.chunk", "choices": [choice], **extra}
        return b"data: " + json.dumps(doc).encode() + b"\n\n"

    out = [event({"role": "assistant", "content": ""})]
    out += [event({"content": p}) for p in pieces(text, 0)]
    out.append(event({}, "stop", usage={"prompt_tokens": 30, "completion_tokens": 20}))
    return [*out, b"data: [DONE]\n\n"]


def _guard_parts() -> tuple[Any, Any, tuple[str, ...]]:
    from mlhunt.guard.config import GuardConfig
    from mlhunt.guard.llm.app import build_llm_guard, deciders

    canaries = ("CANARY-bench-7f3a",)
    g = build_llm_guard(GuardConfig(upstream="http://127.0.0.1:9", llm=True, canaries=canaries))
    return g, deciders(g), canaries


def _stream_round(n: int, decide: Any, canaries: tuple[str, ...]) -> tuple[float, float]:
    """(median first-delta CPU, median stream CPU), microseconds, over ``n`` streams."""
    from mlhunt.guard.llm.answers import relay_stream
    from mlhunt.guard.llm.redact import StreamRedactor, sent_text
    from mlhunt.guard.llm.standin import completion_for
    from mlhunt.guard.metrics import Metrics
    from mlhunt.llmhunt.gateway import messages_of

    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    events = _events(completion_for(msgs))
    metrics = Metrics()
    firsts: list[float] = []
    totals: list[float] = []

    async def one() -> None:
        first = [0.0, 0.0]  # CPU clock at the first content delta's send; CPU inside send()

        async def chunks() -> Any:
            for ev in events:
                yield ev

        async def send(message: dict[str, Any]) -> None:
            t_in = time.thread_time()
            body = message.get("body", b"")
            if not first[0] and body.startswith(b"data: {"):
                delta = json.loads(body[6:])["choices"][0]["delta"]
                if delta.get("content"):
                    first[0] = t_in - first[1]
            first[1] += time.thread_time() - t_in  # the receiver's own parsing is not the guard's

        t0 = time.thread_time()
        sent = sent_text(messages_of(msgs))  # on the request path too
        red = StreamRedactor(decide, canaries, sent)
        await relay_stream(chunks(), send, red, metrics)
        totals.append((time.thread_time() - t0 - first[1]) * 1e6)
        firsts.append((first[0] - t0) * 1e6)

    async def main() -> None:
        for _ in range(n):
            await one()

    asyncio.run(main())
    return statistics.median(firsts), statistics.median(totals)


def _whole_round(n: int, decide: Any, canaries: tuple[str, ...]) -> float:
    from mlhunt.guard.llm.answers import redact_answer
    from mlhunt.guard.llm.redact import sent_text
    from mlhunt.guard.llm.standin import completion_for
    from mlhunt.llmhunt.gateway import messages_of

    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    text = completion_for(msgs)
    doc = {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 20},
    }
    body = json.dumps(doc).encode()
    out: list[float] = []
    for _ in range(n):
        t0 = time.thread_time()
        redact_answer(body, decide, canaries, sent_text(messages_of(msgs)), 200)
        out.append((time.thread_time() - t0) * 1e6)
    return statistics.median(out)


def _record(k: int) -> dict[str, Any]:
    """The gateway record of the ``k``-th call (50 clients in turn) as the request path builds
    it."""
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    return {
        "ts": f"2026-12-07T18:00:{k % 60:02d}Z",
        "client_id": f"bench-{k % 50}",
        "source_ip": "127.0.0.1",
        "model": "standin",
        "request": {"messages": msgs, "tools": []},
        "status": 200,
        "response": {
            "choices": [{"message": {"role": "assistant", "content": "Restart it."}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 5},
        },
        "guard": {"actions": [], "redacted": []},
        "latency_ms": 1.0,
    }


def _lag_round(scoring: str, seconds: float, rate: float) -> tuple[float, float, float]:
    """(p50, p99, max) ms by which a 1 ms timer of the event loop fires late while the scoring
    worker (``thread`` or ``process``) is handed ``rate`` calls per second: what a first delta
    waits for when it arrives while a rescoring pass holds the interpreter."""
    import numpy as np

    from mlhunt.guard.config import GuardConfig
    from mlhunt.guard.llm.app import build_llm_worker
    from mlhunt.guard.llm.remote import LlmRemoteWorker
    from mlhunt.guard.metrics import Metrics
    from mlhunt.guard.state import MemoryStore

    with tempfile.TemporaryDirectory() as tmp:
        cfg = GuardConfig(
            upstream="http://127.0.0.1:9",
            llm=True,
            canaries=("CANARY-bench-7f3a",),
            log=Path(tmp) / "gateway.jsonl",
            alerts=Path(tmp) / "alerts.jsonl",
            scoring=scoring,  # type: ignore[arg-type]
        )
        store, metrics = MemoryStore(), Metrics()
        w: Any = (
            LlmRemoteWorker(cfg, store, metrics)
            if scoring == "process"
            else build_llm_worker(cfg, store, metrics)
        )
        w.start()
        lags: list[float] = []

        async def main() -> None:
            t0 = time.perf_counter()
            k = 0
            while (now := time.perf_counter()) - t0 < seconds:
                while k < (now - t0) * rate:
                    w.submit(_record(k), 600)
                    k += 1
                await asyncio.sleep(0.001)
                lags.append((time.perf_counter() - now - 0.001) * 1000)

        asyncio.run(main())
        w.wait_idle(30)
        w.stop()
    q = np.percentile(lags, [50, 99, 100])
    return round(float(q[0]), 3), round(float(q[1]), 3), round(float(q[2]), 3)


def _scoring_round(g: Any, calls: int) -> float:
    """CPU per call of the scoring worker's read + log + rescore, passes of 50 calls."""
    from mlhunt.guard.llm.worker import LlmWorker

    with tempfile.TemporaryDirectory() as tmp:
        w = LlmWorker(
            store=g.store,
            policy=g.policy,
            detectors=g.detectors,
            ctx=g.ctx,
            sink=g.sink,
            metrics=g.metrics,
            log=Path(tmp) / "gateway.jsonl",
        )
        recs = [_record(k) for k in range(calls)]
        t0 = time.thread_time()
        for i in range(0, calls, 50):
            w.cycle(recs[i : i + 50])
        spent = time.thread_time() - t0
        w.start()  # then stopped at once: it closes the log
        w.stop()
    return spent / calls * 1e6


def run(quick: bool = False) -> dict[str, Any]:
    n = 200 if quick else 1000
    repeats = 3 if quick else 5
    g, decide, canaries = _guard_parts()
    _stream_round(20, decide, canaries)  # warm-up: imports, detect-secrets plugins
    _whole_round(20, decide, canaries)
    rows: dict[str, list[float]] = {"first": [], "stream": [], "whole": [], "scoring": []}
    for r in range(repeats):
        first, total = _stream_round(n, decide, canaries)
        rows["first"].append(first)
        rows["stream"].append(total)
        rows["whole"].append(_whole_round(n, decide, canaries))
        rows["scoring"].append(_scoring_round(g, 500 if quick else 2000))
        log(f"guard_llm_path: round {r + 1}/{repeats}: " + str({k: v[-1] for k, v in rows.items()}))
    med = {k: round(statistics.median(v), 1) for k, v in rows.items()}
    lag: dict[str, list[tuple[float, float, float]]] = {"thread": [], "process": []}
    for r in range(repeats):  # alternating, so both see the same machine
        for mode in ("thread", "process"):
            lag[mode].append(_lag_round(mode, 3.0 if quick else 10.0, 200.0))
        log(f"guard_llm_path: loop lag (p50, p99, max ms) {r + 1}/{repeats}: {lag}")
    return {
        "mlhunt": {
            "first_delta_us": med["first"],
            "stream_us": med["stream"],
            "whole_us": med["whole"],
            "scoring_us_per_call": med["scoring"],
            "rounds": rows,
            "loop_lag_ms": lag,
        },
        "peer": {},
        "ratio": None,
        "workload": {"streams_per_round": n, "rounds": repeats},
    }
