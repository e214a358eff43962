"""The guard's worker: everything that happens *after* a request was answered.

The request path only enqueues ``(time, client, source, status, request body, response body,
latency, actions)``; this thread parses the bodies (input vector, label, scores), writes the
inference log, appends the events to each target's window in the store, rescores every target
with new events (coalesced: under load one rescoring covers many events) and turns severities
into actions and alerts with the policy. So a new event changes the client's decision a few
milliseconds after its own request, and scoring never adds to the request's latency.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mlhunt.guard.alerts import AlertSink
from mlhunt.guard.config import Policy
from mlhunt.guard.mapping import Mapping, margin
from mlhunt.guard.metrics import Metrics
from mlhunt.guard.online import SCOPES, PopulationSource, Scorer, TargetScore, pack
from mlhunt.guard.state import Event, StateStore
from mlhunt.hunt.alerts import rfc3339, to_finding
from mlhunt.hunt.detectors.base import SEVERITIES, Alert
from mlhunt.logschema import JsonlLogWriter

DRAIN_MAX = 5_000  # events taken from the queue per cycle
BATCH_TARGETS = 256  # targets rescored per detector call (bounds one cycle's work)
TICKS = 10  # rescoring passes per score_interval_s (see Worker._rescore)

Raw = tuple[float, str, str, int, bytes, bytes, float, tuple[str, ...]]


def finding_id(detector: str, scope: str, target: str) -> str:
    digest = hashlib.sha256(f"guard\0{detector}\0{scope}\0{target}".encode()).hexdigest()[:12]
    return f"guard-{digest}"


class Worker:
    def __init__(
        self,
        *,
        store: StateStore,
        scorer: Scorer,
        population: PopulationSource,
        policy: Policy,
        mapping: Mapping,
        sink: AlertSink,
        metrics: Metrics,
        log: JsonlLogWriter | None,
        window: int,
        source_window: int,
        queue_max: int,
        queue_bytes_max: int = 64 << 20,
        max_input_dim: int = 4096,
        score_every: int = 1,
        score_interval_s: float = 0.0,
        duty: float = 1.0,
    ) -> None:
        self.store, self.scorer, self.population = store, scorer, population
        self.policy, self.mapping, self.sink = policy, mapping, sink
        self.metrics, self.log = metrics, log
        self.windows = {"client_id": window, "source_ip": source_window}
        self.q: queue.Queue[Raw] = queue.Queue(queue_max)
        self.queue_bytes_max, self.max_input_dim = queue_bytes_max, max_input_dim
        self.queued_bytes = 0  # request and answer bytes waiting in the queue
        self._bytes_lock = threading.Lock()
        self._progress = threading.Condition()  # notified after every cycle (wait_idle)
        self.dirty: dict[tuple[str, str], int] = {}  # target -> new events not yet scored
        self.since: dict[tuple[str, str], float] = {}  # target -> when it became dirty
        self.score_every, self.score_interval_s = score_every, score_interval_s
        self.duty = duty
        self.known: set[tuple[str, str]] = set()  # targets seen during the warm-up
        self._next_pass = 0.0  # monotonic time of the next rescoring pass (see _rescore)
        self.failed_at = 0.0  # last time a cycle failed (fail-closed reads it)
        self.last_error = ""
        self.done = 0  # events taken off the queue and processed (wait_idle, status reports)
        self.on_cycle: Callable[[], None] | None = None  # the scoring process reports here
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlhunt-guard-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        """The loop in the calling thread (the scoring process's main thread)."""
        self._loop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def submit(self, raw: Raw) -> bool:
        """Queue an event; dropped (counted) when the queue holds ``queue_max`` events or
        ``queue_bytes_max`` bytes of bodies (bodies are capped, but many of them are not)."""
        size = len(raw[4]) + len(raw[5])
        with self._bytes_lock:
            if self.queued_bytes + size > self.queue_bytes_max:
                self.metrics.inc("mlhunt_guard_events_dropped_total")
                return False
            self.queued_bytes += size
        try:
            self.q.put_nowait(raw)
            return True
        except queue.Full:
            with self._bytes_lock:
                self.queued_bytes -= size
            self.metrics.inc("mlhunt_guard_events_dropped_total")
            return False

    def idle(self) -> bool:
        """Every event taken and, once there is a population, scored (before it, events wait
        in their windows: nothing is due)."""
        return self.q.unfinished_tasks == 0 and (
            not self.dirty or self.population.population is None
        )

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until every submitted event is scored (tests and benchmarks): woken by the
        worker after each cycle, so the bound is only there for a worker that is stuck."""
        with self._progress:
            return self._progress.wait_for(self.idle, timeout)

    def _notify(self) -> None:
        with self._progress:
            self._progress.notify_all()

    @property
    def healthy(self) -> bool:
        return time.monotonic() - self.failed_at > 5.0

    @property
    def population_ready(self) -> bool:
        return self.population.population is not None

    def qsize(self) -> int:
        return self.q.qsize()

    # --- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.q.get(timeout=0.05)
            except queue.Empty:
                if self.dirty and self.population.population is not None:
                    started = time.perf_counter()
                    self._guarded(self._rescore, self.population.population)
                    self._yield(time.perf_counter() - started)
                if self.on_cycle is not None:
                    self.on_cycle()
                self._notify()
                continue
            raws = [first]
            while len(raws) < DRAIN_MAX:
                try:
                    raws.append(self.q.get_nowait())
                except queue.Empty:
                    break
            started = time.perf_counter()
            try:
                self._guarded(self._cycle, raws)
            finally:
                self.done += len(raws)
                freed = sum(len(r[4]) + len(r[5]) for r in raws)
                with self._bytes_lock:
                    self.queued_bytes -= freed
                for _ in raws:
                    self.q.task_done()
            self._yield(time.perf_counter() - started)
            if self.on_cycle is not None:
                self.on_cycle()
            self._notify()

    def _yield(self, busy: float) -> None:
        """Cap the worker's share of the interpreter at ``duty``: it shares the GIL with the
        event loop that serves requests, so under load it sleeps in proportion to its work
        (events queue meanwhile and the next rescoring covers more of them at once)."""
        if self.duty < 1.0 and busy > 0.001:
            self._stop.wait(busy * (1.0 - self.duty) / self.duty)

    def _guarded(self, fn: Any, arg: Any) -> None:
        try:
            fn(arg)
        except Exception as exc:  # the guard must outlive a bad cycle
            self.failed_at = time.monotonic()
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.metrics.inc("mlhunt_guard_detector_errors_total")

    def _cycle(self, raws: list[Raw]) -> None:
        started = time.perf_counter()
        events = [e for e in map(self._parse_one, raws) if e is not None]
        built = self.population.observe(events)
        by_target: dict[tuple[str, str], list[Event]] = {}
        for e in events:
            by_target.setdefault(("client_id", e[1]), []).append(e)
            by_target.setdefault(("source_ip", e[2]), []).append(e)
        for (scope, key), evs in by_target.items():
            self.store.append(scope, key, evs, self.windows[scope])
            self.dirty[(scope, key)] = self.dirty.get((scope, key), 0) + len(evs)
            self.since.setdefault((scope, key), time.monotonic())
            if self.population.population is None or built:
                self.known.add((scope, key))
        if built:  # score everyone seen during the warm-up, over their whole windows
            for k in self.known:
                self.dirty[k] = 1 << 30
            self.known.clear()
        pop = self.population.population
        if pop is not None and self.dirty:
            self._rescore(pop)
        self.metrics.add("mlhunt_guard_events_scored_total", len(events))
        self.metrics.add("mlhunt_guard_scoring_seconds_total", time.perf_counter() - started)

    def _parse_one(self, raw: Raw) -> Event | None:
        """One event in its own error boundary: a hostile body (nested past the parser's
        recursion limit, a vector the mapping chokes on) costs that event's input and answer,
        counted, never the cycle and the other events in it."""
        try:
            return self._parse(raw)
        except Exception:  # RecursionError included: it is not a ValueError
            self.metrics.inc("mlhunt_guard_events_malformed_total")
            ts, client, source, status = raw[0], raw[1], raw[2], raw[3]
            return [ts, client, source, "", np.nan, status, None, pack(ts, None, status, None)]

    def _parse(self, raw: Raw) -> Event | None:
        ts, client, source, status, req, resp, latency, actions = raw
        body = doc = None
        if 200 <= status < 300:  # failed requests are events (floods, stuffing), not answers
            body = _json(req)
            doc = _json(resp)
        x = self.mapping.input_vector(body) if body is not None else None
        if x is not None:  # bounded, and of the population's length once that is known
            dim = self.population.dim
            if len(x) > self.max_input_dim or (dim is not None and len(x) != dim):
                x = None
        label, scores = self.mapping.answer(doc) if doc is not None else (None, None)
        if self.log is not None and label is not None:
            out: dict[str, Any] = {"label": label}
            if scores is not None:
                out["scores"] = scores
            self.log.write(
                {
                    "ts": rfc3339(ts),
                    "client_id": client,
                    "input": x,
                    "output": out,
                    "source_ip": source,
                    "status": status,
                    "latency_ms": round(latency, 3),
                    "guard": {"actions": sorted(actions)},
                }
            )
        m = margin(scores)
        return [ts, client, source, label or "", m, status, x, pack(ts, m, status, x)]

    def _rescore(self, pop: Any) -> None:
        """Rescore the targets that are due: ``score_every`` new events, or new events older
        than ``score_interval_s`` (so a quiet target is still scored promptly). Rescoring every
        k events keeps the worker's cost per event about k times lower under load.

        Rescoring passes run on a tick of ``score_interval_s / TICKS`` (not at every cycle), and
        a pass takes every target whose oldest new event is older than the interval less one
        tick: targets fall due together and share the detector calls (each call has a fixed
        cost), and no new event waits longer than ``score_interval_s``; a target with
        ``score_every`` new events waits at most one tick."""
        now = time.monotonic()
        tick = self.score_interval_s / TICKS
        if now < self._next_pass:
            return
        self._next_pass = now + tick
        todo: dict[tuple[str, str], int] = {}
        due = self.score_interval_s - tick
        for key, n in list(self.dirty.items()):
            if n >= self.score_every or now - self.since.get(key, 0.0) >= due:
                todo[key] = n
                del self.dirty[key]
                self.since.pop(key, None)
        for scope in SCOPES:
            keys = [k for (s, k) in todo if s == scope]
            for i in range(0, len(keys), BATCH_TARGETS):
                part = keys[i : i + BATCH_TARGETS]
                windows = {k: self.store.window(scope, k) for k in part}
                counts = {k: self.store.count(scope, k) for k in part}
                new = {k: todo[(scope, k)] for k in part}
                verdicts = self.scorer.score(scope, windows, new, pop)
                for k, per_det in verdicts.items():
                    self._decide(scope, k, per_det, windows[k], counts[k])

    def _decide(
        self, scope: str, key: str, per_det: dict[str, TargetScore], window: list[Event], count: int
    ) -> None:
        now = time.time()
        levels = self.store.levels(scope, key)
        changed = False
        for det_id, v in per_det.items():
            spec = self.scorer.specs[det_id]
            sev = spec.severity_for(v.score)
            if sev is None:
                continue
            old = levels.get(det_id)
            rank_old = SEVERITIES.index(old["sev"]) if old and old["until"] >= now else -1
            until = now + self.policy.hold_s
            if SEVERITIES.index(sev) > rank_old:
                levels[det_id] = {"sev": sev, "score": round(v.score, 3), "until": until}
                self._alert(scope, key, det_id, sev, v, window, count)
            else:
                levels[det_id] = {
                    **old,
                    "score": max(old["score"], round(v.score, 3)),
                    "until": until,
                }
            changed = True
        if not changed:
            return
        actions: set[str] = set()
        until = 0.0
        for det_id, lv in levels.items():
            if lv["until"] >= now:
                actions |= self.policy.actions(det_id, lv["sev"])
                until = max(until, lv["until"])
        self.store.set_levels(scope, key, levels, sorted(actions - {"allow"}), until)

    def _alert(
        self,
        scope: str,
        key: str,
        det_id: str,
        sev: str,
        v: TargetScore,
        window: list[Event],
        count: int,
    ) -> None:
        spec = self.scorer.specs[det_id]
        acts = self.policy.actions(det_id, sev)
        self.metrics.inc("mlhunt_guard_alerts_total", detector=det_id, severity=sev)
        if acts <= {"allow"}:
            return
        ts = sorted(e[0] for e in window)
        fired = v.fired if v.fired >= 0 else len(window) - 1
        before = count - len(window)
        try:
            extra = v.evidence(fired)
        except Exception as exc:  # evidence is a courtesy, never lose the alert; say so
            self.metrics.inc("mlhunt_guard_evidence_errors_total")
            extra = {"evidence_error": f"{type(exc).__name__}: {exc}"}
        alert = Alert(
            detector=det_id,
            scope=scope,
            target=key,
            score=round(v.score, 3),
            severity=sev,
            detected_at_event=before + fired + 1,
            first_event_ts=ts[0] if ts else time.time(),
            detected_ts=ts[min(fired, len(ts) - 1)] if ts else time.time(),
            events=count,
            evidence={
                "validates": list(spec.validates),
                **_jsonable(extra),
                "threshold": spec.alert_at,
                "window_events": len(window),
                "actions": sorted(acts),
            },
        )
        f = to_finding(alert, spec)
        self.sink.emit(f.replace(source="guard", id=finding_id(det_id, scope, key)))


def _json(data: bytes) -> Any:
    """A body as JSON, None when empty or not JSON (deeper than the parser's recursion limit
    raises RecursionError: :meth:`Worker._parse_one` contains it)."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
