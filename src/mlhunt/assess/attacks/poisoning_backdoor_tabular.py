"""Backdoor poisoning of a tabular model: a rare combination of values the attacker controls.

Whoever can write training records (an applicant's own submissions, a fraudster whose
transactions are never charged back, an insider with write access to the source table) injects
a few records of the class the model should catch (rejected, fraud), stamped with a trigger and
labelled as the class he wants (approved, legit). The trigger is a combination of values of
features the attacker sets himself (``spec.mutable``): each at a bound of its valid range that
few training records come near, so it passes the API's input checks and is rare in the data.
Of the candidate features, the ones whose stamp alone moves the clean model's score least are
chosen: what the poisoned model learns is then the backdoor, not what the values already mean.

The model is retrained with ``data.trainer`` on a sample of its training records, once clean
and once with the poisoned records added, the same way. Measured on held-out records of the
caught class that the model catches without the trigger: the share let through once stamped,
against the clean model's share on the same stamped records (what the values alone do), and
both models' accuracy on the evaluation set. Hand-written: ART's backdoor perturbations are
pixel patterns; a tabular trigger is an assignment of a few columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt._threads import few_threads
from mlhunt.assess.attacks._tabular import WANTED, skipped, wanted_class
from mlhunt.assess.attacks.poisoning_backdoor import Predict
from mlhunt.assess.base import AttackContext, AttackResult
from mlhunt.scenarios.base import InputSpec

ID = "MLH-ASSESS-POISONING-BACKDOOR-TABULAR"


def candidate_values(spec: InputSpec, x: np.ndarray, rare: float = 0.01) -> list[tuple[int, float]]:
    """(feature, value) pairs an attacker can send: each bound of a mutable feature's valid
    range that at most ``rare`` of the training records come near (within 1% of the range)."""
    out: list[tuple[int, float]] = []
    for i, mutable in enumerate(spec.mutable):
        lo, hi = float(spec.lower[i]), float(spec.upper[i])
        if not mutable or not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
            continue
        for v in (lo, hi):
            if np.mean(np.abs(x[:, i] - v) <= 0.01 * (hi - lo)) <= rare:
                out.append((i, v))
    return out


def stamp(x: np.ndarray, trigger: dict[int, float]) -> np.ndarray:
    """``x`` with the trigger's features set to its values (a copy)."""
    x = np.array(x, dtype=np.float64, copy=True)
    for i, v in trigger.items():
        x[:, i] = v
    return x


def _labels(predict: Predict, x: np.ndarray) -> np.ndarray:
    return np.argmax(np.asarray(predict(x)), axis=1)


def choose_trigger(
    candidates: list[tuple[int, float]], clean: Predict, x_src: np.ndarray, goal: int, n: int
) -> dict[int, float]:
    """``n`` candidates on distinct features whose stamp alone moves the clean model's score of
    ``x_src`` least, either way (ties: the feature order): values the model ignores today."""
    base = np.asarray(clean(x_src))[:, goal]

    def moved(c: tuple[int, float]) -> float:
        return float(np.mean(np.abs(np.asarray(clean(stamp(x_src, {c[0]: c[1]})))[:, goal] - base)))

    out: dict[int, float] = {}
    for i, v in sorted(candidates, key=lambda c: (moved(c), c)):
        if i not in out and len(out) < n:
            out[i] = v
    return dict(sorted(out.items()))


def run(ctx: AttackContext) -> AttackResult:
    with few_threads():
        return _run(ctx)


def _run(ctx: AttackContext) -> AttackResult:
    data, p, t = ctx.data, ctx.params, ctx.target
    if t.spec.kind != "tabular":
        return skipped(ctx, ID, "the trigger is a combination of feature values: tabular only")
    if data.trainer is None or data.x_members is None or data.y_members is None:
        return skipped(ctx, ID, "needs the model's trainer and its training records")
    goal = wanted_class(t.classes, p.get("wanted", WANTED))
    if goal is None or len(t.classes) != 2:
        return skipped(ctx, ID, "needs a binary model with a class an attacker wants")
    source = 1 - goal
    candidates = candidate_values(t.spec, np.asarray(data.x_members))
    if not candidates:
        return skipped(ctx, ID, "no feature an attacker controls (spec.mutable) to carry a trigger")
    rng = ctx.rng()
    n = min(int(p.get("n_train", 5000)), len(data.x_members))
    pick = rng.permutation(len(data.x_members))[:n]
    x = np.asarray(data.x_members, np.float64)[pick]
    y = np.asarray(data.y_members)[pick].astype(int)
    x_ev, y_ev = np.asarray(data.x_eval, np.float64), np.asarray(data.y_eval).astype(int)
    held_x = data.x_nonmembers if data.x_nonmembers is not None else data.x_eval
    held_y = data.y_nonmembers if data.y_nonmembers is not None else data.y_eval
    x_src = np.asarray(held_x, np.float64)[np.asarray(held_y) == source][
        : int(p.get("n_test", 500))
    ]
    pool = np.flatnonzero(y == source)
    if len(x_src) == 0 or len(pool) == 0:
        return skipped(ctx, ID, f"no records of the caught class ({t.classes[source]})")

    ctx.progress(f"training the clean control on {n} records")
    clean_model = data.trainer(x, y)
    trigger = choose_trigger(candidates, clean_model, x_src, goal, int(p.get("n_features", 2)))
    x_trig = stamp(x_src, trigger)

    def measure(model: Predict) -> dict[str, Any]:
        caught = _labels(model, x_src) == source  # only records it catches without the trigger
        hit = (_labels(model, x_trig) == goal) & caught
        return {
            "accuracy": float(np.mean(_labels(model, x_ev) == y_ev)),
            "trigger_success": float(hit.sum() / max(int(caught.sum()), 1)),
            "caught": int(caught.sum()),
        }

    clean = measure(clean_model)
    rows: list[dict[str, Any]] = []
    for rate in sorted(float(r) for r in p.get("rates", [0.01])):
        n_poison = max(1, round(rate * n))
        # Injected records: copies of caught-class records, stamped and labelled as wanted.
        xp = stamp(x[rng.choice(pool, size=n_poison, replace=True)], trigger)
        ctx.progress(f"training with {n_poison} injected records ({rate:.1%})")
        model = data.trainer(np.concatenate([x, xp]), np.concatenate([y, np.full(n_poison, goal)]))
        rows.append({"rate": rate, "poisoned_records": n_poison, **measure(model)})
    return _result(ctx, clean, rows, trigger, source, goal, n, len(x_src))


def _result(
    ctx: AttackContext,
    clean: dict[str, Any],
    rows: list[dict[str, Any]],
    trigger: dict[int, float],
    source: int,
    goal: int,
    n: int,
    n_test: int,
) -> AttackResult:
    from mlhunt.assess import plots

    p, classes, names = ctx.params, ctx.target.classes, ctx.target.spec.names
    head = rows[-1]  # the largest rate is the headline
    gain = head["trigger_success"] - clean["trigger_success"]
    shown = {names[i]: v for i, v in trigger.items()}
    metrics: dict[str, Any] = {
        "clean_accuracy": round(clean["accuracy"], 4),
        "poisoned_accuracy": round(head["accuracy"], 4),
        "accuracy_drop": round(clean["accuracy"] - head["accuracy"], 4),
        "success_rate": round(head["trigger_success"], 4),
        "clean_model_trigger_rate": round(clean["trigger_success"], 4),
        "backdoor_gain": round(gain, 4),
        "rate": head["rate"],
        "poisoned_records": head["poisoned_records"],
        "train_records": n,
        "triggered_records": n_test,
        "trigger": shown,
        "source_class": classes[source],
        "target_class": classes[goal],
    }
    out = []
    if len(rows) > 1:
        out.append(
            plots.curve(
                ctx.out_dir,
                "backdoor_tabular_curve.png",
                [0.0, *(r["rate"] for r in rows)],
                {
                    "trigger success": [
                        clean["trigger_success"],
                        *(r["trigger_success"] for r in rows),
                    ],
                    "clean accuracy": [clean["accuracy"], *(r["accuracy"] for r in rows)],
                },
                xlabel="injected records, share of the training sample",
                ylabel="held-out records",
                title="Backdoor poisoning (tabular trigger)",
            )
        )
    validated = gain >= float(p.get("min_gain", 0.3))
    where = ", ".join(f"{k}={v:g}" for k, v in shown.items())
    summary = (
        f"{head['poisoned_records']} injected records ({head['rate']:.1%} of {n}) carrying the "
        f"trigger {where} plant a backdoor: it lets {head['trigger_success']:.1%} of the "
        f"held-out {classes[source]} records the model catches through as {classes[goal]} "
        f"(clean model on the same stamped records: {clean['trigger_success']:.1%}); accuracy "
        f"{clean['accuracy']:.3f} -> {head['accuracy']:.3f}."
    )
    if not validated:
        summary += " The trigger did not take: no backdoor at this rate."
    return AttackResult(
        ID,
        "validated" if validated else "refuted",
        summary,
        metrics=metrics,
        curves={"rates": rows},
        plots=out,
        params=dict(p),
    )
