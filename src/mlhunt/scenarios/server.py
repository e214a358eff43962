"""A real REST prediction API over any :class:`LoadedScenario` (FastAPI), with API-key auth and
an inference log in the DESIGN.md schema. The practice range's deliberate weaknesses (scores
returned, no rate limit) are the defaults, as in the scenarios' system descriptions.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from mlhunt.logschema import JsonlLogWriter, now_rfc3339
from mlhunt.scenarios.base import LoadedScenario


class PredictRequest(BaseModel):
    """Tabular: ``features`` by name (or ``vector`` in feature order). Images: ``image`` as a
    base64 PNG, or ``array`` as nested lists (channels x height x width, values in [0, 1])."""

    model_config = ConfigDict(extra="forbid")

    features: dict[str, float] | None = None
    vector: list[float] | None = None
    image: str | None = None
    array: list[Any] | None = None


class PredictResponse(BaseModel):
    label: str
    scores: list[float] | None = Field(None, description="Class probabilities (if exposed).")
    classes: list[str]
    model: str


class KeyStore:
    """API keys to client ids. ``prefix`` turns on practice-range keys: ``<prefix><client>``
    authenticates as ``<client>`` (so a simulator can play many clients against a live API)."""

    def __init__(self, keys: Mapping[str, str] | None = None, prefix: str | None = None) -> None:
        self.keys = dict(keys or {})
        self.prefix = prefix

    def client(self, key: str | None) -> str | None:
        if not key:
            return None
        if key in self.keys:
            return self.keys[key]
        if self.prefix and key.startswith(self.prefix) and len(key) > len(self.prefix):
            return key[len(self.prefix) :]
        return None


def _decode_input(req: PredictRequest, loaded: LoadedScenario) -> np.ndarray:
    spec = loaded.spec
    if spec.kind == "tabular":
        if req.features is not None:
            missing = [n for n in spec.names if n not in req.features]
            unknown = [n for n in req.features if n not in spec.names]
            if missing or unknown:
                raise HTTPException(
                    422, f"features: missing {missing or 'none'}, unknown {unknown or 'none'}"
                )
            x = np.array([req.features[n] for n in spec.names], dtype=np.float64)
        elif req.vector is not None:
            if len(req.vector) != len(spec.names):
                raise HTTPException(422, f"vector: expected {len(spec.names)} values")
            x = np.asarray(req.vector, dtype=np.float64)
        else:
            raise HTTPException(422, "expected 'features' or 'vector'")
        if not np.all(np.isfinite(x)):
            raise HTTPException(422, "features must be finite numbers")
        return x
    if req.image is not None:
        x = _decode_png(req.image, spec.shape)
    elif req.array is not None:
        try:
            x = np.asarray(req.array, dtype=np.float32)
        except (ValueError, TypeError):
            raise HTTPException(422, "array: expected nested lists of numbers") from None
        if x.shape != tuple(spec.shape):
            raise HTTPException(
                422, f"array: expected shape {list(spec.shape)}, got {list(x.shape)}"
            )
    else:
        raise HTTPException(422, "expected 'image' (base64 PNG) or 'array'")
    if not np.all(np.isfinite(x)):
        raise HTTPException(422, "array values must be finite")
    return np.clip(x, 0.0, 1.0)


def _decode_png(data: str, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(data, validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            img = img.convert("RGB")
            c, h, w = shape
            if img.size != (w, h):
                img = img.resize((w, h))
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
        raise HTTPException(422, "image: expected a base64-encoded PNG") from None
    return arr.transpose(2, 0, 1)[:c]


def create_app(
    loaded: LoadedScenario,
    *,
    keys: KeyStore,
    log_path: Path | None = None,
    expose_scores: bool = True,
    trust_forwarded: bool = False,
) -> FastAPI:
    """The prediction API. ``trust_forwarded`` takes the caller address from X-Forwarded-For
    (only behind a trusted proxy, or for the simulator on loopback). A recommender scenario
    gets its own API (:mod:`mlhunt.scenarios.reco_server`), with the same keys and log."""
    if loaded.spec.kind == "recommender":
        from mlhunt.scenarios.reco_server import create_recommender_app

        return create_recommender_app(
            loaded,  # type: ignore[arg-type]
            keys=keys,
            log_path=log_path,
            expose_scores=expose_scores,
            trust_forwarded=trust_forwarded,
        )
    writer = JsonlLogWriter(log_path) if log_path is not None else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if writer is not None:
            writer.close()

    app = FastAPI(title=f"mlhunt practice range: {loaded.name}", version="1", lifespan=lifespan)
    lock = (
        threading.Lock()
    )  # models are not all thread-safe (torch modules in eval are, sklearn is)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": loaded.model_name}

    # async: answered on the event loop, without a hop to a worker thread and back per request;
    # the requests of one process are serial under the GIL anyway, and the lock keeps the model
    # single-threaded either way.
    @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True)
    async def predict(
        req: PredictRequest,
        request: Request,
        x_api_key: str | None = Header(default=None),
        x_forwarded_for: str | None = Header(default=None),
    ) -> PredictResponse:
        start = time.perf_counter()
        client = keys.client(x_api_key)
        if client is None:
            raise HTTPException(401, "missing or invalid API key")
        x = _decode_input(req, loaded)
        with lock:
            probs = loaded.predict_proba(x[None, ...])[0]
        label = loaded.classes[int(np.argmax(probs))]
        scores = [round(float(p), 6) for p in probs]
        latency = (time.perf_counter() - start) * 1000.0
        if writer is not None:
            source = request.client.host if request.client else None
            if trust_forwarded and x_forwarded_for:
                source = x_forwarded_for.split(",")[0].strip()
            output: dict[str, Any] = {"label": label}
            if expose_scores:
                output["scores"] = scores
            writer.write(
                {
                    "ts": now_rfc3339(),
                    "client_id": client,
                    "input": loaded.log_vector(x),
                    "output": output,
                    "model": loaded.model_name,
                    "source_ip": source,
                    "status": 200,
                    "latency_ms": round(latency, 3),
                }
            )
        return PredictResponse(
            label=label,
            scores=scores if expose_scores else None,
            classes=list(loaded.classes),
            model=loaded.model_name,
        )

    return app


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL; stops cleanly."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mlhunt-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"API server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
