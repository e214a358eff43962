"""Helpers shared by the tabular and black-box attacks: batched charged queries, ART black-box
wrappers, seeded ART randomness, feature-space projection and ROC numbers.

Kept free of heavy imports at module level (ART and scikit-learn load inside the functions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from mlhunt.assess.base import AttackContext, AttackResult, Target
from mlhunt.scenarios.base import InputSpec

#: Rows per predict_proba call: bounded memory, and an HTTP target sends one request per row
#: anyway, so larger batches buy nothing there.
BATCH = 512
#: Class names an attacker wants to reach, in preference order (evasion, targeted poisoning).
WANTED = ("legit", "approved", "allowed", "benign", "negative")
FPR_POINTS = ("0.001", "0.01")


def query(target: Target, x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """``target.predict_proba`` over ``x`` in batches (each batch charged before it is sent, so
    a :class:`~mlhunt.assess.base.BudgetExhausted` leaves no half-paid batch)."""
    x = np.asarray(x)
    out = [
        np.asarray(target.predict_proba(x[i : i + batch]), dtype=np.float64)
        for i in range(0, len(x), batch)
    ]
    if not out:
        return np.zeros((0, len(target.classes)))
    return np.concatenate(out)


def fit_to_budget(
    ctx: AttackContext, sizes: dict[str, int], floor: int = 50
) -> dict[str, int] | None:
    """Sample sizes (one query per row) scaled down together to fit the attack's share of the
    query budget: a smaller sample measured beats a full one never sent. None when a sample
    would fall under ``floor`` rows (too few to measure anything)."""
    left = ctx.budget.remaining
    total = sum(sizes.values())
    if left is None or total <= left:
        return sizes
    out = {k: int(v * left / total) for k, v in sizes.items()}
    if any(v > 0 and out[k] < min(floor, v) for k, v in sizes.items()):
        return None
    return out


def too_small(ctx: AttackContext, attack_id: str, sizes: dict[str, int]) -> AttackResult:
    """The inconclusive result of an attack whose budget share cannot fit a measurable sample."""
    return AttackResult(
        attack_id,
        "inconclusive",
        f"its share of the query budget ({ctx.budget.remaining}) cannot fit a measurable sample "
        f"({', '.join(f'{k} {v}' for k, v in sizes.items())} wanted): nothing measured",
        params=dict(ctx.params),
    )


def skipped(ctx: AttackContext, attack_id: str, why: str) -> AttackResult:
    return AttackResult(attack_id, "skipped", why, params=dict(ctx.params))


def wanted_class(classes: Sequence[str], names: Sequence[str] = WANTED) -> int | None:
    """Index of the class an attacker wants (not flagged, approved ...), or None."""
    lower = [c.lower() for c in classes]
    for n in names:
        if n.lower() in lower:
            return lower.index(n.lower())
    return None


@contextlib.contextmanager
def seeded_numpy(seed: int) -> Iterator[None]:
    """ART draws from numpy's global RNG: seed it for determinism, then put the caller's state
    back (no lasting global side effect)."""
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        yield
    finally:
        np.random.set_state(state)


def recorded_classifier(x: np.ndarray, probs: np.ndarray) -> Any:
    """An ART classifier answering from queries already made (no new, uncharged queries)."""
    from art.estimators.classification import BlackBoxClassifier

    return BlackBoxClassifier(
        (x.astype(np.float64), probs),
        input_shape=x.shape[1:],
        nb_classes=probs.shape[1],
        fuzzy_float_compare=True,
    )


def live_classifier(
    predict: Callable[[np.ndarray], np.ndarray],
    input_shape: tuple[int, ...],
    nb_classes: int,
    image_like: bool = False,
) -> Any:
    """An ART black-box classifier over ``predict`` (inputs in [0, 1])."""
    from art.estimators.classification import BlackBoxClassifier, BlackBoxClassifierNeuralNetwork

    if image_like:  # Square reads channels_first, which only the NN flavour has
        return BlackBoxClassifierNeuralNetwork(
            predict, input_shape, nb_classes, channels_first=True, clip_values=(0.0, 1.0)
        )
    return BlackBoxClassifier(predict, input_shape, nb_classes, clip_values=(0.0, 1.0))


class Space:
    """The attacker's view of a tabular input: the mutable features, scaled to [0, 1] over their
    realistic range; immutable features always come from the original row."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self.lo = np.asarray(spec.lower, dtype=np.float64)
        self.hi = np.asarray(spec.upper, dtype=np.float64)
        self.integer = np.asarray(spec.integer, dtype=bool)
        self.mutable = np.flatnonzero(np.asarray(spec.mutable, dtype=bool))
        self.span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)

    def project(self, x: np.ndarray) -> np.ndarray:
        """Valid inputs: inside the bounds, integers rounded."""
        x = np.clip(np.asarray(x, dtype=np.float64), self.lo, self.hi)
        x[..., self.integer] = np.round(x[..., self.integer])
        return x

    def project_feature(self, j: int, values: np.ndarray) -> np.ndarray:
        v = np.clip(np.asarray(values, dtype=np.float64), self.lo[j], self.hi[j])
        return np.round(v) if self.integer[j] else v

    def to_z(self, x: np.ndarray) -> np.ndarray:
        m = self.mutable
        return (np.asarray(x, dtype=np.float64)[..., m] - self.lo[m]) / self.span[m]

    def embed(self, row: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Rows equal to ``row`` except the mutable features, taken from ``z`` (n, n_mutable)."""
        z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)[:, : len(self.mutable)]
        out = np.repeat(np.asarray(row, dtype=np.float64)[None, :], len(z), axis=0)
        m = self.mutable
        new = self.lo[m] + np.clip(z, 0.0, 1.0) * self.span[m]
        # Unchanged features keep their exact original value (no 0.621 -> 0.62100000000000001).
        out[:, m] = np.where(np.isclose(new, out[:, m], rtol=1e-12, atol=1e-12), out[:, m], new)
        return out

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """L2 distance over the features scaled to their realistic range."""
        return float(np.linalg.norm((np.asarray(a) - np.asarray(b)) / self.span))


def roc_numbers(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> dict[str, Any]:
    """AUC, TPR at 0.1% and 1% FPR, membership advantage (max TPR - FPR) and the ROC curve
    (thinned to at most ~200 points for the report)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    s = np.r_[member_scores, nonmember_scores].astype(np.float64)
    fpr, tpr, _ = roc_curve(y, s)
    tpr_at = {k: float(np.max(tpr[fpr <= float(k)])) for k in FPR_POINTS}
    keep = np.unique(
        np.r_[np.linspace(0, len(fpr) - 1, 200).astype(int), np.flatnonzero(fpr <= 0.02)]
    )
    return {
        "auc": round(float(roc_auc_score(y, s)), 4),
        "tpr_at_fpr": {k: round(v, 4) for k, v in tpr_at.items()},
        "advantage": round(float(np.max(tpr - fpr)), 4),
        "roc": (fpr[keep].round(5).tolist(), tpr[keep].round(5).tolist()),
    }
