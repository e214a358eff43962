"""Adversarial patch: a sticker that makes the moderator miss the prohibited object.

Threat as a real attacker runs it: he uploads his own image showing the object and adds a
printed-looking square sticker *next to* it (covering the object would just remove it, which
needs no attack). So the patch is trained on some prohibited images at random placements that
never overlap the object's box (expectation over placements), then measured on held-out
prohibited images, again at random placements off the object: hide rate = share of held-out
images the model flagged when clean that it lets through with the patch, for each patch area
(share of the image's pixels), plus an image grid of examples.

Hand-written, with the reason measured: ART's ``AdversarialPatchPyTorch`` needs torchvision,
which mlhunt does not depend on; ART's ``AdversarialPatchNumpy`` (placement mask honoured) took
88 s for 300 iterations on the moderation CNN and hid the object in 39% of held-out images at
10% area, where this batched torch loop takes ~10 s and hides it in ~95% (same model, same
placement rule). Square patches of exact pixel area; no rotation or scaling (a sticker of known
size); the model is never changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.assess import gradient as g
from mlhunt.assess.base import AttackContext, AttackResult
from mlhunt.assess.plots import curve, image_grid

ID = "MLH-ASSESS-PATCH"


def corners(boxes: np.ndarray, side: int, size: int, margin: float) -> np.ndarray:
    """(n, k, k) bool, k = size - side + 1: top-left corners where a side x side square stays
    in the image and does not overlap the object's box grown by ``margin`` pixels."""
    k = size - side + 1
    t = np.arange(k)[None, :]
    x0, y0, x1, y1 = (np.nan_to_num(boxes[:, i, None], nan=-1e9) for i in range(4))
    ok_x = (t + side <= np.floor(x0 - margin)) | (t >= np.ceil(x1 + margin))
    ok_y = (t + side <= np.floor(y0 - margin)) | (t >= np.ceil(y1 + margin))
    return ok_x[:, None, :] | ok_y[:, :, None]


def paste(x: Any, patch: Any, allowed: np.ndarray, rng: np.random.Generator) -> Any:
    """Each image with the patch at a random allowed corner (differentiable in ``patch``)."""
    out = x.clone()
    side = patch.shape[-1]
    for i in range(len(x)):
        ys, xs = np.nonzero(allowed[i])
        j = int(rng.integers(len(ys)))
        out[i, :, ys[j] : ys[j] + side, xs[j] : xs[j] + side] = patch
    return out


def train_patch(
    model: Any,
    x: np.ndarray,
    allowed: np.ndarray,
    side: int,
    target: int,
    *,
    iterations: int,
    batch: int,
    lr: float,
    rng: np.random.Generator,
) -> Any:
    """Adam on the patch's logits (sigmoid keeps pixels in [0, 1]), cross-entropy toward
    ``target`` over random images and placements."""
    import torch

    xt = torch.from_numpy(x)
    w = torch.from_numpy(rng.normal(0, 1, (x.shape[1], side, side)).astype(np.float32))
    w.requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(iterations):
        idx = rng.choice(len(x), min(batch, len(x)), replace=False)
        xb = paste(xt[idx], torch.sigmoid(w), allowed[idx], rng)
        goal = torch.full((len(idx),), target, dtype=torch.long)
        loss = torch.nn.functional.cross_entropy(model(g._layout(xb)), goal)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return torch.sigmoid(w).detach()


def run(ctx: AttackContext) -> AttackResult:
    import torch

    p, target, data = ctx.params, ctx.target, ctx.data
    module = target.torch_module()
    if module is None or target.spec.kind != "image":
        return AttackResult(ID, "skipped", "needs an image model with a PyTorch module")
    if "boxes_eval" not in data.extra:
        return AttackResult(ID, "skipped", "needs the object's boxes (data.extra['boxes_eval'])")
    positive = int(data.extra.get("positive_class", 1))
    wanted = p.get("target_class")  # null in the YAML: the other class of a binary model
    goal = int(wanted) if wanted is not None else (1 - positive if len(target.classes) == 2 else 0)
    size = int(target.spec.shape[-1])
    rng = ctx.rng()
    model = g.prepare(module)
    pos = rng.permutation(np.flatnonzero(np.asarray(data.y_eval) == positive))
    n_train, n_test = int(p.get("n_train", 200)), int(p.get("n_test", 200))
    train_i, test_i = pos[:n_train], pos[n_train : n_train + n_test]
    boxes = np.asarray(data.extra["boxes_eval"], dtype=np.float32)
    x_all = np.asarray(data.x_eval, dtype=np.float32)
    flagged = test_i[g.predict(model, x_all[test_i]) == positive]  # clean: caught
    if len(train_i) < 10 or len(flagged) < 10:
        return AttackResult(ID, "inconclusive", "too few prohibited images to train and test")
    areas = sorted(float(a) for a in p.get("areas", [0.02, 0.05, 0.1]))
    headline = float(p.get("patch_area", 0.1))
    margin, repeats = float(p.get("margin", 1.0)), int(p.get("repeats", 3))
    rates: list[float] = []
    sides: list[int] = []
    examples: dict[str, Any] = {}
    for area in areas:
        side = max(1, int(np.floor(np.sqrt(area * size * size))))  # never above the area
        sides.append(side)
        ctx.progress(f"patch {side}x{side} px ({side * side / size**2:.1%} of the image)")
        a_tr = corners(boxes[train_i], side, size, margin)
        a_te = corners(boxes[flagged], side, size, margin)
        tr_ok, te_ok = a_tr.any(axis=(1, 2)), a_te.any(axis=(1, 2))
        with torch.enable_grad():
            patch = train_patch(
                model,
                x_all[train_i][tr_ok],
                a_tr[tr_ok],
                side,
                goal,
                iterations=int(p.get("iterations", 200)),
                batch=int(p.get("batch", 32)),
                lr=float(p.get("lr", 0.1)),
                rng=rng,
            )
        hidden = 0
        xt = torch.from_numpy(x_all[flagged][te_ok])
        with torch.inference_mode():
            for _ in range(repeats):
                xp = paste(xt, patch, a_te[te_ok], rng)
                hidden += int((model(g._layout(xp)).argmax(1) == goal).sum())
        # images with no room for the sticker off the object count as not hidden
        rates.append(hidden / (repeats * len(flagged)))
        if abs(area - headline) < 1e-9 or area == areas[-1]:
            examples = {"clean": x_all[flagged][te_ok][:6], "patched": xp[:6].numpy(), "side": side}

    h = min(range(len(areas)), key=lambda i: abs(areas[i] - headline))
    hide, area_px = rates[h], sides[h] ** 2 / size**2
    plots = [
        curve(
            ctx.out_dir,
            "patch_hide_rate.png",
            [s * s / size**2 for s in sides],
            {"hide rate": rates},
            xlabel="patch area (share of image)",
            ylabel="hidden (prohibited -> allowed)",
            title="Adversarial patch",
        ),
        _grid(ctx, model, examples, target.classes),
    ]
    metrics = {
        "hide_rate": round(hide, 4),
        "patch_area": round(area_px, 4),
        "patch_side_px": sides[h],
        "success_rate": round(hide, 4),
        "held_out_images": len(flagged),
        "train_images": len(train_i),
        "placements_per_image": repeats,
        "placement": f"random, not overlapping the object's box (+{margin:g} px)",
        "model_evaluations": int(p.get("iterations", 200)) * int(p.get("batch", 32)) * len(areas)
        + repeats * len(flagged) * len(areas),
    }
    validated = hide >= float(p.get("min_hide_rate", 0.1))
    summary = (
        f"a {sides[h]}x{sides[h]} px patch ({area_px:.1%} of the image) placed at random next "
        f"to the object hides it in {hide:.1%} of {len(flagged)} held-out prohibited images "
        f"(areas {', '.join(f'{s * s / size**2:.1%}' for s in sides)}: "
        f"{', '.join(f'{r:.1%}' for r in rates)})."
    )
    return AttackResult(
        ID,
        "validated" if validated else "refuted",
        summary,
        metrics=metrics,
        curves={"patch_area": [s * s / size**2 for s in sides], "hide_rate": rates},
        plots=plots,
    )


def _grid(ctx: AttackContext, model: Any, ex: dict[str, Any], classes: tuple[str, ...]) -> str:
    clean, patched = ex["clean"], ex["patched"]
    import torch

    with torch.inference_mode():
        pc = torch.softmax(model(g._layout(torch.from_numpy(clean))), 1).numpy()
        pp = torch.softmax(model(g._layout(torch.from_numpy(patched))), 1).numpy()
    images = np.concatenate([clean, patched])
    titles = [f"clean: {classes[int(r.argmax())]} {r.max():.2f}" for r in pc] + [
        f"patched: {classes[int(r.argmax())]} {r.max():.2f}" for r in pp
    ]
    return image_grid(
        ctx.out_dir,
        "patch_examples.png",
        images,
        titles,
        columns=len(clean),
        title=f"{ex['side']}x{ex['side']} px patch next to the object",
    )
