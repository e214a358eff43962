"""Differential privacy in training for the loan model: diffprivlib at several epsilons.

Preprocessing is part of the private pipeline: a plain ``StandardScaler`` would fit its means
and variances on the training records outside any privacy budget, so diffprivlib's DP scaler
spends ``scaler_share`` of epsilon on them (its sensitivity comes from the public realistic
ranges of the input spec, never from the data), and the DP logistic regression the rest, with
rows clipped to ``data_norm`` so its sensitivity bound holds. Sequential composition: the two
spends add up to the epsilon reported, as diffprivlib's own budget accountant confirms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt._threads import few_threads
from mlhunt.errors import InputError
from mlhunt.harden._privacy import ATTRIBUTE, MEMBERSHIP, privacy_attacks
from mlhunt.harden.base import (
    HardenContext,
    ModelTarget,
    Outcome,
    scenario_target,
)
from mlhunt.harden.utility import tabular_utility


def private_pipeline(ctx: HardenContext, epsilon: float, seed: int) -> tuple[Any, Any]:
    """(fitted DP pipeline, its budget accountant)."""
    from sklearn.pipeline import Pipeline

    from mlhunt.harden._dp import dp_classes

    dp_logreg, dp_scaler, accountant_cls = dp_classes()
    p, spec = ctx.params, ctx.loaded.spec
    share = float(p.get("scaler_share", 0.1))
    acc = accountant_cls()
    bounds = (np.asarray(spec.lower, dtype=np.float64), np.asarray(spec.upper, dtype=np.float64))
    pipe = Pipeline(
        [
            (
                "scale",
                dp_scaler(
                    epsilon=epsilon * share, bounds=bounds, random_state=seed, accountant=acc
                ),
            ),
            (
                "logreg",
                dp_logreg(
                    epsilon=epsilon * (1 - share),
                    data_norm=float(p.get("data_norm", 3)),
                    C=float(p.get("C", 1.0)),
                    max_iter=int(p.get("max_iter", 1000)),
                    random_state=seed,
                    accountant=acc,
                ),
            ),
        ]
    )
    x = np.clip(np.asarray(ctx.loaded.x_train, dtype=np.float64), *bounds)
    pipe.fit(x, np.asarray(ctx.loaded.y_train).astype(int))
    return pipe, acc


def _refuted(attacks: dict[str, Any]) -> bool:
    return all(a["verdict"] == "refuted" for a in attacks.values())


def run(ctx: HardenContext) -> list[Outcome]:
    with few_threads(2):
        return _run(ctx)


def _run(ctx: HardenContext) -> list[Outcome]:
    loaded, p = ctx.loaded, ctx.params
    try:
        epsilons = [float(e) for e in p.get("epsilons", [0.5, 1, 4, 10])]
    except (TypeError, ValueError):
        raise InputError(f"{ctx.mitigation}.epsilons: expected a list of numbers") from None
    if not epsilons or not all(0 < e < float("inf") for e in epsilons):
        raise InputError(f"{ctx.mitigation}.epsilons: every epsilon must be positive and finite")
    x_h, y_h = np.asarray(loaded.x_holdout), np.asarray(loaded.y_holdout)
    base = scenario_target(loaded)
    ctx.progress("non-private model: utility and attacks")
    u_before = tabular_utility(loaded.predict_proba, x_h, y_h)
    a_before = privacy_attacks(ctx, base, "non-private")
    rows: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    for i, eps in enumerate(epsilons):
        ctx.progress(f"epsilon {eps:g}: training and attacking the private model")
        pipe, acc = private_pipeline(ctx, eps, ctx.seed + i)
        spent_eps, spent_delta = acc.total()
        target = ModelTarget(
            f"{loaded.model_name}+dp-eps{eps:g}",
            loaded.spec,
            tuple(loaded.classes),
            pipe.predict_proba,
            sklearn=pipe,
        )
        u_after = tabular_utility(pipe.predict_proba, x_h, y_h)
        a_after = privacy_attacks(ctx, target, f"dp-eps{eps:g}")
        drop = round(u_before["roc_auc"] - u_after["roc_auc"], 4)
        ok_utility = drop <= float(p.get("max_utility_drop", 0.05))
        effective = _refuted(a_after) and ok_utility
        m_b, m_a = a_before[MEMBERSHIP], a_after[MEMBERSHIP]
        rows.append(
            {
                "epsilon": eps,
                **{f"utility_{k}": v for k, v in u_after.items()},
                "membership_auc": m_a.get("auc"),
                "membership_tpr_at_0.001": (m_a.get("tpr_at_fpr") or {}).get("0.001"),
                "attribute_advantage": a_after[ATTRIBUTE].get("advantage"),
            }
        )
        summary = (
            f"epsilon {eps:g} (delta {spent_delta:g}): ROC AUC {u_before['roc_auc']:.3f} -> "
            f"{u_after['roc_auc']:.3f}, accuracy {u_before['accuracy']:.3f} -> "
            f"{u_after['accuracy']:.3f}; membership AUC {m_b.get('auc')} -> {m_a.get('auc')}, "
            f"TPR@0.1%FPR {m_b.get('tpr_at_fpr', {}).get('0.001')} -> "
            f"{m_a.get('tpr_at_fpr', {}).get('0.001')}; attribute advantage "
            f"{a_before[ATTRIBUTE].get('advantage')} -> {a_after[ATTRIBUTE].get('advantage')}"
        )
        if _refuted(a_before):
            summary += " (both attacks were already refuted on the non-private model)"
        if not ok_utility:
            summary += f"; utility loss {drop:.3f} ROC AUC exceeds the tolerance"
        outcomes.append(
            Outcome(
                variant={"epsilon": eps},
                utility_before=u_before,
                utility_after=u_after,
                attack_before=a_before,
                attack_after=a_after,
                effective=effective,
                summary=summary,
                extra={
                    "privacy_budget": {
                        "epsilon": round(spent_eps, 6),
                        "delta": spent_delta,
                        "mechanism": "diffprivlib Vector (objective perturbation) "
                        "+ DP StandardScaler, sequential composition",
                    },
                    "utility_drop": {"roc_auc": drop},
                    "improved": not _refuted(a_before),
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
        "ROC AUC (private)": [r["utility_roc_auc"] for r in rows],
        "ROC AUC (non-private)": [u_before["roc_auc"]] * len(rows),
        "membership AUC (private)": [r["membership_auc"] for r in rows],
        "membership AUC (non-private)": [a_before[MEMBERSHIP].get("auc")] * len(rows),
        "attribute advantage (private)": [r["attribute_advantage"] for r in rows],
    }
    return plots.curve(
        ctx.out_dir,
        "dp_tradeoff.png",
        xs,
        series,
        xlabel="epsilon",
        ylabel="value",
        title=f"DP trade-off on {ctx.loaded.model_name}",
        logx=True,
        ylim=(-0.05, 1.02),
    )
