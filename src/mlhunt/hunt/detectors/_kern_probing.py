"""Compiled kernels of the near-duplicate family of detectors (evasion probing, membership
probing, inversion sweeps): one pass over each group's events with a few counters, instead of
whole-batch sorts and (n, d) temporaries. They reproduce the numpy formulation they replaced
(``tests/hunt_oracle_probing.py``) operation for operation, NaN/inf corner cases included, so
the results are the same bit for bit.
"""

from __future__ import annotations

import numpy as np

from mlhunt.hunt._jit import njit
from mlhunt.hunt._kern_segments import table_size

_I64_MIN = np.iinfo(np.int64).min
_F64_MAX = np.finfo(np.float64).max
_MIX = np.int64(-7046029254386353131)  # 0x9E3779B97F4A7C15 as int64: spreads codes over slots


@njit
def _nmax(a: float, b: float) -> float:
    """``np.maximum`` of two scalars (NaN wins)."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


@njit
def _nmin(a: float, b: float) -> float:
    """``np.minimum`` of two scalars (NaN wins)."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a <= b else b


@njit
def _nan_to_num(v: float) -> float:
    if v != v:
        return 0.0
    if v == np.inf:
        return _F64_MAX
    if v == -np.inf:
        return -_F64_MAX
    return v


@njit
def _to_i64(q: float) -> np.int64:
    """``float64 -> int64`` as numpy casts on x86: NaN and out-of-range values give INT64_MIN."""
    if q >= -9.223372036854775808e18 and q < 9.223372036854775808e18:
        return np.int64(q)
    return np.int64(_I64_MIN)


@njit
def _rate(count: float, n: float, count_thr: float, share_thr: float, min_events: float) -> float:
    if n < min_events or (count == 0.0 and count_thr > 0.0 and share_thr > 0.0):
        return 0.0  # what the divisions below give, without them (the common case)
    share = count / _nmax(n, 1.0)
    s = _nmin(count / count_thr, share / share_thr)
    return s if n >= min_events else 0.0


@njit
def _chunk_codes(
    z: np.ndarray,
    a: int,
    b: int,
    c: int,
    cell: float,
    grids: int,
    chunk: int,
    mult: np.ndarray,
    zt: np.ndarray,
    codes: np.ndarray,
) -> None:
    """Hashes of chunk ``c`` of events ``a..b`` on each grid into ``codes[grid, i - a]``
    (``z``: inputs in robust units, 0 rows without an input). Column by column over a
    transposed copy of the chunk, so that the divisions, floors and multiply-adds run as SIMD
    loops over the events."""
    j0 = c * chunk
    j1 = min(z.shape[1], j0 + chunk)
    size = b - a
    for i in range(a, b):
        for j in range(j0, j1):
            zt[j - j0, i - a] = z[i, j]
    codes[:, :size] = 0
    col = zt[j1 - j0]  # spare row: one column divided by the cell
    for j in range(j0, j1):
        src = zt[j - j0]
        for i in range(size):
            col[i] = src[i] / cell
        m = mult[j % len(mult)]  # (multipliers repeat past len(mult) coordinates)
        for gi in range(grids):
            offset = gi / grids
            row = codes[gi]
            for i in range(size):
                row[i] += _to_i64(np.floor(col[i] + offset)) * m


@njit
def _workspace(
    z: np.ndarray, offsets: np.ndarray, grids: int, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(best, transposed chunk, chunk hashes per grid, chunks matched per grid, latest match
    per grid, table keys, table entries): the output and the scratch arrays of
    :func:`_match_group`, sized for the longest group (O(group), whatever the number of
    chunks). Fresh output memory costs a page fault per 4 KiB, as much as the rest of the
    work: only what is needed is allocated."""
    n, d = z.shape
    longest, cap = table_size(offsets, 8)
    return (
        np.full(n, -1, dtype=np.int64),
        np.empty((min(d, chunk) + 1, longest)),
        np.empty((grids, longest), dtype=np.int64),
        np.empty((grids, longest), dtype=np.int64),
        np.empty((grids, longest), dtype=np.int64),
        np.empty(cap, dtype=np.int64),
        np.empty(cap, dtype=np.int64),
    )


@njit
def _match_group(
    z: np.ndarray,
    valid: np.ndarray,
    a: int,
    b: int,
    cell: float,
    grids: int,
    chunk: int,
    mult: np.ndarray,
    best: np.ndarray,
    zt: np.ndarray,
    codes: np.ndarray,
    hits: np.ndarray,
    latest: np.ndarray,
    keys: np.ndarray,
    last: np.ndarray,
) -> None:
    """``best[a:b]``: the latest earlier near duplicate in the group of events ``a..b``, or -1.

    Inputs in robust units (``z``: 0 rows for events without an input, which never match:
    ``valid``) are quantised on ``grids`` grids shifted by ``g / grids`` cells and hashed per
    ``chunk`` coordinates (``floor(z / cell + offset)`` as int64, times the fixed odd
    multipliers ``mult``, summed with int64 wrap-around); per chunk and grid an
    open-addressing table keyed by hash holds the group's latest event with that hash (the
    same answer as a stable sort by hash). An event matches on a grid when all its chunks
    (one chunk) or at least half of them (long vectors) were seen before."""
    k = max(1, -(-z.shape[1] // chunk))
    size = 8
    while size < 2 * (b - a):
        size *= 2
    mask = size - 1
    hits[:, : b - a] = 0
    latest[:, : b - a] = -1
    for c in range(k):
        _chunk_codes(z, a, b, c, cell, grids, chunk, mult, zt, codes)
        for gi in range(grids):
            last[:size] = -1
            for i in range(a, b):
                code = codes[gi, i - a]
                h = code * _MIX
                h = (h ^ (h >> 32)) & mask
                while last[h] >= 0 and keys[h] != code:
                    h = (h + 1) & mask
                m = last[h]
                keys[h] = code
                last[h] = i
                if m >= 0 and valid[i] and valid[m]:
                    hits[gi, i - a] += 1
                    latest[gi, i - a] = max(latest[gi, i - a], m)
    for i in range(a, b):
        for gi in range(grids):
            frac = hits[gi, i - a] / k if k > 1 else float(hits[gi, i - a])
            if frac >= (1.0 if k == 1 else 0.5):
                best[i] = max(best[i], latest[gi, i - a])


EVASION, MEMBERSHIP = 1, 2


@njit
def probing(
    z: np.ndarray,
    valid: np.ndarray,
    x: np.ndarray,
    label: np.ndarray,
    offsets: np.ndarray,
    width: np.ndarray,
    cell: float,
    chunk: int,
    mult: np.ndarray,
    mode: int,
    p: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One kernel for both near-duplicate detectors (one compiled body to load from the cache,
    not two), on 2 grids: ``mode`` EVASION or MEMBERSHIP, ``p`` that detector's thresholds.
    Returns (match, online, near or noisy, flip, flips so far), flip and flips empty for
    MEMBERSHIP. Each group's statistics are computed right after its matches, while its
    inputs are in cache. ``z``: the inputs in robust units (0 rows without an input),
    ``valid``: events with an input, ``x``: the inputs (for the detectors' statistics),
    ``label``: label codes (EVASION), ``width``: the population's robust unit (MEMBERSHIP)."""
    n = z.shape[0]
    grids = 2
    match, zt, codes, hits, latest, keys, last = _workspace(z, offsets, grids, chunk)
    online = np.zeros(n)
    flag = np.zeros(n, dtype=np.bool_)
    flip = np.zeros(n if mode == EVASION else 0, dtype=np.bool_)
    flips = np.zeros(n if mode == EVASION else 0)
    for g in range(len(offsets) - 1):
        a, b = offsets[g], offsets[g + 1]
        _match_group(
            z, valid, a, b, cell, grids, chunk, mult, match, zt, codes, hits, latest, keys, last
        )
        if mode == EVASION:
            _evasion_group(x, label, match, a, b, p, online, flag, flip, flips)
        else:
            _membership_group(x, match, valid, width, a, b, p, online, flag)
    return match, online, flag, flip, flips


@njit
def _changed(x: np.ndarray, i: int, m: int) -> int:
    c = 0
    for j in range(x.shape[1]):
        if x[i, j] != x[m, j]:
            c += 1
    return c


@njit
def _evasion_group(
    x: np.ndarray,
    label: np.ndarray,
    match: np.ndarray,
    a: int,
    b: int,
    p: np.ndarray,
    online: np.ndarray,
    near: np.ndarray,
    flip: np.ndarray,
    flips: np.ndarray,
) -> None:
    min_flips, flip_share, min_chain, chain_share, min_events, use_chain = p[:6]
    n_flip = 0.0
    n_near = 0.0
    for i in range(a, b):
        m = match[i]
        if m >= 0 and _changed(x, i, m) > 0:
            near[i] = True
            n_near += 1.0
            if label[i] != label[m] and label[i] >= 0:
                flip[i] = True
                n_flip += 1.0
        flips[i] = n_flip
        pos = float(i - a) + 1.0
        s = _rate(n_flip, pos, min_flips, flip_share, min_events)
        if use_chain > 0.0:
            s = _nmax(s, _rate(n_near, pos, min_chain, chain_share, min_events))
        online[i] = s


@njit
def _membership_group(
    x: np.ndarray,
    match: np.ndarray,
    valid: np.ndarray,
    width: np.ndarray,
    a: int,
    b: int,
    p: np.ndarray,
    online: np.ndarray,
    noisy: np.ndarray,
) -> None:
    min_changed, max_step, min_repeats, repeat_share, min_events = p[:5]
    d = x.shape[1]
    count = 0.0
    for i in range(a, b):
        m = match[i]
        if m >= 0 and valid[i] and d > 0:
            changed = _changed(x, i, m)
            if changed > 0 and changed >= min_changed:
                small = True
                for j in range(d):
                    rel = abs(x[i, j] - x[m, j]) / _nmax(abs(x[m, j]), width[j] * 1e-3)
                    if not rel <= max_step:  # a NaN step is not small either
                        small = False
                        break
                if small:
                    noisy[i] = True
                    count += 1.0
        online[i] = _rate(count, float(i - a) + 1.0, min_repeats, repeat_share, min_events)


@njit
def inversion(
    x: np.ndarray,
    prev: np.ndarray,
    diff: np.ndarray,
    width: np.ndarray,
    offsets: np.ndarray,
    min_length: float,
    min_coverage: float,
    min_sweeps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(online score, sweep done here, swept feature or -1, run length, coverage of the
    feature's range so far) of the inversion-sweep detector: a run is consecutive queries that
    each change only the same one field vs the previous query.

    A run's coverage is (its largest swept value - its smallest, its base query's included)
    / the field's width, computed from that run's values alone: the same number whatever other
    groups share the batch, so engines that batch groups differently (DuckDB's scan, Spark's
    hash buckets) agree even where a coverage sits exactly on its threshold."""
    n, d = x.shape
    feat = np.full(n, -1, dtype=np.int32)  # (int32: fresh memory is what costs here)
    for i in range(n):
        if diff[i] == 1:
            p = prev[i]
            for j in range(d):
                if x[i, j] != x[p, j]:
                    feat[i] = j
                    break
    length = np.empty(n, dtype=np.int32)  # (every event is written below: no zeroing pass)
    coverage = np.empty(n)
    done = np.empty(n, dtype=np.bool_)
    online = np.empty(n)
    start = 0
    top = 0.0  # the run's largest and smallest swept value so far, its base query's included
    bottom = 0.0
    ok_before = False
    for g in range(len(offsets) - 1):
        sweeps = 0.0
        for i in range(offsets[g], offsets[g + 1]):
            p = prev[i]
            f = feat[i]
            new_run = f < 0 or f != (feat[p] if p >= 0 else -2)
            if new_run or p < 0:
                start = i
                if f >= 0:  # (then p >= 0) the run's base query; only swept runs need it
                    top = bottom = x[p, f]
            length[i] = 0
            coverage[i] = 0.0
            if f >= 0:  # swept rows hold no NaN (diff == 1): max and min are exact
                v = x[i, f]
                top = max(top, v)
                bottom = min(bottom, v)
                length[i] = i - start + 2  # the run's base query counts too
                coverage[i] = _nan_to_num((top - bottom) / width[f])
            ok = length[i] >= min_length and coverage[i] >= min_coverage
            # count each run once, at the query where it first qualifies
            done[i] = ok and not (ok_before and not new_run)
            if done[i]:
                sweeps += 1.0
            ok_before = ok
            online[i] = 0.0 if sweeps == 0.0 and min_sweeps > 0.0 else sweeps / min_sweeps
    return online, done, feat, length, coverage
