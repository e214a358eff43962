"""Output hardening against extraction: the API returns labels only, or rounded scores.

The scenario model is wrapped, not retrained: the extraction attack of ``assess`` runs against
the exact API and against the hardened one with the same seed, pool and query schedule, so the
curves differ only by what the API returns. Legitimate clients lose the score's ranking: their
loss is the ROC AUC / PR-AUC of what they receive (a one-hot label, or a rounded score) against
the exact score, on the scenario's held-out split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlhunt._threads import few_threads
from mlhunt.assess.attacks import extraction_tabular
from mlhunt.errors import InputError
from mlhunt.harden.base import (
    HardenContext,
    ModelTarget,
    Outcome,
    attack_params,
    measures,
    run_attack,
)
from mlhunt.harden.utility import tabular_utility

EXTRACTION = extraction_tabular.ID
Predict = Callable[[np.ndarray], np.ndarray]


def hardened(predict: Predict, mode: str, decimals: int) -> Predict:
    """What the hardened API returns for a batch."""
    if mode == "labels":

        def labels(x: np.ndarray) -> np.ndarray:
            p = np.asarray(predict(x))
            return np.eye(p.shape[1])[p.argmax(axis=1)]

        return labels
    if mode == "rounded":
        return lambda x: np.round(np.asarray(predict(x)), decimals)
    raise InputError(f"modes: unknown mode {mode!r} (labels, rounded)")


def curve(result_curves: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result_curves.get("agreement_vs_queries") or []
    return [
        {
            "queries": r["queries"],
            "agreement": r["agreement"],
            "balanced_agreement": round(float(np.mean(list(r["agreement_by_class"].values()))), 4),
        }
        for r in rows
    ]


def reach(rows: list[dict[str, Any]], metric: str, target: float) -> dict[str, Any]:
    """Queries to reach ``target`` (None: not within the schedule) and the best value seen."""
    hit = next((r["queries"] for r in rows if r[metric] >= target), None)
    cap = max((r[metric] for r in rows), default=0.0)
    return {
        "queries_to_target": hit,
        "cap": cap,
        "queries_tried": rows[-1]["queries"] if rows else 0,
    }


def _when(r: dict[str, Any]) -> str:
    q = r["queries_to_target"]
    return f"{q} queries" if q is not None else f"never (within {r['queries_tried']} queries)"


def effective(before: dict[str, Any], after: dict[str, Any], p: dict[str, Any]) -> bool:
    qb, qa = before["queries_to_target"], after["queries_to_target"]
    if qb is not None and (qa is None or qa >= float(p.get("query_factor", 2.0)) * qb):
        return True
    return bool(after["cap"] <= before["cap"] - float(p.get("min_cap_drop", 0.05)))


def run(ctx: HardenContext) -> list[Outcome]:
    with few_threads(2):
        return _run(ctx)


def _run(ctx: HardenContext) -> list[Outcome]:
    from mlhunt.assess import plots

    loaded, p = ctx.loaded, ctx.params
    metric, target_value = str(p.get("metric", "balanced_agreement")), float(p.get("target", 0.95))
    if metric not in ("agreement", "balanced_agreement"):
        raise InputError(f"{ctx.mitigation}.metric: expected agreement or balanced_agreement")
    modes = [str(m) for m in p.get("modes", ["labels", "rounded"])]
    decimals = int(p.get("decimals", 1))
    fns = {m: hardened(loaded.predict_proba, m, decimals) for m in modes}  # validates the modes
    a_params = attack_params(EXTRACTION, p.get("extraction"))
    # passive (fixed realistic + uniform queries) or active (rounds of uncertainty sampling):
    # the verdict holds against the thief that was run, which the finding names
    thief = str(a_params.get("strategy", "passive"))
    x_h, y_h = np.asarray(loaded.x_holdout), np.asarray(loaded.y_holdout)

    def attack(predict: Predict, label: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        t = ModelTarget(f"{loaded.model_name}+{label}", loaded.spec, tuple(loaded.classes), predict)
        r = run_attack(ctx, extraction_tabular, t, a_params, label)
        return {EXTRACTION: measures(r)}, curve(r.curves)

    ctx.progress("extraction against the exact scores")
    u_before = tabular_utility(loaded.predict_proba, x_h, y_h)
    a_before, rows_before = attack(loaded.predict_proba, "exact")
    r_before = reach(rows_before, metric, target_value)
    series = {"exact scores": [r[metric] for r in rows_before]}
    outcomes: list[Outcome] = []
    for mode, fn in fns.items():
        ctx.progress(f"extraction against {mode}")
        u_after = tabular_utility(fn, x_h, y_h)
        a_after, rows_after = attack(fn, mode)
        r_after = reach(rows_after, metric, target_value)
        series[mode if mode == "labels" else f"rounded to {decimals} dp"] = [
            r[metric] for r in rows_after
        ]
        ok = effective(r_before, r_after, p)
        other = "balanced_agreement" if metric == "agreement" else "agreement"
        o_before, o_after = (
            reach(rows_before, other, target_value),
            reach(rows_after, other, target_value),
        )
        variant = {"mode": mode} | ({"decimals": decimals} if mode == "rounded" else {})
        summary = (
            f"{mode} ({thief} extraction): {metric} {target_value:g} reached after "
            f"{_when(r_before)} on exact scores vs {_when(r_after)}; "
            f"caps {r_before['cap']:.3f} vs {r_after['cap']:.3f} "
            f"({other} {target_value:g}: {_when(o_before)} vs {_when(o_after)}, caps "
            f"{o_before['cap']:.3f} vs {o_after['cap']:.3f}). "
            f"Legitimate clients: ROC AUC {u_before['roc_auc']:.3f} -> {u_after['roc_auc']:.3f}, "
            f"PR-AUC {u_before['pr_auc']:.3f} -> {u_after['pr_auc']:.3f} of what they receive"
        )
        outcomes.append(
            Outcome(
                variant=variant,
                utility_before=u_before,
                utility_after=u_after,
                attack_before=a_before,
                attack_after=a_after,
                effective=ok,
                summary=summary,
                extra={
                    "extraction_before": {
                        **r_before,
                        "metric": metric,
                        "target": target_value,
                        "strategy": thief,
                        other: o_before,
                        "curve": rows_before,
                    },
                    "extraction_after": {
                        **r_after,
                        "metric": metric,
                        "target": target_value,
                        "strategy": thief,
                        other: o_after,
                        "curve": rows_after,
                    },
                    "utility_drop": {k: round(u_before[k] - u_after[k], 4) for k in u_before},
                },
            )
        )
    xs = [r["queries"] for r in rows_before]
    plot = plots.curve(
        ctx.out_dir,
        "extraction_tradeoff.png",
        xs,
        {k: v[: len(xs)] + [np.nan] * (len(xs) - len(v)) for k, v in series.items()},
        xlabel="attack queries",
        ylabel=metric.replace("_", " "),
        logx=True,
        title=f"Extraction of {loaded.model_name}: exact vs hardened",
    )
    for o in outcomes:
        o.plots.append(plot)
    return outcomes
