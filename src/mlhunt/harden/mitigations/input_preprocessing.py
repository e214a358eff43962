"""Input preprocessing against evasion (ART FeatureSqueezing / SpatialSmoothing), checked with
an adaptive attack so that a defence that only masks gradients is reported as such.

Three PGD runs on the same held-out subset, same epsilon and steps (mlhunt's batched PGD,
:mod:`mlhunt.assess.gradient`, the one the white-box evasion attack uses):

- *before*: PGD on the bare CNN, scored on the bare CNN;
- *non-adaptive*: the same adversarial examples (crafted with the bare CNN's gradients), scored
  on the defended model (preprocessor, then CNN): what naive evaluations report;
- *adaptive*: BPDA (Athalye et al., 2018): PGD on the defended model whose forward pass is the
  real preprocessor (ART's, run on the tensor's values) and whose backward pass treats it as the
  identity (straight-through: ``x + (f(x) - x).detach()``). Median filters and quantisation are
  close to the identity on natural images, so this gradient is a good one.

Effective only when the *adaptive* robust accuracy beats the undefended one by
``min_robust_gain`` and clean accuracy drops by at most ``max_clean_drop``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlhunt.assess import gradient as g
from mlhunt.assess.attacks import evasion_whitebox
from mlhunt.errors import InputError
from mlhunt.harden.base import HardenContext, Outcome, torch_threads

EVASION = evasion_whitebox.ID
ArrayFn = Callable[[np.ndarray], np.ndarray]
_KNOWN = {"feature_squeezing": "bit_depth", "spatial_smoothing": "window_size"}


def preprocessor(spec: dict[str, Any], what: str) -> tuple[dict[str, Any], ArrayFn]:
    """The variant (name and its one setting) and ART's preprocessor as an array function."""
    from art.defences.preprocessor import FeatureSqueezing, SpatialSmoothing

    name = str(spec.get("name", ""))
    if name not in _KNOWN:
        raise InputError(f"{what}: unknown preprocessor {name!r} (known: {', '.join(_KNOWN)})")
    key = _KNOWN[name]
    extra = set(spec) - {"name", key}
    if extra:
        raise InputError(f"{what}: {name} takes only {key!r}, not {sorted(extra)}")
    try:
        value = int(spec.get(key, 3))
        art: Any = (
            FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=value)
            if name == "feature_squeezing"
            else SpatialSmoothing(window_size=value, channels_first=True, clip_values=(0.0, 1.0))
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: {name}.{key}: {exc}") from None

    def apply(x: np.ndarray) -> np.ndarray:
        return np.asarray(art(np.asarray(x, dtype=np.float32))[0], dtype=np.float32)

    return {"preprocessor": name, key: value}, apply


def bpda_module(cnn: Any, apply: ArrayFn) -> Any:
    """Preprocessor then CNN: the forward pass is exactly the defended model, the backward pass
    goes straight through the preprocessor (identity gradient)."""
    import torch

    class StraightThrough(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            fx = torch.from_numpy(apply(x.detach().cpu().numpy())).to(x.device, x.dtype)
            return x + (fx - x).detach()

    return torch.nn.Sequential(StraightThrough(), cnn).eval()


def effective_rule(before: float, adaptive: float, clean_drop: float, p: dict[str, Any]) -> bool:
    gain, max_drop = float(p.get("min_robust_gain", 0.1)), float(p.get("max_clean_drop", 0.05))
    return adaptive >= before + gain and clean_drop <= max_drop


def run(ctx: HardenContext) -> list[Outcome]:
    with torch_threads(1):
        return _run(ctx)


def _measure(
    label: str, clean: np.ndarray, robust: np.ndarray, eps: float, steps: int, mode: str
) -> dict[str, Any]:
    n = len(clean)
    return {
        EVASION: {
            "mode": mode,
            "clean_accuracy": round(float(clean.mean()), 4),
            "adversarial_accuracy": round(float(robust.mean()), 4),
            "epsilon": round(eps, 6),
            "epsilon_label": label,
            "steps": steps,
            "evaluated": n,
            "success_rate": round(1 - float(robust.sum()) / max(int(clean.sum()), 1), 4),
        }
    }


def _run(ctx: HardenContext) -> list[Outcome]:
    loaded, p = ctx.loaded, ctx.params
    module_fn = getattr(loaded, "torch_model", None)
    if module_fn is None:
        raise InputError(f"{ctx.mitigation}: {loaded.name} has no PyTorch model to defend")
    specs = p.get("preprocessors") or []
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise InputError(f"{ctx.mitigation}.preprocessors: expected a list of mappings")
    variants = [preprocessor(s, f"{ctx.mitigation}.preprocessors") for s in specs]
    eps = float(p.get("epsilon") or 8 / 255)
    steps = int(p.get("steps", 20))
    label = g.eps_label(eps, "image")
    domain = g.Domain.from_spec(loaded.spec)
    cnn = module_fn()
    bare = g.prepare(cnn)

    idx = g.eval_subset(len(ctx.data.x_eval), int(p.get("n_eval", 200)), ctx.rng())
    x = np.asarray(ctx.data.x_eval[idx], dtype=np.float32)
    y = np.asarray(ctx.data.y_eval[idx], dtype=np.int64)
    x_h = np.asarray(loaded.x_holdout, dtype=np.float32)
    y_h = np.asarray(loaded.y_holdout, dtype=np.int64)
    acc_before = round(float(np.mean(g.predict(bare, x_h) == y_h)), 4)

    ctx.progress(f"PGD {label} on the bare model")
    r0 = g.pgd(bare, x, y, eps, domain=domain, steps=steps)
    a_before = _measure(label, r0.clean_correct, r0.correct, eps, steps, "undefended")
    robust_before = float(r0.correct.mean())

    outcomes: list[Outcome] = []
    for variant, apply in variants:
        name = ", ".join(f"{k}={v}" for k, v in variant.items())
        defended = g.prepare(bpda_module(cnn, apply))  # forward = the real defended model
        acc_after = round(float(np.mean(g.predict(defended, x_h) == y_h)), 4)
        clean_ok = g.predict(defended, x) == y
        ctx.progress(f"{name}: non-adaptive and adaptive (BPDA) PGD")
        nonadaptive = clean_ok & (g.predict(defended, r0.x_adv) == y)
        r1 = g.pgd(defended, x, y, eps, domain=domain, steps=steps)  # BPDA gradients
        a_non = _measure(label, clean_ok, nonadaptive, eps, steps, "non-adaptive")
        a_ada = _measure(label, r1.clean_correct, r1.correct, eps, steps, "adaptive (BPDA)")
        robust_non, robust_ada = float(nonadaptive.mean()), float(r1.correct.mean())
        drop = round(acc_before - acc_after, 4)
        ok = effective_rule(robust_before, robust_ada, drop, p)
        gain = float(p.get("min_robust_gain", 0.1))
        if ok:
            verdict = "holds against the adaptive attack"
        elif robust_non >= robust_before + gain:
            verdict = (
                "masks gradients only: robust against the non-adaptive attack, broken by "
                "the adaptive one"
            )
        elif robust_ada >= robust_before + gain:
            verdict = f"costs too much clean accuracy ({drop:+.3f} > max_clean_drop)"
        else:
            verdict = "no robustness gain even against the non-adaptive attack"
        summary = (
            f"{name}: {verdict}. PGD L-inf {label}, {steps} steps, {len(idx)} held-out images: "
            f"robust accuracy {robust_before:.1%} undefended, {robust_non:.1%} defended against "
            f"the non-adaptive attack, {robust_ada:.1%} against the adaptive (BPDA) attack. "
            f"Clean accuracy {acc_before:.1%} -> {acc_after:.1%}"
        )
        outcomes.append(
            Outcome(
                variant=variant,
                utility_before={"accuracy": acc_before},
                utility_after={"accuracy": acc_after},
                attack_before=a_before,
                attack_after=a_ada,
                effective=ok,
                summary=summary,
                extra={
                    "attack_after_nonadaptive": a_non,
                    "attack_after_adaptive": a_ada,
                    "robust_accuracy": {
                        "undefended": round(robust_before, 4),
                        "non_adaptive": round(robust_non, 4),
                        "adaptive": round(robust_ada, 4),
                    },
                    "verdict": verdict,
                    "clean_accuracy_drop": drop,
                    "rule": (
                        f"effective when adaptive robust accuracy >= undefended + {gain:g} "
                        f"and clean accuracy drop <= {p.get('max_clean_drop', 0.05)}"
                    ),
                },
            )
        )
    plot = _plot(ctx, acc_before, outcomes)
    for o in outcomes:
        o.plots.append(plot)
    return outcomes


def _plot(ctx: HardenContext, clean_before: float, outcomes: list[Outcome]) -> str:
    """Per defence: clean accuracy and robust accuracy against each attacker, next to the bare
    model's, so "masks gradients only" is visible as a tall non-adaptive bar and a short
    adaptive one."""
    from mlhunt.harden._plots import bars

    names = ["no defence"] + [", ".join(f"{v}" for v in o.variant.values()) for o in outcomes]
    ra = [o.extra["robust_accuracy"] for o in outcomes]
    undefended = ra[0]["undefended"] if ra else 0.0
    series = {
        "clean accuracy": [clean_before] + [o.utility_after["accuracy"] for o in outcomes],
        "robust: non-adaptive PGD": [undefended] + [r["non_adaptive"] for r in ra],
        "robust: adaptive PGD (BPDA)": [undefended] + [r["adaptive"] for r in ra],
    }
    return bars(
        ctx.out_dir,
        "preprocessing_tradeoff.png",
        names,
        series,
        ylabel="accuracy",
        title=f"Input preprocessing on {ctx.loaded.model_name}",
    )
