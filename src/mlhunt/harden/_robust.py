"""PGD adversarial training (Madry et al., 2018) of the moderation CNN, fine-tuned from the
scenario's weights on a subset of its training split, with an optional patch-aware share.

Each batch is replaced by adversarial versions crafted against the current weights (model in
eval mode while attacking, so BatchNorm statistics only see the training step):

- L-inf PGD-``steps`` at ``eps`` (step 2.5 * eps / steps, the Madry recipe for few steps),
  with epsilon ramped up over the first 30% of the updates (a cold start at full epsilon
  collapses the fine-tuned model to one class);
- for a ``patch_share`` of the prohibited images, a square patch at a random place off the
  object (the placement rule of assess's patch attack) whose pixels PGD sets freely (L-inf
  radius 1 inside the square): the patch attack's threat, per image, at training time.

A ``clean_weight`` share of the loss stays on the clean batch (clean accuracy's floor).
AdamW with a one-cycle schedule, like the scenario's own trainer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlhunt.assess import gradient as g
from mlhunt.assess.attacks.patch import corners
from mlhunt.harden.base import Progress


@dataclass(frozen=True)
class Recipe:
    eps: float
    steps: int = 3
    epochs: int = 3
    lr: float = 1e-3
    batch: int = 64
    clean_weight: float = 0.5
    patch_share: float = 0.5
    patch_area: float = 0.1
    patch_steps: int = 5
    seed: int = 0


def _patch_masks(boxes: np.ndarray, side: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 1, size, size) float masks of one side x side square per image, off the object."""
    allowed = corners(boxes, side, size, 1.0)
    masks = np.zeros((len(boxes), 1, size, size), np.float32)
    for i in range(len(boxes)):
        ys, xs = np.nonzero(allowed[i])
        if len(ys):
            j = int(rng.integers(len(ys)))
            masks[i, 0, ys[j] : ys[j] + side, xs[j] : xs[j] + side] = 1.0
    return masks


def patch_pgd(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    masks: np.ndarray,
    steps: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per-image adversarial patch: pixels under the mask start random and follow the sign of
    the loss gradient (step 0.25, clipped to [0, 1]); pixels outside are never changed."""
    import torch

    xt, m = torch.from_numpy(x), torch.from_numpy(masks)
    noise = torch.from_numpy(rng.random(x.shape, dtype=np.float32))
    xa = xt * (1 - m) + noise * m
    yt = torch.from_numpy(y)
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(xa), yt, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            xa = torch.clamp(xa + 0.25 * grad.sign() * m, 0.0, 1.0)
    return xa.detach().numpy()


def adversarial_train(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    boxes: np.ndarray,
    recipe: Recipe,
    *,
    positive: int = 1,
    progress: Progress | None = None,
) -> tuple[Any, list[float]]:
    """A fine-tuned copy of ``model`` and the mean training loss of each epoch."""
    import torch

    f = torch.nn.functional
    torch.manual_seed(recipe.seed)
    model = copy.deepcopy(model)
    domain = _image_domain(x.shape[1:])
    rng = np.random.default_rng(recipe.seed)
    size = int(x.shape[-1])
    side = max(1, int(np.floor(np.sqrt(recipe.patch_area * size * size))))
    per_epoch = len(x) // recipe.batch
    total = max(1, recipe.epochs * per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total)
    losses: list[float] = []
    step = 0
    for epoch in range(recipe.epochs):
        perm = rng.permutation(len(x))
        running = 0.0
        for i in range(per_epoch):
            idx = perm[i * recipe.batch : (i + 1) * recipe.batch]
            xb, yb = x[idx], y[idx]
            eps = recipe.eps * min(1.0, (step + 1) / (0.3 * total))
            step += 1
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            xa, _ = g._pgd_batch(
                model, xb, yb, eps, 2.5 * eps / recipe.steps, "inf", recipe.steps, domain, False
            )
            if recipe.patch_share > 0:
                pos = np.flatnonzero(yb == positive)
                pick = pos[rng.random(len(pos)) < recipe.patch_share]
                if len(pick):
                    masks = _patch_masks(boxes[idx][pick], side, size, rng)
                    xa[pick] = patch_pgd(model, xb[pick], yb[pick], masks, recipe.patch_steps, rng)
            for p in model.parameters():
                p.requires_grad_(True)
            model.train()
            yt = torch.from_numpy(yb)
            loss = (1 - recipe.clean_weight) * f.cross_entropy(model(torch.from_numpy(xa)), yt)
            if recipe.clean_weight > 0:
                loss = loss + recipe.clean_weight * f.cross_entropy(model(torch.from_numpy(xb)), yt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach())
        losses.append(round(running / max(per_epoch, 1), 4))
        if progress:
            progress(f"adversarial training epoch {epoch + 1}/{recipe.epochs}: loss {losses[-1]}")
    return model.eval(), losses


def _image_domain(shape: tuple[int, ...]) -> g.Domain:
    from mlhunt.scenarios.base import InputSpec

    return g.Domain.from_spec(InputSpec(kind="image", shape=tuple(shape)))
