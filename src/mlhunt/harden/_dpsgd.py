"""A small PyTorch MLP on a tabular scenario, trained plainly or with opacus DP-SGD.

Why an MLP on the loan data and not the moderation CNN: assess's membership attack runs LiRA
on tabular models only (LiRA shadows of an image model are too costly on CPU), the loan records
are the personal data at stake, and DP-SGD's per-sample gradients on 12,000 images of a
BatchNorm CNN (which opacus rejects until BatchNorm is replaced) would take many minutes on two
cores, where this takes seconds.

Inputs are scaled with the input spec's *public* realistic ranges (``lower``/``upper``), never
with statistics of the training records, which would leak outside the privacy budget.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlhunt.errors import InputError


@dataclass(frozen=True)
class MLPConfig:
    hidden: int = 64
    epochs: int = 20
    batch: int = 256
    lr: float = 0.05  # SGD with momentum: opacus's usual optimizer
    max_grad_norm: float = 1.0
    seed: int = 0


def import_opacus() -> Any:
    """opacus, or one clear error saying what is wrong (it is an optional extra)."""
    try:
        import opacus
        from opacus import PrivacyEngine  # noqa: F401 - the part DP-SGD needs
    except Exception as exc:  # ImportError, or an incompatibility raised at import time
        import torch

        raise InputError(
            f"DP-SGD needs opacus (pip install 'mlhunt[privacy]'); importing it under torch "
            f"{torch.__version__} failed: {type(exc).__name__}: {exc}"
        ) from None
    return opacus


def build_mlp(d: int, hidden: int, n_classes: int = 2) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Linear(d, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


class Scaled:
    """predict_proba of an MLP over public-range-scaled inputs (numpy in, numpy out)."""

    def __init__(self, module: Any, lower: np.ndarray, upper: np.ndarray) -> None:
        self.module = module.eval()
        self.lower, self.span = lower, np.maximum(upper - lower, 1e-12)

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.lower) / self.span
        return np.clip(z, 0.0, 1.0).astype(np.float32)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.module(torch.from_numpy(self.transform(x)))
            return torch.softmax(logits.double(), 1).numpy()


class _Rows:
    """A tensor dataset the DataLoader fetches a whole batch from at once (``__getitems__``):
    opacus's Poisson-sampled loader otherwise indexes and collates row by row (10x slower)."""

    def __init__(self, x: Any, y: Any) -> None:
        self.tensors = (x, y)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.tensors[0][i], self.tensors[1][i]

    def __getitems__(self, idx: list[int]) -> tuple[Any, Any]:
        return self.tensors[0][idx], self.tensors[1][idx]


def _as_is(batch: Any) -> Any:
    return batch


def train(
    x: np.ndarray,
    y: np.ndarray,
    cfg: MLPConfig,
    *,
    epsilon: float | None = None,
    delta: float = 1e-5,
) -> tuple[Any, dict[str, Any]]:
    """(trained module, accounting). ``epsilon`` None: plain SGD, same architecture, batches and
    epochs (the non-private baseline); otherwise opacus DP-SGD calibrated to (epsilon, delta)
    with Poisson sampling and per-sample clipping at ``max_grad_norm``."""
    import torch

    torch.manual_seed(cfg.seed)
    module = build_mlp(x.shape[1], cfg.hidden, int(y.max()) + 1)
    opt = torch.optim.SGD(module.parameters(), lr=cfg.lr, momentum=0.9)
    ds = _Rows(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=cfg.batch, shuffle=True, generator=gen, collate_fn=_as_is
    )
    info: dict[str, Any] = {"epsilon": None, "delta": None, "mechanism": "none (plain SGD)"}
    engine = None
    if epsilon is not None:
        import_opacus()
        from opacus import PrivacyEngine

        with warnings.catch_warnings():
            # opacus's notes on its non-cryptographic RNG (fine for an audit), RDP orders and
            # torch's backward hooks
            warnings.simplefilter("ignore")
            engine = PrivacyEngine(accountant="rdp", secure_mode=False)
            module, opt, loader = engine.make_private_with_epsilon(
                module=module,
                optimizer=opt,
                data_loader=loader,
                target_epsilon=epsilon,
                target_delta=delta,
                epochs=cfg.epochs,
                max_grad_norm=cfg.max_grad_norm,
            )
        info = {
            "noise_multiplier": round(float(opt.noise_multiplier), 4),
            "max_grad_norm": cfg.max_grad_norm,
            "sample_rate": cfg.batch / len(x),
            "mechanism": "opacus DP-SGD (Poisson sampling, per-sample clipping, Gaussian "
            "noise), RDP accountant",
        }
    module.train()
    if engine is None:  # plain mini-batches by index: a DataLoader's per-row calls cost 10x
        xt, yt = ds.tensors
        loader = [
            (xt[i], yt[i])
            for _ in range(cfg.epochs)
            for i in torch.randperm(len(xt), generator=gen).split(cfg.batch)
        ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(cfg.epochs if engine is not None else 1):
            for xb, yb in loader:
                if len(xb) == 0:  # Poisson sampling can draw an empty batch
                    continue
                loss = torch.nn.functional.cross_entropy(module(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        if engine is not None:
            info["epsilon"] = round(float(engine.get_epsilon(delta)), 4)
            info["delta"] = delta
    plain = getattr(module, "_module", module)  # opacus wraps it in GradSampleModule
    return plain.eval(), info
