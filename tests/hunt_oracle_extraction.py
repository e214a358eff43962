"""Reference (numpy) implementations of the extraction-family detectors, as they were before
the numba kernels of ``mlhunt.hunt.detectors._kern_extraction``: the tests compare both.

The bodies are the former library code, unchanged except that the cache lives in a fresh
dict and detector parameters are arguments."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.events import GroupBatch, Population, seg_max
from tests.hunt_segments import seg_cumsum, seg_prev, take_groups


def has_input(batch: GroupBatch, cache: dict[Any, Any]) -> np.ndarray:
    if "has_input" not in cache:
        cache["has_input"] = (
            ~np.isnan(batch.x).any(axis=1) if batch.x.shape[1] else np.zeros(batch.n, bool)
        )
    out: np.ndarray = cache["has_input"]
    return out


def changed_vs_prev(batch: GroupBatch, cache: dict[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
    if "changed" in cache:
        cached: tuple[np.ndarray, np.ndarray] = cache["changed"]
        return cached
    prev = seg_prev(batch.offsets)
    d = batch.x.shape[1]
    valid = has_input(batch, cache)
    diff = np.full(batch.n, d + 1, dtype=np.int64)
    if batch.n > 1:
        ok = (prev[1:] >= 0) & valid[1:] & valid[:-1]
        diff[1:] = np.where(ok, (batch.x[1:] != batch.x[:-1]).sum(axis=1), d + 1)
    cache["changed"] = (prev, diff)
    return prev, diff


def robust_inputs(batch: GroupBatch, pop: Population, cache: dict[Any, Any]) -> np.ndarray:
    valid = has_input(batch, cache)
    return np.where(valid[:, None], pop.robust(np.nan_to_num(batch.x)), 0.0)


def g_statistic(
    batch: GroupBatch, pop: Population, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    w = weight > 0
    wf = w.astype(np.float64)
    wi = w.astype(np.int32)
    n_eff = seg_cumsum(wf, batch.offsets)
    acc = np.zeros(batch.n)
    df = 0
    x = np.nan_to_num(batch.x)
    cols = np.arange(batch.n)
    starts = batch.offsets[:-1]
    seg = np.repeat(np.arange(len(batch.keys)), batch.lengths)
    table = _xlogx(np.arange(int(batch.lengths.max(initial=0)) + 2, dtype=np.float64))
    for f, (edges, probs) in enumerate(zip(pop.edges, pop.bin_probs, strict=True)):
        b = np.searchsorted(edges, x[:, f], side="right")
        ind = np.zeros((len(probs), batch.n), dtype=np.int32)
        ind[b, cols] = wi
        np.cumsum(ind, axis=1, out=ind)
        base = np.where(starts > 0, ind[:, np.maximum(starts - 1, 0)], 0)
        after = ind[b, cols] - base[b, seg]
        before = after - wi
        acc += wf * (table[after] - table[before] - np.log(probs)[b])
        df += len(probs) - 1
    g = 2.0 * (seg_cumsum(acc, batch.offsets) - len(pop.edges) * _xlogx(n_eff))
    return np.maximum(g, 0.0), n_eff, df


def _xlogx(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v * np.log(np.maximum(v, 1.0)), 0.0)


def extraction_score(
    g: np.ndarray, n_eff: np.ndarray, df: int, *, z_thr: float, kl_thr: float, min_events: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = (g - df) / np.sqrt(2.0 * max(df, 1))
    kl = np.where(n_eff > 0, g / (2.0 * np.maximum(n_eff, 1.0)), 0.0)
    score = np.minimum(z / z_thr, kl / kl_thr)
    score = np.where(n_eff >= min_events, np.maximum(score, 0.0), 0.0)
    return score, z, kl


def extraction(
    batch: GroupBatch, pop: Population, p: dict[str, float]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    cache: dict[Any, Any] = {}
    _prev, diff = changed_vs_prev(batch, cache)
    weight = has_input(batch, cache) & (diff >= 2)
    g, n_eff, df = g_statistic(batch, pop, weight)
    score, z, kl = extraction_score(
        g, n_eff, df, z_thr=p["z_threshold"], kl_thr=p["kl_threshold"], min_events=p["min_events"]
    )
    return score, {"z": z, "kl": kl, "n_eff": n_eff, "weight": weight}


def distinct_clients(batch: GroupBatch) -> np.ndarray:
    seg = np.repeat(np.arange(len(batch.keys)), batch.lengths)
    _, codes = np.unique(batch.client.astype(str), return_inverse=True)
    order = np.lexsort((np.arange(batch.n), codes, seg))
    first = np.ones(batch.n, dtype=bool)
    s_seg, s_code = seg[order], codes[order]
    first[1:] = (s_seg[1:] != s_seg[:-1]) | (s_code[1:] != s_code[:-1])
    new = np.zeros(batch.n)
    new[order] = first
    return seg_cumsum(new, batch.offsets)


def sybil(
    batch: GroupBatch, pop: Population, p: dict[str, float]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    distinct = distinct_clients(batch)
    gate = distinct >= p["min_clients"]
    keep = seg_max(distinct, batch.offsets) >= p["min_clients"]
    columns: dict[str, np.ndarray] = {"distinct": distinct}
    online = np.zeros(batch.n)
    if keep.any():
        if keep.all():
            sub, rows = batch, np.ones(batch.n, dtype=bool)
        else:
            sub, rows = take_groups(batch, keep)
        b_online, b_cols = extraction(sub, pop, p)
        online[rows] = np.where(gate[rows], b_online, 0.0)
        for name, col in b_cols.items():
            full = np.zeros(batch.n, dtype=col.dtype)
            full[rows] = col
            columns[name] = full
    return online, columns


def low_confidence(
    batch: GroupBatch, pop: Population, p: dict[str, float]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    known = ~np.isnan(batch.margin)
    near = known & (np.nan_to_num(batch.margin, nan=1.0) < pop.near_margin)
    k = seg_cumsum(near.astype(float), batch.offsets)
    n = seg_cumsum(known.astype(float), batch.offsets)
    p0 = min(max(pop.near_share, 0.01), 0.5)
    z = (k - n * p0) / np.sqrt(np.maximum(n, 1.0) * p0 * (1 - p0))
    share = k / np.maximum(n, 1.0)
    s = np.minimum(z / p["z_threshold"], share / (p["ratio"] * p0))
    online = np.where(n >= p["min_events"], np.maximum(s, 0.0), 0.0)
    return online, {"near": near, "z": z, "share": share}


def window_count(
    ts: np.ndarray, offsets: np.ndarray, flags: np.ndarray, window_s: float
) -> np.ndarray:
    n = len(ts)
    if n == 0:
        return np.zeros(0)
    seg = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    first = np.repeat(ts[offsets[:-1]], np.diff(offsets))
    local = ts - first
    gap = float(local.max()) + 2 * window_s + 1.0
    key = seg * gap + local
    csum = np.concatenate([[0.0], np.cumsum(flags, dtype=np.float64)])
    lo = np.searchsorted(key, key - window_s, side="right")
    return csum[np.arange(n) + 1] - csum[lo]


Cols = dict[str, np.ndarray]


def credential_stuffing(batch: GroupBatch, p: dict[str, float]) -> tuple[np.ndarray, Cols]:
    denied = np.isin(batch.status, (401, 403))
    count = window_count(batch.ts, batch.offsets, denied, p["window_s"])
    online = np.where(denied, count / p["min_failures"], 0.0)
    return online, {"denied": denied, "count": count}


def request_flood(
    batch: GroupBatch, p: dict[str, float]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    w = p["window_s"]
    count = window_count(batch.ts, batch.offsets, np.ones(batch.n), w)
    return count / (p["max_rate_per_s"] * w), {"count": count}
