"""Compiled kernels of the extraction family (extraction, sybil extraction, low confidence,
credential stuffing, request flood) and of the per-batch input features they share.

Each kernel walks the groups of a batch (``offsets``) and their events once, keeping a few
counters per group, where the numpy versions needed (n, bins) temporaries and a dozen passes.
The reference numpy implementations live in ``tests/hunt_oracle_extraction.py``; the tests
check that both agree (integers exactly, floats to ~1e-9).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlhunt.hunt._jit import njit
from mlhunt.hunt._kern_segments import table_size

_BIG = np.finfo(np.float64).max


@njit
def input_features(x: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the inputs: (rows with an input: d > 0 and no NaN; previous event of the
    group or -1; features that differ from it, d+1 where either has no input)."""
    n, d = x.shape
    valid = np.empty(n, dtype=np.bool_)
    prev = np.empty(n, dtype=np.int64)
    diff = np.empty(n, dtype=np.int64)
    for i in range(n):
        prev[i] = i - 1
    for g in range(len(offsets) - 1):
        if offsets[g + 1] > offsets[g]:
            prev[offsets[g]] = -1
    for i in range(n):
        ok = d > 0
        for f in range(d):
            if np.isnan(x[i, f]):
                ok = False
                break
        valid[i] = ok
        c = d + 1
        if ok and prev[i] >= 0 and valid[i - 1]:
            c = 0
            for f in range(d):
                c += x[i, f] != x[i - 1, f]
        diff[i] = c
    return valid, prev, diff


@njit
def robust_rows(x: np.ndarray, valid: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Inputs divided by ``width`` (after np.nan_to_num), 0 on rows without an input."""
    n, d = x.shape
    out = np.empty((n, d))
    for i in range(n):
        if not valid[i]:
            for f in range(d):
                out[i, f] = 0.0
        else:
            for f in range(d):
                v = x[i, f]
                if np.isnan(v):
                    v = 0.0
                elif v > _BIG:
                    v = _BIG
                elif v < -_BIG:
                    v = -_BIG
                out[i, f] = v / width[f]
    return out


@njit
def extraction_scan(
    x: np.ndarray,
    offsets: np.ndarray,
    keep: np.ndarray,
    weight: np.ndarray,
    edges: np.ndarray,
    log_q: np.ndarray,
    table: np.ndarray,
    df: int,
    z_thr: float,
    kl_thr: float,
    min_events: float,
    g_out: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Online G-test and extraction score of the kept groups, one pass.

    Per group a (features, bins) count array; an event with weight adds, per feature,
    (c+1) ln(c+1) - c ln c - ln q_b for its bin's count c (``table[c]`` = c ln c), so
    G = 2 (sum of those - d n ln n). Returns (n_eff, score, z, kl), 0 outside kept groups,
    and writes G into ``g_out`` unless it is empty. Outputs are few and written once: fresh
    pages cost as much as the arithmetic here.
    """
    n = x.shape[0]
    nf = edges.shape[0]
    want_g = len(g_out) == n
    n_out = np.empty(n)
    score = np.empty(n)
    z_out = np.empty(n)
    kl_out = np.empty(n)  # holds the running sum until the element-wise pass
    counts = np.zeros((nf, log_q.shape[1]), dtype=np.int64)
    z_den = math.sqrt(2.0 * max(df, 1))
    k_max = edges.shape[1]
    step = np.empty(max(len(table) - 1, 0))  # (c+1) ln(c+1) - c ln c, the same doubles
    for c in range(len(step)):
        step[c] = table[c + 1] - table[c]
    for g in range(len(offsets) - 1):
        a, b_end = offsets[g], offsets[g + 1]
        if not keep[g]:
            for i in range(a, b_end):
                n_out[i] = score[i] = z_out[i] = kl_out[i] = 0.0
                if want_g:
                    g_out[i] = 0.0
            continue
        counts[:, :] = 0
        cum = 0.0
        n_eff = 0
        for i in range(a, b_end):  # serial part: bin counts, running sum, n_eff
            if weight[i]:
                acc = 0.0
                for f in range(nf):
                    v = x[i, f]
                    if not abs(v) <= _BIG:  # NaN or inf (rare): as np.nan_to_num
                        v = 0.0 if np.isnan(v) else (_BIG if v > 0 else -_BIG)
                    # searchsorted(edges, v, side="right") = edges <= v; counted without
                    # branches (padding is +inf, never <= v): no mispredicted loop exits
                    b = 0
                    for e in range(k_max):
                        b += edges[f, e] <= v
                    c = counts[f, b]
                    counts[f, b] = c + 1
                    acc += step[c] - log_q[f, b]
                cum += acc
                n_eff += 1
            kl_out[i] = cum
            n_out[i] = n_eff
        for i in range(a, b_end):  # element-wise part, kept apart so that it vectorises
            ne = n_out[i]
            gi = max(2.0 * (kl_out[i] - nf * table[np.int64(ne)]), 0.0)
            z = (gi - df) / z_den
            kl = gi / (2.0 * max(ne, 1.0)) if ne > 0 else 0.0
            if want_g:
                g_out[i] = gi
            z_out[i] = z
            kl_out[i] = kl
            s = min(z / z_thr, kl / kl_thr)
            score[i] = max(s, 0.0) if ne >= min_events else 0.0
    return n_out, score, z_out, kl_out


def xlogx(v: np.ndarray) -> np.ndarray:
    """v ln v (0 at 0), as the numpy G-test computed it."""
    return np.where(v > 0, v * np.log(np.maximum(v, 1.0)), 0.0)


def g_scan(
    x: np.ndarray,
    offsets: np.ndarray,
    weight: np.ndarray,
    edges: tuple[np.ndarray, ...],
    probs: tuple[np.ndarray, ...],
    keep: np.ndarray | None = None,
    *,
    z_thr: float = 1.0,
    kl_thr: float = 1.0,
    min_events: float = 0.0,
    want_g: bool = False,
) -> tuple[Any, ...]:
    """:func:`extraction_scan` on a batch's arrays and a population's bins: (G or None,
    n_eff, score, z, kl) per event and the degrees of freedom; groups where ``keep`` is
    False are skipped (all zeros)."""
    if len(edges) > (x.shape[1] if x.ndim == 2 else 0):  # the kernel does not check bounds
        raise ValueError(f"{len(edges)} binned features but inputs of width {x.shape[-1]}")
    e_pad, lq = padded_bins(edges, probs)
    df = sum(len(p) - 1 for p in probs)
    longest = int(np.diff(offsets).max(initial=0))
    table = xlogx(np.arange(longest + 2, dtype=np.float64))
    if keep is None:
        keep = np.ones(len(offsets) - 1, dtype=np.bool_)
    g = np.empty(len(x) if want_g else 0)
    out = extraction_scan(
        np.ascontiguousarray(x, dtype=np.float64),
        np.ascontiguousarray(offsets, dtype=np.int64),
        np.ascontiguousarray(keep, dtype=np.bool_),
        np.ascontiguousarray(weight > 0),
        e_pad,
        lq,
        table,
        df,
        float(z_thr),
        float(kl_thr),
        float(min_events),
        g,
    )
    return (g if want_g else None, *out, df)


def padded_bins(
    edges: tuple[np.ndarray, ...], probs: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-feature edges and bin shares as padded arrays: (edges (d, k), +inf
    beyond each feature's own; log shares (d, k + 1))."""
    d = len(edges)
    k = max((len(e) for e in edges), default=0)
    e_pad = np.full((d, max(k, 1)), np.inf)
    lq = np.zeros((d, max(k, 1) + 1))
    for f, (e, p) in enumerate(zip(edges, probs, strict=True)):
        e_pad[f, : len(e)] = e
        lq[f, : len(p)] = np.log(p)
    return e_pad, lq


@njit
def near_scores(
    margin: np.ndarray,
    offsets: np.ndarray,
    near_margin: float,
    p0: float,
    z_thr: float,
    ratio: float,
    min_events: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Low-confidence running binomial test: (score, near, z, share) per event."""
    n = len(margin)
    online = np.empty(n)
    near = np.empty(n, dtype=np.bool_)
    z_out = np.empty(n)
    share = np.empty(n)
    for g in range(len(offsets) - 1):
        k = 0.0
        m = 0.0
        for i in range(offsets[g], offsets[g + 1]):
            v = margin[i]
            near[i] = False
            if not np.isnan(v):
                m += 1.0
                if v < near_margin:
                    k += 1.0
                    near[i] = True
            z = (k - m * p0) / math.sqrt(max(m, 1.0) * p0 * (1 - p0))
            sh = k / max(m, 1.0)
            z_out[i] = z
            share[i] = sh
            s = min(z / z_thr, sh / (ratio * p0))
            online[i] = max(s, 0.0) if m >= min_events else 0.0
    return online, near, z_out, share


@njit
def distinct_running(words: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per event: distinct keys (rows of ``words``) seen so far in its group; an
    open-addressing set of row indices per group, compared word by word."""
    n, k = words.shape
    out = np.empty(n)
    _longest, size = table_size(offsets, 2)
    slot_row = np.empty(size, dtype=np.int64)
    slot_gen = np.full(size, -1, dtype=np.int64)
    for g in range(len(offsets) - 1):
        seen = 0
        for i in range(offsets[g], offsets[g + 1]):
            h = np.uint64(1469598103934665603)
            for j in range(k):
                h = (h ^ np.uint64(words[i, j])) * np.uint64(1099511628211)
            s = np.int64(h >> np.uint64(11)) & (size - 1)
            while True:
                if slot_gen[s] != g:
                    slot_gen[s] = g
                    slot_row[s] = i
                    seen += 1
                    break
                r = slot_row[s]
                same = True
                for j in range(k):
                    if words[r, j] != words[i, j]:
                        same = False
                        break
                if same:
                    break
                s = (s + 1) & (size - 1)
            out[i] = seen
    return out
