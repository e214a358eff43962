"""Fast white-box evaluation: batched PGD with early stopping, and the input domain it respects.

Hand-written on purpose (DESIGN.md: only where a benchmark shows a measured win): ART's
``ProjectedGradientDescent`` is the reference, and ``python -m bench robustness`` runs both on
the same model and inputs. This evaluation follows ART's trajectory step for step (same
cross-entropy loss, same signed or L2-normalised step, same projection and clipping) but

- never attacks a sample the model already gets wrong (it counts as not robust),
- freezes a sample the moment it is misclassified (it stays misclassified, so the robust
  accuracy can only be *lower* than ART's, which scores the last iterate), while the samples
  still standing keep every one of the ``steps`` iterations: the attack is not weakened,
- uses the forward pass of each step for both the gradient and the stop test (one batched
  forward/backward per step on the shrinking active set), no parameter gradients, no wrapper
  conversions, channels-last memory for convolutions.

Perturbations live in *feature-range units*: ``eps`` is a fraction of each feature's range
(``upper - lower``), so for images in [0, 1] it is plain pixel units (8/255) and for tabular
inputs it scales per feature; features that are not mutable are never changed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlhunt.scenarios.base import InputSpec

if TYPE_CHECKING:
    import torch

Norm = Literal["inf", "2"]


@dataclass(frozen=True)
class Domain:
    """Per-feature bounds, which features an attacker may change, and which are integers.

    Arrays have the shape of one input (images: (C, H, W); tabular: (d,))."""

    kind: str
    lower: np.ndarray
    upper: np.ndarray
    mutable: np.ndarray
    integer: np.ndarray

    @property
    def scale(self) -> np.ndarray:
        return np.maximum(self.upper - self.lower, 1e-12)

    @classmethod
    def from_spec(cls, spec: InputSpec) -> Domain:
        if spec.kind == "image":
            shape = tuple(spec.shape)
            return cls(
                "image",
                np.zeros(shape, np.float32),
                np.ones(shape, np.float32),
                np.ones(shape, bool),
                np.zeros(shape, bool),
            )
        d = len(spec.names)
        lower = np.asarray(spec.lower or [-np.inf] * d, dtype=np.float32)
        upper = np.asarray(spec.upper or [np.inf] * d, dtype=np.float32)
        mutable = np.asarray(spec.mutable or [True] * d, dtype=bool)
        integer = np.asarray(spec.integer or [False] * d, dtype=bool)
        return cls("tabular", lower, upper, mutable, integer)

    def finalize(self, x: np.ndarray) -> np.ndarray:
        """What a real input must be: clipped to the bounds, integer features rounded."""
        out = np.clip(x, self.lower, self.upper)
        if self.integer.any():
            out = np.where(self.integer, np.round(out), out)
        return out.astype(np.float32)


def prepare(module: Any, threads: int | None = None) -> Any:
    """A private copy of ``module`` for attacking: eval mode, BatchNorm folded into the
    convolution before it, frozen parameters (no weight gradients are ever computed),
    channels-last when it has convolutions. The target's own module is left untouched."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    model = _fold_batchnorm(copy.deepcopy(module).eval())
    for p in model.parameters():
        p.requires_grad_(False)
    if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        model = model.to(memory_format=torch.channels_last)
    return model


def _fold_batchnorm(module: Any) -> Any:
    """Conv2d followed by BatchNorm2d inside any ``nn.Sequential`` -> one Conv2d (eval mode:
    the same function, one layer less per forward and backward)."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for name, child in module.named_children():
        setattr(module, name, _fold_batchnorm(child))
    if not isinstance(module, torch.nn.Sequential):
        return module
    layers = list(module)
    out: list[Any] = []
    i = 0
    while i < len(layers):
        a, b = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(a, b))
            i += 2
        else:
            out.append(a)
            i += 1
    return torch.nn.Sequential(*out)


def _layout(t: torch.Tensor) -> torch.Tensor:
    import torch

    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def predict(model: Any, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Argmax predictions of a prepared module (no autograd)."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            t = _layout(torch.from_numpy(np.ascontiguousarray(x[i : i + batch], np.float32)))
            out.append(model(t).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


@dataclass
class PGDResult:
    x_adv: np.ndarray
    correct: np.ndarray  # bool per sample: still classified correctly after the attack
    clean_correct: np.ndarray
    evaluations: int  # sample-forward passes (with or without backward)


def pgd(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    *,
    domain: Domain,
    norm: Norm = "inf",
    steps: int = 20,
    step_size: float | None = None,
    early_stop: bool = True,
    batch: int = 512,
) -> PGDResult:
    """Untargeted PGD from the clean point (no random start, like ART's default) on a module
    from :func:`prepare`. ``eps`` and ``step_size`` are in feature-range units; ``step_size``
    defaults to eps / 4. Integer features are rounded and the prediction re-checked at the end."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    # Rounding integer features at the end can pull a point frozen just past the boundary back:
    # with mutable integers every sample runs all steps (full strength), only skipping is kept.
    stop = early_stop and not bool((domain.integer & domain.mutable).any())
    clean_ok = predict(model, x) == y
    evaluations = len(x)
    x_adv = x.copy()
    todo = np.flatnonzero(clean_ok) if early_stop else np.arange(len(x))
    alpha = eps / 4 if step_size is None else step_size
    for start in range(0, len(todo), batch):
        idx = todo[start : start + batch]
        x_adv[idx], n = _pgd_batch(model, x[idx], y[idx], eps, alpha, norm, steps, domain, stop)
        evaluations += n
    x_adv = domain.finalize(x_adv)
    correct = predict(model, x_adv) == y
    evaluations += len(x)
    return PGDResult(x_adv, correct & clean_ok if early_stop else correct, clean_ok, evaluations)


def _pgd_batch(
    model: Any,
    x0_np: np.ndarray,
    y_np: np.ndarray,
    eps: float,
    alpha: float,
    norm: Norm,
    steps: int,
    domain: Domain,
    early_stop: bool,
) -> tuple[np.ndarray, int]:
    import torch

    f = torch.nn.functional
    x0 = _layout(torch.from_numpy(x0_np))
    y = torch.from_numpy(y_np)
    scale = torch.from_numpy(domain.scale * domain.mutable).to(x0.dtype)  # 0 = immutable
    lo, hi = torch.from_numpy(domain.lower), torch.from_numpy(domain.upper)
    x_adv = x0.clone()
    active = torch.arange(len(x0))
    evaluations = 0
    for _ in range(steps):
        if len(active) == 0:
            break
        xa = x_adv[active].requires_grad_(True)
        logits = model(xa)
        evaluations += len(active)
        loss = f.cross_entropy(logits, y[active], reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        if early_stop:  # misclassified at this iterate: freeze it there, step the others
            keep = (logits.detach().argmax(1) == y[active]).nonzero().squeeze(1)
            active, grad = active[keep], grad[keep]
            if len(active) == 0:
                break
        with torch.no_grad():
            step = _direction(grad * scale, norm) * scale * alpha  # in x units
            new = _project(x_adv[active] + step, x0[active], eps, norm, scale)
            x_adv[active] = torch.maximum(torch.minimum(new, hi), lo)
    return x_adv.detach().contiguous().numpy(), evaluations


def _direction(g: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Steepest ascent direction of unit size in the norm (gradient in range units)."""
    import torch

    if norm == "inf":
        return g.sign()
    flat = g.reshape(len(g), -1)
    n = torch.linalg.vector_norm(flat, dim=1).clamp_min(1e-12)
    return (flat / n[:, None]).reshape(g.shape)


def _project(
    x: torch.Tensor, x0: torch.Tensor, eps: float, norm: Norm, scale: torch.Tensor
) -> torch.Tensor:
    """Back into the eps-ball around x0, measured in range units."""
    import torch

    delta = x - x0
    if norm == "inf":
        bound = eps * scale
        return x0 + torch.maximum(torch.minimum(delta, bound), -bound)
    z = torch.where(scale > 0, delta / scale.clamp_min(1e-12), torch.zeros_like(delta))
    n = torch.linalg.vector_norm(z.reshape(len(z), -1), dim=1).clamp_min(1e-12)
    factor = torch.clamp(eps / n, max=1.0).reshape(-1, *([1] * (x.dim() - 1)))
    return x0 + delta * factor


def eval_subset(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``n`` evaluation rows (a seeded sample: runtime bound)."""
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, n, replace=False))


def eps_label(eps: float, kind: str) -> str:
    """8/255 for images (pixel units), "5% of range" for tabular features."""
    if kind == "image":
        return f"{eps * 255:g}/255"
    return f"{eps * 100:g}% of range"
