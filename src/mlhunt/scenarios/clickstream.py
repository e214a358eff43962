"""Clickstream product recommender: the seed brief's worked answer, built for real.

    collector -> Kafka -> Spark sessionisation and features -> Kubeflow training -> prediction API

``build`` does this on this machine, in well under a minute:

1. **Events.** :func:`mlhunt.scenarios.clickgen.generate` draws a week of shop sessions (page
   views, add-to-cart, purchases; long-tailed item popularity, category affinity per user) and
   writes them to ``events.parquet``, as the Kafka S3 sink would.
2. **Features.** :func:`mlhunt.scenarios.clickfeatures.build_features` runs real Spark in local
   mode: sessionisation, user and item features, and the weighted ``interactions.parquet``.
3. **Split.** Each user's items are split 80/20 (users with three items or more): the held-out
   items measure the model (recall@10 against a popularity baseline) and are the non-members of
   the membership attack. ``interactions.npz`` records it (string arrays, no pickles).
4. **Model.** A two-tower recommender in PyTorch (:mod:`mlhunt.scenarios.reco_model`), seeded,
   on a fixed thread count; saved with ``torch.save`` as the system description declares
   (``model.pt``, a state dict) with ``model.json`` (its SHA-256, users, items, options).

The loaded scenario is a :class:`LoadedRecommender`: it answers top-k items and scores for a
known user (their training history) or an anonymous session (a list of item ids). It is not a
classifier: its ``spec.kind`` is ``recommender``, so the classifier attacks and the classifier
traffic simulator never apply to it; its own attacks live in ``mlhunt.assess.attacks.reco_*``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.scenarios import reco_model as rm
from mlhunt.scenarios.base import BuiltScenario, InputSpec, Progress, quiet

NAME = "clickstream-recommender"
MODEL_NAME = "clickstream-two-tower-v1"
MODEL_FILE = "model.pt"
META_FILE = "model.json"
DATA_FILE = "interactions.npz"
EVENTS_FILE = "events.parquet"
FEATURES_DIR = "features"
DEFAULT_USERS = 1_200
DEFAULT_ITEMS = 300
DEFAULT_DAYS = 7
HOLDOUT = 0.2
#: The simulated week starts here (timestamps never use the wall clock).
START = datetime(2024, 3, 1, tzinfo=UTC)
MAX_K = 100
EVAL_K = 10


def split(inter: rm.Interactions, n_users: int, rng: np.random.Generator) -> np.ndarray:
    """``is_train`` per interaction: a share :data:`HOLDOUT` of each user's items held out
    (users with at least three items; everyone keeps at least two in training)."""
    is_train = np.ones(len(inter), dtype=bool)
    order = np.argsort(inter.users, kind="stable")
    bounds = np.searchsorted(inter.users[order], np.arange(n_users + 1))
    for u in range(n_users):
        rows = order[bounds[u] : bounds[u + 1]]
        if len(rows) >= 3:
            n_out = min(len(rows) - 2, max(1, round(HOLDOUT * len(rows))))
            is_train[rng.permutation(rows)[:n_out]] = False
    return is_train


def recall_at_k(s: np.ndarray, train_h: np.ndarray, held: rm.Interactions, k: int) -> float:
    """Share of held-out (user, item) pairs in the user's top-k of items not yet seen."""
    s = s.copy()
    s[train_h > 0] = -np.inf
    idx, _ = rm.top_k(s, k)
    hit = (idx[held.users] == held.items[:, None]).any(axis=1)
    return float(hit.mean()) if len(hit) else 0.0


class LoadedRecommender:
    """The built recommender: top-k items and scores for a user or an anonymous session."""

    name = NAME
    model_name = MODEL_NAME

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.meta = json.loads((self.directory / META_FILE).read_text(encoding="utf-8"))
        self.users: tuple[str, ...] = tuple(self.meta["users"])
        self.items: tuple[str, ...] = tuple(self.meta["items"])
        self.options: dict[str, Any] = dict(self.meta["options"])
        self.model = rm.load(
            self.directory / MODEL_FILE,
            len(self.items),
            int(self.options["dim"]),
            self.meta["sha256"],
        )
        with np.load(self.directory / DATA_FILE, allow_pickle=False) as npz:
            inter = rm.Interactions(npz["users"], npz["items"], npz["weights"])
            is_train = npz["is_train"].astype(bool)
        self.interactions = inter
        self.train = inter.subset(is_train)
        self.holdout = inter.subset(~is_train)
        self.history = rm.history_matrix(self.train, len(self.users), len(self.items))
        self._user_index = {u: i for i, u in enumerate(self.users)}
        self._item_index = {it: i for i, it in enumerate(self.items)}
        dim = int(self.options["dim"])
        self.spec = InputSpec(kind="recommender", names=tuple(f"user_{j}" for j in range(dim)))
        self.classes = self.items  # what the scores range over

    # --- lookups ---------------------------------------------------------------------------

    def user_index(self, user: str) -> int | None:
        return self._user_index.get(user)

    def item_index(self, item: str) -> int | None:
        return self._item_index.get(item)

    def user_histories(self, users: Sequence[str]) -> np.ndarray:
        """Normalised training histories (n, n_items); an unknown user has an empty one (cold
        start: the popularity biases alone rank the items)."""
        h = np.zeros((len(users), len(self.items)), dtype=np.float32)
        for row, u in enumerate(users):
            i = self._user_index.get(u)
            if i is not None:
                h[row] = self.history[i]
        return h

    def session_history(self, items: Sequence[str]) -> np.ndarray:
        """An anonymous session's normalised history (1, n_items); unknown ids raise KeyError."""
        h = np.zeros((1, len(self.items)), dtype=np.float32)
        for it in items:
            h[0, self._item_index[it]] += 1.0
        total = h.sum()
        return h / total if total > 0 else h

    # --- answers -----------------------------------------------------------------------------

    def scores(self, history: np.ndarray) -> np.ndarray:
        return rm.scores(self.model, history)

    def recommend_histories(self, history: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores for each history row, best first."""
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}")
        return rm.top_k(self.scores(history), k)

    def recommend(self, users: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.recommend_histories(self.user_histories(users), k)

    def log_vector(self, history: np.ndarray) -> list[float]:
        """What the API logs for a request: the user tower's vector (the model's whole view of
        the user or session), rounded as the scores are."""
        v = rm.user_vectors(self.model, np.asarray(history, dtype=np.float32).reshape(1, -1))[0]
        return [round(float(x), 6) for x in v]

    def sample_users(self, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` known users drawn at random (benign traffic asks for their carousels)."""
        return [self.users[int(i)] for i in rng.integers(0, len(self.users), n)]


class ClickstreamRecommender:
    """Clickstream product recommender (see the module docstring)."""

    name = NAME
    artifact = MODEL_FILE  # the published artifact scan checks (torch.save: a pickle in a zip)
    description = (
        "Generated shop sessions, Spark local-mode sessionisation and features, a two-tower "
        "PyTorch recommender (torch.save state dict); REST API of top-k items and scores."
    )

    def build(
        self,
        directory: Path,
        *,
        seed: int = 0,
        progress: Progress = quiet,
        n_users: int = DEFAULT_USERS,
        n_items: int = DEFAULT_ITEMS,
        days: int = DEFAULT_DAYS,
        spark_master: str = "local[1]",
        **options: Any,
    ) -> BuiltScenario:
        """Build into ``directory``. Options: ``n_users`` (1,200), ``n_items`` (300), ``days``
        (7), ``spark_master`` (``local[1]``) and the recommender's training options
        (:data:`mlhunt.scenarios.reco_model.DEFAULTS`)."""
        unknown = set(options) - set(rm.DEFAULTS)
        if unknown:
            raise TypeError(f"unknown build options for {NAME}: {', '.join(sorted(unknown))}")
        if n_users < 50 or n_items < 20:
            raise ValueError("need at least 50 users and 20 items")
        from mlhunt.scenarios import clickfeatures, clickgen

        start = time.perf_counter()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        progress(f"generating {days} days of shop sessions: {n_users} users, {n_items} items")
        events = clickgen.generate(
            n_users=n_users, n_items=n_items, seed=seed, start=START, days=days
        )
        clickgen.write_events(events, directory / EVENTS_FILE)
        progress(f"Spark ({spark_master}): sessionisation and user/item features")
        feats = clickfeatures.build_features(
            directory / EVENTS_FILE, directory / FEATURES_DIR, master=spark_master
        )
        users, items, inter = read_interactions(feats["interactions"])
        rng = np.random.default_rng(seed)
        is_train = split(inter, len(users), rng)
        np.savez(
            directory / DATA_FILE,
            users=inter.users,
            items=inter.items,
            weights=inter.weights,
            is_train=is_train,
        )
        progress(f"training the two-tower recommender on {int(is_train.sum()):,} interactions")
        opts = rm.DEFAULTS | options
        train_i, held = inter.subset(is_train), inter.subset(~is_train)
        model = rm.train(train_i, len(users), len(items), seed=seed, **opts)
        digest = rm.save(model, directory / MODEL_FILE)
        h = rm.history_matrix(train_i, len(users), len(items))
        s = rm.scores(model, h)
        popularity = np.bincount(train_i.items, weights=train_i.weights, minlength=len(items))
        metrics = {
            "recall_at_10": recall_at_k(s, h, held, EVAL_K),
            "popularity_recall_at_10": recall_at_k(
                np.tile(popularity, (len(users), 1)), h, held, EVAL_K
            ),
            "n_users": float(len(users)),
            "n_items": float(len(items)),
            "n_events": float(events.num_rows),
            "n_train": float(is_train.sum()),
            "n_holdout": float((~is_train).sum()),
        }
        metrics = {k: round(v, 6) for k, v in metrics.items()}
        meta = {
            "format": "torch.save state dict (tensors only; load with weights_only=True)",
            "model": MODEL_NAME,
            "sha256": digest,
            "options": opts,
            "seed": seed,
            "n_catalogue": n_items,
            "users": list(users),
            "items": list(items),
            "metrics": metrics,
            "features": {role: str(Path(p).relative_to(directory)) for role, p in feats.items()},
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        reloaded = LoadedRecommender(directory)
        if not np.array_equal(reloaded.scores(h[:50]), s[:50]):
            raise RuntimeError("saved model does not reproduce the trained scores")
        seconds = time.perf_counter() - start
        progress(
            f"recommender: recall@10 {metrics['recall_at_10']:.3f} (popularity "
            f"{metrics['popularity_recall_at_10']:.3f}) ({seconds:.1f}s)"
        )
        files = {
            "model": MODEL_FILE,
            "model_meta": META_FILE,
            "data": DATA_FILE,
            "events": EVENTS_FILE,
        }
        files.update({f"features_{r}": meta["features"][r] for r in sorted(meta["features"])})
        return BuiltScenario(
            name=NAME,
            directory=directory,
            seed=seed,
            metrics=metrics,
            files=files,
            seconds=round(seconds, 3),
        )

    def load(self, directory: Path) -> LoadedRecommender:
        return LoadedRecommender(directory)


def read_interactions(path: Path) -> tuple[list[str], list[str], rm.Interactions]:
    """Users, items (sorted) and the interactions as indices, from the Spark job's Parquet."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["user", "item", "weight"])
    users = sorted(set(table.column("user").to_pylist()))
    items = sorted(set(table.column("item").to_pylist()))
    u = pc.index_in(table.column("user"), value_set=pa_array(users)).to_numpy().astype(np.int64)
    i = pc.index_in(table.column("item"), value_set=pa_array(items)).to_numpy().astype(np.int64)
    w = table.column("weight").to_numpy().astype(np.float64)
    order = np.lexsort((i, u))  # a stable order whatever order Spark wrote the rows in
    keep = w[order] > 0
    return users, items, rm.Interactions(u[order][keep], i[order][keep], w[order][keep])


def pa_array(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, type=pa.string())


__all__ = [
    "MODEL_FILE",
    "NAME",
    "ClickstreamRecommender",
    "LoadedRecommender",
    "read_interactions",
    "recall_at_k",
    "split",
]
