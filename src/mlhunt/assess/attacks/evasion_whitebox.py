"""White-box evasion: FGSM (ART) and PGD L-inf / L2 over an epsilon sweep -> robustness curve.

FGSM is ART's ``FastGradientMethod`` on a ``PyTorchClassifier``. PGD uses mlhunt's batched,
early-stopping evaluation (:mod:`mlhunt.assess.gradient`) instead of ART's
``ProjectedGradientDescent``: same trajectory and strength, measured 13x faster on the
moderation CNN by ``python -m bench robustness`` (bench/README.md).

Only ``ctx.survivors`` inside a seeded evaluation subset are attacked (rows an earlier evasion
attack already broke count as broken); the rows PGD breaks at the headline epsilon leave the
survivor set. Tabular targets: epsilon is a fraction of each feature's range, only mutable
features move, results are clipped to the bounds and integer features rounded before the
prediction is checked again. White-box work spends no queries; ``model_evaluations`` counts it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.assess import gradient as g
from mlhunt.assess.base import AttackContext, AttackResult
from mlhunt.assess.plots import curve

ID = "MLH-ASSESS-EVASION-WHITEBOX"
DEFAULT_EPS = {
    "image": [1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255],
    "tabular": [0.01, 0.02, 0.05, 0.1, 0.2],
}
DEFAULT_HEADLINE = {"image": 8 / 255, "tabular": 0.05}
DEFAULT_L2 = {"image": [0.25, 0.5, 1.0, 2.0], "tabular": [0.02, 0.05, 0.1, 0.2, 0.5]}


def _fgsm(
    module: Any, x: np.ndarray, y: np.ndarray, eps: float, domain: g.Domain, n_classes: int
) -> np.ndarray:
    """ART's FGSM, per-feature epsilon (range units) and a mask of the mutable features."""
    import torch
    from art.attacks.evasion import FastGradientMethod
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=x.shape[1:],
        nb_classes=n_classes,
        clip_values=(domain.lower, domain.upper),
    )
    # ART wants a positive step everywhere; the mask keeps immutable features unchanged.
    step = np.where(domain.mutable, eps * domain.scale, 1e-12).astype(np.float32)
    attack = FastGradientMethod(clf, norm=np.inf, eps=step, eps_step=step, batch_size=256)
    x_adv = attack.generate(
        x, y=np.eye(n_classes, dtype=np.float32)[y], mask=domain.mutable.astype(np.float32)
    )
    return domain.finalize(x_adv)


def run(ctx: AttackContext) -> AttackResult:
    p = ctx.params
    target, data = ctx.target, ctx.data
    module = target.torch_module()
    if module is None:
        return AttackResult(ID, "skipped", "needs a PyTorch module (white box)")
    kind = target.spec.kind
    domain = g.Domain.from_spec(target.spec)
    eps_list = sorted(float(e) for e in (p.get("epsilons") or DEFAULT_EPS[kind]))
    headline = float(p.get("epsilon") or DEFAULT_HEADLINE[kind])
    if headline not in eps_list:
        eps_list = sorted([*eps_list, headline])
    l2_list = sorted(float(e) for e in (p.get("epsilons_l2") or DEFAULT_L2[kind]))
    steps = int(p.get("steps", 20))
    n_classes = len(target.classes)

    idx = g.eval_subset(len(data.x_eval), int(p.get("n_eval", 200)), ctx.rng())
    x = np.asarray(data.x_eval[idx], dtype=np.float32)
    y = np.asarray(data.y_eval[idx], dtype=np.int64)
    n = len(idx)
    model = g.prepare(module)
    clean_ok = g.predict(model, x) == y
    survivors = set(int(i) for i in ctx.survivors)
    attackable = np.flatnonzero(clean_ok & np.isin(idx, list(survivors)))
    broken_earlier = int(clean_ok.sum() - len(attackable))
    xa, ya = x[attackable], y[attackable]
    evaluations = n

    def pgd_acc(eps: float, norm: g.Norm) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        r = g.pgd(model, xa, ya, eps, domain=domain, norm=norm, steps=steps)
        evaluations += r.evaluations
        return float(r.correct.sum()) / n, r.correct

    curves: dict[str, Any] = {"epsilon": eps_list, "fgsm": [], "pgd_linf": []}
    headline_correct = np.ones(len(attackable), bool)
    for i, eps in enumerate(eps_list):
        ctx.progress(f"epsilon {g.eps_label(eps, kind)} ({i + 1}/{len(eps_list)})")
        if len(attackable):
            x_f = _fgsm(module, xa, ya, eps, domain, n_classes)
            fgsm_ok = g.predict(model, x_f) == ya
            evaluations += 3 * len(xa)  # ART: prediction, gradient, our check
            acc, correct = pgd_acc(eps, "inf")
        else:
            fgsm_ok, acc, correct = np.zeros(0, bool), 0.0, np.zeros(0, bool)
        curves["fgsm"].append(float(fgsm_ok.sum()) / n)
        curves["pgd_linf"].append(acc)
        if eps == headline:
            headline_correct = correct
    curves["epsilon_l2"] = l2_list
    curves["pgd_l2"] = [pgd_acc(e, "2")[0] if len(attackable) else 0.0 for e in l2_list]

    clean_acc = float(clean_ok.mean()) if n else 0.0
    adv_acc = float(headline_correct.sum()) / n if n else 0.0
    success = 1.0 - float(headline_correct.mean()) if len(attackable) else 0.0
    broken = set(int(i) for i in idx[attackable[~headline_correct]])
    plots = _plots(ctx, curves, kind, clean_acc)
    label = g.eps_label(headline, kind)
    metrics = {
        "clean_accuracy": round(clean_acc, 4),
        "adversarial_accuracy": round(adv_acc, 4),
        "epsilon": round(headline, 6),
        "epsilon_label": label,
        "success_rate": round(success, 4),
        "fgsm_accuracy": round(curves["fgsm"][eps_list.index(headline)], 4),
        "accuracy_drop": round(clean_acc - adv_acc, 4),
        "evaluated": n,
        "attacked": len(attackable),
        "broken_earlier": broken_earlier,
        "steps": steps,
        "model_evaluations": evaluations,
        "mutable_features": int(domain.mutable.sum()) if kind == "tabular" else None,
    }
    validated = len(attackable) > 0 and success >= float(p.get("min_success_rate", 0.1))
    summary = (
        f"PGD L-inf at {label} ({steps} steps) takes accuracy from {clean_acc:.1%} to "
        f"{adv_acc:.1%} on {n} held-out inputs ({success:.1%} of the correctly classified "
        f"flipped); FGSM at {label}: {metrics['fgsm_accuracy']:.1%}."
    )
    if not len(attackable):
        summary = "nothing to attack: no correctly classified survivor in the evaluation subset."
    return AttackResult(
        ID,
        "validated" if validated else ("refuted" if len(attackable) else "inconclusive"),
        summary,
        metrics=metrics,
        curves=curves,
        plots=plots,
        survivors=[int(i) for i in ctx.survivors if int(i) not in broken],
    )


def _plots(ctx: AttackContext, curves: dict[str, Any], kind: str, clean: float) -> list[str]:
    scale, unit = (
        (255.0, "epsilon (L-inf, /255)")
        if kind == "image"
        else (1.0, "epsilon (L-inf, fraction of feature range)")
    )
    xs = [0.0, *(e * scale for e in curves["epsilon"])]
    linf = curve(
        ctx.out_dir,
        "robustness_linf.png",
        xs,
        {"FGSM": [clean, *curves["fgsm"]], "PGD": [clean, *curves["pgd_linf"]]},
        xlabel=unit,
        ylabel="accuracy",
        title="Robustness curve (L-inf)",
    )
    l2 = curve(
        ctx.out_dir,
        "robustness_l2.png",
        [0.0, *curves["epsilon_l2"]],
        {"PGD L2": [clean, *curves["pgd_l2"]]},
        xlabel="epsilon (L2, range units)",
        ylabel="accuracy",
        title="Robustness curve (L2)",
    )
    return [linf, l2]
