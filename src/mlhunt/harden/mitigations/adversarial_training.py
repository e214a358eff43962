"""Adversarial training of the image-moderation CNN, checked with the attacks that validated the
threats: PGD L-inf at the threat's epsilon (mlhunt's batched PGD, the white-box evasion attack's
engine) and assess's adversarial patch attack, both run before and after on the same held-out
images with the same seed and parameters.

Training (:mod:`mlhunt.harden._robust`) fine-tunes from the scenario's weights on a seeded
subset, so it stays within a minute on two cores; the weights are cached by parameters
(:mod:`mlhunt.harden._cache`). Utility is the moderation's: accuracy on the full holdout, and
separately recall on prohibited images and the false-positive rate on allowed ones, because a
model that flags everything "resists" both attacks and is useless.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from mlhunt.assess import gradient as g
from mlhunt.assess.attacks import evasion_whitebox, patch
from mlhunt.errors import InputError
from mlhunt.harden.base import (
    HardenContext,
    ModelTarget,
    Outcome,
    attack_params,
    measures,
    run_attack,
    torch_threads,
)

EVASION, PATCH = evasion_whitebox.ID, patch.ID


def recipe_from(p: dict[str, Any], eps: float, seed: int) -> Any:
    from mlhunt.harden._robust import Recipe

    try:
        r = Recipe(
            eps=eps,
            steps=int(p.get("train_steps", 3)),
            epochs=int(p.get("epochs", 3)),
            lr=float(p.get("lr", 1e-3)),
            clean_weight=float(p.get("clean_weight", 0.5)),
            patch_share=float(p.get("patch_share", 0.5)),
            patch_area=float(p.get("patch_area", 0.1)),
            seed=seed,
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"adversarial training parameters: {exc}") from None
    in_unit = 0 <= r.clean_weight <= 1 and 0 <= r.patch_share <= 1
    if not (in_unit and r.epochs >= 1 and r.steps >= 1):
        raise InputError(
            "adversarial training: clean_weight and patch_share in [0, 1], "
            "epochs and train_steps >= 1"
        )
    return r


def robust_model(ctx: HardenContext, eps: float) -> tuple[Any, dict[str, Any]]:
    """The adversarially trained CNN (cached by parameters) and how it was trained."""
    import time

    from mlhunt.harden import _robust
    from mlhunt.harden._cache import array_digest, cached_module, code_parts, file_digest
    from mlhunt.harden._robust import adversarial_train
    from mlhunt.scenarios.image import build_cnn

    loaded, p = ctx.loaded, ctx.params
    recipe = recipe_from(p, eps, ctx.seed)
    n_train = min(int(p.get("n_train", 4000)), len(loaded.x_train))
    base_dir = getattr(loaded, "directory", None)
    digest = file_digest(base_dir / "model.pt") if base_dir else loaded.model_name
    config = getattr(loaded, "config", {}) or {}
    parts = {
        "recipe": asdict(recipe),
        "n_train": n_train,
        "base": digest,
        "data": array_digest(loaded.x_train, loaded.y_train, loaded.boxes_train),  # type: ignore[attr-defined]
        "code": code_parts(_robust),
    }

    def build() -> tuple[Any, dict[str, Any]]:
        started = time.perf_counter()
        idx = np.sort(
            np.random.default_rng(ctx.seed).choice(len(loaded.x_train), n_train, replace=False)
        )
        x = np.asarray(loaded.x_train[idx], dtype=np.float32)
        y = np.asarray(loaded.y_train[idx], dtype=np.int64)
        boxes = np.asarray(loaded.boxes_train)[idx]  # type: ignore[attr-defined]
        model, losses = adversarial_train(
            loaded.torch_model(),
            x,
            y,
            boxes,
            recipe,  # type: ignore[attr-defined]
            progress=ctx.progress,
        )
        return model, {"losses": losses, "train_seconds": round(time.perf_counter() - started, 1)}

    def fresh() -> Any:
        return build_cnn(tuple(config.get("widths", (16, 32, 64))), int(config.get("hidden", 32)))

    model, meta, hit = cached_module("adv-training", parts, build, fresh)
    return model, {**parts, **meta, "from_cache": hit}


def moderation_utility(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, recall on prohibited (class 1) and false-positive rate on allowed (class 0)."""
    pred = g.predict(model, x)
    pos, neg = y == 1, y == 0
    return {
        "accuracy": round(float(np.mean(pred == y)), 4),
        "recall_prohibited": round(float(np.mean(pred[pos] == 1)) if pos.any() else 0.0, 4),
        "false_positive_rate": round(float(np.mean(pred[neg] == 1)) if neg.any() else 0.0, 4),
    }


def _target(name: str, ctx: HardenContext, module: Any) -> ModelTarget:
    prepared = g.prepare(module)

    def predict(x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = prepared(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            return torch.softmax(logits, 1).double().numpy()

    spec, classes = ctx.loaded.spec, tuple(ctx.loaded.classes)
    return ModelTarget(name, spec, classes, predict, torch_module=lambda: module)


def _pgd_measure(
    model: Any, x: np.ndarray, y: np.ndarray, eps: float, steps: int, domain: g.Domain
) -> dict[str, Any]:
    r = g.pgd(model, x, y, eps, domain=domain, steps=steps)
    return {
        "mode": "PGD L-inf",
        "clean_accuracy": round(float(r.clean_correct.mean()), 4),
        "adversarial_accuracy": round(float(r.correct.mean()), 4),
        "epsilon": round(eps, 6),
        "epsilon_label": g.eps_label(eps, "image"),
        "steps": steps,
        "evaluated": len(x),
        "success_rate": round(1 - float(r.correct.sum()) / max(int(r.clean_correct.sum()), 1), 4),
    }


def run(ctx: HardenContext) -> list[Outcome]:
    with torch_threads(1):
        return _run(ctx)


def _run(ctx: HardenContext) -> list[Outcome]:
    loaded, p = ctx.loaded, ctx.params
    if getattr(loaded, "torch_model", None) is None or loaded.spec.kind != "image":
        raise InputError(f"{ctx.mitigation}: {loaded.name} has no PyTorch image model")
    eps = float(p.get("epsilon") or 8 / 255)
    steps = int(p.get("steps", 20))
    domain = g.Domain.from_spec(loaded.spec)
    idx = g.eval_subset(len(ctx.data.x_eval), int(p.get("n_eval", 200)), ctx.rng())
    x = np.asarray(ctx.data.x_eval[idx], dtype=np.float32)
    y = np.asarray(ctx.data.y_eval[idx], dtype=np.int64)
    x_h = np.asarray(loaded.x_holdout, dtype=np.float32)
    y_h = np.asarray(loaded.y_holdout, dtype=np.int64)
    p_params = attack_params(PATCH, p.get("patch"))
    sweep = [float(e) / 255 for e in p.get("eval_epsilons", [1, 2, 4, 8, 16])]

    base = loaded.torch_model()  # type: ignore[attr-defined]
    ctx.progress("adversarial training (cached by parameters)")
    robust, training = robust_model(ctx, eps)
    results: dict[str, dict[str, Any]] = {}
    for label, module in (("before", base), ("after", robust)):
        ctx.progress(f"{label}: utility, PGD {g.eps_label(eps, 'image')} and the patch attack")
        prepared = g.prepare(module)
        pgd = _pgd_measure(prepared, x, y, eps, steps, domain)
        patch_r = run_attack(
            ctx,
            patch,
            _target(f"{loaded.model_name}+{label}", ctx, module),
            p_params,
            f"patch-{label}",
        )
        curve = [
            float(g.pgd(prepared, x, y, e, domain=domain, steps=steps).correct.mean())
            for e in sweep
        ]
        results[label] = {
            "utility": moderation_utility(prepared, x_h, y_h),
            "attacks": {EVASION: pgd, PATCH: measures(patch_r)},
            "curve": curve,
            "patch_curve": patch_r.curves,
        }
    b, a = results["before"], results["after"]
    rob_b = b["attacks"][EVASION]["adversarial_accuracy"]
    rob_a = a["attacks"][EVASION]["adversarial_accuracy"]
    hide_b = b["attacks"][PATCH].get("hide_rate")
    hide_a = a["attacks"][PATCH].get("hide_rate")
    drop = round(b["utility"]["accuracy"] - a["utility"]["accuracy"], 4)
    gain, hide_drop = float(p.get("min_robust_gain", 0.1)), float(p.get("min_hide_drop", 0.1))
    max_drop = float(p.get("max_clean_drop", 0.1))
    checks = {
        "robust_gain": rob_a >= rob_b + gain,
        "patch_hide_drop": None not in (hide_b, hide_a) and hide_a <= hide_b - hide_drop,
        "clean_accuracy": drop <= max_drop,
    }
    ok = all(checks.values())
    failed = [k for k, v in checks.items() if not v]
    label = g.eps_label(eps, "image")
    summary = (
        f"PGD L-inf {label} ({steps} steps, {len(x)} held-out images): robust accuracy "
        f"{rob_b:.1%} -> {rob_a:.1%}; adversarial patch hide rate {_pct(hide_b)} -> "
        f"{_pct(hide_a)}; clean accuracy {b['utility']['accuracy']:.1%} -> "
        f"{a['utility']['accuracy']:.1%} (recall on prohibited "
        f"{b['utility']['recall_prohibited']:.1%} -> {a['utility']['recall_prohibited']:.1%}, "
        f"false positives {b['utility']['false_positive_rate']:.1%} -> "
        f"{a['utility']['false_positive_rate']:.1%})"
    )
    if failed:
        summary += f"; fails: {', '.join(failed)}"
    plot = _plot(ctx, sweep, results)
    return [
        Outcome(
            variant={
                "epsilon": label,
                "patch_share": training["recipe"]["patch_share"],
                "clean_weight": training["recipe"]["clean_weight"],
            },
            utility_before=b["utility"],
            utility_after=a["utility"],
            attack_before=b["attacks"],
            attack_after=a["attacks"],
            effective=ok,
            summary=summary,
            extra={
                "training": training,
                "checks": checks,
                "clean_accuracy_drop": drop,
                "robust_accuracy": {"before": rob_b, "after": rob_a},
                "patch_hide_rate": {"before": hide_b, "after": hide_a},
                "robustness_curve": {
                    "epsilons": [round(e * 255, 3) for e in sweep],
                    "before": b["curve"],
                    "after": a["curve"],
                },
                "rule": (
                    f"effective when robust accuracy gains >= {gain:g}, the patch hide rate "
                    f"drops >= {hide_drop:g} and clean accuracy drops <= {max_drop:g}"
                ),
            },
            plots=[plot],
        )
    ]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _plot(ctx: HardenContext, sweep: list[float], results: dict[str, dict[str, Any]]) -> str:
    from mlhunt.assess import plots

    series = {f"robust accuracy {k}": r["curve"] for k, r in results.items()}
    return plots.curve(
        ctx.out_dir,
        "adversarial_training_tradeoff.png",
        [e * 255 for e in sweep],
        series,
        xlabel="PGD L-inf epsilon (/255)",
        ylabel="robust accuracy",
        logx=True,
        title=f"Adversarial training of {ctx.loaded.model_name}",
    )
