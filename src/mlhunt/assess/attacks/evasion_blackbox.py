"""Black-box evasion of a tabular model within a query budget, changing only mutable features.

Samples are inputs the model puts in a class the attacker wants to leave (flagged transactions,
rejected applications; any class when no wanted class is named): evaluation rows first, then,
if too few, held-out rows of that true class (a fraudster's own attempts). Each sample is
attacked in the attacker's space: the mutable features scaled to [0, 1] over their realistic
range, the immutable ones fixed to the original by construction. Three methods:

* **constrained search** (hand-written: ART's attacks are continuous and know nothing of
  integer counts or categorical codes): greedy coordinate search over realistic values of one
  mutable feature at a time (every code of a small integer feature, a grid otherwise), each step
  one batch of queries, keeping the change that most raises the wanted class;
* ART **HopSkipJump** (L2, decision-based);
* ART **Square** (L-inf, score-based; the mutable features laid out on a small square grid
  because the implementation needs image-shaped input).

Every method tries every sample (ART's the first ``art_samples``: they cost far more queries);
a sample counts as evaded if any method succeeds, with its smallest change. An ART result
counts only if it still evades after projection onto valid inputs (bounds, integers rounded)
and one confirming query. Reported: success rate, median perturbation (L2
over the features scaled to their range) and features changed, queries per success; the
immutable features of every adversarial row are checked unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlhunt._threads import few_threads
from mlhunt.assess.attacks._tabular import (
    WANTED,
    Space,
    live_classifier,
    query,
    seeded_numpy,
    skipped,
    wanted_class,
)
from mlhunt.assess.base import AttackContext, AttackResult, BudgetExhausted, QueryBudget, Target

ID = "MLH-ASSESS-EVASION-BLACKBOX"
METHODS = ("constrained", "hopskipjump", "square")


class _Sample:
    """One sample's charged predict function in the attacker's space."""

    def __init__(self, target: Target, space: Space, row: np.ndarray, cap: int) -> None:
        self.target, self.space, self.row = target, space, row
        self.budget = QueryBudget(cap)  # per-sample cap, on top of the attack's budget

    def proba(self, z: np.ndarray) -> np.ndarray:
        x = self.space.embed(self.row, np.asarray(z).reshape(len(z), -1))
        self.budget.charge(len(x))
        return np.asarray(self.target.predict_proba(x), dtype=np.float64)


def _candidates(space: Space, grid: int) -> list[np.ndarray]:
    """Realistic values (scaled) per mutable feature: all codes of a small integer feature, else
    a linear and a geometric grid (amounts and incomes are skewed)."""
    out = []
    for j in space.mutable:
        lo, hi = space.lo[j], space.hi[j]
        if space.spec.integer[j] and hi - lo <= 30:
            vals = np.arange(lo, hi + 1)
        else:
            geo = np.geomspace(max(lo, 1e-3 * (hi - lo) + lo, 1e-6), hi, grid) if hi > 0 else []
            vals = np.unique(space.project_feature(j, np.r_[np.linspace(lo, hi, grid), geo]))
        out.append((vals - lo) / space.span[j])
    return out


def constrained(s: _Sample, goal: int, origin: int, steps: int, grid: int) -> np.ndarray | None:
    z = s.space.to_z(s.row)[None, :]
    cands = _candidates(s.space, grid)
    for _ in range(steps):
        trials = []
        for k, vals in enumerate(cands):
            t = np.repeat(z, len(vals), axis=0)
            t[:, k] = vals
            trials.append(t)
        batch = np.concatenate(trials)
        p = s.proba(batch)
        hit = _reached(p, goal, origin)
        if hit.any():  # the smallest change among the hits
            d = np.linalg.norm(batch[hit] - s.space.to_z(s.row), axis=1)
            return s.space.embed(s.row, batch[hit][np.argmin(d)][None, :])[0]
        z = batch[np.argmax(p[:, goal] if goal >= 0 else -p[:, origin])][None, :]
    return None


def _reached(p: np.ndarray, goal: int, origin: int) -> np.ndarray:
    pred = np.argmax(p, axis=1)
    return pred == goal if goal >= 0 else pred != origin


def art_method(name: str, s: _Sample, params: dict[str, Any], n_classes: int) -> np.ndarray | None:
    from art.attacks.evasion import HopSkipJump, SquareAttack

    d = len(s.space.mutable)
    z0 = s.space.to_z(s.row)[None, :]
    if name == "hopskipjump":
        clf = live_classifier(s.proba, (d,), n_classes)
        attack = HopSkipJump(
            clf,
            norm=2,
            max_iter=int(params.get("hsj_max_iter", 10)),
            max_eval=int(params.get("hsj_max_eval", 100)),
            init_eval=int(params.get("hsj_init_eval", 20)),
            init_size=50,
            verbose=False,
        )
        z = attack.generate(z0.astype(np.float32))
    else:
        # Square needs (channels, height, width) and a square smaller than the side: at least
        # 3 x 3 with p_init 0.3 (ART draws randint(0, side - tile), which fails at tile == side).
        side = max(3, math.ceil(math.sqrt(d)))

        def on_grid(g: np.ndarray) -> np.ndarray:
            return s.proba(np.asarray(g).reshape(len(g), -1)[:, :d])

        clf = live_classifier(on_grid, (1, side, side), n_classes, image_like=True)
        grid = np.zeros((1, 1, side * side), dtype=np.float32)
        grid[0, 0, :d] = z0[0]
        attack = SquareAttack(
            clf,
            norm=np.inf,
            eps=float(params.get("square_eps", 0.3)),
            max_iter=int(params.get("square_max_iter", 100)),
            p_init=0.3,
            verbose=False,
        )
        z = attack.generate(grid.reshape(1, 1, side, side)).reshape(1, -1)[:, :d]
    return s.space.embed(s.row, np.asarray(z, dtype=np.float64))[0]


def _pick(ctx: AttackContext, goal: int | None) -> tuple[np.ndarray, list[int | None], int]:
    """Rows to attack (with their x_eval index, None for extra held-out rows), queries spent."""
    data, t, p = ctx.data, ctx.target, ctx.params
    want = int(p.get("n_samples", 30))
    surv = np.asarray(ctx.survivors, dtype=int)
    x_ev = np.asarray(data.x_eval, dtype=np.float64)[surv]
    pred = np.argmax(query(t, x_ev), axis=1)
    spent = len(x_ev)
    keep = np.flatnonzero(pred != goal) if goal is not None else np.arange(len(pred))
    rows, where = list(x_ev[keep][:want]), [int(surv[i]) for i in keep[:want]]
    if len(rows) < want and goal is not None and data.x_nonmembers is not None:
        y = np.asarray(data.y_nonmembers)
        extra = np.asarray(data.x_nonmembers, dtype=np.float64)[y != goal]
        extra = extra[ctx.rng().permutation(len(extra))[: 4 * (want - len(rows))]]
        if len(extra):
            flagged = extra[np.argmax(query(t, extra), axis=1) != goal]
            spent += len(extra)
            rows += list(flagged[: want - len(rows)])
            where += [None] * min(len(flagged), want - len(where))
    return np.asarray(rows).reshape(-1, x_ev.shape[1]), where, spent


def run(ctx: AttackContext) -> AttackResult:
    with few_threads(), seeded_numpy(ctx.seed):
        return _run(ctx)


def _run(ctx: AttackContext) -> AttackResult:
    t, p = ctx.target, ctx.params
    if t.spec.kind != "tabular":
        return skipped(ctx, ID, "tabular models only (image models: see the white-box attacks)")
    space = Space(t.spec)
    if not len(space.mutable):
        return skipped(ctx, ID, "no feature is mutable: nothing an attacker could change")
    goal = wanted_class(t.classes, p.get("wanted", WANTED))
    try:
        rows, where, spent = _pick(ctx, goal)
    except BudgetExhausted as exc:
        return AttackResult(ID, "inconclusive", f"no samples chosen: {exc}", params=p)
    if not len(rows):
        return AttackResult(ID, "inconclusive", "no input is in a class to evade from", params=p)
    origins = np.argmax(query(t, rows), axis=1)
    spent += len(rows)
    methods = [m for m in p.get("methods", list(METHODS)) if m in METHODS]
    found: dict[int, tuple[str, np.ndarray]] = {}
    per: dict[str, dict[str, Any]] = {
        m: {"tried": 0, "succeeded": 0, "queries": 0} for m in methods
    }
    stopped = ""
    for m in methods:
        # ART's methods cost far more queries per sample: they get the first art_samples only.
        limit = len(rows) if m == "constrained" else int(p.get("art_samples", 10))
        for i, row in enumerate(rows[:limit]):
            if stopped:
                break
            s = _Sample(t, space, row, int(p.get("max_queries_per_sample", 2000)))
            g = goal if goal is not None and len(t.classes) > 2 else -1
            try:
                if m == "constrained":
                    adv = constrained(
                        s,
                        g if g >= 0 else -1,
                        int(origins[i]),
                        int(p.get("steps", 3)),
                        int(p.get("grid", 12)),
                    )
                else:
                    adv = art_method(m, s, p, len(t.classes))
                    if adv is not None:
                        adv = space.project(adv)
                        adv = (
                            adv
                            if _reached(s.proba(space.to_z(adv)[None, :]), g, int(origins[i]))[0]
                            else None
                        )
            except BudgetExhausted as exc:
                adv = None
                if ctx.budget.remaining == 0 or (ctx.budget.time_left() or 1) <= 0:
                    stopped = str(exc)
            per[m]["tried"] += 1
            per[m]["queries"] += s.budget.used
            if adv is not None:
                per[m]["succeeded"] += 1
                per[m].setdefault("perturbations", []).append(space.distance(adv, row))
                if i not in found or space.distance(adv, row) < space.distance(found[i][1], row):
                    found[i] = (m, adv)  # keep the smallest change over the methods
        ctx.progress(f"evasion: {m}: {per[m]['succeeded']}/{per[m]['tried']} evaded")
    return _result(ctx, space, rows, where, found, per, spent, stopped)


def _result(
    ctx: AttackContext,
    space: Space,
    rows: np.ndarray,
    where: list[int | None],
    found: dict[int, tuple[str, np.ndarray]],
    per: dict[str, dict[str, Any]],
    spent: int,
    stopped: str,
) -> AttackResult:
    p = ctx.params
    fixed = np.setdiff1d(np.arange(rows.shape[1]), space.mutable)
    changed_immutable = sum(
        int(np.any(adv[fixed] != rows[i][fixed])) for i, (_, adv) in found.items()
    )
    dist = [space.distance(adv, rows[i]) for i, (_, adv) in found.items()]
    nchg = [int(np.sum(~np.isclose(adv, rows[i]))) for i, (_, adv) in found.items()]
    attack_queries = sum(v["queries"] for v in per.values())
    for v in per.values():
        d = v.pop("perturbations", [])
        v["median_perturbation"] = round(float(np.median(d)), 4) if d else None
        v["queries_per_success"] = round(v["queries"] / len(d), 1) if d else None
    rate = len(found) / len(rows)
    metrics: dict[str, Any] = {
        "success_rate": round(rate, 4),
        "samples": len(rows),
        "evaded": len(found),
        "median_perturbation": round(float(np.median(dist)), 4) if dist else None,
        "median_features_changed": float(np.median(nchg)) if nchg else None,
        "queries_per_success": round(attack_queries / len(found), 1) if found else None,
        "selection_queries": spent,
        "immutable_changed": changed_immutable,
        "methods": per,
        "mutable_features": [space.spec.names[j] for j in space.mutable],
        "examples": [
            {"method": m, "original": rows[i].tolist(), "adversarial": adv.tolist()}
            for i, (m, adv) in list(found.items())[:3]
        ],
    }
    broken = {where[i] for i in found if where[i] is not None}
    survivors = [int(i) for i in ctx.survivors if int(i) not in broken]
    if stopped and not found:
        verdict, summary = "inconclusive", f"budget ran out before any evasion: {stopped}"
    else:
        strong = rate >= float(p.get("min_success", 0.1))
        verdict = "validated" if strong else ("inconclusive" if stopped else "refuted")
        summary = (
            f"{len(found)}/{len(rows)} inputs ({rate:.0%}) moved to the wanted class "
            f"changing only mutable features"
            + (
                f", median {metrics['median_features_changed']:.0f} features changed, "
                f"{metrics['queries_per_success']:.0f} queries per success"
                if found
                else ""
            )
            + (f"; stopped: {stopped}" if stopped else "")
        )
    return AttackResult(ID, verdict, summary, metrics=metrics, params=p, survivors=survivors)
