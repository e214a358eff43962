"""Attribute inference: recover a sensitive feature of training records from the model's answers.

The attacker knows every feature of a victim record except the sensitive one
(``data.sensitive_feature``, e.g. the applicant's postcode district) and sees the model's
decision on the full record. ART's ``AttributeInferenceBlackBox`` learns to predict the
sensitive value from the known features plus the decision, trained on pool records the attacker
holds (queried once). ART's ``AttributeInferenceBaseline`` learns the same from the known
features alone and never queries the model: the attack's *advantage* over it is what the model
itself leaks. Measured on training members (and on non-members for contrast); a paired sign
test (McNemar) tells a real advantage from noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt._threads import few_threads
from mlhunt.assess.attacks._tabular import (
    fit_to_budget,
    query,
    recorded_classifier,
    seeded_numpy,
    skipped,
    too_small,
)
from mlhunt.assess.base import AttackContext, AttackResult, BudgetExhausted

ID = "MLH-ASSESS-ATTRIBUTE-INFERENCE"


class _OneHotForest:
    """A seeded random forest behind ART's one-hot interface. ART hands its forest one-hot
    targets, so sklearn fits one independent output per value and many rows come back all
    zeros, which ART reads as the first value (measured: attack and baseline both collapsed to
    "district 1"). Fitting on the class index and answering one-hot avoids that."""

    def __init__(self, seed: int) -> None:
        from sklearn.ensemble import RandomForestClassifier

        self.forest = RandomForestClassifier(
            n_estimators=100, min_samples_leaf=3, random_state=seed
        )
        self.width = 0

    def fit(self, x: np.ndarray, y: np.ndarray, **_: Any) -> _OneHotForest:
        y = np.asarray(y)
        self.width = y.shape[1] if y.ndim == 2 else int(y.max()) + 1
        self.forest.fit(x, y.argmax(axis=1) if y.ndim == 2 else y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        proba = self.forest.predict_proba(x)
        out = np.zeros((len(x), self.width))
        out[np.arange(len(x)), self.forest.classes_[proba.argmax(axis=1)].astype(int)] = 1.0
        return out


def _forest(seed: int) -> Any:
    return _OneHotForest(seed)


def run(ctx: AttackContext) -> AttackResult:
    with few_threads(), seeded_numpy(ctx.seed):
        return _run(ctx)


def _run(ctx: AttackContext) -> AttackResult:
    from art.attacks.inference.attribute_inference import (
        AttributeInferenceBaseline,
        AttributeInferenceBlackBox,
    )

    data, p, t = ctx.data, ctx.params, ctx.target
    j = data.sensitive_feature
    if t.spec.kind != "tabular" or j is None:
        return skipped(ctx, ID, "needs a tabular model with a sensitive feature")
    if data.x_pool is None or data.x_members is None:
        return skipped(ctx, ID, "needs attacker pool records and known members")
    rng = ctx.rng()
    wanted = {
        "pool": min(int(p.get("n_train", 2000)), len(data.x_pool)),
        "members": min(int(p.get("n_members", 1000)), len(data.x_members)),
        "non-members": 0
        if data.x_nonmembers is None
        else min(int(p.get("n_nonmembers", 1000)), len(data.x_nonmembers)),
    }
    sizes = fit_to_budget(ctx, wanted)
    if sizes is None:
        return too_small(ctx, ID, wanted)
    pool = np.asarray(data.x_pool, dtype=np.float64)
    pool = pool[rng.permutation(len(pool))[: sizes["pool"]]]
    members = np.asarray(data.x_members, dtype=np.float64)
    members = members[rng.permutation(len(members))[: sizes["members"]]]
    others = None
    if data.x_nonmembers is not None and sizes["non-members"] > 0:
        others = np.asarray(data.x_nonmembers, dtype=np.float64)
        others = others[rng.permutation(len(others))[: sizes["non-members"]]]
    # ART's attribute inference classifies the sensitive value: on a continuous feature every
    # value is its own class and both models score ~0%, which measures nothing (not a refutation).
    distinct = np.unique(pool[:, j])
    max_values = int(p.get("max_values", 50))
    if len(distinct) > max_values or not np.all(distinct == np.round(distinct)):
        return AttackResult(
            ID,
            "inconclusive",
            f"{t.spec.names[j]} is continuous ({len(distinct)} distinct values in the pool, "
            f"at most {max_values} whole-number categories measurable): attribute inference "
            "needs a categorical sensitive feature (bin it, e.g. age bands)",
            metrics={"feature": t.spec.names[j], "values": len(distinct)},
            params=p,
        )
    try:
        pool_p = query(t, pool)
        member_p = query(t, members)
    except BudgetExhausted as exc:
        return AttackResult(ID, "inconclusive", f"nothing measured: {exc}", params=p)
    # The value list is the pool's (ART indexes values by the sorted ones seen in fit; a value
    # only the victims have cannot be predicted anyway).
    values = np.unique(pool[:, j]).tolist()

    attack = AttributeInferenceBlackBox(
        recorded_classifier(pool, pool_p), attack_model_type="rf", attack_feature=j
    )
    attack.attack_model = _forest(ctx.seed)  # ART's forest is unseeded (see membership.py)
    attack.fit(pool)
    baseline = AttributeInferenceBaseline(attack_model_type="rf", attack_feature=j)
    baseline.attack_model = _forest(ctx.seed + 1)
    baseline.fit(pool)

    def measure(x: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
        rest = np.delete(x, j, axis=1)
        pred = np.argmax(probs, axis=1).reshape(-1, 1).astype(np.float64)
        got = np.asarray(attack.infer(rest, pred=pred)).reshape(-1) == x[:, j]
        base = np.asarray(baseline.infer(rest)).reshape(-1) == x[:, j]
        b, c = int(np.sum(got & ~base)), int(np.sum(~got & base))
        return {
            "attack_accuracy": round(float(got.mean()), 4),
            "baseline_accuracy": round(float(base.mean()), 4),
            "advantage": round(float(got.mean() - base.mean()), 4),
            "mcnemar_z": round((b - c) / np.sqrt(b + c), 2) if b + c else 0.0,
            "records": len(x),
        }

    on_members = measure(members, member_p)
    metrics: dict[str, Any] = {**on_members, "feature": t.spec.names[j], "values": len(values)}
    if others is not None:
        try:
            metrics["nonmembers"] = measure(others, query(t, others))
        except BudgetExhausted as exc:
            metrics["nonmembers"] = f"not measured: {exc}"
    if on_members["attack_accuracy"] == 0 and on_members["baseline_accuracy"] == 0:
        # Neither model recovers a single value: nothing was measured, so nothing is refuted.
        metrics["degenerate"] = "attack and baseline both recovered no value (0% vs 0%)"
    strong = on_members["advantage"] >= float(p.get("min_advantage", 0.02)) and on_members[
        "mcnemar_z"
    ] >= float(p.get("min_z", 2.0))
    # An advantage above the bar that the test cannot tell from noise is unproven either way.
    unsure = not strong and on_members["advantage"] >= float(p.get("min_advantage", 0.02))
    name = t.spec.names[j]
    summary = (
        f"{name} of {len(members)} training records inferred with accuracy "
        f"{on_members['attack_accuracy']:.1%} using the model's answers vs "
        f"{on_members['baseline_accuracy']:.1%} without them (advantage "
        f"{on_members['advantage']:+.1%}, z {on_members['mcnemar_z']:.1f})"
        + (
            ""
            if strong
            else ": not significant at this sample size"
            if unsure
            else ": the model adds nothing significant to what the other features tell"
        )
    )
    verdict = "validated" if strong else ("inconclusive" if unsure else "refuted")
    return AttackResult(ID, verdict, summary, metrics=metrics, params=p)
