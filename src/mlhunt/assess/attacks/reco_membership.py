"""Membership inference of a user's click history from the recommendations they get.

The attacker knows a user id (a cookie id, a customer number) and asks the API for that user's
top-k, and once for a user id nobody has (the shop's cold-start list: what everyone gets). Each
item's membership score is how much higher it scores for the user than for nobody (an item not
listed counts at its list's last score): popular items, which most users click, are high for
everyone, so the raw list alone would "infer" a history from popularity (a stand-in recommender
answering the cold-start list to every user reaches AUC 0.80 that way). The evaluator, who knows the
split, scores the guesses: members are the user's training clicks; non-members are the user's
held-out clicks (the strict test: items the user likes that the model never saw) and items the
user never clicked. The verdict's AUC is members against never-clicked items: can an attacker
tell which items a user clicked? The AUC against held-out clicks is reported beside it: near 0.5
means the model does not memorise beyond the user's interests, and what leaks is the history
the carousel repeats back. Hand-written: ART's membership attacks take
class probabilities over a feature vector, not ranked item lists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.assess.attacks._tabular import roc_numbers
from mlhunt.assess.base import AttackContext, AttackResult, BudgetExhausted

ID = "MLH-ASSESS-RECO-MEMBERSHIP"


def item_scores(idx: np.ndarray, scores: np.ndarray, n_items: int) -> np.ndarray:
    """(n, n_items) scores from top-k answers: the returned score for listed items, else the
    list's lowest score (an upper bound of what the item scored)."""
    out = np.empty((len(idx), n_items))
    for row in range(len(idx)):
        ok = idx[row] >= 0
        listed = scores[row][ok]
        out[row] = listed.min() if len(listed) else 0.0
        out[row, idx[row][ok]] = listed
    return out


def run(ctx: AttackContext) -> AttackResult:
    loaded = ctx.data.extra.get("recommender")
    if loaded is None:
        return AttackResult(ID, "skipped", "needs a recommender scenario")
    p, rng = ctx.params, ctx.rng()
    n_items = len(loaded.items)
    k = min(int(p.get("k", 100)), n_items)
    held_users = np.unique(loaded.holdout.users)
    n = min(int(p.get("n_users", 300)), len(held_users))
    users = np.sort(rng.choice(held_users, size=n, replace=False))
    names = [loaded.users[u] for u in users]
    nobody = "u-mlhunt-nobody"
    try:
        idx, scores = ctx.target.recommend_users([nobody, *names], k)  # type: ignore[attr-defined]
    except BudgetExhausted as exc:
        return AttackResult(ID, "inconclusive", f"budget exhausted before any answer: {exc}")
    raw = item_scores(idx, scores, n_items)
    guess = raw[1:] - raw[0]  # how much more the item scores for this user than for nobody
    idx = idx[1:]
    row_of = {int(u): r for r, u in enumerate(users)}

    def pairs(inter: Any) -> tuple[np.ndarray, np.ndarray]:
        keep = np.isin(inter.users, users)
        return np.array([row_of[int(u)] for u in inter.users[keep]]), inter.items[keep]

    m_rows, m_items = pairs(loaded.train)
    h_rows, h_items = pairs(loaded.holdout)
    in_train = np.zeros((n, n_items), dtype=bool)
    in_train[m_rows, m_items] = True
    clicked = in_train.copy()
    clicked[h_rows, h_items] = True
    # As many never-clicked items per user as the user has training clicks.
    o_rows: list[int] = []
    o_items: list[int] = []
    for r in range(n):
        free = np.flatnonzero(~clicked[r])
        take = min(len(free), int(in_train[r].sum()))
        o_rows += [r] * take
        o_items += [int(i) for i in rng.choice(free, size=take, replace=False)]
    members = guess[m_rows, m_items]
    strict = roc_numbers(members, guess[h_rows, h_items])
    loose = roc_numbers(members, guess[np.array(o_rows, dtype=np.int64), o_items])
    auc, auc_heldout = float(loose["auc"]), float(strict["auc"])
    # The attacker's guess of a user's history: the ten items that rose most for them; beside
    # it, the cold-start list's top-10 (what popularity alone guesses).
    top = np.argsort(-guess, axis=1, kind="stable")[:, :10]
    precision = float(np.take_along_axis(in_train, top, axis=1).mean())
    cold = np.argsort(-raw[0], kind="stable")[:10]
    popular = float(in_train[:, cold].mean())
    base = float(in_train.mean())
    metrics: dict[str, Any] = {
        "auc": round(auc, 4),
        "tpr_at_fpr": loose["tpr_at_fpr"],
        "advantage": loose["advantage"],
        "auc_heldout": round(auc_heldout, 4),
        "history_precision_at_10": round(precision, 4),
        "popularity_precision_at_10": round(popular, 4),
        "history_base_rate": round(base, 4),
        "users": n,
        "members": len(members),
        "nonmembers_heldout": len(h_rows),
        "k": k,
    }
    strong = auc >= float(p.get("min_auc", 0.6))
    summary = (
        f"from {n} users' top-{k}: a user's clicked items are told from items they never "
        f"clicked with AUC {auc:.3f} ({auc_heldout:.3f} against their held-out clicks); "
        f"{precision:.0%} of the ten items that rose most for a user are their own clicks (the "
        f"cold-start top-10: {popular:.0%})"
    )
    from mlhunt.assess import plots

    plot = plots.roc(
        ctx.out_dir,
        "reco_membership_roc.png",
        {"vs never clicked": loose["roc"], "vs held-out clicks": strict["roc"]},
        title="Membership of a user's clicks",
    )
    return AttackResult(
        ID,
        "validated" if strong else "refuted",
        summary,
        metrics=metrics,
        curves={"roc": loose["roc"], "roc_heldout": strict["roc"]},
        plots=[plot],
        params=p,
    )
