"""A prediction API as a black-box target: the request/response mapping from a small YAML,
an API key from an environment variable, retries with exponential backoff and jitter, 429
``Retry-After``, a client-side rate limit (token bucket) and the query budget.

A request that still fails after its retries is counted (``stats``) and answered with uniform
probabilities, so one bad row never stops a run; the runner records the count per attack and
calls the attack an error when more than ``max_failed_share`` of its rows failed. A target that
keeps failing (``max_consecutive_failures`` rows in a row) raises :class:`TargetUnavailable`, so
an attack against a dead API ends early as an error instead of measuring uniform noise.

Every request is bounded: ``timeout`` is a deadline for the whole answer (a server trickling
its body byte by byte cannot hold a worker), and answers over ``max_response_bytes`` are cut.
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlhunt.assess.base import QueryBudget
from mlhunt.errors import InputError
from mlhunt.scenarios.base import InputSpec

PLACEHOLDERS = ("{features}", "{vector}", "{array}", "{image}")


class HttpConfig(BaseModel):
    """The ``--http-config`` YAML (every field optional; defaults fit mlhunt's own API)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    method: str = "POST"
    body: Any = Field(
        default_factory=lambda: {"vector": "{vector}"},
        description="JSON body; strings equal to a placeholder are replaced.",
    )
    scores: str | None = Field("scores", description="Dotted path of the probabilities.")
    label: str | None = Field("label", description="Dotted path of the label (label-only APIs).")
    classes: list[str] = Field(default_factory=list, description="Class names, in score order.")
    api_key_env: str | None = None
    api_key_header: str = "X-API-Key"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(10.0, gt=0)
    retries: int = Field(4, ge=0, le=20)
    backoff: float = Field(0.2, ge=0, description="First retry delay (s), doubled each retry.")
    max_backoff: float = Field(10.0, ge=0)
    rate_limit: float | None = Field(None, gt=0, description="Requests per second, client-side.")
    burst: int = Field(10, ge=1)
    concurrency: int = Field(4, ge=1, le=64)
    max_response_bytes: int = Field(10_000_000, ge=1, description="Larger answers are refused.")
    max_consecutive_failures: int = Field(
        20, ge=1, description="Rows failing in a row (after retries) before the attack stops."
    )
    max_failed_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of an attack's rows that may fail before its "
        "result is called an error (failed rows were answered with uniform noise).",
    )


class TargetUnavailable(RuntimeError):
    """The API failed ``max_consecutive_failures`` rows in a row: the attack stops (error)."""


def load_http_config(path: Path | None, **overrides: Any) -> HttpConfig:
    raw: dict[str, Any] = {}
    if path is not None:
        from mlhunt.system.loader import load_yaml_file

        raw = load_yaml_file(path) or {}
        if not isinstance(raw, dict):
            raise InputError("expected a mapping", file=str(path))
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return HttpConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(err["msg"], file=str(path) if path else None, field=where) from None


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; ``take`` sleeps until one is there."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


@dataclass
class HttpStats:
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    failures: int = 0  # rows still failing after every retry
    throttled: int = 0  # 429 answers
    label_only: bool = False  # the API returned no scores: attacks saw labels only
    errors: dict[str, int] = field(default_factory=dict)  # kind of failure -> count
    max_failed_share: float = 0.05  # from the config: the runner's error threshold

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "errors": dict(self.errors)}  # a snapshot, not a view


class _Retry(Exception):
    def __init__(self, kind: str, wait: float | None = None) -> None:
        super().__init__(kind)
        self.kind, self.wait = kind, wait


def _retry_after(value: str | None) -> float | None:
    """Seconds from ``Retry-After`` (delta or HTTP date); None when absent or unreadable (a
    hostile header must not stop the run: the usual backoff applies)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - time.time()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    return max(0.0, seconds) if seconds == seconds else None  # NaN: unreadable


def dotted_get(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


def _png(x: np.ndarray) -> str:
    from PIL import Image

    arr = (np.clip(np.transpose(x, (1, 2, 0)), 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr.squeeze() if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class HttpTarget:
    """A black box behind HTTP. ``query`` sends rows without charging; ``predict_proba`` charges
    the budget first (the scenario target charges once and calls ``query``)."""

    def __init__(
        self,
        url: str,
        spec: InputSpec,
        config: HttpConfig,
        classes: tuple[str, ...] = (),
        name: str | None = None,
    ) -> None:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise InputError(f"TARGET: expected an http(s) URL, got {url!r}")
        self.url, self.spec, self.config = url, spec, config
        self.name = name or url
        self.classes = tuple(config.classes) or classes
        if not self.classes:
            raise InputError("classes: name the classes (http config or --spec)", field="classes")
        self.budget = QueryBudget()
        self.stats = HttpStats(max_failed_share=config.max_failed_share)
        self._stats_lock = threading.Lock()
        self._streak = 0  # rows failed in a row, after their retries
        self._tripped = threading.Event()  # set when the streak reached the limit (this batch)
        headers = dict(config.headers)
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise InputError(
                    f"environment variable {config.api_key_env} is not set", field="api_key_env"
                )
            headers[config.api_key_header] = key
        limits = httpx.Limits(max_keepalive_connections=config.concurrency)
        self.client = httpx.Client(headers=headers, timeout=config.timeout, limits=limits)
        self.bucket = TokenBucket(config.rate_limit, config.burst) if config.rate_limit else None
        self.pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="mlhunt-http")
        self._jitter = random.Random(0)  # noqa: S311 - backoff jitter, not security

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    def __enter__(self) -> HttpTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.budget.charge(len(x))
        return self.query(x)

    def torch_module(self) -> Any | None:
        return None

    def sklearn_estimator(self) -> Any | None:
        return None

    def query(self, x: np.ndarray) -> np.ndarray:
        """One request per row, ``concurrency`` at a time; rows in order."""
        rows = list(np.asarray(x, dtype=np.float64))
        self._tripped.clear()  # each batch gets a try; a dead API trips again on its first row
        if len(rows) <= 1:
            return np.array([self._one(r) for r in rows]).reshape(len(rows), len(self.classes))
        return np.array(list(self.pool.map(self._one, rows)))

    def _body(self, row: np.ndarray) -> Any:
        values = {
            "{vector}": lambda: [float(v) for v in row.ravel()],
            "{features}": lambda: dict(zip(self.spec.names, map(float, row.ravel()), strict=True)),
            "{array}": lambda: row.reshape(self.spec.shape).tolist(),
            "{image}": lambda: _png(row.reshape(self.spec.shape)),
        }

        def fill(node: Any) -> Any:
            if isinstance(node, str) and node in values:
                return values[node]()
            if isinstance(node, dict):
                return {k: fill(v) for k, v in node.items()}
            if isinstance(node, list):
                return [fill(v) for v in node]
            return node

        return fill(self.config.body)

    def _count(self, **delta: int) -> None:
        with self._stats_lock:
            for k, v in delta.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    def _one(self, row: np.ndarray) -> np.ndarray:
        body = self._body(row)
        cfg = self.config
        for attempt in range(cfg.retries + 1):
            if self._tripped.is_set():  # another row of this batch found the API dead
                raise TargetUnavailable(self._down_message())
            try:
                out = self._attempt(body)
                with self._stats_lock:
                    self._streak = 0
                return out
            except _Retry as r:
                with self._stats_lock:
                    self.stats.errors[r.kind] = self.stats.errors.get(r.kind, 0) + 1
                if attempt == cfg.retries:
                    break
                delay = min(cfg.max_backoff, cfg.backoff * 2**attempt)
                delay *= 0.5 + self._jitter.random()  # jitter: retries do not stampede
                if r.wait is not None:  # the server said when (429 Retry-After)
                    delay = min(max(r.wait, delay), cfg.max_backoff * 6)
                self._count(retries=1)
                time.sleep(delay)
        with self._stats_lock:
            self.stats.failures += 1
            self._streak += 1
            dead = self._streak >= cfg.max_consecutive_failures
        if dead:
            self._tripped.set()
            raise TargetUnavailable(self._down_message())
        return np.full(len(self.classes), 1.0 / len(self.classes))

    def _down_message(self) -> str:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.stats.errors.items()))
        return (
            f"{self.url}: {self._streak} requests in a row failed after "
            f"{self.config.retries} retries each ({kinds})"
        )

    def _attempt(self, body: Any) -> np.ndarray:
        import httpx

        if self.bucket is not None:
            self.bucket.take()
        self._count(requests=1)
        try:
            resp, content = self._fetch(body)
        except httpx.TimeoutException:
            raise _Retry("timeout") from None
        except httpx.TransportError:  # reset, refused, truncated body, protocol garbage
            raise _Retry("connection") from None
        if resp.status_code == 429:
            self._count(throttled=1)
            raise _Retry("429", _retry_after(resp.headers.get("Retry-After")))
        if resp.status_code >= 500:
            raise _Retry(f"{resp.status_code}")
        if resp.status_code in (401, 403):  # every later request would fail the same way
            raise InputError(
                f"{self.url}: HTTP {resp.status_code}: check the API key "
                "(--api-key-env) and its header"
            )
        if resp.status_code >= 400:
            raise _Retry(f"{resp.status_code}")
        if content is None:
            raise _Retry("too large")
        try:
            doc = json.loads(content)
        except (ValueError, RecursionError):
            raise _Retry("bad json") from None
        try:
            return self._parse(doc)
        except (ValueError, TypeError, OverflowError):
            raise _Retry("bad schema") from None

    def _fetch(self, body: Any) -> tuple[Any, bytes | None]:
        """The response and its body (None when over ``max_response_bytes``), read within one
        deadline of ``timeout`` seconds for the whole exchange (httpx's own timeout is per read,
        so a server sending a byte now and then would never time out)."""
        import httpx

        cfg = self.config
        deadline = time.monotonic() + cfg.timeout
        with self.client.stream(cfg.method, self.url, json=body) as resp:
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > cfg.max_response_bytes:
                    return resp, None
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the answer took longer than the timeout")
        return resp, b"".join(chunks)

    def _parse(self, doc: Any) -> np.ndarray:
        cfg = self.config
        if cfg.scores:
            scores = dotted_get(doc, cfg.scores)
            if scores is not None:
                arr = np.asarray(scores, dtype=np.float64).ravel()
                if arr.shape != (len(self.classes),) or not np.all(np.isfinite(arr)):
                    raise ValueError("scores")
                total = arr.sum()
                return arr / total if total > 0 else np.full(len(arr), 1.0 / len(arr))
        label = dotted_get(doc, cfg.label) if cfg.label else None
        if label is None:
            raise ValueError("neither scores nor label in the response")
        self.stats.label_only = True  # scores absent: the attacks see one-hot labels
        names = list(self.classes)
        if str(label) in names:
            idx = names.index(str(label))
        elif isinstance(label, int) and 0 <= label < len(names):
            idx = label
        else:
            raise ValueError("unknown label")
        out = np.zeros(len(names))
        out[idx] = 1.0
        return out
