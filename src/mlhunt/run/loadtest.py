"""A bounded load test of a scenario's live prediction API: the denial-of-service evidence.

``load_test(url, requests)`` sends a fixed number of real HTTP requests to an API on the
loopback interface at a declared arrival rate (an open-loop schedule: request *i* is due at
``i / rate`` seconds) from a few concurrent connections (httpx), and measures what a caller
sees: the latency of each request from the moment it was due (so a server that falls behind
shows it, rather than the client waiting politely: no coordinated omission), and the share of
requests that failed (non-2xx, transport errors, timeouts, or never sent before the duration
bound). ``verdict`` compares p99 latency and error rate with the SLO the project declares: a
breach *validates* the denial-of-AI-service threat at that rate, meeting it *refutes* it there;
requests the API refuses as malformed (4xx but 429) make it *inconclusive* (a broken test
proves nothing about the service).

Bounds: at most :data:`MAX_REQUESTS` requests, :data:`MAX_SECONDS` seconds of sending, a
per-request timeout, and only ``http://127.0.0.1`` / ``localhost`` targets (it is load on
purpose: never pointed at anything but this machine).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlhunt.errors import InputError
from mlhunt.findings import Finding, Severity

#: The threat-model rules a load test proves or refutes (the registry of run-level checks
#: reads it, like an attack's ``validates``).
VALIDATES = ("MLH-ML-DENIAL-OF-AI-SERVICE",)
RULE_ID = "MLH-ASSESS-LOAD-TEST"
MAX_REQUESTS = 10_000
MAX_SECONDS = 120.0

Body = tuple[str, dict[str, Any]]  # (path, JSON body) of one request


@dataclass(frozen=True)
class LoadSettings:
    """What to send and what the service promises (the SLO)."""

    rate: float  # requests per second, declared
    requests: int
    concurrency: int
    slo_p99_ms: float
    slo_error_rate: float
    timeout_s: float = 10.0
    warmup: int = 4  # unmeasured requests first: a cold model's first answer is not a DoS


@dataclass(frozen=True)
class LoadResult:
    settings: LoadSettings
    sent: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    seconds: float
    statuses: dict[str, int]

    @property
    def error_rate(self) -> float:
        return self.errors / self.settings.requests if self.settings.requests else 0.0

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def rejected(self) -> int:
        """Requests the API refused as malformed or unauthorised (4xx but 429): the test's
        own fault, not the service's."""
        return sum(
            n
            for k, n in self.statuses.items()
            if k.isdigit() and 400 <= int(k) < 500 and k != "429"
        )

    @property
    def verdict(self) -> str:
        s = self.settings
        if self.rejected:
            return "inconclusive"
        breached = self.p99_ms > s.slo_p99_ms or self.error_rate > s.slo_error_rate
        return "validated" if breached else "refuted"

    def summary(self) -> str:
        s = self.settings
        held = {"validated": "breached", "refuted": "met"}.get(self.verdict)
        end = (
            f"the SLO was {held}"
            if held
            else f"{self.rejected} requests were refused as malformed: no verdict"
        )
        return (
            f"{self.sent} of {s.requests} requests at {s.rate:g}/s ({s.concurrency} "
            f"connections): p99 {self.p99_ms:.0f} ms (SLO {s.slo_p99_ms:.0f} ms), errors "
            f"{self.error_rate:.1%} (SLO {s.slo_error_rate:.1%}): {end}"
        )


def check_loopback(url: str) -> None:
    """Refuse anything but a loopback HTTP URL (one clear line)."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InputError(f"load test: invalid URL {url!r} ({exc})") from None
    if parsed.scheme != "http" or parsed.host not in ("127.0.0.1", "localhost", "::1"):
        raise InputError(f"load test: only loopback http URLs are load-tested, not {url!r}")


def load_test(
    url: str,
    bodies: Sequence[Body],
    settings: LoadSettings,
    *,
    headers: dict[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LoadResult:
    """Send ``settings.requests`` requests (cycling through ``bodies``) to ``url`` at the
    declared rate; measure latency from each request's due time and count failures."""
    import httpx

    check_loopback(url)
    s = settings
    if not bodies:
        raise InputError("load test: no request bodies to send")
    if not 1 <= s.requests <= MAX_REQUESTS:
        raise InputError(f"load test: requests must be 1..{MAX_REQUESTS}, got {s.requests}")
    if s.rate <= 0 or s.concurrency < 1:
        raise InputError("load test: rate must be > 0 and concurrency >= 1")
    latency = np.full(s.requests, np.nan)
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    cursor = iter(range(s.requests))
    limits = httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency)

    def worker(http: httpx.Client) -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            due = start + i / s.rate
            if due > stop_at:
                return  # beyond the duration bound: counted as not sent
            wait = due - clock()
            if wait > 0:
                time.sleep(wait)  # pacing to the declared rate (open-loop schedule)
            path, body = bodies[i % len(bodies)]
            try:
                resp = http.post(path, json=body)
                key = str(resp.status_code)
                ok = resp.is_success
            except httpx.HTTPError as exc:
                key, ok = type(exc).__name__, False
            done = clock()
            with lock:
                statuses[key] = statuses.get(key, 0) + 1
                if ok:
                    latency[i] = (done - due) * 1000.0

    with httpx.Client(
        base_url=url, headers=headers or {}, timeout=s.timeout_s, limits=limits
    ) as http:
        for path, body in bodies[: s.warmup]:
            with contextlib.suppress(httpx.HTTPError):
                http.post(path, json=body)
        start = clock()
        stop_at = start + MAX_SECONDS
        threads = [
            threading.Thread(target=worker, args=(http,), name=f"mlhunt-load-{k}", daemon=True)
            for k in range(s.concurrency)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seconds = clock() - start
    sent = sum(statuses.values())
    ok_ms = latency[~np.isnan(latency)]
    # A failed request counts against the SLO as an error, not as a fast latency.
    pct = (lambda q: float(np.percentile(ok_ms, q))) if ok_ms.size else (lambda _q: float("inf"))
    return LoadResult(
        settings=s,
        sent=sent,
        errors=s.requests - int(ok_ms.size),
        p50_ms=round(pct(50), 3),
        p99_ms=round(pct(99), 3),
        max_ms=round(float(ok_ms.max()), 3) if ok_ms.size else float("inf"),
        seconds=round(seconds, 3),
        statuses=dict(sorted(statuses.items())),
    )


def to_finding(result: LoadResult, target: str) -> Finding:
    """The evidence finding: an active test of the live API, so ``assess``-sourced like an
    attack, with ``verdict`` and ``validates``."""
    from mlhunt.assess.results import finding_id

    s = result.settings
    verdict = result.verdict
    if verdict == "validated":
        severity = Severity.HIGH if result.error_rate > s.slo_error_rate else Severity.MEDIUM
    else:
        severity = Severity.INFO
    return Finding(
        id=finding_id(RULE_ID, target),
        rule_id=RULE_ID,
        title=f"Load test: {verdict}",
        severity=severity,
        source="assess",
        target=target,
        description=(
            "A bounded load test of the live prediction API on 127.0.0.1 at the declared rate, "
            "against the declared SLO (p99 latency and error rate). Result: " + result.summary()
        ),
        atlas=["AML.T0029"],
        cwe=["CWE-400", "CWE-770"],
        evidence={
            "verdict": verdict,
            "summary": result.summary(),
            "validates": list(VALIDATES),
            "rate_per_s": s.rate,
            "achieved_rate_per_s": round(result.achieved_rate, 2),
            "requests": s.requests,
            "sent": result.sent,
            "concurrency": s.concurrency,
            "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms,
            "max_ms": result.max_ms,
            "error_rate": round(result.error_rate, 4),
            "slo_p99_ms": s.slo_p99_ms,
            "slo_error_rate": s.slo_error_rate,
            "seconds": result.seconds,
            "statuses": result.statuses,
        },
        mitigations=(
            [
                "Rate-limit and quota every client at the gateway; cap concurrent requests per "
                "key; scale replicas (HPA) before the SLO is breached."
            ]
            if verdict == "validated"
            else []
        ),
    )
