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

Supervised: a scoring process that dies (killed, out of memory) is restarted after
a back-off (``RESTART_MIN_S``, doubling up to ``RESTART_MAX_S`` while it keeps dying), counted
in ``mlhunt_guard_scoring_restarts_total`` and reported as a ``MLH-GUARD-SCORER`` finding on
the alert sinks. Until the new process reports, the detectors are unhealthy (fail-closed: 503).
With memory state its windows and levels are lost; with Redis they are where they were.
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
RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
STEADY_S = 60.0  # a process that lived this long resets the back-off
START_WAIT_S = 120.0  # how long start() waits for the first report (the numba cache warm-up)

Update = tuple[str, str, list[str], float]  # scope, key, actions, until


class RemoteWorker:
    """The proxy's side: what :mod:`mlhunt.guard.app` uses of a worker (``submit``,
    ``healthy``, ``wait_idle``, ``qsize``, ``population_ready``, ``start``/``stop``)."""

    def __init__(self, config: GuardConfig, store: StateStore, metrics: Metrics) -> None:
        self.config, self.store, self.metrics = config, store, metrics
        self._pending: collections.deque[Raw] = collections.deque()
        self._inflight = 0  # taken from the deque, not yet sent
        self.pending_bytes = 0  # request and answer bytes in the deque (queue_bytes_max)
        self._bytes_lock = threading.Lock()  # the request path adds, the sender subtracts
        self.sent = self.dropped = self.restarts = 0
        self.status: dict[str, Any] = _fresh_status()
        self.exited = ""  # why the last scoring process ended (until its successor reports)
        self._progress = threading.Condition()  # notified at each report (wait_idle, start)
        self._stop = threading.Event()
        self._conn: Any = None
        self._proc: Any = None
        self._threads = [
            threading.Thread(target=self._send_loop, daemon=True, name="mlhunt-guard-sender"),
            threading.Thread(target=self._supervise, daemon=True, name="mlhunt-guard-supervisor"),
        ]
        self.sink: Any = None  # the proxy's own alert sink (restart findings), made on first use
        metrics.extra = self._remote_metrics

    def _spawn(self) -> None:
        """A new scoring process, its pipe and the thread reading its reports."""
        ctx = mp.get_context("spawn")  # the proxy runs threads and an event loop: no fork
        conn, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=self.child_main,
            args=(child, self.config),
            daemon=True,
            name="mlhunt-guard-scorer",
        )
        proc.start()
        child.close()
        with self._progress:
            self.status = _fresh_status()
            self.sent = 0
            self._conn, self._proc = conn, proc
        threading.Thread(
            target=self._recv_loop, args=(conn,), daemon=True, name="mlhunt-guard-receiver"
        ).start()

    def start(self) -> None:
        self._spawn()
        for t in self._threads:
            t.start()
        # listen once scoring runs: before its first report the detectors are unhealthy
        with self._progress:
            self._progress.wait_for(
                lambda: self.status["ready"] or not self._proc.is_alive(), START_WAIT_S
            )

    def stop(self) -> None:
        self._stop.set()
        self._threads[0].join(timeout=5)
        self._threads[1].join(timeout=5)
        with contextlib.suppress(OSError):
            self._conn.send_bytes(b"")  # end of stream: the child flushes and exits
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._conn.close()
        if self.sink is not None:
            self.sink.close()

    def _supervise(self) -> None:
        """Restart a scoring process that died, with a back-off; count and report it."""
        from multiprocessing.connection import wait

        delay = RESTART_MIN_S
        while not self._stop.is_set():
            proc, born = self._proc, time.monotonic()
            while not self._stop.is_set() and not wait([proc.sentinel], timeout=0.5):
                pass
            if self._stop.is_set():
                return
            if time.monotonic() - born > STEADY_S:
                delay = RESTART_MIN_S
            self.exited = f"scoring process exited ({proc.exitcode})"
            self.restarts += 1
            self.metrics.inc("mlhunt_guard_scoring_restarts_total")
            self._report_restart(proc.exitcode, delay)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, RESTART_MAX_S)
            self._spawn()

    def _report_restart(self, code: int | None, delay: float) -> None:
        from mlhunt.findings import Finding, Severity
        from mlhunt.guard.alerts import AlertSink

        if self.sink is None:
            self.sink = AlertSink(self.config.alerts, self.config.webhook)
        self.sink.emit(
            Finding(
                id=f"guard-scorer-{self.restarts}",
                rule_id="MLH-GUARD-SCORER",
                title="Guard scoring process died and is restarted",
                severity=Severity.HIGH,
                source="guard",
                target="scoring-process",
                description="Requests were not scored while it was down (fail-open) or were "
                "refused (fail-closed); with memory state its windows and levels are lost.",
                evidence={"exitcode": code, "restarts": self.restarts, "restart_in_s": delay},
            )
        )

    @staticmethod
    def child_main(conn: Any, config: GuardConfig) -> None:
        """The scoring process's entry point (a subclass names its own, module-level)."""
        _child_main(conn, config)

    @staticmethod
    def size_of(raw: Any) -> int:
        """The bytes an event holds (``queue_bytes_max``): the request and answer bodies."""
        return len(raw[4]) + len(raw[5])

    def submit(self, raw: Raw) -> bool:
        size = self.size_of(raw)
        with self._bytes_lock:
            if (
                len(self._pending) >= self.config.queue_max
                or self.pending_bytes + size > self.config.queue_bytes_max
            ):
                self.dropped += 1
                return False
            self.pending_bytes += size
        self._pending.append(raw)  # deque.append is atomic
        return True

    def qsize(self) -> int:
        return len(self._pending) + self._inflight + int(self.status.get("queue", 0))

    @property
    def healthy(self) -> bool:
        failed = float(self.status["failed_at"])
        return self.status["ready"] and self._proc.is_alive() and time.time() - failed > 5.0

    @property
    def last_error(self) -> str:
        if not self._proc.is_alive() and self._proc.exitcode is not None:
            return f"scoring process exited ({self._proc.exitcode})"
        if not self.status["ready"] and self.exited:
            return f"{self.exited}; restarting"
        return str(self.status["last_error"])

    @property
    def population_ready(self) -> bool:
        return bool(self.status["population_ready"])

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Block until a scoring process runs and has reported (after a start or a restart)."""
        with self._progress:
            return self._progress.wait_for(lambda: self.healthy, timeout)

    def idle(self) -> bool:
        st = self.status
        return (
            not self._pending and not self._inflight and st["done"] >= self.sent and not st["dirty"]
        )

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until every submitted event is scored (tests and benchmarks): woken at each
        report of the scoring process, so the bound only matters when it is stuck."""
        with self._progress:
            return self._progress.wait_for(self.idle, timeout)

    flush_s = FLUSH_S  # how long events wait in the proxy before being shipped together

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.flush_s)
            while self._pending:
                batch: list[Raw] = []
                size = 0
                while self._pending and len(batch) < BATCH_MAX:
                    self._inflight += 1  # before the pop, so wait_idle always sees it
                    raw = self._pending.popleft()
                    size += self.size_of(raw)
                    batch.append(raw)
                with self._bytes_lock:
                    self.pending_bytes -= size
                n = len(batch)
                data, batch = _pack(batch)
                self.dropped += n - len(batch)
                with self._progress:
                    conn = self._conn
                try:
                    conn.send_bytes(data)
                except OSError:  # the scoring process is gone: the supervisor restarts it
                    self.dropped += len(batch)
                    self._inflight = 0
                    self._stop.wait(RESTART_MIN_S)
                    continue
                with self._progress:
                    if conn is self._conn:
                        self.sent += len(batch)
                    self._inflight = 0
                    self._progress.notify_all()

    def _recv_loop(self, conn: Any) -> None:
        while True:
            try:
                msg = pickle.loads(conn.recv_bytes())  # noqa: S301 (our own child)
            except (EOFError, OSError):
                with self._progress:
                    self._progress.notify_all()
                return
            for scope, key, actions, until in msg.pop("updates"):
                if isinstance(self.store, MemoryStore):  # Redis: the child wrote it there
                    self.store.set_levels(scope, key, {}, actions, until)
            msg["ready"] = True
            with self._progress:
                if conn is self._conn:
                    self.status = msg
                    self.exited = ""
                self._progress.notify_all()

    def _remote_metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        out = dict(self.status["metrics"])
        if self.dropped:  # events the proxy dropped before the scoring process saw them
            key = ("mlhunt_guard_events_dropped_total", ())
            out[key] = out.get(key, 0.0) + self.dropped
        return out


def _pack(batch: list[Any]) -> tuple[bytes, list[Any]]:
    """The batch pickled, and what it holds: an event nested too deep to pickle (a parsed
    request body) is left out (counted as dropped by the caller)."""
    try:
        return pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL), batch
    except RecursionError:
        ok = []
        for item in batch:
            with contextlib.suppress(RecursionError):
                pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
                ok.append(item)
        return pickle.dumps(ok, protocol=pickle.HIGHEST_PROTOCOL), ok


def _fresh_status() -> dict[str, Any]:
    """What the proxy knows of a scoring process before its first report."""
    return {
        "done": 0,
        "dirty": 0,
        "failed_at": 0.0,
        "last_error": "",
        "population_ready": False,
        "metrics": {},
        "ready": False,
    }


class RecordingStore(MemoryStore):
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

    from mlhunt.guard.build import build_worker

    # scoring is background work: on a busy machine the kernel should run the proxy first
    with contextlib.suppress(OSError):
        os.nice(NICE)

    store: StateStore = (
        make_store(config.redis_url, config.key_prefix) if config.redis_url else RecordingStore()
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
        outbox = store.outbox if isinstance(store, RecordingStore) else []
        ready = worker.population.population is not None
        state = (worker.done + dropped[0], len(worker.dirty) if ready else 0)
        if not outbox and now - last[0] < HEARTBEAT_S:
            # new actions go out at once; progress alone when idle (wait_idle waits on it) or
            # every STATUS_S: a report per cycle cost the proxy a wake-up per cycle
            idle = state[1] == 0 and worker.qsize() == 0
            if state == (last[1], last[2]) or (not idle and now - last[0] < STATUS_S):
                return
        if isinstance(store, RecordingStore):
            store.outbox = []
        failed = time.time() - (now - worker.failed_at) if worker.failed_at else 0.0
        msg = {
            "updates": outbox,
            "done": state[0],
            "dirty": state[1],
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
