"""The inference-log schema (DESIGN.md): what ``hunt`` reads and the demo servers write."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Output(BaseModel):
    """What the model returned."""

    model_config = ConfigDict(extra="allow")

    label: str | int = Field(description="Predicted label.")
    scores: list[float] | None = Field(None, description="Class probabilities, if returned.")
    score: float | None = Field(None, description="A single score, if returned.")


class InferenceRecord(BaseModel):
    """One prediction request."""

    model_config = ConfigDict(extra="allow")

    ts: str | float = Field(description="RFC 3339 time or epoch seconds.")
    client_id: str = Field(min_length=1, description="API key, account or caller identity.")
    input: list[float] | None = Field(
        None, description="The feature vector the model received (or the logged proxy of it)."
    )
    output: Output = Field(description="What the model returned.")
    model: str | None = Field(None, description="Model name or version.")
    source_ip: str | None = Field(None, description="Caller address.")
    status: int | None = Field(None, description="HTTP status.")
    latency_ms: float | None = Field(None, description="Serving latency.")


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonlLogWriter:
    """Appends records as JSON Lines; safe to share between threads; flushes every record."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._fh = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def __enter__(self) -> JsonlLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
