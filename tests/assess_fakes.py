"""Tiny attacks for the assess runner tests, registered from a temporary catalog folder (so the
tests never depend on which real attacks exist). They query the real target like any attack."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mlhunt.assess import plots
from mlhunt.assess.base import AttackContext, AttackResult, BudgetExhausted, QueryBudget

BASE: dict[str, Any] = {
    "description": "A test attack that exercises one behaviour of the assess runner.",
    "applies_to": ["tabular", "image"],
    "requires": [],
    "black_box": True,
    "validates": ["MLH-ML-EVASION-API"],
    "atlas": ["AML.T0015"],
    "owasp_ml": ["ML01"],
    "severity": {"metric": "success_rate", "thresholds": {"high": 0.5, "medium": 0.2, "low": 0.05}},
    "mitigations": ["Adversarial training."],
}


def write_catalog(directory: Path, attacks: dict[str, dict[str, Any]]) -> Path:
    """One YAML per attack: ``{"PROBE": {"entry": "probe", "cost": 1, ...}}``."""
    directory.mkdir(parents=True, exist_ok=True)
    for short, over in attacks.items():
        spec = {
            **BASE,
            "id": f"MLH-ASSESS-{short}",
            "title": short.title(),
            "kind": "evasion",
            "cost": 1,
            **over,
        }
        spec["entry"] = f"tests.assess_fakes:{over['entry']}"
        (directory / f"{short.lower()}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return directory


def probe(ctx: AttackContext) -> AttackResult:
    """Queries ``n`` surviving rows; success = misclassified. Narrows survivors to the rows it
    did not break when ``narrow`` is set, and reports which survivors it received."""
    idx = ctx.survivors[: int(ctx.params.get("n", 10))]
    try:
        pred = np.argmax(ctx.target.predict_proba(ctx.data.x_eval[idx]), axis=1)
    except BudgetExhausted as exc:
        return AttackResult("", "inconclusive", f"budget: {exc}")
    rate = float(np.mean(pred != ctx.data.y_eval[idx])) if len(idx) else 0.0
    narrowed = [int(i) for i in ctx.survivors[::2]] if ctx.params.get("narrow") else None
    return AttackResult(
        "",
        "validated" if rate > 0 else "refuted",
        f"error rate {rate:.2f}",
        metrics={"success_rate": rate, "survivors_in": [int(i) for i in ctx.survivors]},
        survivors=narrowed,
    )


def greedy(ctx: AttackContext) -> AttackResult:
    """Spends its whole share in batches of 7 rows and stops cleanly when it runs out."""
    sent = 0
    rng = ctx.rng()
    while True:
        rows = ctx.data.x_eval[rng.integers(0, len(ctx.data.x_eval), 7)]
        try:
            ctx.target.predict_proba(rows)
        except BudgetExhausted:
            return AttackResult("", "inconclusive", f"sent {sent}", metrics={"sent": sent})
        sent += 7
        if sent > 2_000_000:
            return AttackResult("", "inconclusive", "no budget given", metrics={"sent": sent})


def escape(ctx: AttackContext) -> AttackResult:
    """Lets BudgetExhausted escape (a careless attack)."""
    while True:
        ctx.target.predict_proba(ctx.data.x_eval[:5])


def boom(ctx: AttackContext) -> AttackResult:
    raise ValueError("deliberate failure\nsecond line")


def sleepy(ctx: AttackContext) -> AttackResult:
    """Appends its id to ``counter`` (a file), then sleeps: runs are counted from outside."""
    with Path(ctx.params["counter"]).open("a", encoding="utf-8") as fh:
        fh.write(f"{ctx.params['tag']}\n")
    time.sleep(float(ctx.params.get("sleep", 0)))
    pred = np.argmax(ctx.target.predict_proba(ctx.data.x_eval[:4]), axis=1)
    rate = float(np.mean(pred != ctx.data.y_eval[:4]))
    return AttackResult("", "validated", "slept", metrics={"success_rate": rate})


def plotter(ctx: AttackContext) -> AttackResult:
    name = plots.curve(
        ctx.out_dir,
        "curve.png",
        [0, 1, 2],
        {"acc": [0.9, 0.5, 0.1]},
        xlabel="eps",
        ylabel="acc",
        title="test",
    )
    return AttackResult(
        "",
        "validated",
        "plotted",
        metrics={"success_rate": 0.9},
        curves={"eps": [0, 1, 2], "acc": [0.9, 0.5, 0.1]},
        plots=[name],
    )


def tiny_net() -> Any:
    """A PyTorch factory (``tests.assess_fakes:tiny_net``): 3 features -> 2 logits."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def threshold_fn(x: np.ndarray) -> np.ndarray:
    """A black-box callable (``tests.assess_fakes:threshold_fn``): sigmoid of the first feature."""
    p = 1.0 / (1.0 + np.exp(-4.0 * np.asarray(x, dtype=float)[:, 0]))
    return np.stack([1 - p, p], axis=1)


def numpy_metrics(ctx: AttackContext) -> AttackResult:
    """Hands back NumPy types, as ART-based attacks tend to."""
    return AttackResult(
        "",
        "validated",
        "numpy",
        metrics={"success_rate": np.float32(0.6), "n": np.int64(3)},
        curves={"x": np.arange(3)},
    )


def attack_ctx(
    target: Any,
    data: Any,
    tmp: Path,
    params: dict[str, Any],
    survivors: np.ndarray | None = None,
    seed: int = 7,
) -> AttackContext:
    """A fresh context for calling one attack's ``run`` directly (a new unlimited budget)."""
    target.budget = QueryBudget()
    return AttackContext(
        target=target,
        data=data,
        budget=target.budget,
        params=params,
        seed=seed,
        out_dir=tmp,
        progress=lambda _m: None,
        survivors=np.arange(len(data.x_eval)) if survivors is None else survivors,
    )


def hollow(ctx: AttackContext) -> AttackResult:
    """Says refuted without measuring its impact metric (the runner must not believe it)."""
    ctx.target.predict_proba(ctx.data.x_eval[:5])
    return AttackResult("", "refuted", "0.0% vs 0.0%", metrics={"accuracy": 0.0})
