"""``guard --llm --scoring process``: the LLM scoring worker in its own process, off the proxy's
interpreter.

In the thread mode a rescoring pass (15-40 ms of Python: the detectors over the clients' windows
and a population sample) holds the interpreter the event loop needs, so a stream whose first
delta arrives during a pass waits for it, a switch interval at a time. Here the proxy only
appends each call's gateway record to a deque; the classifier guard's
:class:`~mlhunt.guard.scoring.RemoteWorker` ships them in batches over a pipe (pickled; a record
nested too deep to pickle is dropped and counted) to a scoring process running the same
:class:`~mlhunt.guard.llm.worker.LlmWorker` (log, windows, detectors, policy, alerts), which
sends back each client's new actions. Supervision (restart with back-off, reported), fail-closed
health, and the state semantics (memory: the proxy keeps the actions it is sent; Redis: the
scoring process writes them there) are the classifier guard's.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from mlhunt.guard.config import GuardConfig
from mlhunt.guard.metrics import Key, Metrics
from mlhunt.guard.scoring import HEARTBEAT_S, NICE, STATUS_S, RecordingStore, RemoteWorker
from mlhunt.guard.state import StateStore, make_store

Update = tuple[str, str, list[str], float]  # scope, key, actions, until


class LlmRemoteWorker(RemoteWorker):
    """The proxy's side; the app calls ``submit(record, size)`` as on the in-thread worker."""

    # a rescoring pass runs at most every 0.25 s: shipping every 50 ms (not the classifier's
    # 20 ms) costs the proxy fewer wake-ups and delays no verdict much
    flush_s = 0.05

    def __init__(self, config: GuardConfig, store: StateStore, metrics: Metrics) -> None:
        super().__init__(config, store, metrics)
        metrics.extra = summed(metrics, metrics.extra)

    @staticmethod
    def child_main(conn: Any, config: GuardConfig) -> None:
        llm_child_main(conn, config)

    @staticmethod
    def size_of(raw: Any) -> int:
        return int(raw[1])

    def submit(self, raw: Any, size: int = 0) -> bool:  # type: ignore[override]
        return super().submit((raw, size))


def summed(
    own: Metrics, remote: Callable[[], dict[Key, float]] | None
) -> Callable[[], dict[Key, float]]:
    """The scoring process's counters with the proxy's own added where both count (the request
    path and the scoring process both count malformed events): ``Metrics.render`` lets the
    remote value replace the local one."""

    def values() -> dict[Key, float]:
        out = dict(remote()) if remote is not None else {}
        mine = own.snapshot()
        for key in out.keys() & mine.keys():
            out[key] += mine[key]
        return out

    return values


def llm_child_main(conn: Any, config: GuardConfig) -> None:
    """The scoring process: a receiver thread feeds the worker's queue; the worker loop runs
    here and reports new actions at once, progress every ``STATUS_S`` while busy or when it
    goes idle, and a heartbeat every ``HEARTBEAT_S``."""
    from mlhunt.guard.llm.app import build_llm_worker

    with contextlib.suppress(OSError):  # background work: the kernel runs the proxy first
        os.nice(NICE)
    store: StateStore = (
        make_store(config.redis_url, config.key_prefix) if config.redis_url else RecordingStore()
    )
    metrics = Metrics()
    worker = build_llm_worker(config, store, metrics)
    last = [0.0, -1, -1]  # last report time, done, backlog
    dropped = [0]  # records the worker's queue refused (counted as done: nothing waits on them)

    def receive() -> None:
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                data = b""
            if not data:
                worker.request_stop()
                return
            for record, size in pickle.loads(data):  # noqa: S301 (our own parent)
                if not worker.submit(record, size):
                    dropped[0] += 1

    def report() -> None:
        now = time.monotonic()
        outbox = store.outbox if isinstance(store, RecordingStore) else []
        state = (worker.done + dropped[0], worker.backlog)
        if not outbox and now - last[0] < HEARTBEAT_S:
            idle = state[1] == 0
            if state == (last[1], last[2]) or (not idle and now - last[0] < STATUS_S):
                return
        if isinstance(store, RecordingStore):
            store.outbox = []
        failed = worker.last_error_at
        msg = {
            "updates": outbox,
            "done": state[0],
            "dirty": state[1],
            "failed_at": time.time() - (now - failed) if failed else 0.0,
            "last_error": worker.last_error,
            "queue": worker.qsize(),
            "population_ready": True,
            "metrics": metrics.snapshot(),
        }
        try:  # only this (the worker's) thread writes to the pipe
            conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            worker.request_stop()
        last[:] = [now, state[0], state[1]]

    worker.on_cycle = report
    threading.Thread(target=receive, daemon=True, name="mlhunt-guard-receive").start()
    try:
        worker.run()
    finally:
        report()
        worker.stop()  # closes the log
        worker.sink.close()
        store.close()
