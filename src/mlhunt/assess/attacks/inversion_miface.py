"""Model inversion of an image classifier with ART's MIFace: what does the model give away about
what each class looks like (here: the prohibited object's shape)?

MIFace (Fredrikson et al. 2015) climbs the gradient of one class's score from a neutral start
until the model is sure; the result is the model's "representative input" of that class. The
victim's confidence on it proves nothing: any input optimised against a classifier ends up
classified as asked (fooling images). What would prove a leak is that the reconstructions carry
the class's real visual features, so they are judged by things that never took part in the
optimisation:

* a **referee**: a fresh model trained with ``data.trainer`` on a sample of the training data
  (another seed, another sample); if it sees class c in the inversions for class c, they hold
  features of the data, not the victim's quirks. Its accuracy on real held-out images says how
  good a judge it is;
* the **nearest real training image** in pixel space (and, for reference, in the victim's
  penultimate features, which the optimisation drives by construction).

Each judge scores an *advantage*, 2 * AUC - 1: how well its score for class c separates the
inversions made for c from those made from the *same random starts* for the other classes (the
same optimisation, aimed elsewhere; threshold-free, so a judge's bias toward one class earns
nothing; 0 = nothing class-specific, 1 = perfectly separated). A second
control runs the same MIFace against an untrained network of the same architecture: what
optimisation alone puts into an image. The threat is validated when the referee's advantage is
large, significant (permutation test over the paired starts) and beyond that control.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from mlhunt.assess import gradient as g
from mlhunt.assess.attacks.poisoning_backdoor import train_with
from mlhunt.assess.base import AttackContext, AttackResult

ID = "MLH-ASSESS-INVERSION-MIFACE"
Judge = Callable[[np.ndarray], np.ndarray]


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney)."""
    if not len(pos) or not len(neg):
        return 0.5
    d = pos[:, None] - neg[None, :]
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


def advantage(scores: np.ndarray, goal: np.ndarray) -> float:
    """Mean over classes c of 2 * AUC - 1, where the AUC separates, by the judge's score for c,
    the inversions made for c from those made for another class from the same starts.
    Threshold-free: a judge that calls every high-contrast image "prohibited" is not credited
    for it. 0 = nothing class-specific, 1 = perfectly separated."""
    k = scores.shape[1]
    return float(
        np.mean([2 * _auc(scores[goal == c, c], scores[goal != c, c]) - 1 for c in range(k)])
    )


def permutation_p(
    scores: np.ndarray, goal: np.ndarray, rng: np.random.Generator, n: int = 2000
) -> float:
    """One-sided p-value of the advantage: each start's class targets shuffled among its
    inversions (rows ``s, s + per_class, ...`` share start ``s``)."""
    observed = advantage(scores, goal)
    k = scores.shape[1]
    grid = goal.reshape(k, -1)
    hits = sum(
        advantage(scores, rng.permuted(grid, axis=0).reshape(-1)) >= observed - 1e-12
        for _ in range(n)
    )
    return (hits + 1) / (n + 1)


def _invert(module: Any, x0: np.ndarray, goal: np.ndarray, k: int, p: dict[str, Any]) -> np.ndarray:
    import torch
    from art.attacks.inference.model_inversion import MIFace
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=x0.shape[1:],
        nb_classes=k,
        clip_values=(0.0, 1.0),
    )
    attack = MIFace(
        clf,
        max_iter=int(p.get("max_iter", 100)),
        window_length=int(p.get("window_length", 100)),
        threshold=float(p.get("threshold", 0.99)),
        learning_rate=float(p.get("learning_rate", 0.1)),
        batch_size=len(x0),
        verbose=False,
    )
    return np.asarray(attack.infer(x0.copy(), goal), dtype=np.float32)


def _untrained(module: Any, seed: int) -> Any:
    """The victim's architecture with fresh random weights (it has learned nothing)."""
    import torch

    net = copy.deepcopy(module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in net.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return net


def _starts(p: dict[str, Any], n: int, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
    if str(p.get("start", "grey")) == "noise":
        return rng.random((n, *shape)).astype(np.float32)
    noise = rng.normal(0.0, float(p.get("start_noise", 0.1)), (n, *shape))
    return np.clip(0.5 + noise, 0.0, 1.0).astype(np.float32)


def _nearest(ref_x: np.ndarray, ref_y: np.ndarray, k: int) -> Judge:
    """Scores (n, k): for class c, how much nearer the nearest reference row of class c is than
    that of any other class (squared L2; > 0 where the nearest neighbour is of class c). A margin,
    so rows far from every reference stay comparable with near ones."""
    flat = ref_x.reshape(len(ref_x), -1).astype(np.float32)
    sq = (flat**2).sum(1)

    def judge(x: np.ndarray) -> np.ndarray:
        q = x.reshape(len(x), -1).astype(np.float32)
        out = np.full((len(q), k), -np.inf)
        for i in range(0, len(q), 256):
            d = sq[None, :] - 2.0 * q[i : i + 256] @ flat.T  # + |q|^2, the same for every row
            for c in range(k):
                if (ref_y == c).any():
                    out[i : i + 256, c] = -d[:, ref_y == c].min(axis=1)
        others = np.stack([np.delete(out, c, axis=1).max(axis=1) for c in range(k)], axis=1)
        return out - others

    return judge


def _penultimate(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """The input of the model's last Linear layer (its penultimate features), via a hook."""
    import torch

    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not last:
        return None

    def features(x: np.ndarray) -> np.ndarray:
        seen: list[np.ndarray] = []
        hook = last[-1].register_forward_hook(lambda _m, i, _o: seen.append(i[0].numpy()))
        try:
            g.predict(model, x)
        finally:
            hook.remove()
        return np.concatenate(seen)

    return features


def run(ctx: AttackContext) -> AttackResult:
    p, target, data = ctx.params, ctx.target, ctx.data
    module = target.torch_module()
    if module is None or target.spec.kind != "image":
        return AttackResult(ID, "skipped", "needs an image model with a PyTorch module")
    k, shape = len(target.classes), tuple(int(s) for s in target.spec.shape)
    rng = ctx.rng()
    per = int(p.get("per_class", 16))
    starts = _starts(p, per, shape, rng)
    x0 = np.concatenate([starts] * k)  # every start inverted once for each class
    goal = np.repeat(np.arange(k), per)
    model = g.prepare(module)
    ctx.progress(f"MIFace: {per} starts x {k} classes, {p.get('max_iter', 100)} iterations")
    inv = _invert(model, x0, goal, k, p)
    ctx.progress("MIFace against an untrained copy (control)")
    inv_u = _invert(g.prepare(_untrained(module, ctx.seed)), x0, goal, k, p)

    # Judges, and how well each tells real held-out images apart (its calibration).
    x_ev = np.asarray(data.x_eval, np.float32)
    y_ev = np.asarray(data.y_eval).astype(np.int64)
    cal = g.eval_subset(len(x_ev), int(p.get("n_calibration", 300)), rng)
    judges: dict[str, Judge] = {}
    ref_note = ""
    if data.x_members is not None and data.y_members is not None:
        n_ref = min(int(p.get("n_reference", 3000)), len(data.x_members))
        pick = rng.permutation(len(data.x_members))[:n_ref]
        xr = np.asarray(data.x_members, np.float32)[pick]
        yr = np.asarray(data.y_members).astype(np.int64)[pick]
        judges["pixel_nn"] = _nearest(xr, yr, k)
        feats = _penultimate(model)
        if feats is not None:
            nearest = _nearest(feats(xr), yr, k)
            judges["feature_nn"] = lambda x: nearest(feats(x))
        if data.trainer is not None:
            ctx.progress(f"training the referee on {n_ref} records")
            opts = dict(p.get("referee_options") or {})
            referee, _ = train_with(data.trainer, xr, yr, opts)
            judges["referee"] = lambda x: np.asarray(referee(x), dtype=np.float64)
        else:
            ref_note = " (no trainer: no referee)"
    scores: dict[str, dict[str, float]] = {}
    for name, judge in judges.items():
        sc = judge(inv)
        scores[name] = {
            "advantage": advantage(sc, goal),
            "untrained_advantage": advantage(judge(inv_u), goal),
            "accuracy": float(np.mean(judge(x_ev[cal]).argmax(1) == y_ev[cal])),
            "match": float(np.mean(sc.argmax(1) == goal)),
            "p_value": permutation_p(sc, goal, rng, int(p.get("permutations", 2000))),
        }
    return _result(ctx, model, inv, goal, starts, scores, x_ev, y_ev, ref_note)


def _result(
    ctx: AttackContext,
    model: Any,
    inv: np.ndarray,
    goal: np.ndarray,
    starts: np.ndarray,
    scores: dict[str, dict[str, float]],
    x_ev: np.ndarray,
    y_ev: np.ndarray,
    ref_note: str,
) -> AttackResult:
    import torch

    p, classes = ctx.params, ctx.target.classes
    with torch.inference_mode():
        prob = torch.softmax(model(g._layout(torch.from_numpy(inv))), 1).numpy()
        prob0 = torch.softmax(model(g._layout(torch.from_numpy(starts))), 1).numpy()
    conf = float(np.mean(prob[np.arange(len(goal)), goal]))
    # The evidence judge: the referee when there is one, else the nearest real image.
    name = "referee" if "referee" in scores else "pixel_nn"
    s = scores.get(name)
    metrics: dict[str, Any] = {
        "victim_confidence": round(conf, 4),
        "start_confidence": round(float(np.mean(prob0.max(1))), 4),
        "inversions": len(goal),
        "judge": name if s else None,
        "iterations": int(p.get("max_iter", 100)),
    }
    for judge, v in scores.items():
        for key, val in v.items():
            metrics[f"{judge}_{key}"] = round(val, 4)
    min_adv = float(p.get("min_advantage", 0.3))
    validated = bool(
        s
        and s["advantage"] >= min_adv
        and s["p_value"] < float(p.get("alpha", 0.01))
        and s["advantage"] - s["untrained_advantage"] >= min_adv
    )
    if s:
        metrics["advantage"] = round(s["advantage"], 4)
        metrics["p_value"] = round(s["p_value"], 5)
        metrics["success_rate"] = round(s["match"], 4)
    plot = _grid(ctx, inv, goal, prob, x_ev, y_ev, scores, classes)
    if not s:
        verdict, summary = "inconclusive", "no independent judge (needs training records)"
    else:
        weak = s["accuracy"] < float(p.get("min_judge_accuracy", 0.75))
        verdict = "validated" if validated else ("inconclusive" if weak else "refuted")
        summary = (
            f"MIFace inversions ({len(goal)}, {metrics['iterations']} iterations) reach victim "
            f"confidence {conf:.2f}; an independent {name.replace('_', ' ')} (accuracy "
            f"{s['accuracy']:.1%} on real images) tells them from the same starts optimised for "
            f"another class with advantage {s['advantage']:.2f} (2 AUC - 1; "
            f"p={s['p_value']:.3g}; untrained-network control {s['untrained_advantage']:.2f})"
            f"{ref_note}."
        )
        summary += (
            " The model leaks features of what each class looks like."
            if validated
            else " Nothing class-specific beyond fooling the victim."
        )
        px = scores.get("pixel_nn")
        if px and name != "pixel_nn":
            summary += (
                f" Nearest real image: advantage {px['advantage']:.2f} (that judge sorts real "
                f"images {px['accuracy']:.1%} right): see the grid for what a human would see."
            )
    return AttackResult(
        ID,
        verdict,
        summary,
        metrics=metrics,
        curves={"judges": scores},
        plots=[plot],
        params=dict(p),
    )


def _grid(
    ctx: AttackContext,
    inv: np.ndarray,
    goal: np.ndarray,
    prob: np.ndarray,
    x_ev: np.ndarray,
    y_ev: np.ndarray,
    scores: dict[str, dict[str, float]],
    classes: tuple[str, ...],
) -> str:
    """Per class: a row of real examples, then a row of its inversions."""
    from mlhunt.assess.plots import image_grid

    cols = min(6, int(np.sum(goal == 0)))
    images, titles = [], []
    for c, cls in enumerate(classes):
        real = x_ev[y_ev == c][:cols]
        images += [*real, *np.zeros((cols - len(real), *inv.shape[1:]), np.float32)]
        titles += [f"real: {cls}"] * len(real) + [""] * (cols - len(real))
        rows = np.flatnonzero(goal == c)[:cols]
        images += list(inv[rows])
        titles += [f"inverted {cls}\nvictim {prob[r, c]:.2f}" for r in rows]
    adv = scores.get("referee", scores.get("pixel_nn", {})).get("advantage")
    note = f" (judge advantage {adv:.2f})" if adv is not None else ""
    return image_grid(
        ctx.out_dir,
        "inversion_examples.png",
        np.stack(images),
        titles,
        columns=cols,
        title=f"MIFace inversions beside real images{note}",
    )
