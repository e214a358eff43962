"""Natural corruptions as fault injection: accuracy per corruption at graded severities.

Hand-written: ART has no natural-corruption generator (its preprocessors are defences). Each
corruption is a deterministic, seeded function of the batch and a severity 1..5, in the spirit
of ImageNet-C (Hendrycks & Dietterich): the lighting curve (brightness shift, contrast loss, a
lighting gradient across the frame), sensor noise, defocus blur and colour quantisation. Black
box: every corrupted batch goes through ``target.predict_proba`` and is charged to the budget.

Tabular targets get the analogue that occurs in production: measurement noise on numeric
features and a multiplicative drift of all of them (unit or scale changes upstream), clipped to
the bounds and rounded where integer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlhunt.assess import gradient as g
from mlhunt.assess.base import AttackContext, AttackResult, BudgetExhausted
from mlhunt.assess.plots import curve

ID = "MLH-ASSESS-CORRUPTIONS"
Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def brightness(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Half the images darker, half brighter, by 0.1 .. 0.5."""
    sign = np.where(rng.random(len(x)) < 0.5, -1.0, 1.0)[:, None, None, None]
    return x + sign * 0.1 * s


def contrast(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return mean + (x - mean) * (1 - 0.17 * s)  # 0.83 .. 0.15 of the contrast left


def lighting_gradient(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Light falling across the frame from a random direction: gain 1 +- 0.2*s at the edges."""
    n, _, h, w = x.shape
    ang = rng.uniform(0, 2 * np.pi, n)
    yy, xx = np.meshgrid(np.linspace(-0.5, 0.5, h), np.linspace(-0.5, 0.5, w), indexing="ij")
    proj = np.cos(ang)[:, None, None] * xx + np.sin(ang)[:, None, None] * yy
    return x * (1 + 0.4 * s * proj)[:, None]


def gaussian_noise(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0, (0.02, 0.04, 0.07, 0.1, 0.15)[s - 1], x.shape)


def blur(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sigma = (0.4, 0.6, 0.8, 1.1, 1.5)[s - 1]
    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="nearest")


def quantisation(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    levels = 2 ** (6 - s) - 1  # 5 bits .. 1 bit per channel
    return np.round(x * levels) / levels


IMAGE: dict[str, Corruption] = {
    "brightness": brightness,
    "contrast": contrast,
    "lighting_gradient": lighting_gradient,
    "gaussian_noise": gaussian_noise,
    "blur": blur,
    "quantisation": quantisation,
}


def _tabular(domain: g.Domain) -> dict[str, Corruption]:
    numeric = ~domain.integer & np.isfinite(domain.scale)

    def noise(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
        sd = 0.02 * s * np.where(numeric, domain.scale, 0)
        return x + rng.normal(0, 1, x.shape) * sd

    def drift(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
        return x * np.where(numeric, 1 + 0.05 * s, 1.0)

    return {"measurement_noise": noise, "scale_drift": drift}


def run(ctx: AttackContext) -> AttackResult:
    p, target, data = ctx.params, ctx.target, ctx.data
    kind = target.spec.kind
    domain = g.Domain.from_spec(target.spec)
    corruptions = IMAGE if kind == "image" else _tabular(domain)
    chosen = [c for c in (p.get("corruptions") or list(corruptions)) if c in corruptions]
    severities = [int(s) for s in p.get("severities", [1, 2, 3, 4, 5])]
    n_eval = int(p.get("n_eval", 200))
    batches = 1 + len(chosen) * len(severities)  # the clean batch, then one per corruption level
    left = ctx.budget.remaining
    if left is not None and left < batches * n_eval:
        # Fewer rows, every corruption: a whole curve on a smaller sample says more than half
        # the curves on the full one (the budget is shared with the attacks after this one).
        n_eval = left // batches
        if n_eval < int(p.get("min_eval", 20)):
            return AttackResult(
                ID,
                "inconclusive",
                f"its share of the query budget ({left}) is under {batches} batches of "
                f"{int(p.get('min_eval', 20))} rows: nothing measured",
                params=p,
            )
    idx = g.eval_subset(len(data.x_eval), n_eval, ctx.rng())
    x = np.asarray(data.x_eval[idx], dtype=np.float32)
    y = np.asarray(data.y_eval[idx])
    curves: dict[str, list[float]] = {"severity": [float(s) for s in severities]}
    try:
        clean = float((target.predict_proba(x).argmax(1) == y).mean())
        for name in chosen:
            ctx.progress(f"{name}: severities {severities[0]}..{severities[-1]}")
            accs = []
            for s in severities:
                rng = np.random.default_rng([ctx.seed, s, sorted(corruptions).index(name)])
                xc = corruptions[name](x.astype(np.float64), s, rng)
                xc = domain.finalize(xc) if kind == "tabular" else _to_8bit(xc)
                accs.append(float((target.predict_proba(xc).argmax(1) == y).mean()))
            curves[name] = accs
    except BudgetExhausted as exc:
        done = [c for c in chosen if c in curves]
        return AttackResult(
            ID,
            "inconclusive",
            f"budget exhausted after {len(done)} corruptions ({exc})",
            curves=curves,
        )
    mid = severities.index(3) if 3 in severities else len(severities) // 2
    drops = {c: clean - curves[c][mid] for c in chosen}
    worst = max(drops, key=lambda c: drops[c])
    lighting = [c for c in ("brightness", "contrast", "lighting_gradient") if c in curves]
    plots = [
        curve(
            ctx.out_dir,
            "corruption_curve.png",
            severities,
            {c: curves[c] for c in chosen},
            xlabel="severity",
            ylabel="accuracy",
            title=f"Natural corruptions (clean {clean:.1%})",
        )
    ]
    metrics = {
        "clean_accuracy": round(clean, 4),
        "accuracy_drop": round(drops[worst], 4),
        "worst_corruption": worst,
        "adversarial_accuracy": round(curves[worst][mid], 4),
        "severity_reported": severities[mid],
        "lighting_accuracy_drop": round(max((drops[c] for c in lighting), default=0.0), 4),
        "max_severity_accuracy": {c: round(curves[c][-1], 4) for c in chosen},
        "evaluated": len(idx),
    }
    validated = drops[worst] >= float(p.get("min_drop", 0.05))
    summary = (
        f"at severity {severities[mid]} of {severities[-1]}, {worst.replace('_', ' ')} takes "
        f"accuracy from {clean:.1%} to {curves[worst][mid]:.1%} on {len(idx)} held-out inputs; "
        + "; ".join(f"{c.replace('_', ' ')} {curves[c][mid]:.1%}" for c in chosen if c != worst)
        + "."
    )
    return AttackResult(
        ID,
        "validated" if validated else "refuted",
        summary,
        metrics=metrics,
        curves=curves,
        plots=plots,
    )


def _to_8bit(x: np.ndarray) -> np.ndarray:
    """A corrupted image is still an 8-bit upload."""
    return (np.round(np.clip(x, 0, 1) * 255) / 255).astype(np.float32)
