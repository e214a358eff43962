"""Prometheus text exposition (format 0.0.4) of the guard's counters, without a client library:
a handful of counters and gauges with labels, safe to update from any thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

HELP = {
    "mlhunt_guard_requests_total": (
        "counter",
        "Requests by outcome (pass, degrade, throttle, block, error) and client state.",
    ),
    "mlhunt_guard_upstream_errors_total": ("counter", "Requests the upstream did not answer."),
    "mlhunt_guard_events_scored_total": ("counter", "Events parsed, logged and scored."),
    "mlhunt_guard_events_dropped_total": (
        "counter",
        "Events dropped: the worker queue was full (events or bytes).",
    ),
    "mlhunt_guard_events_malformed_total": (
        "counter",
        "Events whose bodies could not be read (scored without input and answer).",
    ),
    "mlhunt_guard_scoring_restarts_total": ("counter", "Scoring processes restarted."),
    "mlhunt_guard_scoring_seconds_total": ("counter", "Seconds the worker spent per cycle."),
    "mlhunt_guard_detector_errors_total": ("counter", "Worker cycles that failed."),
    "mlhunt_guard_state_errors_total": ("counter", "State-store errors on the request path."),
    "mlhunt_guard_alerts_total": ("counter", "Severity escalations per detector."),
    "mlhunt_guard_queue_depth": ("gauge", "Events waiting for the worker."),
}


Key = tuple[str, tuple[tuple[str, str], ...]]  # name, sorted labels


class Metrics:
    def __init__(self) -> None:
        self._v: dict[Key, float] = {}
        self._lock = threading.Lock()
        self.gauges: dict[str, Callable[[], float]] = {}
        # counters kept elsewhere (the scoring process's, sent back with its status)
        self.extra: Callable[[], dict[Key, float]] | None = None

    def add(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._v[key] = self._v.get(key, 0.0) + value

    def inc(self, name: str, **labels: str) -> None:
        self.add(name, 1.0, **labels)

    def get(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        if self.extra is not None and key in (extra := self.extra()):
            return extra[key]
        return self._v.get(key, 0.0)

    def snapshot(self) -> dict[Key, float]:
        with self._lock:
            return dict(self._v)

    def render(self) -> str:
        values = self.snapshot()
        if self.extra is not None:
            values.update(self.extra())
        for name, fn in self.gauges.items():
            values[(name, ())] = float(fn())
        lines: list[str] = []
        done: set[str] = set()
        for (name, labels), v in sorted(values.items()):
            if name not in done:
                kind, text = HELP.get(name, ("untyped", name))
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                done.add(name)
            lab = ",".join(f'{k}="{_esc(val)}"' for k, val in labels)
            lines.append(f"{name}{{{lab}}} {v:g}" if lab else f"{name} {v:g}")
        return "\n".join(lines) + "\n"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
