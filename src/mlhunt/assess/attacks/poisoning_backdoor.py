"""Backdoor poisoning: a small pixel trigger planted through a few poisoned training images.

Whoever can add images to the training set (user uploads fed back as training data, a labelling
vendor, a shared bucket) takes a few images of the class the model should catch (prohibited),
stamps ART's pixel-pattern trigger on them (``add_pattern_bd``; ``add_single_bd`` for a single
pixel) and labels them as the class he wants (allowed), with ART's ``PoisoningAttackBackdoor``.
The model is retrained with ``data.trainer`` on a sample of its training records, once clean and
once poisoned at each rate, the same way (same sample, seed and options): the clean model is
the control. Measured on held-out images the retraining never saw:

* clean accuracy of both models (a backdoor that costs accuracy would be noticed; one that does
  not passes every ordinary test),
* trigger success: held-out prohibited images that the clean model and the poisoned model each
  still catch without the trigger, stamped with it, and let through (allowed). The clean
  model's rate on the same stamped images is the baseline: what the pixels alone do.

Images only (the trigger is a pixel pattern); label flipping covers tabular models.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from mlhunt.assess.attacks._tabular import WANTED, wanted_class
from mlhunt.assess.base import AttackContext, AttackResult

ID = "MLH-ASSESS-POISONING-BACKDOOR"
Predict = Callable[[np.ndarray], np.ndarray]


def train_with(
    trainer: Callable[..., Predict], x: np.ndarray, y: np.ndarray, options: dict[str, Any]
) -> tuple[Predict, bool]:
    """``trainer(x, y, **options)`` when the trainer takes keyword options, else with its own
    defaults; returns the model's predict_proba and whether the options were applied."""
    params = inspect.signature(trainer).parameters.values()
    takes = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params) or all(
        k in {p.name for p in params} for k in options
    )
    if options and takes:
        return trainer(x, y, **options), True
    return trainer(x, y), not options


def trigger_fn(kind: str, distance: int, value: float) -> Callable[[np.ndarray], np.ndarray]:
    """ART's trigger for (n, C, H, W) images in [0, 1]: a 4-pixel pattern or one pixel near the
    bottom-right corner, set to ``value`` in every channel."""
    from art.attacks.poisoning.perturbations import add_pattern_bd, add_single_bd

    if kind == "pattern":
        return lambda x: add_pattern_bd(
            x,
            distance=distance,
            pixel_value=value,  # type: ignore[arg-type]
            channels_first=True,
        )
    if kind == "single":
        # add_single_bd indexes (n, H, W, C) or (n, H, W): move channels last and back.
        return lambda x: np.transpose(
            add_single_bd(
                np.transpose(x, (0, 2, 3, 1)),
                distance=distance,
                pixel_value=value,  # type: ignore[arg-type]
            ),
            (0, 3, 1, 2),
        )
    raise ValueError(f"trigger: expected 'pattern' or 'single', got {kind!r}")


def _class(value: Any, classes: tuple[str, ...]) -> int | None:
    """A class given by index or by name (None: not given)."""
    if value is None or isinstance(value, int):
        return value
    if str(value) not in classes:
        raise ValueError(f"unknown class {value!r} (classes: {', '.join(classes)})")
    return classes.index(str(value))


def _labels(predict: Predict, x: np.ndarray) -> np.ndarray:
    return np.argmax(np.asarray(predict(x)), axis=1)


def run(ctx: AttackContext) -> AttackResult:
    from art.attacks.poisoning import PoisoningAttackBackdoor

    data, p, t = ctx.data, ctx.params, ctx.target
    if t.spec.kind != "image":
        return AttackResult(ID, "skipped", "the trigger is a pixel pattern: image models only")
    if data.trainer is None or data.x_members is None or data.y_members is None:
        return AttackResult(ID, "skipped", "needs the model's trainer and its training records")
    k = len(t.classes)
    goal = _class(p.get("target_class"), t.classes)
    goal = wanted_class(t.classes, p.get("wanted", WANTED)) if goal is None else goal
    source = _class(p.get("source_class"), t.classes)
    source = int(data.extra.get("positive_class", 1)) if source is None else source
    if goal is None or goal == source or not (0 <= goal < k and 0 <= source < k):
        return AttackResult(ID, "skipped", "no distinct source and target class to backdoor")

    rng = ctx.rng()
    n = min(int(p.get("n_train", 3000)), len(data.x_members))
    pick = rng.permutation(len(data.x_members))[:n]
    x = np.asarray(data.x_members, np.float32)[pick]
    y = np.asarray(data.y_members)[pick].astype(np.int64)
    x_ev = np.asarray(data.x_eval, np.float32)
    y_ev = np.asarray(data.y_eval).astype(np.int64)
    x_src = x_ev[y_ev == source][: int(p.get("n_test", 500))]
    stamp = trigger_fn(
        str(p.get("trigger", "pattern")),
        int(p.get("trigger_distance", 2)),
        float(p.get("trigger_value", 1.0)),
    )
    attack = PoisoningAttackBackdoor(stamp)
    x_src_trig, _ = attack.poison(x_src, y=np.full(len(x_src), goal))
    options = dict(p.get("train_options") or {})

    def measure(xt: np.ndarray, yt: np.ndarray) -> dict[str, Any]:
        assert data.trainer is not None
        model, applied = train_with(data.trainer, xt, yt, options)
        clean_pred, trig_pred = _labels(model, x_src), _labels(model, x_src_trig)
        caught = clean_pred == source  # only images it catches without the trigger count
        hit = (trig_pred == goal) & caught
        return {
            "accuracy": float(np.mean(_labels(model, x_ev) == y_ev)),
            "trigger_success": float(hit.sum() / max(caught.sum(), 1)),
            "caught": int(caught.sum()),
            "options_applied": applied,
            "clean_pred": clean_pred,
            "trig_pred": trig_pred,
        }

    ctx.progress(f"training the clean control on {n} records")
    clean = measure(x, y)
    rows: list[dict[str, Any]] = []
    pool = np.flatnonzero(y == source)
    for rate in sorted(float(r) for r in p.get("rates", [0.05])):
        n_poison = min(len(pool), max(1, round(rate * n)))
        chosen = rng.choice(pool, size=n_poison, replace=False)
        xp, yp = x.copy(), y.copy()
        xp[chosen], yp[chosen] = attack.poison(x[chosen], y=np.full(n_poison, goal))
        ctx.progress(f"training with {n_poison} poisoned records ({rate:.1%})")
        rows.append({"rate": rate, "poisoned_records": n_poison, **measure(xp, yp)})
    return _result(ctx, clean, rows, x_src, x_src_trig, source, goal, n)


def _result(
    ctx: AttackContext,
    clean: dict[str, Any],
    rows: list[dict[str, Any]],
    x_src: np.ndarray,
    x_trig: np.ndarray,
    source: int,
    goal: int,
    n: int,
) -> AttackResult:
    from mlhunt.assess import plots

    p, classes = ctx.params, ctx.target.classes
    head = rows[-1]  # the largest rate is the headline
    gain = head["trigger_success"] - clean["trigger_success"]
    metrics: dict[str, Any] = {
        "clean_accuracy": round(clean["accuracy"], 4),
        "poisoned_accuracy": round(head["accuracy"], 4),
        "accuracy_drop": round(clean["accuracy"] - head["accuracy"], 4),
        "success_rate": round(head["trigger_success"], 4),
        "clean_model_trigger_rate": round(clean["trigger_success"], 4),
        "backdoor_gain": round(gain, 4),
        "rate": head["rate"],
        "poisoned_records": head["poisoned_records"],
        "train_records": n,
        "triggered_images": len(x_src),
        "trigger": str(p.get("trigger", "pattern")),
        "source_class": classes[source],
        "target_class": classes[goal],
        "train_options": dict(p.get("train_options") or {}),
        "train_options_applied": bool(clean["options_applied"]),
    }
    sample = slice(0, 6)
    titles = [f"no trigger\npoisoned model: {classes[int(b)]}" for b in head["clean_pred"][sample]]
    titles += [
        f"trigger\nclean: {classes[int(a)]}\npoisoned: {classes[int(b)]}"
        for a, b in zip(clean["trig_pred"][sample], head["trig_pred"][sample], strict=True)
    ]
    out = [
        plots.image_grid(
            ctx.out_dir,
            "backdoor_examples.png",
            np.concatenate([x_src[sample], x_trig[sample]]),
            titles,
            columns=len(x_src[sample]),
            title=f"Backdoor trigger ({metrics['trigger']}), {head['rate']:.1%} poisoned",
        )
    ]
    if len(rows) > 1:
        out.append(
            plots.curve(
                ctx.out_dir,
                "backdoor_curve.png",
                [0.0, *(r["rate"] for r in rows)],
                {
                    "trigger success": [
                        clean["trigger_success"],
                        *(r["trigger_success"] for r in rows),
                    ],
                    "clean accuracy": [clean["accuracy"], *(r["accuracy"] for r in rows)],
                },
                xlabel="share of training records poisoned",
                ylabel="held-out images",
                title="Backdoor poisoning",
            )
        )
    validated = gain >= float(p.get("min_gain", 0.3))
    summary = (
        f"{head['poisoned_records']} poisoned records ({head['rate']:.1%} of {n}) plant a "
        f"backdoor: the trigger lets {head['trigger_success']:.1%} of {len(x_src)} held-out "
        f"{classes[source]} images through as {classes[goal]} (clean model on the same stamped "
        f"images: {clean['trigger_success']:.1%}); clean accuracy {clean['accuracy']:.3f} -> "
        f"{head['accuracy']:.3f}."
    )
    if not validated:
        summary += " The trigger did not take: no backdoor at this rate."
    return AttackResult(
        ID,
        "validated" if validated else "refuted",
        summary,
        metrics=metrics,
        curves={"rates": [{k: v for k, v in r.items() if not k.endswith("_pred")} for r in rows]},
        plots=out,
        params=dict(p),
    )
