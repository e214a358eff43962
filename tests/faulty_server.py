"""A fault-injecting prediction API for the tests: loopback only, bounded, scripted per request.

``FaultyServer(predict, plan)`` serves ``POST /`` with ``{"scores": [...], "label": i}`` for a
JSON body ``{"vector": [...]}``; ``plan(n)`` names what request ``n`` gets instead:

========== ==============================================================================
ok         the model's answer
timeout    sleeps ``hang`` seconds (past the client's timeout), then answers
reset      closes the socket with an RST before answering
truncated  sends headers claiming a longer body than it sends, then closes
500 / 503  a server error
429        too many requests, with ``Retry-After: <retry_after>``
garbage    200 with a body that is not JSON
schema     200 with JSON of the wrong shape (scores of the wrong length, or none at all)
slow       200 with the right answer trickled a few bytes at a time, past the client deadline
huge       200 with a body larger than the client accepts
========== ==============================================================================

Bounds: binds 127.0.0.1 only; daemon handler threads; every sleep is at most ``hang`` seconds;
past ``max_requests`` requests it answers 503 and counts ``overflow`` (tests assert it is 0).
``injected`` counts the faults served per kind; ``times`` holds each request's arrival time.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

FAULTS = ("timeout", "reset", "truncated", "500", "503", "429", "garbage", "schema", "slow", "huge")
# What mlhunt's HTTP target calls each fault (the kinds in its stats and the evidence).
CLIENT_KIND = {
    "timeout": "timeout",
    "slow": "timeout",
    "reset": "connection",
    "truncated": "connection",
    "500": "500",
    "503": "503",
    "429": "429",
    "garbage": "bad json",
    "schema": "bad schema",
    "huge": "too large",
}

Plan = Callable[[int], str]


def cycle(schedule: Sequence[str]) -> Plan:
    """Request n gets ``schedule[n % len(schedule)]``."""
    return lambda n: schedule[n % len(schedule)]


def random_faults(rate: float, kinds: Sequence[str] = FAULTS, seed: int = 0) -> Plan:
    """Each request independently faulty with probability ``rate`` (a kind drawn uniformly);
    deterministic per request number, whatever the thread interleaving."""

    def plan(n: int) -> str:
        rng = random.Random(seed * 1_000_003 + n)  # a test schedule, not security
        return rng.choice(list(kinds)) if rng.random() < rate else "ok"

    return plan


class _Handler(BaseHTTPRequestHandler):
    server: FaultyServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs: resets hit pooled connections

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        srv = self.server
        length = min(int(self.headers.get("Content-Length") or 0), 1_000_000)
        raw = self.rfile.read(length)
        mode = srv.next_mode()
        if mode == "timeout":
            time.sleep(srv.hang)
        if mode == "reset":
            # SO_LINGER 0: close() sends RST, the client sees a connection reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if mode in ("500", "503"):
            return self._send(int(mode), b'{"error": "internal"}')
        if mode == "429":
            return self._send(429, b"slow down", {"Retry-After": srv.retry_after})
        if mode == "garbage":
            return self._send(200, b'{"scores": [0.1, 0.9')
        if mode == "huge":
            return self._send(200, b" " * srv.huge_bytes + b"{}")
        try:
            row = np.asarray(json.loads(raw)["vector"], dtype=np.float64)[None]
            probs = srv.predict(row)[0]
        except (ValueError, KeyError, TypeError):
            return self._send(400, b'{"error": "bad request"}')
        doc: dict[str, Any] = {"scores": [float(p) for p in probs], "label": int(np.argmax(probs))}
        if mode == "schema":
            doc = {"scores": doc["scores"][:1]} if srv.mode_count("schema") % 2 else {"ok": True}
        data = json.dumps(doc).encode()
        if mode == "truncated":
            return self._send(200, data[: len(data) // 2], length=len(data))
        if mode == "slow":
            return self._trickle(data)
        self._send(200, data)

    def _send(
        self,
        code: int,
        data: bytes,
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        try:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) if length is None else length))
            self.end_headers()
            self.wfile.write(data)
            if length is not None:
                self.close_connection = True
        except OSError:
            self.close_connection = True  # the client gave up (its timeout)

    def _trickle(self, data: bytes) -> None:
        """Each piece within the client's per-read timeout, the whole past its deadline."""
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            pause = self.server.hang / max(1, len(data) // 4)
            for i in range(0, len(data), 4):
                self.wfile.write(data[i : i + 4])
                self.wfile.flush()
                time.sleep(pause)
        except OSError:
            self.close_connection = True


class FaultyServer(ThreadingHTTPServer):
    """Use as a context manager; ``url`` is where it listens."""

    daemon_threads = True

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        plan: Plan | None = None,
        *,
        hang: float = 1.0,
        retry_after: str = "0",
        huge_bytes: int = 2_000_000,
        max_requests: int = 20_000,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.predict, self.hang = predict, min(hang, 5.0)
        self.plan = plan or cycle(["ok"])
        self.retry_after, self.huge_bytes, self.max_requests = retry_after, huge_bytes, max_requests
        self.count = 0
        self.overflow = 0
        self.injected: Counter[str] = Counter()
        self.times: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def next_mode(self) -> str:
        with self.lock:
            n = self.count
            self.count += 1
            mode = self.plan(n) if n < self.max_requests else "503"
            if n >= self.max_requests:
                self.overflow += 1
            elif mode != "ok":
                self.injected[mode] += 1
            self.times.append((time.monotonic(), mode))
            return mode

    def mode_count(self, mode: str) -> int:
        with self.lock:
            return self.injected[mode]

    def client_kinds(self) -> Counter[str]:
        """The injected faults under the names mlhunt's HTTP target records them by."""
        out: Counter[str] = Counter()
        for mode, n in self.injected.items():
            out[CLIENT_KIND[mode]] += n
        return out

    def __enter__(self) -> FaultyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
