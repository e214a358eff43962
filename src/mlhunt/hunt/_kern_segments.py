"""Compiled segment kernels beside :mod:`mlhunt.hunt.events` (groups given by ``offsets``), used
by the detectors' kernels and by :func:`mlhunt.hunt.events.window_count`."""

from __future__ import annotations

import numpy as np

from mlhunt.hunt._jit import njit


@njit
def table_size(offsets: np.ndarray, smallest: int) -> tuple[int, int]:
    """(longest group, slots of an open-addressing table for it): the smallest power of two
    that is at least ``smallest`` and twice the longest group (half full at most)."""
    longest = 0
    for g in range(len(offsets) - 1):
        longest = max(longest, offsets[g + 1] - offsets[g])
    size = smallest
    while size < 2 * longest:
        size *= 2
    return longest, size


@njit
def window_counts(
    ts: np.ndarray, offsets: np.ndarray, flags: np.ndarray, window_s: float
) -> np.ndarray:
    """Flagged events of the group in (ts - window_s, ts], per event (window_s > 0, ts
    non-decreasing inside each group).

    Times are compared as the numpy version did (group index * gap + time since the group's
    first event), so boundary ties round the same way."""
    n = len(ts)
    top = -np.inf
    for g in range(len(offsets) - 1):
        for i in range(offsets[g], offsets[g + 1]):
            top = max(top, ts[i] - ts[offsets[g]])
    gap = top + 2 * window_s + 1.0
    out = np.empty(n)
    for g in range(len(offsets) - 1):
        a = offsets[g]
        lo = a
        inside = 0.0
        base = g * gap
        for i in range(a, offsets[g + 1]):
            inside += flags[i]
            edge = (base + (ts[i] - ts[a])) - window_s
            while lo <= i and base + (ts[lo] - ts[a]) <= edge:
                inside -= flags[lo]
                lo += 1
            out[i] = inside
    return out


@njit
def first_and_peak(
    online: np.ndarray, offsets: np.ndarray, alert_at: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per group: position (0-based, inside the group) of the first score >= ``alert_at`` (-1:
    none) and the highest score, reading NaN as 0, +inf as 1e6 and -inf as the lowest float
    (``np.nan_to_num(online, nan=0.0, posinf=1e6)``); -inf for an empty group."""
    n_groups = len(offsets) - 1
    first = np.full(n_groups, -1, np.int64)
    peak = np.full(n_groups, -np.inf)
    lowest = -np.finfo(np.float64).max
    for g in range(n_groups):
        a = offsets[g]
        for i in range(a, offsets[g + 1]):
            v = online[i]
            if np.isnan(v):
                v = 0.0
            elif v == np.inf:
                v = 1e6
            elif v == -np.inf:
                v = lowest
            if first[g] < 0 and v >= alert_at:
                first[g] = i - a
            if v > peak[g]:
                peak[g] = v
    return first, peak
