"""Scoring in a separate process (``GuardConfig.scoring = "process"``), off the proxy's GIL.

In the in-thread mode the worker shares the interpreter with the event loop that serves
requests, so every rescoring (numpy, the detectors, JSON) delays requests waiting for the GIL:
the p99 the guard adds grows with the scoring load. Here the proxy process only appends each
raw event to a deque (a few hundred nanoseconds); a sender thread ships them in batches every
``FLUSH_S`` (20 ms) over a pipe (pickled, ``send_bytes`` releases the GIL while it writes) to a
scoring process, which runs the same :class:`~mlhunt.guard.worker.Worker` code (parse, log,
windows, detectors, policy, alerts) and sends back each target's new actions and its status.

State semantics are unchanged: with Redis the scoring process writes levels and actions to
Redis and the proxy reads them there (one ``MGET`` per request, as before); with memory state
the scoring process owns the windows and levels and the proxy keeps only the effective actions
it is sent. Fail-closed: the detectors are unhealthy when the scoring process died or its last
cycle failed within 5 s.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import pickle
import threading
import time
from typing import Any

from mlhunt.guard.config import GuardConfig
from mlhunt.guard.metrics import Metrics
from mlhunt.guard.state import MemoryStore, StateStore, make_store
from mlhunt.guard.worker import Raw

# how long events wait in the proxy before being shipped together: each shipment costs a pipe
# write and a thread wake-up in both processes (~0.3 ms of CPU on the 2-core VM), and scoring
# is a rescoring interval (250 ms) behind anyway
FLUSH_S = 0.02
BATCH_MAX = 5_000
HEARTBEAT_S = 0.5
STATUS_S = 0.05  # progress-only reports (no new actions, still busy) at most this often
NICE = 10  # the scoring process's niceness increment

Update = tuple[str, str, list[str], float]  # scope, key, actions, until


class RemoteWorker:
    """The proxy's side: what :mod:`mlhunt.guard.app` uses of a worker (``submit``,
    ``healthy``, ``wait_idle``, ``qsize``, ``population_ready``, ``start``/``stop``)."""

    def __init__(self, config: GuardConfig, store: StateStore, metrics: Metrics) -> None:
        self.config, self.store, self.metrics = config, store, metrics
        self._pending: collections.deque[Raw] = collections.deque()
        self._inflight = 0  # taken from the deque, not yet sent
        self.sent = self.dropped = 0
        self.status: dict[str, Any] = {
            "done": 0,
            "dirty": 0,
            "failed_at": 0.0,
            "last_error": "",
            "population_ready": False,
            "metrics": {},
        }
        ctx = mp.get_context("spawn")  # the proxy runs threads and an event loop: no fork
        self._conn, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(
            target=_child_main, args=(child, config), daemon=True, name="mlhunt-guard-scorer"
        )
        self._child_end = child
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send_loop, daemon=True, name="mlhunt-guard-sender"),
            threading.Thread(target=self._recv_loop, daemon=True, name="mlhunt-guard-receiver"),
        ]
        metrics.extra = self._remote_metrics

    def start(self) -> None:
        self._proc.start()
        self._child_end.close()
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        self._threads[0].join(timeout=5)
        with contextlib.suppress(OSError):
            self._conn.send_bytes(b"")  # end of stream: the child flushes and exits
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._conn.close()

    def submit(self, raw: Raw) -> bool:
        if len(self._pending) >= self.config.queue_max:
            self.dropped += 1
            return False
        self._pending.append(raw)  # deque.append is atomic: no lock on the request path
        return True

    def qsize(self) -> int:
        return len(self._pending) + self._inflight + int(self.status.get("queue", 0))

    @property
    def healthy(self) -> bool:
        failed = float(self.status["failed_at"])
        return self._proc.is_alive() and time.time() - failed > 5.0

    @property
    def last_error(self) -> str:
        if not self._proc.is_alive() and self._proc.exitcode is not None:
            return f"scoring process exited ({self._proc.exitcode})"
        return str(self.status["last_error"])

    @property
    def population_ready(self) -> bool:
        return bool(self.status["population_ready"])

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every submitted event is scored (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status
            if (
                not self._pending
                and not self._inflight
                and st["done"] >= self.sent
                and not st["dirty"]
            ):
                return True
            time.sleep(0.01)
        return False

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(FLUSH_S)
            while self._pending:
                batch: list[Raw] = []
                while self._pending and len(batch) < BATCH_MAX:
                    self._inflight += 1  # before the pop, so wait_idle always sees it
                    batch.append(self._pending.popleft())
                try:
                    self._conn.send_bytes(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
                except OSError:  # the scoring process is gone: healthy says so
                    self.dropped += len(batch)
                    self._inflight = 0
                    return
                self.sent += len(batch)
                self._inflight = 0

    def _recv_loop(self) -> None:
        while True:
            try:
                msg = pickle.loads(self._conn.recv_bytes())  # noqa: S301 (our own child)
            except (EOFError, OSError):
                return
            for scope, key, actions, until in msg.pop("updates"):
                if isinstance(self.store, MemoryStore):  # Redis: the child wrote it there
                    self.store.set_levels(scope, key, {}, actions, until)
            self.status = msg

    def _remote_metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        out = dict(self.status["metrics"])
        if self.dropped:  # events the proxy dropped before the scoring process saw them
            key = ("mlhunt_guard_events_dropped_total", ())
            out[key] = out.get(key, 0.0) + self.dropped
        return out


class _Recording(MemoryStore):
    """The scoring process's memory store: it also records new actions to send back."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox: list[Update] = []

    def set_levels(
        self, scope: str, key: str, levels: dict[str, Any], actions: list[str], until: float
    ) -> None:
        super().set_levels(scope, key, levels, actions, until)
        self.outbox.append((scope, key, actions, until))


def _child_main(conn: Any, config: GuardConfig) -> None:
    """The scoring process: a receiver thread feeds the worker's queue; the worker loop runs
    here and reports new actions after each cycle, progress when idle or every ``STATUS_S``,
    and a heartbeat every ``HEARTBEAT_S``."""
    import os

    from mlhunt.guard.app import build_worker

    # scoring is background work: on a busy machine the kernel should run the proxy first
    with contextlib.suppress(OSError):
        os.nice(NICE)

    store: StateStore = (
        make_store(config.redis_url, config.key_prefix) if config.redis_url else _Recording()
    )
    metrics = Metrics()
    # no GIL to share with a proxy here: the worker may use all of this process's time
    worker = build_worker(config, store, metrics, duty=1.0)
    # a rescoring pass is several detector calls of ~0.1-1 ms: yielding between them bounds
    # how long a proxy on the same core waits for it (the kernel's wakeup preemption of a
    # niced task is not immediate)
    worker.scorer.between = os.sched_yield
    last = [0.0, -1, -1]  # last report time, done, dirty
    dropped = [0]  # events the worker's queue refused (counted as done: nothing waits on them)

    def receive() -> None:
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                data = b""
            if not data:
                worker._stop.set()
                return
            for raw in pickle.loads(data):  # noqa: S301 (our own parent)
                if not worker.submit(raw):
                    dropped[0] += 1

    def report() -> None:
        now = time.monotonic()
        outbox = store.outbox if isinstance(store, _Recording) else []
        state = (worker.done + dropped[0], len(worker.dirty))
        if not outbox and now - last[0] < HEARTBEAT_S:
            # new actions go out at once; progress alone when idle (wait_idle waits on it) or
            # every STATUS_S: a report per cycle cost the proxy a wake-up per cycle
            idle = state[1] == 0 and worker.qsize() == 0
            if state == (last[1], last[2]) or (not idle and now - last[0] < STATUS_S):
                return
        if isinstance(store, _Recording):
            store.outbox = []
        failed = time.time() - (now - worker.failed_at) if worker.failed_at else 0.0
        msg = {
            "updates": outbox,
            "done": state[0],
            "dirty": len(worker.dirty),
            "failed_at": failed,
            "last_error": worker.last_error,
            "queue": worker.qsize(),
            "population_ready": worker.population.population is not None,
            "metrics": metrics.snapshot(),
        }
        try:  # only this (the worker's) thread writes to the pipe
            conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            worker._stop.set()
        last[:] = [now, state[0], state[1]]

    worker.on_cycle = report
    threading.Thread(target=receive, daemon=True, name="mlhunt-guard-receive").start()
    try:
        worker.run()
    finally:
        report()
        worker.sink.close()
        if worker.log is not None:
            worker.log.close()
        store.close()
