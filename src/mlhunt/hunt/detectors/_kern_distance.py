"""Numba kernels of the query-distance test (what they compute: ``distance.py``).

Per group: the nearest of the previous ``window`` events with an input (one vector loop per lag
and feature over ``CHUNK`` events held in cache, no batch-sized temporaries), then the binned
KS statistic from per-edge counts reset at the group start (no (edges, n) indicator matrix),
and in :func:`distance_test` the detector's score, all in one call.

Same numbers as the numpy code they replaced (tests/hunt_oracle_distance.py), bit for bit:

- squared distances are float32 and summed in the order numpy's ``einsum("ij,ij->i")`` uses on
  x86-64 builds (baseline SSE: 4 lanes, blocks of 16 features added last-to-first, then
  ``(l0 + l1) + (l2 + l3)``), so a distance that equals a reference edge lands in the same bin
  and ``reference_edges`` gives identical edges. A numpy built with another vector width or
  with fused multiply-add (aarch64) rounds differently: within float32 rounding (~1e-7 rel.);
- the client CDF is ``float32(count) * float32(1 / max(m, 1))`` and D = float32 differences,
  exactly as the numpy version computed them.
"""

from __future__ import annotations

import numpy as np

from mlhunt.hunt._jit import njit


@njit
def _schedule(d: int) -> tuple[np.ndarray, np.ndarray]:
    """(feature, lane) in the order numpy's einsum adds the squares (module docstring): blocks
    of 16 features as 4 vectors of 4 lanes, added last vector first, then 4 at a time. Only the
    order within a lane matters; the lanes are summed as ``(l0 + l1) + (l2 + l3)``."""
    feat = np.empty(d, dtype=np.int64)
    lane = np.empty(d, dtype=np.int64)
    s = 0
    c = 0
    while d - c >= 16:
        for blk in range(3, -1, -1):
            for la in range(4):
                feat[s] = c + 4 * blk + la
                lane[s] = la
                s += 1
        c += 16
    while c < d:  # the missing lanes are zero-filled there: adding 0 is exact, skip them
        for la in range(min(4, d - c)):
            feat[s] = c + la
            lane[s] = la
            s += 1
        c += 4
    return feat, lane


#: Events scored per pass of :func:`_group_nn` (its scratch then stays in the L1/L2 cache).
CHUNK = 512


@njit
def _group_nn(
    z: np.ndarray,
    valid: np.ndarray,
    a: int,
    b: int,
    window: int,
    feat: np.ndarray,
    lane: np.ndarray,
    buf: np.ndarray,
    acc: np.ndarray,
    best: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[a:b]``: distance to the nearest of the previous ``window`` valid events of the
    group ``[a, b)`` (inf if none; NaN propagates as ``np.minimum`` does).

    One pass per lag as the numpy version, but ``CHUNK`` events at a time, over their rows and
    the ``window`` rows before them copied to ``buf`` (features, events): each feature's
    squares are one contiguous vector loop on cached data. ``acc`` (4 lanes, events) and
    ``best`` are scratch (:func:`_scratch`)."""
    d = z.shape[1]
    w = max(window, 0)
    inf = np.float32(np.inf)
    zero = np.float32(0.0)
    for t0 in range(a, b, CHUNK):
        t1 = min(b, t0 + CHUNK)
        s0 = max(a, t0 - w)  # buf row u is event s0 + u; the targets are rows h..g-1
        g = t1 - s0
        h = t0 - s0
        for u in range(g):
            for c in range(d):
                buf[c, u] = z[s0 + u, c]
        for u in range(h, g):
            best[u] = inf
        for lag in range(1, min(w, g - 1) + 1):
            u0 = max(h, lag)  # first target whose event lag back is in buf
            span = g - u0
            # views starting at the targets / their sources: indices from 0 up, which numba
            # (no negative-index wrap to handle) and LLVM (contiguous) turn into vector loops
            tgt_best = best[u0:g]
            src_valid = valid[s0 + u0 - lag : s0 + g - lag]
            for la in range(d, 4):  # lanes no feature reaches (d < 4) stay 0
                for k in range(span):
                    acc[la, k] = zero
            for s in range(d):
                tgt = buf[feat[s], u0:g]
                src = buf[feat[s], u0 - lag : g - lag]
                lane_acc = acc[lane[s]]
                if s < 4:  # the first 4 steps start the 4 lanes (t*t + 0 is t*t)
                    for k in range(span):
                        t = tgt[k] - src[k]
                        lane_acc[k] = t * t
                else:
                    for k in range(span):
                        t = tgt[k] - src[k]
                        lane_acc[k] = t * t + lane_acc[k]
            for k in range(span):
                d2 = (acc[0, k] + acc[1, k]) + (acc[2, k] + acc[3, k])
                cur = tgt_best[k]
                # smaller or NaN replaces, a NaN best stays (np.minimum); branch-free: vectorised
                take = src_valid[k] & (cur == cur) & (not d2 >= cur)
                tgt_best[k] = d2 if take else cur
        for u in range(h, g):
            out[s0 + u] = np.sqrt(best[u])


@njit
def _scratch(
    d: int, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(feat, lane, buf, acc, best) for :func:`_group_nn`."""
    rows = CHUNK + max(window, 0)
    feat, lane = _schedule(d)
    buf = np.empty((d, rows), dtype=np.float32)
    acc = np.empty((4, rows), dtype=np.float32)
    best = np.empty(rows, dtype=np.float32)
    return feat, lane, buf, acc, best


@njit
def _group_ks(
    dist: np.ndarray,
    weight: np.ndarray,
    a: int,
    b: int,
    edges: np.ndarray,
    ref: np.ndarray,
    cum: np.ndarray,
    diffs: np.ndarray,
    m: np.ndarray,
    d_plus: np.ndarray,
) -> None:
    """Online KS D+ over the group ``[a, b)``, in float32 as the numpy version. ``cum[j]``
    (reset here; int32 as the numpy version's indicator) counts the counted distances <=
    ``edges[j]``, i.e. ``searchsorted(edges, x, side="left") <= j``; a NaN distance falls after
    every edge. The statistic only moves when a counted distance arrives, so it is recomputed
    then and carried forward otherwise: one vector loop into ``diffs`` (F_ref - F_client),
    then a maximum over 4 running maxima (exact in any order: the reference CDF has no NaN)."""
    cum[:] = 0
    count = 0
    dp = 0.0
    zero = np.float32(0.0)
    n_edges = len(cum)
    for i in range(a, b):
        if weight[i] or i == a:  # at the group start: the statistic of nothing counted
            x = np.nan  # falls after every edge: adds nothing
            if weight[i]:
                count += 1
                x = float(dist[i])
            inv = np.float32(1.0 / max(float(count), 1.0))
            for j in range(n_edges):
                c = cum[j] + np.int32(edges[j] >= x)
                cum[j] = c
                diffs[j] = ref[j] - np.float32(c) * inv
            p0 = p1 = p2 = p3 = zero
            j = 0
            while j + 4 <= n_edges:
                p0 = diffs[j] if diffs[j] > p0 else p0
                p1 = diffs[j + 1] if diffs[j + 1] > p1 else p1
                p2 = diffs[j + 2] if diffs[j + 2] > p2 else p2
                p3 = diffs[j + 3] if diffs[j + 3] > p3 else p3
                j += 4
            while j < n_edges:
                p0 = diffs[j] if diffs[j] > p0 else p0
                j += 1
            p0 = p1 if p1 > p0 else p0
            p2 = p3 if p3 > p2 else p2
            dp = float(p2 if p2 > p0 else p0)
        m[i] = count
        d_plus[i] = dp


@njit
def distance_test(
    z: np.ndarray,
    offsets: np.ndarray,
    valid: np.ndarray,
    diff: np.ndarray,
    window: int,
    edges: np.ndarray,
    ref: np.ndarray,
    thresholds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The detector's pass, one group at a time: (dist, counted weight, m, D+, lambda, online
    score). A distance is counted when the event has an input, changed >= 2 fields, has
    ``window`` events behind it in the group and a finite distance. ``thresholds`` is
    (lambda_threshold, d_threshold, min_events); the score is
    ``min(lambda / lambda_threshold, D+ / d_threshold)`` (NaN wins, as ``np.minimum``) once
    ``m >= min_events``, else 0."""
    n = z.shape[0]
    dist = np.empty(n, dtype=np.float32)
    weight = np.empty(n, dtype=np.bool_)
    m = np.empty(n, dtype=np.float64)
    d_plus = np.empty(n, dtype=np.float64)
    lam = np.empty(n, dtype=np.float64)
    online = np.empty(n, dtype=np.float64)
    cum = np.zeros(len(edges), dtype=np.int32)
    diffs = np.empty(len(edges), dtype=np.float32)
    feat, lane, buf, acc, best = _scratch(z.shape[1], window)
    lam_t, d_t, min_events = thresholds[0], thresholds[1], thresholds[2]
    for g in range(len(offsets) - 1):
        a, b = offsets[g], offsets[g + 1]
        _group_nn(z, valid, a, b, window, feat, lane, buf, acc, best, dist)
        for i in range(a, b):
            weight[i] = valid[i] and diff[i] >= 2 and i - a >= window and np.isfinite(dist[i])
        _group_ks(dist, weight, a, b, edges, ref, cum, diffs, m, d_plus)
    for i in range(n):
        lam[i] = d_plus[i] * np.sqrt(m[i])
        x = lam[i] / lam_t
        y = d_plus[i] / d_t
        s = x if (x != x or x < y) else y
        online[i] = s if m[i] >= min_events else 0.0
    return dist, weight, m, d_plus, lam, online
