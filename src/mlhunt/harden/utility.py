"""Utility measures: what the scenario itself reports for its model (loan: ROC AUC and accuracy;
fraud: PR-AUC and ROC AUC; images: accuracy), on the scenario's held-out split."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Scores = Callable[[np.ndarray], np.ndarray]


def tabular_utility(
    predict: Scores, x: np.ndarray, y: np.ndarray, *, positive: int = 1
) -> dict[str, float]:
    """ROC AUC, PR-AUC (average precision) and accuracy of class ``positive``'s score."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    p = np.asarray(predict(x), dtype=np.float64)
    s = p[:, positive]
    y = np.asarray(y).astype(int)
    return {
        "roc_auc": round(float(roc_auc_score(y == positive, s)), 4),
        "pr_auc": round(float(average_precision_score(y == positive, s)), 4),
        "accuracy": round(float(np.mean(p.argmax(axis=1) == y)), 4),
    }


def accuracy(predict: Scores, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    out = [np.asarray(predict(x[i : i + batch])).argmax(axis=1) for i in range(0, len(x), batch)]
    return round(float(np.mean(np.concatenate(out) == np.asarray(y))), 4) if out else 0.0
