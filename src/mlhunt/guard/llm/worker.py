"""The scoring thread of ``guard --llm``: everything after a call was answered.

The request path hands over one gateway-shaped record per chat call (the same shape
``mlhunt hunt`` reads: docs/llmhunt.md); this thread reads it into a
:class:`~mlhunt.llmhunt.records.Call` (a bad record is counted, never fatal), writes it to the
log, appends it to the client's window (its latest ``window`` calls) and rescores the clients
with new calls with the llmhunt detectors, together, at most every ``interval_s`` (one call per
detector per pass: a call has a fixed cost, so under load one pass covers many calls).
Detectors that compare a client with the population (consumption, agency) are also given the
windows of the most recently active other clients. A severity escalation is an alert; the
policy's actions for the client's live levels are written to the state store, where the request
path reads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlhunt.findings import Finding
from mlhunt.guard.alerts import AlertSink
from mlhunt.guard.llm.policy import LlmPolicy
from mlhunt.guard.metrics import Metrics
from mlhunt.guard.state import StateStore
from mlhunt.llmhunt.api import to_finding
from mlhunt.llmhunt.detectors import Alert, Context, LlmDetector
from mlhunt.llmhunt.detectors.base import SEVERITIES
from mlhunt.llmhunt.gateway import to_call
from mlhunt.llmhunt.records import Call

DRAIN_MAX = 2_000  # records taken from the queue per cycle
POPULATION = 32  # other recently active clients given to population detectors (a sample)
MAX_CLIENTS = 100_000  # windows kept (least recently active forgotten first)
RANK = {s: i for i, s in enumerate(SEVERITIES)}


def finding_id(detector: str, client: str) -> str:
    digest = hashlib.sha256(f"guard\0{detector}\0client_id\0{client}".encode()).hexdigest()[:12]
    return f"guard-{digest}"


@dataclasses.dataclass
class ClientState:
    window: deque[Call]
    events: int = 0
    first_ts: float = 0.0
    levels: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


class LlmWorker:
    def __init__(
        self,
        *,
        store: StateStore,
        policy: LlmPolicy,
        detectors: list[LlmDetector],
        ctx: Context,
        sink: AlertSink,
        metrics: Metrics,
        log: Path | None,
        window: int = 64,
        queue_max: int = 10_000,
        queue_bytes_max: int = 64 << 20,
        interval_s: float = 0.25,
    ) -> None:
        self.store, self.policy, self.detectors, self.ctx = store, policy, detectors, ctx
        self.sink, self.metrics, self.window = sink, metrics, window
        self.q: queue.Queue[tuple[dict[str, Any], int]] = queue.Queue(queue_max)
        self.queue_bytes_max = queue_bytes_max
        self.queued_bytes = 0
        self._lock = threading.Lock()
        self.clients: OrderedDict[str, ClientState] = OrderedDict()
        # clients with calls not yet scored; rescored together at most every interval_s (a
        # detector call has a fixed cost: the population's windows, detect-secrets' settings)
        self.pending: dict[str, ClientState] = {}
        self.interval_s = interval_s
        self._last_rescore = 0.0
        self.done = 0  # records handled (read, logged, scored or counted malformed)
        self.last_error = ""
        self.last_error_at = 0.0
        self._log = log.open("a", encoding="utf-8") if log is not None else None
        self._idle = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="mlhunt-guard-llm", daemon=True)

    # -- request path ------------------------------------------------------------------------
    def submit(self, record: dict[str, Any], size: int) -> bool:
        """Queue one record (``size``: its bodies' bytes); dropped and counted when full."""
        with self._lock:
            if self.queued_bytes + size > self.queue_bytes_max:
                self.metrics.inc("mlhunt_guard_events_dropped_total")
                return False
            self.queued_bytes += size
        try:
            self.q.put_nowait((record, size))
        except queue.Full:
            with self._lock:
                self.queued_bytes -= size
            self.metrics.inc("mlhunt_guard_events_dropped_total")
            return False
        return True

    @property
    def healthy(self) -> bool:
        return not self.last_error or time.monotonic() - self.last_error_at > 5.0

    @property
    def population_ready(self) -> bool:
        return True  # llmhunt's detectors need no warm-up

    def qsize(self) -> int:
        return self.q.qsize()

    @property
    def backlog(self) -> int:
        """Records queued plus clients waiting for a rescoring pass (0: all scored)."""
        return self.q.qsize() + len(self.pending) + int(self._busy)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """End :meth:`run` after it has handled what is queued."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Until every queued record is handled (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.q.qsize() or self._busy or self.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    _busy = False
    on_cycle: Callable[[], None] | None = None  # called on each tick (the scoring process reports)

    def run(self) -> None:
        """The scoring loop (the thread's, or the scoring process's main thread) until stopped."""
        tick = max(0.005, self.interval_s / 10)
        # woken by the clock, not by each record: a wake-up per call cost the request path a
        # hand-over of the interpreter per call
        while not self._stop.wait(tick):
            while self.q.qsize():
                self._drain()
            self._maybe_rescore()
            if self.on_cycle is not None:
                self.on_cycle()
        while self.q.qsize():  # stopping: what was queued is still logged and scored
            self._drain()
        self._last_rescore = 0.0
        self._maybe_rescore()

    def _drain(self) -> None:
        """Read, log and window up to ``DRAIN_MAX`` queued records."""
        self._busy = True
        batch: list[tuple[dict[str, Any], int]] = []
        while len(batch) < DRAIN_MAX:
            try:
                batch.append(self.q.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            self.queued_bytes -= sum(size for _, size in batch)
        t0 = time.perf_counter()
        try:
            self.read([r for r, _ in batch])
        except Exception as exc:  # a bug in a cycle is reported, never the thread's end
            self._error(exc)
        self.metrics.add("mlhunt_guard_scoring_seconds_total", time.perf_counter() - t0)
        with self._idle:
            self._busy = False
            self.done += len(batch)
            self._idle.notify_all()

    def _maybe_rescore(self) -> None:
        if not self.pending or time.monotonic() - self._last_rescore < self.interval_s:
            return
        t0 = time.perf_counter()
        self._busy = True  # before pending empties: wait_idle must not see a gap
        touched, self.pending = self.pending, {}
        try:
            self._rescore(touched)
        except Exception as exc:
            self._error(exc)
        self._last_rescore = time.monotonic()
        self.metrics.add("mlhunt_guard_scoring_seconds_total", time.perf_counter() - t0)
        with self._idle:
            self._busy = False
            self._idle.notify_all()

    def _error(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_error_at = time.monotonic()
        self.metrics.inc("mlhunt_guard_detector_errors_total")

    # -- one cycle ---------------------------------------------------------------------------
    def cycle(self, records: list[dict[str, Any]]) -> None:
        """Read, log and window the records, then rescore every client with new calls."""
        self.read(records)
        touched, self.pending = self.pending, {}
        if touched:
            self._rescore(touched)

    def read(self, records: list[dict[str, Any]]) -> None:
        """Read, log and window the records; their clients wait in ``pending``."""
        touched = self.pending
        for rec in records:
            try:  # each record in its own error boundary: a hostile body stops nothing
                call = to_call(rec, f"guard:{self.done + 1}")
                self._write(rec)  # (a body nested too deep to write again is malformed too)
            except (ValueError, TypeError, KeyError, RecursionError):
                self.metrics.inc("mlhunt_guard_events_malformed_total")
                continue
            st = self._state(call.client, call.ts)
            st.window.append(call)
            st.events += 1
            touched[call.client] = st
            self.metrics.inc("mlhunt_guard_events_scored_total")

    def _state(self, client: str, ts: float) -> ClientState:
        st = self.clients.get(client)
        if st is None:
            st = self.clients[client] = ClientState(deque(maxlen=self.window), first_ts=ts)
            while len(self.clients) > MAX_CLIENTS:
                self.clients.popitem(last=False)
        self.clients.move_to_end(client)
        return st

    def _write(self, rec: dict[str, Any]) -> None:
        if self._log is not None:
            self._log.write(json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n")
            self._log.flush()

    def _rescore(self, touched: Mapping[str, ClientState]) -> None:
        mine = {c: list(st.window) for c, st in touched.items()}
        now = time.time()
        changed: set[str] = set()
        for det in self.detectors:
            if not det.online:
                continue
            by_client = dict(mine)
            if det.population:
                for other in reversed(self.clients):
                    if len(by_client) >= len(mine) + POPULATION:
                        break
                    by_client.setdefault(other, list(self.clients[other].window))
            try:
                scores = det.score(by_client, self.ctx)
            except Exception as exc:  # one detector's bug must not stop the others
                self._error(exc)
                continue
            for client, st in touched.items():
                sc = scores.get(client)
                if sc is None or not sc.online:
                    continue
                score = float(sc.online[-1])
                sev = det.spec.severity_for(score)
                if sev is None:
                    continue
                old = st.levels.get(det.spec.id)
                live = old is not None and old["until"] >= now
                if live and RANK[old["severity"]] >= RANK[sev]:
                    old["until"] = now + self.policy.hold_s
                    continue
                st.levels[det.spec.id] = {
                    "severity": sev,
                    "score": round(score, 3),
                    "until": now + self.policy.hold_s,
                }
                changed.add(client)
                self._alert(det, client, st, score, sev, sc.evidence)
        for client in changed:
            self._publish(client, touched[client], now)

    def _publish(self, client: str, st: ClientState, now: float) -> None:
        acts: set[str] = set()
        for det_id, lv in st.levels.items():
            if lv["until"] >= now:
                acts |= self.policy.actions(det_id, lv["severity"])
        acts -= {"allow", "redact"}  # redact is decided per answer, on the request path
        until = max((lv["until"] for lv in st.levels.values()), default=now)
        try:
            self.store.set_levels("client_id", client, st.levels, sorted(acts), until)
        except Exception as exc:  # the store is down: reported, the next cycle retries
            self._error(exc)

    def _alert(
        self,
        det: LlmDetector,
        client: str,
        st: ClientState,
        score: float,
        sev: str,
        evidence: dict[str, Any],
    ) -> None:
        acts = sorted(self.policy.actions(det.spec.id, sev) - {"allow"})
        if not acts:
            return
        last = st.window[-1]
        alert = Alert(
            detector=det.spec.id,
            target=client,
            score=round(score, 3),
            severity=sev,
            detected_at_event=st.events,
            events=st.events,
            first_event_ts=st.first_ts,
            detected_ts=last.ts,
            evidence={**evidence, "actions": acts, "window_events": len(st.window)},
        )
        f: Finding = to_finding(alert, det.spec)
        f = f.replace(id=finding_id(det.spec.id, client), source="guard")
        self.sink.emit(f)
        self.metrics.inc("mlhunt_guard_alerts_total", detector=det.spec.id, severity=sev)
