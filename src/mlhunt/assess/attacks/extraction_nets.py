"""Model extraction of an image model with ART's CopycatCNN or KnockoffNets.

The victim is a black box (``target.predict_proba``, charged to the budget) wrapped in ART's
``BlackBoxClassifier``; the thief is a fresh small CNN (the attacker does not know the
architecture) trained by ART on the victim's answers for images from ``data.x_pool`` (what an
attacker can collect). Run at growing query counts, it gives agreement with the victim and
accuracy on held-out labelled images vs queries. Answers already paid for are reused across
counts (an attacker keeps them), so the queries spent equal the largest count reached.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.assess import gradient as g
from mlhunt.assess.attacks._tabular import seeded_numpy
from mlhunt.assess.base import AttackContext, AttackResult, BudgetExhausted
from mlhunt.assess.plots import curve

ID = "MLH-ASSESS-EXTRACTION-NETS"
THREADS = 2  # torch threads for the thief's training: fixed, so its sums are the same everywhere


def thief_cnn(in_channels: int, n_classes: int) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(64, n_classes),
    )


class _PaidAnswers:
    """The victim's answers by pool row: each row is paid (queried) once."""

    def __init__(self, target: Any, pool: np.ndarray) -> None:
        self.target, self.pool = target, pool
        self.keys = {p.tobytes(): i for i, p in enumerate(pool)}
        self.answers: dict[int, np.ndarray] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rows = [self.keys.get(np.asarray(r, np.float32).tobytes(), -1) for r in x]
        new = sorted({r for r in rows if r >= 0 and r not in self.answers})
        if new:
            for r, a in zip(new, self.target.predict_proba(self.pool[new]), strict=True):
                self.answers[r] = np.asarray(a, np.float32)
        unknown = [i for i, r in enumerate(rows) if r < 0]
        out = np.zeros((len(x), len(self.target.classes)), np.float32)
        for i, r in enumerate(rows):
            if r >= 0:
                out[i] = self.answers[r]
        if unknown:
            out[unknown] = self.target.predict_proba(np.asarray(x)[unknown])
        return out


def _steal_round(
    victim: Any,
    pool: np.ndarray,
    x_eval: np.ndarray,
    shape: tuple[int, ...],
    n_classes: int,
    method: str,
    p: dict[str, Any],
    q: int,
) -> np.ndarray:
    """One extraction round of ``q`` paid queries: the thief's labels for ``x_eval``."""
    import torch
    from art.attacks.extraction import CopycatCNN, KnockoffNets
    from art.estimators.classification import PyTorchClassifier

    net = thief_cnn(shape[0], n_classes)
    thief = PyTorchClassifier(
        net,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=shape,
        nb_classes=n_classes,
        clip_values=(0.0, 1.0),
        optimizer=torch.optim.Adam(net.parameters(), lr=2e-3),
    )
    common = {
        "batch_size_fit": 64,
        "batch_size_query": 256,
        "nb_epochs": int(p.get("epochs", 8)),
        "nb_stolen": q,
        "use_probability": bool(p.get("use_probability", True)),
    }
    if method == "knockoff":
        attack = KnockoffNets(victim, sampling_strategy="random", **common)
    else:
        attack = CopycatCNN(victim, **common)
    stolen = attack.extract(pool, thieved_classifier=thief)
    return stolen.predict(x_eval).argmax(1)


def run(ctx: AttackContext) -> AttackResult:
    from art.estimators.classification import BlackBoxClassifier

    from mlhunt.scenarios.determinism import torch_settings

    p, target, data = ctx.params, ctx.target, ctx.data
    if target.spec.kind != "image" or data.x_pool is None:
        return AttackResult(ID, "skipped", "needs an image model and a pool of attacker images")
    n_classes = len(target.classes)
    shape = tuple(target.spec.shape)
    rng = ctx.rng()
    pool = np.asarray(data.x_pool, dtype=np.float32)
    counts = sorted(int(c) for c in p.get("query_counts", [250, 1000, 2000]))
    pool = pool[rng.permutation(len(pool))[: counts[-1]]]
    idx = g.eval_subset(len(data.x_eval), int(p.get("n_eval", 300)), rng)
    x_eval = np.asarray(data.x_eval[idx], np.float32)
    y_eval = np.asarray(data.y_eval[idx])
    method = str(p.get("method", "copycat"))
    answers = _PaidAnswers(target, pool)
    victim = BlackBoxClassifier(
        answers, input_shape=shape, nb_classes=n_classes, clip_values=(0.0, 1.0)
    )
    curves: dict[str, list[float]] = {"queries": [], "agreement": [], "accuracy": []}
    reason = ""
    try:
        victim_eval = target.predict_proba(x_eval).argmax(1)  # the assessor's yardstick
        eval_queries = len(x_eval)
        for q in counts:
            ctx.progress(f"{method}: {q} queries")
            # ART shuffles with numpy's global RNG and torch's sums depend on the thread count:
            # both fixed per round, so the verdict is the same on every run and machine
            with torch_settings(THREADS, ctx.seed + q), seeded_numpy(ctx.seed + q):
                pred = _steal_round(victim, pool[:q], x_eval, shape, n_classes, method, p, q)
            curves["queries"].append(float(q))
            curves["agreement"].append(float((pred == victim_eval).mean()))
            curves["accuracy"].append(float((pred == y_eval).mean()))
    except BudgetExhausted as exc:
        reason = f" (stopped: {exc})"
    if not curves["queries"]:
        return AttackResult(ID, "inconclusive", f"no extraction round completed{reason}")
    agreement = curves["agreement"][-1]
    victim_acc = float((victim_eval == y_eval).mean())
    plots = [
        curve(
            ctx.out_dir,
            "extraction_curve.png",
            curves["queries"],
            {
                "agreement with victim": curves["agreement"],
                "accuracy (true labels)": curves["accuracy"],
            },
            xlabel="queries",
            ylabel="share of held-out images",
            logx=True,
            title=f"Extraction ({method})",
        )
    ]
    metrics = {
        "agreement": round(agreement, 4),
        "surrogate_accuracy": round(curves["accuracy"][-1], 4),
        "victim_accuracy": round(victim_acc, 4),
        "queries_reached": int(curves["queries"][-1]),
        "attack_queries": len(answers.answers),
        "evaluation_queries": eval_queries,
        "method": method,
        "evaluated": len(idx),
    }
    validated = agreement >= float(p.get("min_agreement", 0.8))
    summary = (
        f"{method} surrogate trained on {int(curves['queries'][-1])} queries agrees with the "
        f"victim on {agreement:.1%} of {len(idx)} held-out images (surrogate accuracy "
        f"{curves['accuracy'][-1]:.1%}, victim {victim_acc:.1%}){reason}."
    )
    return AttackResult(
        ID,
        "validated" if validated else "refuted",
        summary,
        metrics=metrics,
        curves=curves,
        plots=plots,
    )
