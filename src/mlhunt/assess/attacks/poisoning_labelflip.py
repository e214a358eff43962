"""Poisoning sensitivity by label flipping, through the model's own trainer.

Whoever can write training records can relabel some of them. The model is retrained with
``data.trainer`` on a sample of its training records at a few flip rates, two ways:

* **random**: a fraction of all labels flipped to another class (sloppy or vandalised labels);
  the measure is the accuracy drop on the labelled evaluation set;
* **targeted**: a fraction of the records of the class an attacker wants the model to miss
  (fraud, rejected) relabelled as the class they want (legit, approved); the measure is the drop
  in the model's recall of that class (fraud caught, risky applicants rejected).

A clean model trained on the same sample is the reference. Hand-written: ART's
``PoisoningAttackBackdoor`` and clean-label attacks need a trigger or gradients, and label
flipping is a few lines of numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt._threads import few_threads
from mlhunt.assess.attacks._tabular import WANTED, skipped, wanted_class
from mlhunt.assess.base import AttackContext, AttackResult

ID = "MLH-ASSESS-POISONING-LABELFLIP"


def _flip(y: np.ndarray, idx: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    y = y.copy()
    shift = rng.integers(1, max(n_classes, 2), size=len(idx))  # any *other* class
    y[idx] = (y[idx] + shift) % max(n_classes, 2)
    return y


def run(ctx: AttackContext) -> AttackResult:
    with few_threads():
        return _run(ctx)


def _run(ctx: AttackContext) -> AttackResult:
    data, p, t = ctx.data, ctx.params, ctx.target
    if data.trainer is None or data.x_members is None or data.y_members is None:
        return skipped(ctx, ID, "needs the model's trainer and its training records")
    rng = ctx.rng()
    n = min(int(p.get("n_train", 5000)), len(data.x_members))
    pick = rng.permutation(len(data.x_members))[:n]
    x, y = np.asarray(data.x_members)[pick], np.asarray(data.y_members)[pick].astype(int)
    x_ev, y_ev = np.asarray(data.x_eval), np.asarray(data.y_eval).astype(int)
    k = len(t.classes)
    wanted = wanted_class(t.classes, p.get("wanted", WANTED))
    unwanted = 1 - wanted if wanted is not None and k == 2 else None

    # Recall is measured on held-out records of the targeted class (the evaluation set may hold
    # only a handful of a rare class such as fraud).
    x_un = x_ev[y_ev == unwanted] if unwanted is not None else x_ev[:0]
    if unwanted is not None and data.x_nonmembers is not None and data.y_nonmembers is not None:
        held = np.asarray(data.x_nonmembers)[np.asarray(data.y_nonmembers) == unwanted]
        x_un = held[: int(p.get("n_recall", 2000))] if len(held) > len(x_un) else x_un

    def score(labels: np.ndarray) -> tuple[float, float | None]:
        assert data.trainer is not None
        model = data.trainer(x, labels)
        acc = float(np.mean(np.argmax(np.asarray(model(x_ev)), axis=1) == y_ev))
        rec = None
        if len(x_un):
            rec = float(np.mean(np.argmax(np.asarray(model(x_un)), axis=1) == unwanted))
        return acc, rec

    clean_acc, clean_rec = score(y)
    rows: list[dict[str, Any]] = []
    for rate in sorted(float(r) for r in p.get("rates", [0.05, 0.1, 0.2, 0.3])):
        row: dict[str, Any] = {"rate": rate}
        idx = rng.choice(n, size=round(rate * n), replace=False)
        row["accuracy"] = round(score(_flip(y, idx, k, rng))[0], 4)
        if unwanted is not None and clean_rec is not None:
            pool = np.flatnonzero(y == unwanted)
            chosen = rng.choice(pool, size=round(rate * len(pool)), replace=False)
            flipped = y.copy()
            flipped[chosen] = wanted
            acc, rec = score(flipped)
            row.update(targeted_accuracy=round(acc, 4), recall=round(float(rec or 0.0), 4))
        rows.append(row)
        ctx.progress(f"label flipping at {rate:.0%}: accuracy {row['accuracy']:.3f}")
    return _result(ctx, rows, clean_acc, clean_rec, unwanted)


def _result(
    ctx: AttackContext,
    rows: list[dict[str, Any]],
    clean_acc: float,
    clean_rec: float | None,
    unwanted: int | None,
) -> AttackResult:
    from mlhunt.assess import plots

    p = ctx.params
    worst = min(rows, key=lambda r: r["accuracy"])
    drop = round(clean_acc - worst["accuracy"], 4)
    metrics: dict[str, Any] = {
        "clean_accuracy": round(clean_acc, 4),
        "adversarial_accuracy": worst["accuracy"],
        "accuracy_drop": drop,
        "rate": worst["rate"],
    }
    series = {"accuracy (random flips)": [r["accuracy"] for r in rows]}
    recall_drop = 0.0
    if clean_rec is not None and unwanted is not None:
        low = min(rows, key=lambda r: r["recall"])
        recall_drop = round(clean_rec - low["recall"], 4)
        name = ctx.target.classes[unwanted]
        metrics.update(
            clean_recall=round(clean_rec, 4),
            poisoned_recall=low["recall"],
            recall_drop=recall_drop,
            recall_class=name,
        )
        series[f"recall of {name} (targeted flips)"] = [r["recall"] for r in rows]
    metrics["impact"] = max(drop, recall_drop)
    plot = plots.curve(
        ctx.out_dir,
        "labelflip_curve.png",
        [r["rate"] for r in rows],
        series,
        xlabel="share of training labels flipped",
        ylabel="on evaluation set",
        title=f"Label flipping against {ctx.target.name}",
    )
    strong = metrics["impact"] >= float(p.get("min_impact", 0.05))
    summary = f"flipping up to {rows[-1]['rate']:.0%} of labels: accuracy {clean_acc:.3f} -> "
    summary += f"{worst['accuracy']:.3f}"
    if "recall_drop" in metrics:
        summary += (
            f"; targeted flips cut recall of {metrics['recall_class']} "
            f"{metrics['clean_recall']:.3f} -> {metrics['poisoned_recall']:.3f}"
        )
    if not strong:
        summary += " (the model is robust to label noise at these rates)"
    return AttackResult(
        ID,
        "validated" if strong else "refuted",
        summary,
        metrics=metrics,
        curves={"rates": rows},
        plots=[plot],
        params=p,
    )
