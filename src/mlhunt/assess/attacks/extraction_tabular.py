"""Model extraction of a tabular model through its prediction interface.

The attacker sends inputs in growing batches (half realistic rows from ``data.x_pool``, what they
could collect; half uniform draws over the features' realistic ranges) and, after each batch,
builds a copy of the model from the answers:

* **equation solving** (scores exposed): for a logistic model the log-odds ``log p_c - log p_0``
  are linear in the input, so ``d + 1`` answers determine the weights; a least-squares fit whose
  residual is ~0 proves the model was recovered exactly (the attacker sees this from the answers
  alone, no extra queries);
* **distillation** (scores exposed): gradient-boosted regression of the returned log-odds;
* **labels only**: a gradient-boosted classifier on the returned labels (what is left when the
  API returns decisions only; the mitigation's effect).

``strategy: active`` replaces the fixed query set (after the first ``active_start`` queries)
by rounds of uncertainty sampling chosen from the answers so far (``_active.py``); every
query still goes through the target, so the budget counts it.

The attacker's copy at each step is the exact equation-solving model when its fit is exact, else
the distilled one. Fidelity is agreement with the victim on held-out realistic inputs; Cohen's
kappa and per-class agreement are also taken over real rare-class inputs (fraud), so a copy that
predicts a constant does not pass. The yardstick is queried once and reported apart from the
attack's queries. Accuracy is the copy's accuracy on the labelled evaluation set (no queries).
ART's extraction attacks (CopycatCNN, KnockoffNets, FunctionallyEquivalentExtraction) target
neural networks, hence this hand-written tabular one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlhunt._threads import few_threads
from mlhunt.assess.attacks._tabular import (
    Space,
    fit_to_budget,
    query,
    skipped,
    too_small,
)
from mlhunt.assess.base import AttackContext, AttackResult, BudgetExhausted
from mlhunt.errors import InputError

ID = "MLH-ASSESS-EXTRACTION-TABULAR"
EPS = 1e-12
Predictor = Callable[[np.ndarray], np.ndarray]  # x -> class index


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1.0)
    return np.log(p[:, 1:]) - np.log(p[:, :1])


def _from_log_odds(z: np.ndarray) -> np.ndarray:
    full = np.c_[np.zeros(len(z)), z]
    full -= full.max(axis=1, keepdims=True)
    e = np.exp(full)
    return e / e.sum(axis=1, keepdims=True)


def equation_solving(space: Space, x: np.ndarray, p: np.ndarray) -> tuple[Predictor, float] | None:
    """Least squares for log-odds = [x, 1] @ W on unsaturated answers; returns the predictor and
    the largest probability error on the answers (~0 when the model is logistic)."""
    d = x.shape[1]
    # APIs round their scores (the practice range to 6 decimals): near 0 or 1 a rounded score
    # says little about the log-odds, so fit on clearly unsaturated answers when there are enough.
    ok = np.all((p > 1e-4) & (p < 1 - 1e-4), axis=1)
    if ok.sum() < 2 * (d + 1):
        ok = np.all((p > 1e-9) & (p < 1 - 1e-9), axis=1)
    if ok.sum() < d + 1:
        return None
    a = np.c_[(x[ok] - space.lo) / space.span, np.ones(ok.sum())]  # scaled: well conditioned
    w, *_ = np.linalg.lstsq(a, _log_odds(p[ok]), rcond=None)

    def proba(q: np.ndarray) -> np.ndarray:
        return _from_log_odds(np.c_[(q - space.lo) / space.span, np.ones(len(q))] @ w)

    err = float(np.max(np.abs(proba(x[ok]) - p[ok])))
    return (lambda q: np.argmax(proba(q), axis=1)), err


def score_resolution(p: np.ndarray) -> float:
    """The rounding step the API applies to its scores (0 when they look unrounded): what the
    attacker reads off the answers to know how exact an exact fit can be."""
    for decimals in range(1, 10):
        scaled = p * 10.0**decimals
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6):
            return 10.0**-decimals
    return 0.0


def _leaf(n: int) -> int:
    return max(2, min(20, n // 25))  # small query sets: small leaves, or the copy is a constant


def distill(x: np.ndarray, p: np.ndarray, seed: int) -> Predictor:
    from sklearn.ensemble import HistGradientBoostingRegressor

    z = np.clip(_log_odds(p), -30, 30)
    models = [
        HistGradientBoostingRegressor(
            max_iter=150, min_samples_leaf=_leaf(len(x)), random_state=seed
        ).fit(x, z[:, c])
        for c in range(z.shape[1])
    ]
    return lambda q: np.argmax(np.c_[np.zeros(len(q)), *(m.predict(q) for m in models)], axis=1)


def labels_only(x: np.ndarray, labels: np.ndarray, seed: int) -> Predictor:
    from sklearn.ensemble import HistGradientBoostingClassifier

    classes = np.unique(labels)
    if len(classes) == 1:  # every answer the same class: the best copy is that constant
        return lambda q: np.full(len(q), classes[0])
    m = HistGradientBoostingClassifier(
        max_iter=150, min_samples_leaf=_leaf(len(x)), random_state=seed
    ).fit(x, labels)
    return lambda q: np.asarray(m.predict(q))


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa: agreement beyond what matching class frequencies alone would give."""
    po = float(np.mean(a == b))
    classes = np.union1d(a, b)
    pe = float(sum(np.mean(a == c) * np.mean(b == c) for c in classes))
    return 1.0 if pe >= 1.0 else (po - pe) / (1.0 - pe)


def run(ctx: AttackContext) -> AttackResult:
    with few_threads():
        return _run(ctx)


def _run(ctx: AttackContext) -> AttackResult:
    t, data, p = ctx.target, ctx.data, ctx.params
    if t.spec.kind != "tabular":
        return skipped(ctx, ID, "tabular models only (CopycatCNN covers images)")
    if data.x_pool is None or len(data.x_pool) < 20:
        return skipped(ctx, ID, "needs a pool of realistic attacker inputs (x_pool)")
    strategy = str(p.get("strategy", "passive"))
    if strategy not in ("passive", "active"):
        raise InputError(f"strategy: expected passive or active, got {strategy!r}")
    space = Space(t.spec)
    schedule = sorted({int(n) for n in p.get("queries", [50, 100, 250, 500, 1000, 2000])})
    pool = np.asarray(data.x_pool, dtype=np.float64)
    rng = ctx.rng()
    order = rng.permutation(len(pool))
    n_eval = min(int(p.get("n_eval", 1000)), len(pool) // 3)
    x_held = pool[order[:n_eval]]
    x_att = _attack_queries(
        space, pool[order[n_eval:]], schedule[-1], float(p.get("random_share", 0.5)), rng
    )
    schedule = [n for n in schedule if n <= len(x_att)] or [len(x_att)]
    x_rare = _rare_rows(data, int(p.get("n_rare", 250)), rng)
    wanted = {"yardstick": len(x_held), "rare": len(x_rare), "attack": schedule[-1]}
    sizes = fit_to_budget(ctx, wanted, floor=30)
    if sizes is None:
        return too_small(ctx, ID, wanted)
    if sizes != wanted:  # a smaller yardstick and a shorter schedule that fit the share
        x_held, x_rare = x_held[: sizes["yardstick"]], x_rare[: sizes["rare"]]
        schedule = [n for n in schedule if n < sizes["attack"]] + [sizes["attack"]]
    try:
        held = np.argmax(query(t, x_held), axis=1)  # the yardstick
        rare = np.argmax(query(t, x_rare), axis=1) if len(x_rare) else np.zeros(0, dtype=int)
    except BudgetExhausted as exc:
        return AttackResult(ID, "inconclusive", f"no agreement measured: {exc}", params=p)
    x_both, both = np.r_[x_held, x_rare], np.r_[held, rare]
    x_ev, y_ev = np.asarray(data.x_eval, dtype=np.float64), np.asarray(data.y_eval)

    sent: list[np.ndarray] = []
    answers: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    stopped = ""
    for n in schedule:
        try:
            _send(ctx, space, pool[order[n_eval:]], x_att, sent, answers, n, strategy, rng)
        except BudgetExhausted as exc:
            stopped = str(exc)
            break
        x, probs = np.concatenate(sent), np.concatenate(answers)
        labels = np.argmax(probs, axis=1)
        scores = bool(np.any((probs > 1e-6) & (probs < 1 - 1e-6)))
        row: dict[str, Any] = {"queries": n}
        copies: dict[str, Predictor] = {"labels_only": labels_only(x, labels, ctx.seed)}
        solved = equation_solving(space, x, probs) if scores else None
        # Coarsely rounded scores (0.1) cannot certify an exact fit: cap what rounding excuses.
        tolerance = max(
            float(p.get("exact_tolerance", 1e-3)), min(10 * score_resolution(probs), 1e-2)
        )
        exact = solved is not None and solved[1] < tolerance
        if solved is not None:
            copies["equation_solving"] = solved[0]
            row["equation_max_error"] = float(f"{solved[1]:.3g}")
        if scores:
            copies["distillation"] = distill(x, probs, ctx.seed)
        best = "equation_solving" if exact else ("distillation" if scores else "labels_only")
        for name, f in copies.items():
            row[f"agreement_{name}"] = round(float(np.mean(f(x_held) == held)), 4)
        pred = copies[best](x_both)
        row.update(
            method=best,
            agreement=round(float(np.mean(pred[: len(held)] == held)), 4),
            kappa=round(_kappa(pred, both), 4),
            agreement_by_class=_by_class(pred, both, t.classes),
            surrogate_accuracy=round(float(np.mean(copies[best](x_ev) == y_ev)), 4),
        )
        rows.append(row)
        ctx.progress(f"extraction: {n} queries -> agreement {row['agreement']:.3f} ({best})")
    return _result(ctx, rows, len(both), stopped)


def _send(
    ctx: AttackContext,
    space: Space,
    pool: np.ndarray,
    x_att: np.ndarray,
    sent: list[np.ndarray],
    answers: list[np.ndarray],
    n: int,
    strategy: str,
    rng: np.random.Generator,
) -> None:
    """Query until ``n`` attack queries were sent. Passive: the next rows of ``x_att``. Active:
    the first ``active_start`` rows of ``x_att`` (nothing to be adaptive about yet), then rounds
    chosen by :func:`mlhunt.assess.attacks._active.select` from the answers so far."""
    have = sum(len(a) for a in sent)
    start = n if strategy == "passive" else min(n, int(ctx.params.get("active_start", 50)))
    if have < start:
        answers.append(query(ctx.target, x_att[have:start]))
        sent.append(x_att[have:start])
        have = start
    if have >= n:
        return
    from mlhunt.assess.attacks import _active

    real = _active.Realism(space, pool, float(ctx.params.get("realistic_radius", 2.0)))
    while have < n:
        k = min(n - have, _active.round_size(have, ctx.params))
        x, probs = np.concatenate(sent), np.concatenate(answers)
        batch = _active.select(space, pool, x, probs, k, rng, ctx.params, ctx.seed, real)
        answers.append(query(ctx.target, batch))  # charged first: sent only once answered
        sent.append(batch)
        have += k


def _attack_queries(
    space: Space, pool: np.ndarray, n: int, random_share: float, rng: np.random.Generator
) -> np.ndarray:
    """The attacker's queries: realistic pool rows interleaved with uniform draws over the
    realistic ranges (exploring where the pool never goes: without them a rare class, such as
    fraud, never shows up in the answers and the copy is a constant)."""
    n_rand = round(n * random_share)
    uniform = space.project(space.lo + rng.random((n_rand, len(space.lo))) * space.span)
    mixed = np.r_[pool[: n - n_rand], uniform]
    return mixed[rng.permutation(len(mixed))]


def _rare_rows(data: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """Real inputs of rare true classes (< 10 %, e.g. fraud) from the non-members, so fidelity
    is also measured where it matters and not only on the common class."""
    if data.x_nonmembers is None or data.y_nonmembers is None or n <= 0:
        return np.zeros((0, data.x_eval.shape[1]))
    y = np.asarray(data.y_nonmembers)
    rare = [c for c in np.unique(y) if np.mean(y == c) < 0.1]
    idx = np.flatnonzero(np.isin(y, rare))
    return np.asarray(data.x_nonmembers, dtype=np.float64)[rng.permutation(idx)[:n]]


def _by_class(pred: np.ndarray, victim: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Agreement on the inputs the victim put in each class (how much of it the copy finds)."""
    return {
        name: round(float(np.mean(pred[victim == c] == c)), 4)
        for c, name in enumerate(classes)
        if np.any(victim == c)
    }


def _result(
    ctx: AttackContext, rows: list[dict[str, Any]], eval_queries: int, stopped: str
) -> AttackResult:
    from mlhunt.assess import plots

    p = ctx.params
    if not rows:
        return AttackResult(ID, "inconclusive", f"no surrogate trained: {stopped}", params=p)
    last = rows[-1]
    target_agree = float(p.get("min_agreement", 0.9))
    reached = next((r["queries"] for r in rows if r["agreement"] >= target_agree), None)
    x = [r["queries"] for r in rows]
    series = {"attacker's copy": [r["agreement"] for r in rows]}
    for key in ("equation_solving", "distillation", "labels_only"):
        if all(f"agreement_{key}" in r for r in rows):
            series[key.replace("_", " ")] = [r[f"agreement_{key}"] for r in rows]
    plot = plots.curve(
        ctx.out_dir,
        "extraction_curve.png",
        x,
        series,
        xlabel="queries",
        ylabel="agreement with the victim",
        logx=True,
        title=f"Extraction of {ctx.target.name}",
    )
    metrics: dict[str, Any] = {
        "agreement": last["agreement"],
        "kappa": last["kappa"],
        "queries": last["queries"],
        "queries_to_agreement": reached,
        "method": last["method"],
        "surrogate_accuracy": last["surrogate_accuracy"],
        "agreement_by_class": last["agreement_by_class"],
        "balanced_agreement": round(float(np.mean(list(last["agreement_by_class"].values()))), 4),
        "yardstick_queries": eval_queries,
    }
    if "equation_max_error" in last:
        metrics["equation_max_error"] = last["equation_max_error"]
    beats_constant = last["kappa"] >= float(p.get("min_kappa", 0.5))
    if last["agreement"] >= target_agree and beats_constant:
        verdict = "validated"
        summary = (
            f"a copy built from {last['queries']} queries "
            f"({last['method'].replace('_', ' ')}) agrees with the victim on "
            f"{last['agreement']:.1%} of held-out inputs (kappa {last['kappa']:.2f}, "
            f"{target_agree:.0%} reached after {reached} queries)"
        )
    else:
        verdict = "inconclusive" if stopped else "refuted"
        summary = (
            f"after {last['queries']} queries the copy agrees on {last['agreement']:.1%} "
            f"(kappa {last['kappa']:.2f}), short of {target_agree:.0%}"
            + (f"; stopped: {stopped}" if stopped else "")
        )
    return AttackResult(
        ID,
        verdict,
        summary,
        metrics=metrics,
        curves={"agreement_vs_queries": rows},
        plots=[plot],
        params=p,
    )
