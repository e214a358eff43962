"""Membership inference on known training members and non-members.

The target is queried once on ``n_members`` training records and ``n_nonmembers`` held-out
records (their true labels are known to the auditor); three attacks score those answers:

* ART ``MembershipInferenceBlackBox``: an attack model (seeded random forest) on the returned
  scores and the true label, trained on one half of the records and scored on the other, then
  the other way round (2-fold cross-fitting: every record gets an out-of-fold score, no extra
  queries);
* ART ``MembershipInferenceBlackBoxRuleBased``: "member if classified correctly" (one ROC
  point; its ``probabilities`` output is not per record, so the binary decision is scored);
* offline LiRA (Carlini et al., 2022): shadow models that never saw the records are trained by
  the attacker on pool inputs labelled by sampling from the victim's returned scores (this keeps
  the victim's label noise), via ``data.trainer`` (the target's own model family); a record's
  score is how far the victim's confidence ``logit(p_y)`` sits above the shadow models'
  confidences on the same record, in units of their (global) standard deviation.

On images (``kind: image``) LiRA is left out (each shadow CNN takes most of a minute to train)
and a confidence-threshold attack (Yeom et al., 2018: the higher ``logit(p_y)``, the likelier a
member; LiRA without shadows) takes its place; the ART attacks read the recorded answers by
row index, since matching 3,072-pixel rows back to their answers would cost n^2 comparisons.

Reported as AUC, TPR at 0.1 % and 1 % FPR and membership advantage per attack, with the
headline taken from the strongest attack; an ROC plot on log axes. Near chance is a refuted
threat, with the numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt._threads import few_threads
from mlhunt.assess.attacks._tabular import (
    fit_to_budget,
    query,
    recorded_classifier,
    roc_numbers,
    seeded_numpy,
    skipped,
    too_small,
)
from mlhunt.assess.base import AttackContext, AttackResult, BudgetExhausted

ID = "MLH-ASSESS-MEMBERSHIP"


def _logit_conf(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.clip(probs[np.arange(len(y)), y.astype(int)], 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def _forest(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=seed)


def art_black_box(
    x: np.ndarray, y: np.ndarray, probs: np.ndarray, member: np.ndarray, seed: int
) -> np.ndarray:
    """Out-of-fold member scores from ART's learned black-box attack (2-fold cross-fitting)."""
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox

    rng = np.random.default_rng(seed)
    fold = np.zeros(len(x), dtype=int)
    for group in (np.flatnonzero(member), np.flatnonzero(~member)):
        fold[rng.permutation(group)[: len(group) // 2]] = 1
    scores = np.zeros(len(x))
    est = recorded_classifier(x, probs)
    for k in (0, 1):
        tr, te = fold != k, fold == k
        m, n = tr & member, tr & ~member
        attack = MembershipInferenceBlackBox(est, attack_model_type="rf")
        # ART's own forest is unseeded; passing one in trips ART's truth test of the unfitted
        # model (sklearn ensembles define __len__), so swap in the seeded one after init.
        attack.attack_model = _forest(seed + k)
        attack.fit(y=y[m], pred=probs[m], test_y=y[n], test_pred=probs[n])
        out = attack.infer(None, y[te], pred=probs[te], probabilities=True)
        scores[te] = np.asarray(out, dtype=np.float64).reshape(-1)
    return scores


def art_rule_based(x: np.ndarray, y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBoxRuleBased

    attack = MembershipInferenceBlackBoxRuleBased(recorded_classifier(x, probs))
    return np.asarray(attack.infer(x, y), dtype=np.float64).reshape(-1)


def lira_offline(
    ctx: AttackContext, x: np.ndarray, y: np.ndarray, probs: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Offline LiRA scores; raises BudgetExhausted if the pool cannot be labelled."""
    p, data = ctx.params, ctx.data
    assert data.trainer is not None and data.x_pool is not None
    n_pool = min(int(p.get("shadow_queries", 1000)), len(data.x_pool))
    pool = np.asarray(data.x_pool, dtype=np.float64)[rng.permutation(len(data.x_pool))[:n_pool]]
    answers = query(ctx.target, pool)
    # Labels drawn from the returned scores: the shadows learn the victim's noise level too.
    cum = np.cumsum(answers, axis=1)
    labels = np.minimum((rng.random((len(pool), 1)) > cum).sum(axis=1), answers.shape[1] - 1)
    confs = []
    for _ in range(int(p.get("shadow_models", 8))):
        sub = rng.choice(len(pool), size=len(pool) // 2, replace=False)
        if np.bincount(labels[sub], minlength=answers.shape[1]).min() < 5:
            continue  # a class (almost) absent: no meaningful shadow model
        try:
            shadow = data.trainer(pool[sub], labels[sub])
        except ValueError:
            continue  # the trainer refused the sample (e.g. stratified early stopping)
        confs.append(_logit_conf(np.asarray(shadow(x), dtype=np.float64), y))
    if not confs:
        raise ValueError("no shadow model: the victim's answers on the pool are one class")
    c = np.asarray(confs)
    mu = c.mean(axis=0)
    sigma = float(np.std(c - mu)) if len(c) > 1 else float(np.std(c))
    score = (_logit_conf(probs, y) - mu) / max(sigma, 1e-6)
    return score, {"shadow_models": len(c), "shadow_queries": n_pool}


def run(ctx: AttackContext) -> AttackResult:
    with few_threads(), seeded_numpy(ctx.seed):
        return _run(ctx)


def _run(ctx: AttackContext) -> AttackResult:
    data, p = ctx.data, ctx.params
    kind = ctx.target.spec.kind
    if kind not in ("tabular", "image"):
        return skipped(ctx, ID, f"tabular and image models only, not {kind}")
    if data.x_members is None or data.x_nonmembers is None:
        return skipped(ctx, ID, "needs known members and non-members")
    assert data.y_members is not None and data.y_nonmembers is not None
    rng = ctx.rng()
    nm = min(int(p.get("n_members", 1000)), len(data.x_members))
    nn = min(int(p.get("n_nonmembers", 1000)), len(data.x_nonmembers))
    sizes = fit_to_budget(ctx, {"members": nm, "non-members": nn})
    if sizes is None:
        return too_small(ctx, ID, {"members": nm, "non-members": nn})
    nm, nn = sizes["members"], sizes["non-members"]
    im = rng.permutation(len(data.x_members))[:nm]
    inn = rng.permutation(len(data.x_nonmembers))[:nn]
    x = np.r_[data.x_members[im], data.x_nonmembers[inn]]
    x = x.astype(np.float32 if kind == "image" else np.float64)
    y = np.r_[data.y_members[im], data.y_nonmembers[inn]].astype(int)
    member = np.r_[np.ones(nm, dtype=bool), np.zeros(nn, dtype=bool)]
    try:
        probs = query(ctx.target, x)
    except BudgetExhausted as exc:
        return AttackResult(ID, "inconclusive", f"nothing measured: {exc}", params=p)
    ctx.progress(f"membership: {nm} members + {nn} non-members queried")
    # Images: the recorded answers are looked up by row index, not by 3,072 pixels per row.
    keys = np.arange(len(x), dtype=np.float64)[:, None] if kind == "image" else x
    scores: dict[str, np.ndarray] = {
        "art_black_box": art_black_box(keys, y, probs, member, ctx.seed),
        "art_rule_based": art_rule_based(keys, y, probs),
    }
    notes: dict[str, Any] = {}
    if kind == "image":
        scores["confidence_threshold"] = _logit_conf(probs, y)
        notes = {"lira_offline": "not run on images: a shadow CNN takes most of a minute"}
    elif data.trainer is not None and data.x_pool is not None and int(p.get("shadow_models", 8)):
        try:
            scores["lira_offline"], notes = lira_offline(ctx, x, y, probs, rng)
        except (BudgetExhausted, ValueError) as exc:
            notes = {"lira_offline": f"not run: {exc}"}
    return _result(ctx, scores, member, notes)


def auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC from n_pos positives and n_neg negatives (Hanley & McNeil)."""
    if n_pos < 1 or n_neg < 1:
        return float("inf")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)
    return float(np.sqrt(max(var, 0.0) / (n_pos * n_neg)))


def _result(
    ctx: AttackContext, scores: dict[str, np.ndarray], member: np.ndarray, notes: dict[str, Any]
) -> AttackResult:
    from mlhunt.assess import plots

    p = ctx.params
    per = {name: roc_numbers(s[member], s[~member]) for name, s in scores.items()}
    best = max(per, key=lambda k: (per[k]["auc"], per[k]["tpr_at_fpr"]["0.001"]))
    tpr = {k: max(v["tpr_at_fpr"][k] for v in per.values()) for k in ("0.001", "0.01")}
    metrics: dict[str, Any] = {
        "auc": per[best]["auc"],
        "tpr_at_fpr": tpr,
        "advantage": max(v["advantage"] for v in per.values()),
        "best_attack": best,
        "members": int(member.sum()),
        "nonmembers": int((~member).sum()),
        "attacks": {k: {kk: vv for kk, vv in v.items() if kk != "roc"} for k, v in per.items()},
        **notes,
    }
    plot = plots.roc(
        ctx.out_dir,
        "membership_roc.png",
        {k: v["roc"] for k, v in per.items()},
        title=f"Membership inference on {ctx.target.name}",
    )
    strong = metrics["auc"] >= float(p.get("min_auc", 0.6)) or tpr["0.01"] >= float(
        p.get("min_tpr_at_1pct", 0.05)
    )
    # A refutation needs a sample that rules the threshold out: the AUC's upper 95% bound
    # (Hanley & McNeil) below min_auc. A small sample near chance measures too little.
    upper = metrics["auc"] + 1.96 * auc_se(
        metrics["auc"], metrics["members"], metrics["nonmembers"]
    )
    metrics["auc_upper_95"] = round(upper, 4)
    ruled_out = upper < float(p.get("min_auc", 0.6))
    verdict = "validated" if strong else ("refuted" if ruled_out else "inconclusive")
    summary = (
        f"best attack {best}: AUC {metrics['auc']:.3f}, TPR {tpr['0.001']:.1%} at 0.1% FPR and "
        f"{tpr['0.01']:.1%} at 1% FPR on {metrics['members']} members vs "
        f"{metrics['nonmembers']} non-members"
        + (
            ""
            if strong
            else " (near chance: the model leaks little about membership)"
            if ruled_out
            else f" (too few records to rule out AUC {float(p.get('min_auc', 0.6)):.2f}: "
            f"upper 95% bound {upper:.3f})"
        )
    )
    return AttackResult(
        ID,
        verdict,
        summary,
        metrics=metrics,
        curves={"roc": {k: v["roc"] for k, v in per.items()}},
        plots=[plot],
        params=p,
    )
