"""Attacker clients for the traffic simulator (:mod:`mlhunt.scenarios.traffic`).

Each attacker is driven by the real model's answers: it sends a batch of queries through an
:class:`Asker` (the in-process model or the live HTTP API, the attacker cannot tell), reads the
returned scores, and chooses its next queries from them where the attack requires it. Every
attack is bounded by a query budget. They are written by hand rather than with ART because they
must *emit traffic* (one API call per query, in the order a real attacker would send them, with
the realistic input constraints of the deployment: bounds, integer fields, immutable fields),
while ART's attacks are built to return adversarial examples against an estimator.

Tabular inputs are handled in the normalised space ``z = (x - lower) / (upper - lower)``; a point
becomes a query only through :meth:`Box.to_x` (clipped to the bounds, integer fields rounded).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlhunt.scenarios.base import InputSpec

# ask(x, new_round=False) -> the scores the API returned, shape (n, n_classes)
Asker = Callable[..., np.ndarray]


class Exhausted(Exception):
    """The attacker's query budget is spent."""


class Budgeted:
    """An :data:`Asker` that stops the attack once ``budget`` queries have been sent."""

    def __init__(self, ask: Asker, budget: int) -> None:
        self._ask = ask
        self.remaining = int(budget)
        self.used = 0

    def __call__(self, x: np.ndarray, *, new_round: bool = False) -> np.ndarray:
        if self.remaining <= 0:
            raise Exhausted
        x = x[: self.remaining]
        scores = self._ask(x, new_round=new_round)
        self.remaining -= len(x)
        self.used += len(x)
        return scores


@dataclass(frozen=True)
class Box:
    """The tabular input space as an attacker who respects the deployment's constraints sees it."""

    lo: np.ndarray
    hi: np.ndarray
    integer: np.ndarray
    mutable: np.ndarray

    @classmethod
    def from_spec(cls, spec: InputSpec) -> Box:
        lo = np.asarray(spec.lower, dtype=np.float64)
        hi = np.asarray(spec.upper, dtype=np.float64)
        integer = np.asarray(spec.integer or [False] * len(lo), dtype=bool)
        mutable = np.asarray(spec.mutable or [True] * len(lo), dtype=bool)
        return cls(lo, hi, integer, mutable)

    @property
    def d(self) -> int:
        return len(self.lo)

    @property
    def span(self) -> np.ndarray:
        return np.where(self.hi > self.lo, self.hi - self.lo, 1.0)

    def to_z(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.lo) / self.span

    def to_x(self, z: np.ndarray) -> np.ndarray:
        """A valid query: inside the bounds, integer fields rounded, other fields kept to a
        realistic precision (6 significant digits)."""
        x = self.lo + np.clip(z, 0.0, 1.0) * self.span
        x = np.where(self.integer, np.round(x), _round_sig(x, 6))
        return np.clip(x, self.lo, self.hi)

    def fix(self, x: np.ndarray) -> np.ndarray:
        return self.to_x(self.to_z(x))

    def uniform(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.to_x(rng.random((n, self.d)))


def _round_sig(x: np.ndarray, digits: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    mag = np.floor(np.log10(np.maximum(np.abs(x), 1e-12)))
    scale = 10.0 ** (digits - 1 - mag)
    return np.round(x * scale) / scale


def _labels(scores: np.ndarray) -> np.ndarray:
    return np.asarray(scores).argmax(axis=1)


def _fit_logreg(z: np.ndarray, y: np.ndarray) -> Any | None:
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        return None
    return LogisticRegression(C=10.0, max_iter=500).fit(z, y)


def _fit_substitute(zs: list[np.ndarray], ys: list[np.ndarray]) -> Any | None:
    """The attacker's surrogate on every answer so far (None until both classes were seen)."""
    return _fit_logreg(np.concatenate(zs), np.concatenate(ys))


def _agreement(sub: Any | None, box: Box, eval_x: np.ndarray, eval_y: np.ndarray) -> float:
    """Fidelity of a stolen copy: how often it agrees with the real model on held-out inputs."""
    if sub is None or len(eval_x) == 0:
        return 0.0
    return round(float(np.mean(sub.predict(box.to_z(eval_x)) == eval_y)), 4)


@dataclass
class Outcome:
    """What an attacker achieved (kept in labels.json as evidence that the attack is real)."""

    queries: int
    metrics: dict[str, Any]


# --- extraction ---------------------------------------------------------------------------------


def uniform_extraction(
    box: Box,
    ask: Budgeted,
    rng: np.random.Generator,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    *,
    batch: int = 200,
) -> Outcome:
    """Uniformly random inputs over the whole input box; a substitute trained on the answers."""
    zs, ys = [], []
    try:
        while True:
            x = box.uniform(min(batch, ask.remaining), rng)
            ys.append(_labels(ask(x, new_round=True)))
            zs.append(box.to_z(x))
    except Exhausted:
        pass
    sub = _fit_logreg(np.concatenate(zs), np.concatenate(ys))
    return Outcome(ask.used, {"fidelity": _agreement(sub, box, eval_x, eval_y)})


def _mlp_input_gradient(mlp: Any, z: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """d(logit of class ``cls``)/dz for a one-hidden-layer tanh MLPClassifier."""
    w1, w2 = mlp.coefs_
    b1 = mlp.intercepts_[0]
    a = np.tanh(z @ w1 + b1)
    if w2.shape[1] == 1:  # binary: one logit for class 1; class 0's logit is its negative
        sign = np.where(cls == 1, 1.0, -1.0)
        return ((1.0 - a**2) * w2[:, 0]) @ w1.T * sign[:, None]
    return ((1.0 - a**2) * w2[:, cls].T) @ w1.T


def jbda_extraction(
    box: Box,
    ask: Budgeted,
    seeds: np.ndarray,
    rng: np.random.Generator,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    *,
    rounds: int = 5,
    lam: float = 0.1,
    tau: int = 3,
) -> Outcome:
    """Jacobian-based dataset augmentation (Papernot et al., 2017): label a small natural seed set
    with the API, train a local MLP substitute, and grow the set with
    ``x + lambda * sign(J_sub[label(x)])``, doubling it each round; lambda flips sign every
    ``tau`` rounds (the paper's periodic step size)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    z = box.to_z(box.fix(seeds))
    y = np.empty(0, dtype=np.int64)
    new = z
    sub = None
    try:
        for rho in range(rounds + 1):
            answers = _labels(ask(box.to_x(new), new_round=True))
            y = np.concatenate([y, answers])
            if rho == rounds:
                break
            if len(np.unique(y)) > 1:
                sub = MLPClassifier(
                    hidden_layer_sizes=(32,),
                    activation="tanh",
                    max_iter=400,
                    random_state=int(rng.integers(2**31)),
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    sub.fit(z, y)
                grad = _mlp_input_gradient(sub, z, y)
            else:  # no decision yet to follow: a random direction
                grad = rng.normal(size=z.shape)
            step = lam * (-1.0) ** (rho // tau)
            new = box.to_z(box.to_x(z + step * np.sign(grad)))
            z = np.concatenate([z, new])
    except Exhausted:
        z = z[: len(y)]
    final = _fit_logreg(z[: len(y)], y) if sub is None else sub
    return Outcome(ask.used, {"fidelity": _agreement(final, box, eval_x, eval_y), "rounds": rounds})


def shifted_population(natural: np.ndarray, box: Box, rng: np.random.Generator) -> np.ndarray:
    """Natural-looking data from a different population (another market, another customer base):
    each feature's distribution stretched and moved by a fixed random affine map."""
    z = box.to_z(natural)
    a = rng.uniform(0.75, 1.3, box.d)
    b = rng.normal(0.0, 0.08, box.d)
    noise = rng.normal(0.0, 0.02, z.shape)
    return box.to_x(z * a + b + noise)


def knockoff_extraction(
    box: Box,
    ask: Budgeted,
    pool: np.ndarray,
    rng: np.random.Generator,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    *,
    rounds: int = 10,
) -> Outcome:
    """Knockoff-Nets-style extraction with natural data from a shifted population: the first round
    is a random sample of the attacker's pool; later rounds pick half their queries where the
    current substitute is least certain (adaptive sampling from the answers), half at random."""
    zpool = box.to_z(pool)
    unused = np.ones(len(pool), dtype=bool)
    per_round = max(1, ask.remaining // rounds)
    zs, ys = [], []
    sub = None
    try:
        while unused.any():
            idx = np.flatnonzero(unused)
            k = min(per_round, len(idx), ask.remaining)
            if sub is None:
                pick = rng.choice(idx, size=k, replace=False)
            else:
                margin = np.abs(sub.predict_proba(zpool[idx])[:, 1] - 0.5)
                half = k // 2
                uncertain = idx[np.argsort(margin, kind="stable")[:half]]
                rest = np.setdiff1d(idx, uncertain)
                pick = np.concatenate([uncertain, rng.choice(rest, size=k - half, replace=False)])
            unused[pick] = False
            ys.append(_labels(ask(pool[pick], new_round=True)))
            zs.append(zpool[pick])
            sub = _fit_substitute(zs, ys)
    except Exhausted:  # raised by ask() before anything is appended: sub is already up to date
        pass
    return Outcome(ask.used, {"fidelity": _agreement(sub, box, eval_x, eval_y)})


def active_low_and_slow(
    box: Box,
    ask: Budgeted,
    rng: np.random.Generator,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    *,
    batch: int = 25,
) -> Outcome:
    """Low-and-slow extraction: small rounds spread over a day; each round's queries are the
    synthetic candidates its substitute is least sure about (uncertainty sampling)."""
    zs, ys = [], []
    sub = None
    try:
        while True:
            cand = box.to_z(box.uniform(20 * batch, rng))
            if sub is None:
                pick = cand[:batch]
            else:
                margin = np.abs(sub.predict_proba(cand)[:, 1] - 0.5)
                pick = cand[np.argsort(margin, kind="stable")[:batch]]
            ys.append(_labels(ask(box.to_x(pick), new_round=True)))
            zs.append(pick[: len(ys[-1])])
            sub = _fit_substitute(zs, ys)
    except Exhausted:  # raised by ask() before anything is appended: sub is already up to date
        pass
    return Outcome(ask.used, {"fidelity": _agreement(sub, box, eval_x, eval_y)})


def sybil_extraction(
    box: Box,
    asks: Sequence[Budgeted],
    rng: np.random.Generator,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    *,
    batch: int = 20,
) -> Outcome:
    """One operator, many API keys: a Latin-hypercube design over the input box dealt out to the
    keys in small batches, answers pooled into one substitute."""
    total = sum(a.remaining for a in asks)
    # Latin hypercube: every feature's range cut into ``total`` strata, one point in each.
    z = rng.permuted(np.tile(np.arange(total), (box.d, 1)), axis=1).T + rng.random((total, box.d))
    z /= total
    x = box.to_x(z)
    zs, ys = [], []
    pos = 0
    live = list(asks)
    while live and pos < total:
        for a in list(live):
            k = min(batch, a.remaining, total - pos)
            if k <= 0:
                live.remove(a)
                continue
            ys.append(_labels(a(x[pos : pos + k], new_round=True)))
            zs.append(box.to_z(x[pos : pos + k]))
            pos += k
    sub = _fit_logreg(np.concatenate(zs), np.concatenate(ys))
    used = sum(a.used for a in asks)
    return Outcome(used, {"fidelity": _agreement(sub, box, eval_x, eval_y), "keys": len(asks)})


# --- evasion, membership, inversion --------------------------------------------------------------


def _hsj_target(
    box: Box,
    ask: Budgeted,
    x0: np.ndarray,
    desired: int,
    natural: np.ndarray,
    rng: np.random.Generator,
    result: dict[str, Any],
    *,
    n_dirs: int = 12,
    bin_steps: int = 10,
) -> None:
    """HopSkipJump-like decision-based search for one target (labels only, mutable fields only).

    1. Find a starting point of the desired class: natural profiles' mutable fields grafted on
       the target's immutable ones, tried in small batches.
    2. Binary search on the segment target -> start for the boundary.
    3. Repeat: estimate the boundary's normal from the labels of random probes around the
       boundary point, step along it (geometric step search until the label is desired again),
       binary search back towards the target.

    Runs until the budget is spent; ``result`` holds the progress made.
    """
    m = box.mutable
    z0 = box.to_z(x0)

    def graft(z: np.ndarray) -> np.ndarray:
        z = np.where(m, z, z0)
        return box.to_z(box.to_x(z))

    def desired_of(z: np.ndarray, *, new_round: bool = False) -> np.ndarray:
        return _labels(ask(box.to_x(np.atleast_2d(z)), new_round=new_round)) == desired

    start = None
    cands = graft(box.to_z(natural))
    for i in range(0, len(cands), 4):
        ok = desired_of(cands[i : i + 4], new_round=i == 0)
        if ok.any():
            start = cands[i + int(np.argmax(ok))]
            break
    if start is None:
        return

    def bisect(z_bad: np.ndarray, z_good: np.ndarray) -> np.ndarray:
        lo_t, hi_t = 0.0, 1.0
        for _ in range(bin_steps):
            mid = (lo_t + hi_t) / 2
            if desired_of(graft(z_bad + mid * (z_good - z_bad)))[0]:
                hi_t = mid
            else:
                lo_t = mid
        return graft(z_bad + hi_t * (z_good - z_bad))

    zb = bisect(z0, start)
    result["reached"] = True
    result["start_distance"] = round(float(np.linalg.norm(start - z0)), 6)
    for it in range(1, 10_000):
        dist = float(np.linalg.norm(zb - z0))
        result["distance"] = round(dist, 6)
        delta = max(0.02 * dist, 2e-3)
        u = rng.normal(size=(n_dirs, box.d)) * m
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
        probes = np.array([graft(zb + delta * v) for v in u])
        phi = np.where(desired_of(probes, new_round=True), 1.0, -1.0)
        u = u[: len(phi)]  # the budget may have cut the batch short
        if np.all(phi == phi[0]):
            grad = phi[0] * u.mean(axis=0)
        else:
            grad = ((phi - phi.mean())[:, None] * u).mean(axis=0)
        norm = float(np.linalg.norm(grad))
        if norm < 1e-12:
            continue
        grad /= norm
        eps = max(dist / np.sqrt(it), 1e-3)
        cand = None
        for _ in range(6):
            trial = graft(zb + eps * grad)
            if desired_of(trial)[0]:
                cand = trial
                break
            eps /= 2
        if cand is None:
            continue
        zb = bisect(z0, cand)


def evasion_probing(
    box: Box,
    ask: Budgeted,
    targets: np.ndarray,
    desired: int,
    natural: np.ndarray,
    rng: np.random.Generator,
    *,
    per_target: int,
) -> Outcome:
    """Decision-based evasion against several of the attacker's own rejected inputs."""
    results = []
    for x0 in targets:
        if ask.remaining <= 0:
            break
        share = Budgeted(ask, min(per_target, ask.remaining))
        res: dict[str, Any] = {"target": [float(v) for v in x0], "reached": False}
        pool = natural[rng.permutation(len(natural))[:40]]
        with contextlib.suppress(Exhausted):
            _hsj_target(box, share, x0, desired, pool, rng, res)
        res["queries"] = share.used
        results.append(res)
    return Outcome(ask.used, {"targets": results, "desired_label_index": desired})


def membership_probing(
    box: Box,
    ask: Budgeted,
    records: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    repeats: int = 12,
    noise: float = 0.004,
) -> Outcome:
    """Known training records, each queried as is and then ``repeats - 1`` times with small noise
    on its continuous fields (a confidence / stability membership test)."""
    conf = []
    try:
        for x, y in zip(records, labels, strict=True):
            batch = np.repeat(x[None, :], repeats, axis=0)
            jitter = 1.0 + rng.normal(0.0, noise, batch.shape)
            jitter[0] = 1.0
            batch = np.where(box.integer, batch, batch * jitter)
            scores = ask(box.fix(batch), new_round=True)
            conf.append(float(np.mean(scores[:, int(y)])))
    except Exhausted:
        pass
    mean_conf = round(float(np.mean(conf)), 4) if conf else 0.0
    return Outcome(ask.used, {"records": len(conf), "mean_true_label_confidence": mean_conf})


def sweep_features(box: Box, names: Sequence[str], k: int = 3) -> list[int]:
    """Which fields an inversion attacker sweeps: immutable (quasi-identifying) and small
    integer fields first, then continuous ones."""
    d = box.d
    small_int = [i for i in range(d) if box.integer[i] and box.hi[i] - box.lo[i] <= 60]
    few = [i for i in range(d) if len(_sweep_values(box, i)) < 8]  # flags: nothing to sweep
    order = sorted(range(d), key=lambda i: (i in few, box.mutable[i], i not in small_int, i))
    return order[: min(k, d)]


def _sweep_values(box: Box, i: int, steps: int = 24) -> np.ndarray:
    lo, hi = box.lo[i], box.hi[i]
    if box.integer[i] and hi - lo <= 60:
        return np.arange(lo, hi + 1)
    # wide positive ranges (amounts, incomes) are swept log-spaced
    wide = lo > 0 and hi / lo > 20
    vals = np.geomspace(lo, hi, steps) if wide else np.linspace(lo, hi, steps)
    return np.round(vals) if box.integer[i] else vals


def inversion_sweep(
    box: Box,
    ask: Budgeted,
    records: np.ndarray,
    labels: np.ndarray,
    features: Sequence[int],
) -> Outcome:
    """Attribute inference (Fredrikson-style model inversion): for each known record, sweep one
    field over its range with the others fixed and pick the value that best explains the
    record's known label."""
    hits, tried = 0, 0
    try:
        for x, y in zip(records, labels, strict=True):
            for i in features:
                vals = _sweep_values(box, i)
                batch = np.repeat(x[None, :], len(vals), axis=0)
                batch[:, i] = vals
                scores = ask(box.fix(batch), new_round=True)
                guess = vals[int(np.argmax(scores[:, int(y)]))]
                tol = 0.5 if box.integer[i] else 0.1 * abs(x[i]) + 1e-9
                hits += int(abs(guess - x[i]) <= max(tol, 0.5 * np.min(np.diff(vals))))
                tried += 1
    except Exhausted:
        pass
    acc = round(hits / tried, 4) if tried else 0.0
    return Outcome(ask.used, {"sweeps": tried, "inference_accuracy": acc})


# --- images -------------------------------------------------------------------------------------


def patch_probing(
    ask: Budgeted,
    image: np.ndarray,
    desired: int,
    rng: np.random.Generator,
    *,
    patch: int = 6,
    per_round: int = 4,
) -> Outcome:
    """Score-based adversarial-patch search (Square-Attack-like random search): one image with a
    small square patch at a fixed place; each round proposes a few re-coloured sub-squares of the
    patch and keeps the one that most raises the desired class's score."""
    c, h, w = image.shape
    py, px = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
    best = image.astype(np.float32).copy()
    best[:, py : py + patch, px : px + patch] = rng.random((c, 1, 1)).astype(np.float32)
    first = ask(np.stack([image.astype(np.float32), best]), new_round=True)
    best_score = float(first[1, desired])
    flipped_at = None
    it = 0
    try:
        while True:
            it += 1
            size = max(1, round(patch * max(0.15, 0.6 * (0.93**it))))
            props = np.repeat(best[None], per_round, axis=0)
            for p in props:
                sy = py + int(rng.integers(0, patch - size + 1))
                sx = px + int(rng.integers(0, patch - size + 1))
                p[:, sy : sy + size, sx : sx + size] = rng.integers(0, 2, (c, 1, 1))
            scores = ask(props, new_round=True)
            j = int(np.argmax(scores[:, desired]))
            if scores[j, desired] > best_score:
                best, best_score = props[j], float(scores[j, desired])
            if flipped_at is None and best_score > 0.5:
                flipped_at = ask.used
    except Exhausted:
        pass
    metrics = {
        "clean_desired_score": round(float(first[0, desired]), 6),
        "best_desired_score": round(best_score, 6),
        "evaded": best_score > 0.5,
        "queries_to_evade": flipped_at,
        "patch": [py, px, patch],
    }
    return Outcome(ask.used, metrics)


def synthetic_images(n: int, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Synthetic query images: half uniform noise, half random flat shapes on a flat background."""
    c, h, w = shape
    out = np.empty((n, c, h, w), dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(n):
        if k % 2 == 0:
            out[k] = rng.random((c, h, w))
            continue
        img = np.broadcast_to(rng.random((c, 1, 1)), (c, h, w)).copy()
        for _ in range(int(rng.integers(1, 5))):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            r = rng.uniform(2, h / 3)
            if rng.random() < 0.5:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
            else:
                mask = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r * rng.uniform(0.3, 1.5))
            img[:, mask] = rng.random((c, 1))
        out[k] = img
    return np.round(out * 255.0) / 255.0


def synthetic_extraction(
    ask: Budgeted, shape: tuple[int, ...], rng: np.random.Generator, *, batch: int = 50
) -> Outcome:
    """Extraction with synthetic images (noise and random shapes): the attacker labels them with
    the API to train a copy."""
    counts: dict[int, int] = {}
    try:
        while True:
            imgs = synthetic_images(min(batch, ask.remaining), shape, rng)
            for lab in _labels(ask(imgs, new_round=True)):
                counts[int(lab)] = counts.get(int(lab), 0) + 1
    except Exhausted:
        pass
    return Outcome(ask.used, {"label_counts": {str(k): v for k, v in sorted(counts.items())}})
