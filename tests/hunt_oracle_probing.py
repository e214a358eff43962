"""Reference (numpy) implementation of the near-duplicate family of hunt detectors: evasion
probing, membership probing and inversion sweeps, as they were before their numba kernels
(``mlhunt.hunt.detectors._kern_probing``), except the inversion sweep's coverage, now computed
per run so that it does not depend on the other groups of a batch (issue 23). Kept only as the
oracle that the kernel tests compare with; self-contained (its own copies of the shared
per-batch features and segment helpers) so that a later change to those cannot move the reference.
"""

from __future__ import annotations

import itertools

import numpy as np

from mlhunt.hunt.detectors._features import _MULT
from mlhunt.hunt.events import GroupBatch, Population


def seg_position(offsets: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    n = int(offsets[-1]) if len(offsets) else 0
    return np.arange(n) - np.repeat(offsets[:-1], lengths)


def seg_cumsum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    if len(values) == 0:
        return values.astype(np.float64)
    c = np.cumsum(values, axis=0, dtype=np.float64)
    before = np.concatenate([np.zeros((1, *c.shape[1:])), c[offsets[:-1][1:] - 1]])
    return c - np.repeat(before, np.diff(offsets), axis=0)


def seg_prev(offsets: np.ndarray) -> np.ndarray:
    n = int(offsets[-1]) if len(offsets) else 0
    prev = np.arange(n) - 1
    prev[offsets[:-1][np.diff(offsets) > 0]] = -1
    return prev


def has_input(batch: GroupBatch) -> np.ndarray:
    if batch.x.shape[1]:
        return ~np.isnan(batch.x).any(axis=1)
    return np.zeros(batch.n, bool)


def changed_vs_prev(batch: GroupBatch) -> tuple[np.ndarray, np.ndarray]:
    prev = seg_prev(batch.offsets)
    d = batch.x.shape[1]
    valid = has_input(batch)
    diff = np.full(batch.n, d + 1, dtype=np.int64)
    if batch.n > 1:
        ok = (prev[1:] >= 0) & valid[1:] & valid[:-1]
        diff[1:] = np.where(ok, (batch.x[1:] != batch.x[:-1]).sum(axis=1), d + 1)
    return prev, diff


def robust_inputs(batch: GroupBatch, pop: Population) -> np.ndarray:
    valid = has_input(batch)
    return np.where(valid[:, None], pop.robust(np.nan_to_num(batch.x)), 0.0)


def grid_codes(z: np.ndarray, cell: float, offset: float, chunk: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        q = np.floor(z / cell + offset).astype(np.int64)
    n, d = q.shape
    k = max(1, -(-d // chunk))
    out = np.empty((n, k), dtype=np.int64)
    for c in range(k):
        part = q[:, c * chunk : (c + 1) * chunk]
        with np.errstate(over="ignore"):
            out[:, c] = (part * _MULT[c * chunk : c * chunk + part.shape[1]]).sum(axis=1)
    return out


def previous_match(seg: np.ndarray, code: np.ndarray, valid: np.ndarray) -> np.ndarray:
    n = len(code)
    order = np.argsort(code, kind="stable")
    s_seg, s_code = seg[order], code[order]
    same = np.zeros(n, dtype=bool)
    same[1:] = (s_seg[1:] == s_seg[:-1]) & (s_code[1:] == s_code[:-1])
    prev_sorted = np.full(n, -1, dtype=np.int64)
    prev_sorted[1:] = np.where(same[1:], order[:-1], -1)
    out = np.full(n, -1, dtype=np.int64)
    out[order] = prev_sorted
    out[~valid] = -1
    prev_valid = out >= 0
    out[prev_valid] = np.where(valid[out[prev_valid]], out[prev_valid], -1)
    return out


def near_duplicates(
    batch: GroupBatch, pop: Population, cell: float, grids: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    valid = has_input(batch)
    z = robust_inputs(batch, pop)
    d = z.shape[1]
    chunk = d if d <= 16 else 8
    seg = np.repeat(np.arange(len(batch.offsets) - 1), np.diff(batch.offsets))
    best = np.full(batch.n, -1, dtype=np.int64)
    share = np.zeros(batch.n)
    for gi in range(grids):
        codes = grid_codes(z, cell, gi / grids, chunk)
        k = codes.shape[1]
        hits = np.zeros(batch.n)
        latest = np.full(batch.n, -1, dtype=np.int64)
        for c in range(k):
            m = previous_match(seg, codes[:, c], valid)
            hits += m >= 0
            latest = np.maximum(latest, m)
        frac = hits / k
        good = frac >= (1.0 if k == 1 else 0.5)
        best = np.where(good, np.maximum(best, latest), best)
        share = np.maximum(share, frac)
    return best, share


def _pair_stats(batch: GroupBatch, match: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ok = match >= 0
    changed = np.zeros(batch.n, dtype=np.int64)
    changed[ok] = (batch.x[ok] != batch.x[match[ok]]).sum(axis=1)
    near = ok & (changed > 0)
    flip = np.zeros(batch.n, dtype=bool)
    flip[near] = (batch.label[near] != batch.label[match[near]]) & (batch.label[near] >= 0)
    return near, flip, changed


def _rate_score(
    count: np.ndarray, n: np.ndarray, count_thr: float, share_thr: float, min_events: float
) -> np.ndarray:
    share = count / np.maximum(n, 1.0)
    s = np.minimum(count / count_thr, share / share_thr)
    return np.where(n >= min_events, s, 0.0)


def evasion(
    batch: GroupBatch, pop: Population, p: dict[str, float]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    match, _share = near_duplicates(batch, pop, p["cell"])
    near, flip, _changed = _pair_stats(batch, match)
    flips = seg_cumsum(flip.astype(float), batch.offsets)
    chain = seg_cumsum(near.astype(float), batch.offsets)
    n = seg_position(batch.offsets) + 1.0
    by_flips = _rate_score(flips, n, p["min_flips"], p["flip_share"], p["min_events"])
    by_chain = _rate_score(chain, n, p["min_chain"], p["chain_share"], p["min_events"])
    online = np.maximum(by_flips, by_chain) if batch.x.shape[1] > 16 else by_flips
    return online, {"near": near, "flip": flip, "flips": flips, "match": match}


def membership(
    batch: GroupBatch, pop: Population, p: dict[str, float]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    match, _share = near_duplicates(batch, pop, p["cell"])
    near, _flip, changed = _pair_stats(batch, match)
    noisy = near & (changed >= p["min_changed"]) & has_input(batch)
    if batch.x.shape[1] > 0:
        ok = np.flatnonzero(noisy)
        x, xm = batch.x[ok], batch.x[match[ok]]
        with np.errstate(invalid="ignore"):
            rel = np.abs(x - xm) / np.maximum(np.abs(xm), pop.width * 1e-3)
        noisy[ok] = rel.max(axis=1) <= p["max_step"]
    count = seg_cumsum(noisy.astype(float), batch.offsets)
    n = seg_position(batch.offsets) + 1.0
    online = _rate_score(count, n, p["min_repeats"], p["repeat_share"], p["min_events"])
    return online, {"noisy": noisy, "match": match}


def inversion(
    batch: GroupBatch, pop: Population, p: dict[str, float]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = batch.n
    prev, diff = changed_vs_prev(batch)
    single = diff == 1
    feat = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(single)
    feat[idx] = np.argmax(batch.x[idx] != batch.x[prev[idx]], axis=1)
    prev_feat = np.where(prev >= 0, feat[np.maximum(prev, 0)], -2)
    new_run = (feat < 0) | (feat != prev_feat)
    run_starts = np.flatnonzero(new_run | (prev < 0))
    offsets = np.append(run_starts, n).astype(np.int64)
    lengths = np.diff(offsets)
    pos = np.arange(n) - np.repeat(run_starts, lengths)
    length = np.where(feat >= 0, pos + 2, 0)
    f_safe = np.maximum(feat, 0)
    lo = np.array([e[0] for e in pop.edges])
    hi = np.array([e[-1] for e in pop.edges])
    width = np.where(hi > lo, hi - lo, pop.span)
    v = batch.x[np.arange(n), f_safe]
    base = np.where(prev >= 0, batch.x[np.maximum(prev, 0), f_safe], v)
    # each run's running max and min on its own (a run's coverage never depends on the
    # other runs or groups in the batch), its base query's value included
    vmax, vmin = v.copy(), v.copy()
    for a, b in itertools.pairwise(offsets):
        vmax[a:b] = np.maximum(np.maximum.accumulate(v[a:b]), base[a])
        vmin[a:b] = np.minimum(np.minimum.accumulate(v[a:b]), base[a])
    coverage = np.where(feat >= 0, np.nan_to_num((vmax - vmin) / width[f_safe]), 0.0)
    ok = (length >= p["min_length"]) & (coverage >= p["min_coverage"])
    first_ok = ok & ~np.concatenate([[False], ok[:-1] & ~new_run[1:]])
    sweeps = seg_cumsum(first_ok.astype(float), batch.offsets)
    online = sweeps / p["min_sweeps"]
    return online, {"sweep_done": first_ok, "feature": feat, "length": length, "coverage": coverage}
