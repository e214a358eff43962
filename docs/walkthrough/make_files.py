"""Make the walkthrough's own files: a small churn model and what mlhunt needs beside it.

Writes, in the current folder: artifacts/churn.skops and artifacts/churn.joblib (the same
scikit-learn model, two formats), eval.npz (evaluation set, known members and non-members, an
attacker's pool) and logs/predictions.jsonl (a day of prediction logs in the mlhunt log schema:
ordinary CRM traffic plus one client sweeping the feature space). Seeded: the same files every
time. Run: python make_files.py
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import skops.io as sio
from sklearn.ensemble import GradientBoostingClassifier

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "contract", "data_gb"]
LOWER = np.array([0, 20, 0, 0, 0], dtype=float)
UPPER = np.array([72, 120, 10, 2, 50], dtype=float)


def customers(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Customers and whether each churned (short tenure, high bills, many calls churn)."""
    contract = rng.integers(0, 3, n)  # 0 monthly, 1 one-year, 2 two-year
    tenure = np.clip(rng.gamma(2.0 + 3 * contract, 6.0), 0, 72).round()
    charges = np.clip(rng.normal(65, 25, n), 20, 120).round(2)
    calls = np.clip(rng.poisson(1.5 + (charges > 90)), 0, 10)
    data = np.clip(rng.gamma(2.0, 6.0, n), 0, 50).round(1)
    x = np.column_stack([tenure, charges, calls, contract, data]).astype(float)
    logit = 1.2 - 0.06 * tenure + 0.025 * (charges - 65) + 0.45 * calls - 1.1 * contract
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


def main() -> None:
    rng = np.random.default_rng(7)
    x, y = customers(rng, 3000)
    x_train, y_train = x[:1600], y[:1600]
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0)
    model.fit(x_train, y_train)
    Path("artifacts").mkdir(exist_ok=True)
    sio.dump(model, "artifacts/churn.skops")
    joblib.dump(model, "artifacts/churn.joblib")
    np.savez(
        "eval.npz",
        x=x[1600:2000],
        y=y[1600:2000],
        x_members=x_train[:400],
        y_members=y_train[:400],
        x_nonmembers=x[2000:2400],
        y_nonmembers=y[2000:2400],
        x_pool=x[2400:],
    )
    write_logs(model, rng)


def write_logs(model: GradientBoostingClassifier, rng: np.random.Generator) -> None:
    """Twelve CRM clients scoring real customers, and one sweeping uniform random inputs."""
    records = []
    start = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    for c in range(12):
        xs, _ = customers(rng, 40)
        for i, row in enumerate(xs):
            records.append((start + c * 60 + i * 600 + rng.random(), f"crm-{c:02d}", row))
    sweep = rng.uniform(LOWER, UPPER, (600, len(FEATURES))).round(2)
    for i, row in enumerate(sweep):
        records.append((start + 3600 + i * 2.0, "partner-7", row))
    records.sort(key=lambda r: r[0])
    xs = np.array([r[2] for r in records])
    probs = model.predict_proba(xs)
    Path("logs").mkdir(exist_ok=True)
    with open("logs/predictions.jsonl", "w", encoding="utf-8") as fh:
        for (ts, client, row), p in zip(records, probs, strict=True):
            record = {
                "ts": ts,
                "client_id": client,
                "input": [float(v) for v in row],
                "output": {"label": int(p.argmax()), "scores": [round(float(v), 4) for v in p]},
                "model": "churn-gb-1",
            }
            fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
