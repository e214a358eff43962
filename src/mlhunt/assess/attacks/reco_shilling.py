"""Profile injection (shilling) against a recommender that retrains on its clickstream.

The recommender-poisoning literature's measure: the target item's *hit rate*, the share of real
users (who never clicked it) with the target in their top-k, against the number of injected fake
profiles. The fake profiles are the clickstream simulator's shilling sessions
(:func:`mlhunt.scenarios.clickgen.shilling`: new accounts, popular filler items, carts and
purchases of the target), turned into interactions with the Spark feature job's event weights
(:data:`mlhunt.scenarios.clickfeatures.EVENT_WEIGHTS`, applied in process: a Spark run per point of
the curve would cost more than the retrain) and added to the training interactions; the real
model is retrained with the scenario's own trainer at each point. The point with 0 fake
profiles is the clean retrain the others are compared with (same trainer, same seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.assess.base import AttackContext, AttackResult

ID = "MLH-ASSESS-RECO-SHILLING"


def fake_interactions(
    events: Any, first_user: int, item_index: dict[str, int]
) -> tuple[Any, list[str]]:
    """Interactions of the fake accounts in ``events`` (users numbered from ``first_user`` in
    order of first appearance) and their ids; items outside the catalogue are dropped."""
    from mlhunt.scenarios import reco_model as rm
    from mlhunt.scenarios.clickfeatures import EVENT_WEIGHTS

    users = events.column("user").to_pylist()
    items = events.column("item").to_pylist()
    kinds = events.column("event").to_pylist()
    ids: dict[str, int] = {}
    acc: dict[tuple[int, int], float] = {}
    for u, it, kind in zip(users, items, kinds, strict=True):
        j = item_index.get(it)
        if j is None:
            continue
        row = ids.setdefault(u, first_user + len(ids))
        acc[(row, j)] = acc.get((row, j), 0.0) + EVENT_WEIGHTS.get(kind, 1.0)
    keys = sorted(acc)
    return (
        rm.Interactions(
            np.array([k[0] for k in keys], dtype=np.int64),
            np.array([k[1] for k in keys], dtype=np.int64),
            np.array([acc[k] for k in keys], dtype=np.float64),
        ),
        list(ids),
    )


def run(ctx: AttackContext) -> AttackResult:
    loaded = ctx.data.extra.get("recommender")
    trainer = ctx.data.extra.get("reco_trainer")
    if loaded is None or trainer is None:
        return AttackResult(ID, "skipped", "needs a recommender scenario and its trainer")
    from mlhunt.scenarios import clickgen
    from mlhunt.scenarios import reco_model as rm
    from mlhunt.scenarios.clickstream import START

    p = ctx.params
    rng = ctx.rng()
    k = int(p.get("k", 10))
    n_users, n_items = len(loaded.users), len(loaded.items)
    popularity = np.bincount(loaded.train.items, minlength=n_items)
    order = np.argsort(popularity, kind="stable")
    target = int(order[int(float(p.get("target_quantile", 0.25)) * (n_items - 1))])
    target_id = loaded.items[target]
    clicked = np.zeros(n_users, dtype=bool)
    clicked[loaded.interactions.users[loaded.interactions.items == target]] = True
    candidates = np.flatnonzero(~clicked)
    n_eval = min(int(p.get("n_eval_users", 600)), len(candidates))
    eval_users = np.sort(rng.choice(candidates, size=n_eval, replace=False))

    counts = sorted({int(n) for n in p.get("n_fake", [0, 10, 25, 50])} | {0})
    events = clickgen.shilling(
        n_fake=max(counts),
        target=target_id,
        n_items=int(loaded.meta.get("n_catalogue", n_items)),
        # The scenario's seed: the simulator then picks the catalogue's real popular items as
        # filler (the attacker sees them on the shop's bestseller pages).
        seed=int(loaded.meta["seed"]),
        start=START,
    )
    fake, fake_ids = fake_interactions(
        events, n_users, {it: i for i, it in enumerate(loaded.items)}
    )
    h_eval = loaded.history[eval_users]
    rows: list[dict[str, Any]] = []
    for n in counts:
        inter = loaded.train.concat(fake.subset(fake.users < n_users + n))
        model = trainer(inter, n_users + n)
        s = rm.scores(model, h_eval)
        idx, _ = rm.top_k(s, k)
        hits = (idx == target).any(axis=1)
        rank = (s > s[:, [target]]).sum(axis=1)  # 0 = the top item
        rows.append(
            {
                "n_fake": n,
                "fake_share": round(n / n_users, 4),
                "hit_rate": round(float(hits.mean()), 4),
                "median_rank": float(np.median(rank)),
            }
        )
        ctx.progress(f"shilling with {n} fake profiles: target hit rate {hits.mean():.3f}")
    return _result(ctx, rows, target_id, int(popularity[target]), len(fake_ids), k)


def _result(
    ctx: AttackContext,
    rows: list[dict[str, Any]],
    target: str,
    target_clicks: int,
    n_profiles: int,
    k: int,
) -> AttackResult:
    from mlhunt.assess import plots

    p = ctx.params
    clean = rows[0]["hit_rate"]
    worst = max(rows, key=lambda r: r["hit_rate"])
    lift = round(worst["hit_rate"] - clean, 4)
    metrics: dict[str, Any] = {
        "target_item": target,
        "target_clicks": target_clicks,
        "clean_hit_rate": clean,
        "poisoned_hit_rate": worst["hit_rate"],
        "hit_rate_lift": lift,
        "n_fake": worst["n_fake"],
        "fake_share": worst["fake_share"],
        "fake_profiles_generated": n_profiles,
        "k": k,
    }
    plot = plots.curve(
        ctx.out_dir,
        "shilling_curve.png",
        [r["n_fake"] for r in rows],
        {f"hit rate of {target} in top-{k}": [r["hit_rate"] for r in rows]},
        xlabel="fake profiles injected",
        ylabel="share of real users",
        title="Shilling: target hit rate after retraining",
    )
    strong = lift >= float(p.get("min_lift", 0.05))
    summary = (
        f"{worst['n_fake']} fake profiles ({worst['fake_share']:.1%} of users) raise the hit rate "
        f"of {target} in real users' top-{k} from {clean:.3f} to {worst['hit_rate']:.3f}"
    )
    if not strong:
        summary += " (below the stated lift: the retrain resists this injection)"
    return AttackResult(
        ID,
        "validated" if strong else "refuted",
        summary,
        metrics=metrics,
        curves={"points": rows},
        plots=[plot],
        params=p,
    )
