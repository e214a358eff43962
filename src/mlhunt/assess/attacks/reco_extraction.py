"""Extraction of a recommender's item embeddings through its API (a clone from top-k answers).

The API serves anonymous sessions: ``{"items": [...]}`` returns the top-k items and their
scores. The attacker sweeps the catalogue with one-item sessions (then random two-item ones),
collects each answer's listed scores, and fits a low-rank model to them: ``score(session, item)
= mean(A[session items]) . B[item] + c[item]``, squared error on the listed scores, and a hinge
that keeps every unlisted item below the row's last listed score (the answer says so). ``A`` and
``B`` are the stolen embeddings; the clone answers any session without the API. Fidelity is
measured on real users' sessions (ground truth computed by the evaluator in process, never
charged), against the number of sessions sent, two ways: the overlap of the clone's top-10 with
the API's, beside the overlap of the cold-start list (one query for a user nobody has: in a shop
ruled by popularity most of any top-10 is the bestsellers), and the overlap of the *personal*
top-10 (the items that score most above their average over the sessions: what only the
embeddings know), beside chance. The verdict is on the personal top-10.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.assess.base import AttackContext, AttackResult, BudgetExhausted

ID = "MLH-ASSESS-RECO-EXTRACTION"


def sessions(n_items: int, total: int, rng: np.random.Generator) -> list[list[int]]:
    """Every item alone (shuffled), then random distinct pairs, ``total`` sessions in all."""
    out = [[int(i)] for i in rng.permutation(n_items)[:total]]
    while len(out) < total:
        a, b = rng.choice(n_items, size=2, replace=False)
        out.append([int(a), int(b)])
    return out


def session_matrix(rows: list[list[int]], n_items: int) -> np.ndarray:
    h = np.zeros((len(rows), n_items), dtype=np.float32)
    for r, items in enumerate(rows):
        for i in items:
            h[r, i] += 1.0 / len(items)
    return h


def fit_clone(
    h: np.ndarray, idx: np.ndarray, scores: np.ndarray, *, rank: int, steps: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stolen (A, B, c) from the answers: listed scores fitted, unlisted items kept below."""
    import torch

    from mlhunt.scenarios.determinism import torch_settings

    n, n_items = h.shape
    target = np.zeros((n, n_items), dtype=np.float32)
    listed = np.zeros((n, n_items), dtype=bool)
    for r in range(n):
        ok = idx[r] >= 0
        target[r, idx[r][ok]] = scores[r][ok]
        listed[r, idx[r][ok]] = True
    floor = np.where(listed, target, np.inf).min(axis=1, keepdims=True)
    floor[~np.isfinite(floor)] = 0.0
    with torch_settings(1, seed):
        ht, tt = torch.from_numpy(h), torch.from_numpy(target)
        mt, ft = torch.from_numpy(listed), torch.from_numpy(floor.astype(np.float32))
        a = torch.nn.Parameter(torch.randn(n_items, rank) * 0.1)
        b = torch.nn.Parameter(torch.randn(n_items, rank) * 0.1)
        c = torch.nn.Parameter(torch.zeros(n_items))
        opt = torch.optim.Adam([a, b, c], lr=0.05)
        for _ in range(steps):
            pred = (ht @ a) @ b.T + c
            fit = ((pred - tt)[mt] ** 2).mean()
            below = (torch.relu(pred - ft)[~mt] ** 2).mean()
            opt.zero_grad()
            (fit + below).backward()
            opt.step()
    return a.detach().double().numpy(), b.detach().double().numpy(), c.detach().double().numpy()


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row of ``b`` (top-k lists) found in the same row of ``a``."""
    return float(np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(a, b, strict=True)]))


def run(ctx: AttackContext) -> AttackResult:
    loaded = ctx.data.extra.get("recommender")
    if loaded is None:
        return AttackResult(ID, "skipped", "needs a recommender scenario")
    from mlhunt.scenarios import reco_model as rm

    p, rng = ctx.params, ctx.rng()
    n_items = len(loaded.items)
    k = min(int(p.get("k", 100)), n_items)
    points = sorted({int(q) for q in p.get("queries", [50, 100, 200, 300]) if int(q) > 0})
    plan = sessions(n_items, points[-1], rng)

    # Real users' sessions (their training clicks) and the real API's answers for them: the
    # evaluator's ground truth, computed in process (not charged, not sent by the attacker).
    n_eval = min(int(p.get("n_eval", 300)), len(loaded.users))
    users = rng.choice(len(loaded.users), size=n_eval, replace=False)
    h_eval = (loaded.history[users] > 0).astype(np.float32)
    h_eval /= np.maximum(h_eval.sum(axis=1, keepdims=True), 1.0)
    true_scores = loaded.scores(h_eval)
    truth, _ = rm.top_k(true_scores, 10)
    personal_truth, _ = rm.top_k(true_scores - true_scores.mean(axis=0), 10)
    try:  # the cold-start list: what anyone gets without stealing anything
        cold_idx, _ = ctx.target.recommend_users(["u-mlhunt-nobody"], 10)  # type: ignore[attr-defined]
    except BudgetExhausted as exc:
        return AttackResult(ID, "inconclusive", f"budget exhausted before any answer: {exc}")
    cold = np.tile(cold_idx[0], (len(truth), 1))

    got_idx: list[np.ndarray] = []
    got_scores: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    sent, stopped = 0, None
    for point in points:
        batch = plan[sent:point]
        try:
            idx, sc = ctx.target.recommend_sessions(  # type: ignore[attr-defined]
                [[loaded.items[i] for i in s] for s in batch], k
            )
        except BudgetExhausted as exc:
            stopped = str(exc)
            break
        got_idx.append(idx)
        got_scores.append(sc)
        sent = point
        all_idx, all_sc = np.vstack(got_idx), np.vstack(got_scores)
        a, b, c = fit_clone(
            session_matrix(plan[:sent], n_items),
            all_idx,
            all_sc,
            rank=int(p.get("rank", 32)),
            steps=int(p.get("steps", 200)),
            seed=ctx.seed,
        )
        personal = (h_eval @ a) @ b.T
        stolen, _ = rm.top_k(personal + c, 10)
        stolen_personal, _ = rm.top_k(personal - personal.mean(axis=0), 10)
        rows.append(
            {
                "queries": sent + 1,
                "top10_agreement": round(overlap(stolen, truth), 4),
                "cold_start_agreement": round(overlap(cold, truth), 4),
                "personal_agreement": round(overlap(stolen_personal, personal_truth), 4),
            }
        )
        ctx.progress(
            f"extraction after {sent} sessions: personal top-10 agreement "
            f"{rows[-1]['personal_agreement']:.3f}"
        )
    if not rows:
        return AttackResult(ID, "inconclusive", f"budget exhausted before any answer: {stopped}")
    return _result(ctx, rows, stopped, k, n_items)


def _result(
    ctx: AttackContext, rows: list[dict[str, Any]], stopped: str | None, k: int, n_items: int
) -> AttackResult:
    from mlhunt.assess import plots

    p = ctx.params
    last = rows[-1]
    chance = round(10 / n_items, 4)
    metrics: dict[str, Any] = {
        "personal_agreement": last["personal_agreement"],
        "personal_chance": chance,
        "top10_agreement": last["top10_agreement"],
        "cold_start_agreement": last["cold_start_agreement"],
        "queries": last["queries"],
        "k": k,
        "agreement": last["top10_agreement"],
    }
    if stopped:
        metrics["stopped"] = stopped
    plot = plots.curve(
        ctx.out_dir,
        "reco_extraction_curve.png",
        [r["queries"] for r in rows],
        {
            "stolen model, top-10": [r["top10_agreement"] for r in rows],
            "cold-start list, top-10": [r["cold_start_agreement"] for r in rows],
            "stolen model, personal top-10": [r["personal_agreement"] for r in rows],
        },
        xlabel="sessions sent to the API",
        ylabel="top-10 agreement with the API",
        title="Recommender extraction",
    )
    strong = last["personal_agreement"] >= float(p.get("min_agreement", 0.25))
    summary = (
        f"after {last['queries']} queries, the stolen embeddings agree on "
        f"{last['personal_agreement']:.0%} of real users' personal top-10 (chance {chance:.0%}) "
        f"and {last['top10_agreement']:.0%} of their top-10 (the cold-start list: "
        f"{last['cold_start_agreement']:.0%})"
    )
    return AttackResult(
        ID,
        "validated" if strong else "refuted",
        summary,
        metrics=metrics,
        curves={"points": rows},
        plots=[plot],
        params=p,
    )
