"""The clickstream scenario's recommender: a small two-tower retrieval model in PyTorch.

The user tower pools the user's history (the items they viewed, carted or bought, weighted by
the Spark job's interaction weights) through an item-input embedding table; the item tower is a
second embedding table plus a popularity bias. ``score(user, item) = tower(history) . item +
bias``, so a known user, an anonymous session (a list of item ids) and a fake profile are all
answered the same way, from their clicks, as the seed's "recommended for you" carousel is.

Training maximises the multinomial likelihood of each user's history under a softmax over all
items, with the input history randomly thinned (denoising, as in Mult-DAE), full batch, seeded,
on a fixed number of threads: the same data and seed give the same weights bit for bit.
The weights are saved with ``torch.save`` as the system description declares (a state dict of
tensors), and loaded with ``weights_only=True`` after a SHA-256 check, so nothing in the file
runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlhunt.scenarios.determinism import torch_settings

TRAIN_THREADS = 1
DEFAULTS: dict[str, Any] = {"dim": 24, "epochs": 100, "lr": 0.05, "dropout": 0.5, "l2": 1e-3}


@dataclass(frozen=True)
class Interactions:
    """(user, item, weight) triples as indices into the scenario's user and item lists."""

    users: np.ndarray  # int64
    items: np.ndarray  # int64
    weights: np.ndarray  # float64, > 0

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, mask: np.ndarray) -> Interactions:
        return Interactions(self.users[mask], self.items[mask], self.weights[mask])

    def concat(self, other: Interactions) -> Interactions:
        return Interactions(
            np.concatenate([self.users, other.users]),
            np.concatenate([self.items, other.items]),
            np.concatenate([self.weights, other.weights]),
        )


def history_matrix(inter: Interactions, n_users: int, n_items: int) -> np.ndarray:
    """Dense (n_users, n_items) history, each row's weights summing to 1 (empty rows stay 0)."""
    h = np.zeros((n_users, n_items), dtype=np.float32)
    np.add.at(h, (inter.users, inter.items), inter.weights.astype(np.float32))
    total = h.sum(axis=1, keepdims=True)
    np.divide(h, total, out=h, where=total > 0)
    return h


class TwoTower(nn.Module):
    """Item-input embeddings pooled into a user vector; item embeddings and biases score it."""

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(n_items, dim) * 0.1)
        self.item = nn.Parameter(torch.randn(n_items, dim) * 0.1)
        self.bias = nn.Parameter(torch.zeros(n_items))

    def user_vectors(self, history: torch.Tensor) -> torch.Tensor:
        """(n, n_items) normalised histories -> (n, dim) user vectors."""
        return history @ self.query

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.user_vectors(history) @ self.item.T + self.bias


def train(
    inter: Interactions, n_users: int, n_items: int, *, seed: int = 0, **options: Any
) -> TwoTower:
    """Fit a fresh :class:`TwoTower` on ``inter`` (options override :data:`DEFAULTS`)."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown recommender training options: {sorted(unknown)}")
    opts = DEFAULTS | options
    target = torch.from_numpy(history_matrix(inter, n_users, n_items))
    with torch_settings(TRAIN_THREADS, seed):
        model = TwoTower(n_items, int(opts["dim"]))
        opt = torch.optim.Adam(model.parameters(), lr=float(opts["lr"]))
        gen = torch.Generator().manual_seed(seed)
        keep = 1.0 - float(opts["dropout"])
        seen = target > 0
        active = seen.any(dim=1)
        for _ in range(int(opts["epochs"])):
            mask = (torch.rand(target.shape, generator=gen) < keep) & seen
            x = target * mask
            x = x / x.sum(dim=1, keepdim=True).clamp_min(1e-12)
            logits = model(x)
            nll = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1)[active].mean()
            l2 = float(opts["l2"]) * (model.query.square().sum() + model.item.square().sum())
            opt.zero_grad()
            (nll + l2).backward()
            opt.step()
    return model.eval()


def scores(model: TwoTower, history: np.ndarray) -> np.ndarray:
    """Scores (n, n_items) for normalised histories (n, n_items)."""
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(history, dtype=np.float32))).double().numpy()


def user_vectors(model: TwoTower, history: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        h = torch.from_numpy(np.asarray(history, dtype=np.float32))
        return model.user_vectors(h).double().numpy()


def top_k(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of each row's ``k`` best items, best first (ties: lower index)."""
    k = min(k, s.shape[1])
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(s, idx, axis=1)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(model: TwoTower, path: Path) -> str:
    """``torch.save`` of the state dict (tensors only); returns the file's SHA-256."""
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, path)
    return sha256(path)


def load(path: Path, n_items: int, dim: int, digest: str) -> TwoTower:
    """The model from ``path`` if its SHA-256 is ``digest``; tensors only (``weights_only``)."""
    if sha256(path) != digest:
        raise ValueError(f"{path}: digest does not match the model metadata (modified or corrupt)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = TwoTower(n_items, dim)
    model.load_state_dict(state)
    return model.eval()
