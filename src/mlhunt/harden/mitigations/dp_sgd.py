"""Differential privacy in training for PyTorch models: opacus DP-SGD at several epsilons.

The victim is a small MLP on the loan records (see :mod:`mlhunt.harden._dpsgd` for why), so the
"before" is the same MLP trained without privacy: same architecture, batches, epochs and seed,
and the comparison isolates DP-SGD. Membership inference's LiRA shadows are trained with the
same (non-private) MLP recipe, the attacker's best guess of the victim's family.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mlhunt.errors import InputError
from mlhunt.harden._privacy import ATTRIBUTE, MEMBERSHIP, privacy_attacks, tpr_at_low_fpr
from mlhunt.harden.base import (
    HardenContext,
    ModelTarget,
    Outcome,
    torch_threads,
)
from mlhunt.harden.utility import tabular_utility


def _config(p: dict[str, Any], seed: int) -> Any:
    from mlhunt.harden._dpsgd import MLPConfig

    try:
        cfg = MLPConfig(
            hidden=int(p.get("hidden", 64)),
            epochs=int(p.get("epochs", 20)),
            batch=int(p.get("batch", 256)),
            lr=float(p.get("lr", 0.05)),
            max_grad_norm=float(p.get("max_grad_norm", 1.0)),
            seed=seed,
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"MLH-HARDEN-DP-SGD parameters: {exc}") from None
    if min(cfg.hidden, cfg.epochs, cfg.batch) < 1 or cfg.lr <= 0 or cfg.max_grad_norm <= 0:
        raise InputError("MLH-HARDEN-DP-SGD: hidden, epochs, batch >= 1; lr, max_grad_norm > 0")
    return cfg


def _model(ctx: HardenContext, cfg: Any, epsilon: float | None, delta: float) -> Any:
    """A trained MLP (cached by parameters) behind public-range scaling."""
    from mlhunt.harden import _dpsgd
    from mlhunt.harden._cache import array_digest, cached_module, code_parts
    from mlhunt.harden._dpsgd import Scaled, build_mlp, import_opacus, train

    loaded = ctx.loaded
    lower = np.asarray(loaded.spec.lower, dtype=np.float64)
    upper = np.asarray(loaded.spec.upper, dtype=np.float64)
    scaler = Scaled(build_mlp(len(lower), cfg.hidden), lower, upper)
    x = scaler.transform(np.asarray(loaded.x_train))
    y = np.asarray(loaded.y_train).astype(np.int64)
    code = code_parts(_dpsgd)
    if epsilon is not None:  # only the private model is trained through opacus
        code["opacus"] = str(import_opacus().__version__)
    parts = {
        "cfg": dataclasses.asdict(cfg),
        "epsilon": epsilon,
        "delta": delta,
        "data": f"{loaded.model_name}:{array_digest(x, y)}",
        "code": code,
    }
    module, info, _hit = cached_module(
        "dp-sgd",
        parts,
        lambda: train(x, y, cfg, epsilon=epsilon, delta=delta),
        lambda: build_mlp(x.shape[1], cfg.hidden, int(y.max()) + 1),
    )
    return Scaled(module, lower, upper), info


def _shadow_trainer(ctx: HardenContext, cfg: Any) -> Any:
    """LiRA's shadow models: the non-private MLP recipe on the attacker's labelled pool."""
    from mlhunt.harden._dpsgd import Scaled, build_mlp, train

    spec = ctx.loaded.spec
    lower, upper = np.asarray(spec.lower, np.float64), np.asarray(spec.upper, np.float64)

    def fit(x: np.ndarray, y: np.ndarray, **_options: Any) -> Any:
        y = np.asarray(y).astype(np.int64)
        if len(np.unique(y)) < 2:
            raise ValueError("one class only")
        probe = Scaled(build_mlp(len(lower), cfg.hidden), lower, upper)  # for its scaling
        module, _ = train(probe.transform(x), y, cfg)
        return Scaled(module, lower, upper).predict_proba

    return fit


def run(ctx: HardenContext) -> list[Outcome]:
    with torch_threads(1):
        return _run(ctx)


def _run(ctx: HardenContext) -> list[Outcome]:
    from mlhunt.harden._dpsgd import import_opacus

    loaded, p = ctx.loaded, ctx.params
    if loaded.spec.kind != "tabular" or not loaded.spec.lower or not loaded.spec.upper:
        raise InputError(f"{ctx.mitigation}: needs a tabular scenario with public feature ranges")
    try:
        epsilons = [float(e) for e in p.get("epsilons", [1, 8])]
        delta = float(p.get("delta", 1e-5))
    except (TypeError, ValueError):
        raise InputError(f"{ctx.mitigation}.epsilons/delta: expected numbers") from None
    if not epsilons or not all(0 < e < float("inf") for e in epsilons) or not 0 < delta < 1:
        raise InputError(f"{ctx.mitigation}: epsilons must be positive, delta in (0, 1)")
    import_opacus()  # fail before any training when the extra is missing or broken
    cfg = _config(p, ctx.seed)
    ctx = dataclasses.replace(
        ctx, data=dataclasses.replace(ctx.data, trainer=_shadow_trainer(ctx, cfg))
    )
    x_h, y_h = np.asarray(loaded.x_holdout), np.asarray(loaded.y_holdout)
    name = f"{loaded.model_name}-mlp"
    ctx.progress("non-private MLP: training, utility and attacks")
    base, _ = _model(ctx, cfg, None, delta)
    u_before = tabular_utility(base.predict_proba, x_h, y_h)
    target = ModelTarget(name, loaded.spec, tuple(loaded.classes), base.predict_proba)
    a_before = privacy_attacks(ctx, target, "mlp-non-private")
    rows: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    for eps in epsilons:
        ctx.progress(f"epsilon {eps:g}: DP-SGD training and attacks")
        private, budget = _model(ctx, cfg, eps, delta)
        t = ModelTarget(
            f"{name}+dpsgd-eps{eps:g}", loaded.spec, tuple(loaded.classes), private.predict_proba
        )
        u_after = tabular_utility(private.predict_proba, x_h, y_h)
        a_after = privacy_attacks(ctx, t, f"dpsgd-eps{eps:g}")
        drop = round(u_before["roc_auc"] - u_after["roc_auc"], 4)
        refuted = all(a["verdict"] == "refuted" for a in a_after.values())
        ok = refuted and drop <= float(p.get("max_utility_drop", 0.05))
        m_b, m_a = a_before[MEMBERSHIP], a_after[MEMBERSHIP]
        rows.append(
            {
                "epsilon": eps,
                "spent_epsilon": budget.get("epsilon"),
                **{f"utility_{k}": v for k, v in u_after.items()},
                "membership_auc": m_a.get("auc"),
                "membership_tpr_at_0.001": tpr_at_low_fpr(m_a),
                "attribute_advantage": a_after[ATTRIBUTE].get("advantage"),
            }
        )
        summary = (
            f"DP-SGD epsilon {budget.get('epsilon')} at delta {delta:g} (noise multiplier "
            f"{budget.get('noise_multiplier')}): ROC AUC {u_before['roc_auc']:.3f} -> "
            f"{u_after['roc_auc']:.3f}, accuracy {u_before['accuracy']:.3f} -> "
            f"{u_after['accuracy']:.3f} (non-private MLP -> private); membership AUC "
            f"{m_b.get('auc')} -> {m_a.get('auc')}, TPR@0.1%FPR {tpr_at_low_fpr(m_b)} -> "
            f"{tpr_at_low_fpr(m_a)}; "
            f"attribute advantage {a_before[ATTRIBUTE].get('advantage')} -> "
            f"{a_after[ATTRIBUTE].get('advantage')}"
        )
        if all(a["verdict"] == "refuted" for a in a_before.values()):
            summary += " (both attacks were already refuted on the non-private MLP)"
        if drop > float(p.get("max_utility_drop", 0.05)):
            summary += f"; utility loss {drop:.3f} ROC AUC exceeds the tolerance"
        outcomes.append(
            Outcome(
                variant={"epsilon": eps},
                utility_before=u_before,
                utility_after=u_after,
                attack_before=a_before,
                attack_after=a_after,
                effective=ok,
                summary=summary,
                extra={
                    "privacy_budget": budget,
                    "utility_drop": {"roc_auc": drop},
                    "improved": any(a["verdict"] == "validated" for a in a_before.values()),
                    "model": f"MLP {len(loaded.spec.names)}-{cfg.hidden}-{cfg.hidden}-2, "
                    f"{cfg.epochs} epochs, batch {cfg.batch}",
                },
            )
        )
    plot = _plot(ctx, u_before, a_before, rows)
    for o in outcomes:
        o.plots.append(plot)
        o.extra["tradeoff"] = rows
    return outcomes


def _plot(
    ctx: HardenContext,
    u_before: dict[str, float],
    a_before: dict[str, Any],
    rows: list[dict[str, Any]],
) -> str:
    from mlhunt.assess import plots

    xs = [r["epsilon"] for r in rows]
    series = {
        "ROC AUC (DP-SGD)": [r["utility_roc_auc"] for r in rows],
        "ROC AUC (non-private MLP)": [u_before["roc_auc"]] * len(rows),
        "membership AUC (DP-SGD)": [r["membership_auc"] for r in rows],
        "membership AUC (non-private)": [a_before[MEMBERSHIP].get("auc")] * len(rows),
        "membership TPR@0.1%FPR (DP-SGD)": [r["membership_tpr_at_0.001"] for r in rows],
    }
    return plots.curve(
        ctx.out_dir,
        "dp_sgd_tradeoff.png",
        xs,
        series,
        xlabel="epsilon",
        ylabel="value",
        title=f"DP-SGD trade-off on {ctx.loaded.model_name}",
        logx=True,
        ylim=(-0.05, 1.02),
    )
