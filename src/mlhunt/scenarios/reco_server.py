"""The recommender's REST API: top-k items and scores for a user or an anonymous session.

``POST /recommend`` with ``{"user": "u00042", "k": 10}`` (a known user: their history; an unknown
one gets the cold-start ranking) or ``{"items": ["i0012", "i0107"], "k": 10}`` (an anonymous
session). Same API keys and inference log as the classifier APIs (:mod:`server`): ``input`` is
the user tower's vector for the request, ``output`` the top item as ``label``, the top-k
``scores`` and ``items``; the record also names the requested ``user`` and the session's
``items`` (each null when the request had the other).
The practice range's deliberate weaknesses are the system description's: any caller may ask for
any user id, and scores are returned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from mlhunt.logschema import JsonlLogWriter, now_rfc3339

if TYPE_CHECKING:
    from mlhunt.scenarios.clickstream import LoadedRecommender
    from mlhunt.scenarios.server import KeyStore

MAX_SESSION_ITEMS = 200
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class RecommendRequest(BaseModel):
    """Exactly one of ``user`` (an account or cookie id) and ``items`` (an anonymous session)."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(None, pattern=ID_PATTERN)
    items: list[str] | None = Field(None, min_length=1, max_length=MAX_SESSION_ITEMS)
    k: int = Field(10, ge=1, le=100)


class RecommendResponse(BaseModel):
    label: str = Field(description="The top item.")
    items: list[str]
    scores: list[float] | None = Field(None, description="Relevance scores (if exposed).")
    user: str | None = None
    model: str


def create_recommender_app(
    loaded: LoadedRecommender,
    *,
    keys: KeyStore,
    log_path: Path | None = None,
    expose_scores: bool = True,
    trust_forwarded: bool = False,
) -> FastAPI:
    """The recommendation API (``trust_forwarded``: see :func:`server.create_app`)."""
    writer = JsonlLogWriter(log_path) if log_path is not None else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if writer is not None:
            writer.close()

    app = FastAPI(title=f"mlhunt practice range: {loaded.name}", version="1", lifespan=lifespan)
    lock = threading.Lock()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": loaded.model_name}

    @app.post("/recommend", response_model=RecommendResponse, response_model_exclude_none=True)
    def recommend(
        req: RecommendRequest,
        request: Request,
        x_api_key: str | None = Header(default=None),
        x_forwarded_for: str | None = Header(default=None),
    ) -> RecommendResponse:
        start = time.perf_counter()
        client = keys.client(x_api_key)
        if client is None:
            raise HTTPException(401, "missing or invalid API key")
        if (req.user is None) == (req.items is None):
            raise HTTPException(422, "expected exactly one of 'user' and 'items'")
        if req.items is not None:
            unknown = [it for it in req.items if loaded.item_index(it) is None]
            if unknown:
                raise HTTPException(422, f"items: unknown item ids {unknown[:5]}")
            history = loaded.session_history(req.items)
        else:
            history = loaded.user_histories([str(req.user)])
        with lock:
            idx, raw = loaded.recommend_histories(history, req.k)
            vector = loaded.log_vector(history) if writer is not None else None
        items = [loaded.items[int(i)] for i in idx[0]]
        scores = [round(float(s), 6) for s in raw[0]]
        latency = (time.perf_counter() - start) * 1000.0
        if writer is not None:
            source = request.client.host if request.client else None
            if trust_forwarded and x_forwarded_for:
                source = x_forwarded_for.split(",")[0].strip()
            output: dict[str, Any] = {"label": items[0], "items": items}
            if expose_scores:
                output["scores"] = scores
            writer.write(
                {
                    "ts": now_rfc3339(),
                    "client_id": client,
                    "input": vector,
                    "output": output,
                    "model": loaded.model_name,
                    "source_ip": source,
                    "status": 200,
                    "latency_ms": round(latency, 3),
                    "user": req.user,
                    "items": req.items,
                }
            )
        return RecommendResponse(
            label=items[0],
            items=items,
            scores=scores if expose_scores else None,
            user=req.user,
            model=loaded.model_name,
        )

    return app
