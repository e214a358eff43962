"""Alert sinks: guard alerts are :class:`~mlhunt.findings.Finding` s (``source`` "guard"),
appended as JSON Lines and, optionally, POSTed to a webhook from a background thread with a
bounded timeout and a bounded queue (a slow or dead webhook never blocks the proxy: when the
queue is full the alert is dropped from the webhook, counted, and still written to the file)."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from pathlib import Path
from typing import Any

from mlhunt.findings import Finding

WEBHOOK_TIMEOUT_S = 2.0
WEBHOOK_QUEUE = 1_000


class AlertSink:
    def __init__(self, path: Path | None = None, webhook: str | None = None) -> None:
        self.path, self.webhook = path, webhook
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self.recent: list[dict[str, Any]] = []  # the last alerts, for /guard/health and tests
        self._lock = threading.Lock()
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = path.open("a", encoding="utf-8")
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue(WEBHOOK_QUEUE)
        self._thread: threading.Thread | None = None
        if webhook:
            self._thread = threading.Thread(
                target=self._post_loop, name="mlhunt-guard-webhook", daemon=True
            )
            self._thread.start()

    def emit(self, finding: Finding) -> None:
        doc = finding.to_dict()
        with self._lock:
            self.recent = [*self.recent[-99:], doc]
            if self._fh is not None:
                self._fh.write(json.dumps(doc, separators=(",", ":"), default=str) + "\n")
                self._fh.flush()
        if self.webhook:
            try:
                self._q.put_nowait(doc)
            except queue.Full:
                self.dropped += 1

    def _post_loop(self) -> None:
        import httpx

        with httpx.Client(timeout=WEBHOOK_TIMEOUT_S) as client:
            while True:
                doc = self._q.get()
                if doc is None:
                    return
                try:
                    r = client.post(str(self.webhook), json=doc)
                    if r.status_code >= 400:
                        self.failed += 1
                    else:
                        self.sent += 1
                except httpx.HTTPError:
                    self.failed += 1

    def close(self) -> None:
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._q.put(None, timeout=1.0)
            self._thread.join(timeout=WEBHOOK_TIMEOUT_S + 1)
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
