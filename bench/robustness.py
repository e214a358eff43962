"""``robustness``: mlhunt's PGD evaluation vs ART's ``ProjectedGradientDescent`` alone.

Workload (DESIGN.md): the image-moderation CNN, 500 held-out images, L-inf eps 8/255, 20 PGD
steps of 2/255 from the clean point, true labels. Both sides run in this process on the same
model weights and the same inputs with the same thread count; each side's time covers the whole
evaluation (ART: wrapping the model, ``generate`` and the prediction on the adversarial
examples; mlhunt: :func:`mlhunt.assess.gradient.prepare` and :func:`~mlhunt.assess.gradient.pgd`
including its final prediction). Robust accuracy = share of the 500 images still classified
correctly after the attack (images misclassified when clean count as not robust on both sides).

It runs twice: on the scenario's CNN, and on a copy fine-tuned with PGD adversarial training
(bounded: a subset of the training split, a few epochs), because a model with near-zero robust
accuracy flatters early stopping. ``ratio`` is ART seconds / mlhunt seconds on the scenario CNN;
the adversarially trained run is under ``adversarially_trained``.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import numpy as np

from bench import log

EPS = 8 / 255
STEP = 2 / 255
STEPS = 20


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _art(model: Any, x: np.ndarray, y: np.ndarray, batch: int) -> dict[str, Any]:
    import torch
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    start = time.perf_counter()
    clf = PyTorchClassifier(
        model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=x.shape[1:],
        nb_classes=2,
        clip_values=(0.0, 1.0),
    )
    attack = ProjectedGradientDescent(
        clf, norm=np.inf, eps=EPS, eps_step=STEP, max_iter=STEPS, batch_size=batch, verbose=False
    )
    x_adv = attack.generate(x, y=y)
    acc = float((clf.predict(x_adv, batch_size=batch).argmax(1) == y).mean())
    seconds = time.perf_counter() - start
    linf = float(np.abs(x_adv - x).max())
    return {"seconds": round(seconds, 3), "robust_accuracy": acc, "max_linf": round(linf, 6)}


def _mlhunt(model: Any, x: np.ndarray, y: np.ndarray, batch: int) -> dict[str, Any]:
    from mlhunt.assess.gradient import Domain, pgd, prepare
    from mlhunt.scenarios.base import InputSpec

    start = time.perf_counter()
    domain = Domain.from_spec(InputSpec(kind="image", shape=tuple(x.shape[1:])))
    res = pgd(prepare(model), x, y, EPS, domain=domain, steps=STEPS, step_size=STEP, batch=batch)
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 3),
        "robust_accuracy": float(res.correct.mean()),
        "clean_accuracy": float(res.clean_correct.mean()),
        "sample_evaluations": res.evaluations,
        "max_linf": round(float(np.abs(res.x_adv - x).max()), 6),
    }


def _compare(model: Any, x: np.ndarray, y: np.ndarray, runs: int, label: str) -> dict[str, Any]:
    """Best of ``runs`` for each side, interleaved so load changes hit both alike."""
    best: dict[str, dict[str, Any]] = {}
    for i in range(runs):
        for side, fn in (("peer", _art), ("mlhunt", _mlhunt)):
            r = fn(copy.deepcopy(model), x, y, len(x))
            log(
                f"{label}: run {i + 1}/{runs} {side}: {r['seconds']:.2f} s, "
                f"robust accuracy {r['robust_accuracy']:.4f}"
            )
            if side not in best or r["seconds"] < best[side]["seconds"]:
                best[side] = r
    ratio = best["peer"]["seconds"] / max(best["mlhunt"]["seconds"], 1e-9)
    gap = best["mlhunt"]["robust_accuracy"] - best["peer"]["robust_accuracy"]
    return {**best, "ratio": round(ratio, 2), "robust_accuracy_gap_points": round(100 * gap, 2)}


def adversarially_train(
    model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int = 0, attack_steps: int = 3
) -> Any:
    """Fine-tune a copy with PGD adversarial training (Madry et al.): each batch is replaced by
    its PGD-``attack_steps`` adversarial version at eps 8/255 (model in eval mode while
    attacking, so BatchNorm statistics only see the training step)."""
    import torch

    from mlhunt.assess.gradient import Domain, _pgd_batch
    from mlhunt.scenarios.base import InputSpec

    torch.manual_seed(seed)
    model = copy.deepcopy(model)
    domain = Domain.from_spec(InputSpec(kind="image", shape=tuple(x.shape[1:])))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        perm = rng.permutation(len(x))
        for i in range(0, len(x) - 63, 64):
            idx = perm[i : i + 64]
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            xb, _ = _pgd_batch(
                model,
                x[idx],
                y[idx],
                EPS,
                2.5 * EPS / attack_steps,
                "inf",
                attack_steps,
                domain,
                early_stop=False,
            )
            for p in model.parameters():
                p.requires_grad_(True)
            model.train()
            loss = torch.nn.functional.cross_entropy(
                model(torch.from_numpy(xb)), torch.from_numpy(y[idx])
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        log(f"adversarial training: epoch {epoch + 1}/{epochs}, loss {total / (len(x) // 64):.4f}")
    return model.eval()


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    from mlhunt.scenarios import ensure_built

    threads = _cores()
    torch.set_num_threads(threads)
    log(f"loading image-moderation (torch threads {threads})")
    _, loaded = ensure_built("image-moderation")
    n = 100 if quick else 500
    rng = np.random.default_rng(20240611)
    idx = rng.choice(len(loaded.x_holdout), n, replace=False)
    x = np.ascontiguousarray(loaded.x_holdout[idx], dtype=np.float32)
    y = np.asarray(loaded.y_holdout[idx], dtype=np.int64)
    runs = 1 if quick else 3
    model = loaded.torch_model()
    main = _compare(model, x, y, runs, "scenario CNN")

    n_adv, epochs = (1_000, 1) if quick else (2_000, 3)
    log(f"adversarial training: {n_adv} training images, {epochs} epochs, PGD-3 at 8/255")
    t0 = time.perf_counter()
    sub = rng.choice(len(loaded.x_train), n_adv, replace=False)
    robust = adversarially_train(model, loaded.x_train[sub], loaded.y_train[sub], epochs=epochs)
    train_s = time.perf_counter() - t0
    adv = _compare(robust, x, y, runs, "adversarially trained CNN")
    adv["training"] = {"images": n_adv, "epochs": epochs, "seconds": round(train_s, 1)}
    return {
        "mlhunt": main["mlhunt"],
        "peer": {**main["peer"], "name": "ART ProjectedGradientDescent (PyTorch)"},
        "ratio": main["ratio"],
        "robust_accuracy_gap_points": main["robust_accuracy_gap_points"],
        "adversarially_trained": adv,
        "workload": {
            "images": n,
            "eps": "8/255",
            "step": "2/255",
            "steps": STEPS,
            "norm": "inf",
            "threads": threads,
            "runs": runs,
        },
    }
