"""A recommender as an assess target: top-k lists for users or anonymous sessions.

A recommender is not a classifier: its target answers ``recommend_users`` and
``recommend_sessions`` (item indices and scores, best first), each row charged to the budget
before it is sent, and its ``predict_proba`` refuses. In process it asks the loaded model; live
it sends one real ``POST /recommend`` per row to the scenario's API on 127.0.0.1 (so the queries
land in the API's inference log), a few at a time, with bounded retries. A row that still fails
is counted in ``stats`` (the runner turns too many failures into an error) and answered with an
empty list (index -1, score NaN).

The attacks' ground truth (which items each user really clicked, the trainer for the shilling
retrain) is in ``AssessData.extra["recommender"]``: the evaluator's knowledge, never sent to the
target.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.assess.base import AssessData, QueryBudget
from mlhunt.assess.http import HttpStats

RETRIES = 3
CONCURRENCY = 4
TIMEOUT_S = 10.0


class RecommenderTarget:
    """The loaded recommender in process (every row charged to ``budget``)."""

    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded
        self.name = loaded.model_name
        self.spec = loaded.spec
        self.classes = tuple(loaded.items)
        self.items = tuple(loaded.items)
        self.budget = QueryBudget()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raise TypeError("a recommender answers top-k lists (recommend_users), not probabilities")

    def torch_module(self) -> Any | None:
        return None  # the attacks here are black box

    def sklearn_estimator(self) -> Any | None:
        return None

    def recommend_users(self, users: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        self.budget.charge(len(users))
        return self.loaded.recommend(list(users), k)  # type: ignore[no-any-return]

    def recommend_sessions(
        self, sessions: Sequence[Sequence[str]], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        self.budget.charge(len(sessions))
        h = np.vstack([self.loaded.session_history(s) for s in sessions])
        return self.loaded.recommend_histories(h, k)  # type: ignore[no-any-return]


class LiveRecommenderTarget(RecommenderTarget):
    """The same recommender behind its real REST API: one ``POST /recommend`` per row."""

    def __init__(self, loaded: Any, url: str, api_key: str) -> None:
        import httpx

        super().__init__(loaded)
        self.url = url
        self.stats = HttpStats()
        self._lock = threading.Lock()
        self._index = {it: i for i, it in enumerate(self.items)}
        limits = httpx.Limits(max_keepalive_connections=CONCURRENCY)
        self.client = httpx.Client(
            headers={"X-API-Key": api_key},
            timeout=TIMEOUT_S,
            limits=limits,
            transport=httpx.HTTPTransport(retries=RETRIES, limits=limits),
        )
        self.pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="mlhunt-reco")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    def recommend_users(self, users: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        self.budget.charge(len(users))
        return self._rows([{"user": u, "k": k} for u in users], k)

    def recommend_sessions(
        self, sessions: Sequence[Sequence[str]], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        self.budget.charge(len(sessions))
        return self._rows([{"items": list(s), "k": k} for s in sessions], k)

    def _rows(self, bodies: list[dict[str, Any]], k: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.full((len(bodies), k), -1, dtype=np.int64)
        scores = np.full((len(bodies), k), np.nan)
        for row, answer in enumerate(self.pool.map(self._one, bodies)):
            if answer is None:
                continue
            items, vals = answer
            n = min(k, len(items))
            idx[row, :n] = [self._index.get(it, -1) for it in items[:n]]
            scores[row, :n] = vals[:n]
        return idx, scores

    def _count(self, **delta: int) -> None:
        with self._lock:
            for key, v in delta.items():
                setattr(self.stats, key, getattr(self.stats, key) + v)

    def _error(self, kind: str) -> None:
        with self._lock:
            self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1

    def _one(self, body: dict[str, Any]) -> tuple[list[str], list[float]] | None:
        import httpx

        for attempt in range(RETRIES + 1):
            self._count(requests=1)
            try:
                resp = self.client.post(self.url, json=body)
            except httpx.HTTPError:
                self._error("connection")
                resp = None
            if resp is not None and resp.status_code == 200:
                try:
                    doc = resp.json()
                except ValueError:
                    doc = None
                items = doc.get("items") if isinstance(doc, dict) else None
                vals = doc.get("scores") if isinstance(doc, dict) else None
                if isinstance(items, list) and isinstance(vals, list) and len(items) == len(vals):
                    return [str(i) for i in items], [float(v) for v in vals]
                self._error("bad schema")
            elif resp is not None:
                if resp.status_code == 429:
                    self._count(throttled=1)
                self._error(str(resp.status_code))
                if resp.status_code < 500 and resp.status_code != 429:
                    break  # a client error is not retried
            if attempt < RETRIES:
                self._count(retries=1)
                time.sleep(0.1 * 2**attempt)
        self._count(failures=1)
        return None


def recommender_data(loaded: Any, seed: int = 0) -> AssessData:
    """What the recommender attacks need: the loaded scenario (ground truth) and its trainer."""
    from mlhunt.scenarios import reco_model as rm

    def trainer(inter: rm.Interactions, n_users: int, **options: Any) -> Any:
        opts = {**loaded.options, **options}
        return rm.train(inter, n_users, len(loaded.items), seed=seed, **opts)

    empty = np.zeros((0, len(loaded.spec.names)))
    return AssessData(
        x_eval=empty,
        y_eval=np.zeros(0, dtype=np.int64),
        extra={"recommender": loaded, "reco_trainer": trainer},
    )


@contextmanager
def open_recommender(
    loaded: Any, *, in_process: bool, seed: int, log_dir: Path | None
) -> Iterator[tuple[RecommenderTarget, AssessData]]:
    """The recommender target (live: its API on 127.0.0.1 with a fresh key) and its data."""
    data = recommender_data(loaded, seed)
    if in_process:
        yield RecommenderTarget(loaded), data
        return
    from mlhunt.scenarios.server import KeyStore, create_app, running

    key = secrets.token_urlsafe(18)
    log = (log_dir or Path(".mlhunt-assess") / loaded.model_name) / "api-log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    app = create_app(loaded, keys=KeyStore({key: "mlhunt-assess"}), log_path=log)
    with running(app) as base:
        target = LiveRecommenderTarget(loaded, f"{base}/recommend", key)
        try:
            yield target, data
        finally:
            target.close()
