"""Compiled kernels of the in-memory path (:mod:`._mem`) that move events in and out of the
store: checking Arrow list columns, the top-2 margin, writing inputs, gathering batches. Each is
one loop over plain arrays (see :mod:`mlhunt.hunt._jit`); :mod:`._kern_records` holds those
that prepare the scopes and the population."""

from __future__ import annotations

import numpy as np

from mlhunt.hunt._jit import njit


@njit
def vec_check(
    offsets: np.ndarray, values: np.ndarray, valid: np.ndarray, val_valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(length, ok) per row of a list<double> column (the reader's ``_vector``): a null list is
    no vector (length 0, ok); an empty list, a null element or a non-finite one is not ok.
    ``valid``/``val_valid`` may be empty (no nulls)."""
    n = len(offsets) - 1
    length = np.zeros(n, np.int32)
    ok = np.ones(n, np.bool_)
    for i in range(n):
        if len(valid) and not valid[i]:
            continue
        a, b = offsets[i], offsets[i + 1]
        if b == a:
            ok[i] = False
            continue
        good = True
        for j in range(a, b):
            if (len(val_valid) and not val_valid[j]) or not np.isfinite(values[j]):
                good = False
                break
        ok[i] = good
        length[i] = b - a
    return length, ok


@njit
def put_x(
    offsets: np.ndarray,
    values: np.ndarray,
    length: np.ndarray,
    keep: np.ndarray,
    d: int,
    out: np.ndarray,
    start: int,
) -> int:
    """Rows ``keep`` of a list column into ``out[start:]`` (NaN rows where a row has no input,
    length 0); returns the rows written."""
    r = start
    for i in range(len(keep)):
        if not keep[i]:
            continue
        if length[i] == d and d > 0:
            a = offsets[i]
            for k in range(d):
                out[r, k] = values[a + k]
        else:
            for k in range(out.shape[1]):
                out[r, k] = np.nan
        r += 1
    return r - start


@njit
def margins(
    n: int,
    offsets: np.ndarray,
    values: np.ndarray,
    valid: np.ndarray,
    val_valid: np.ndarray,
    score: np.ndarray,
    score_valid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(margin, ok) for ``n`` rows from ``scores`` (a list column, possibly absent: ``offsets``
    of length 0) and ``score`` (possibly absent: empty): top-1 minus top-2 probability for several
    scores, |2p - 1| for one, NaN when neither says. ``ok`` is False where ``scores`` is not a
    vector of finite numbers or ``score`` is not finite (the reader's checks)."""
    out = np.full(n, np.nan)
    ok = np.ones(n, np.bool_)
    for i in range(n):
        if len(offsets) and (len(valid) == 0 or valid[i]):
            a, b = offsets[i], offsets[i + 1]
            if b == a:
                ok[i] = False
                continue
            t1, t2 = -np.inf, -np.inf
            good = True
            for j in range(a, b):
                v = values[j]
                if (len(val_valid) and not val_valid[j]) or not np.isfinite(v):
                    good = False
                    break
                if v > t1:
                    t1, t2 = v, t1
                elif v > t2:
                    t2 = v
            if not good:
                ok[i] = False
            elif b - a == 2:
                out[i] = abs(values[a] - values[a + 1])
            elif b - a > 2:
                out[i] = t1 - t2
            else:
                out[i] = abs(2 * t1 - 1)
            # a score beside the scores is still checked by the reader
        if len(score_valid) and score_valid[i]:
            s = score[i]
            if not np.isfinite(s):
                ok[i] = False
            elif (
                np.isnan(out[i])
                and (len(offsets) == 0 or (len(valid) and not valid[i]))
                and 0.0 <= s <= 1.0
            ):
                out[i] = abs(2 * s - 1)
    return out, ok


@njit
def gather(
    rec: np.ndarray, rec_f: np.ndarray, rec_i4: np.ndarray, rows: np.ndarray, label_map: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Columns of the store's packed records ``rows`` (see ``_mem.Store``): ts, line, margin,
    status, client code, label (through ``label_map``), file index."""
    m = len(rows)
    ts = np.empty(m)
    line = np.empty(m, np.int64)
    margin = np.empty(m)
    status = np.empty(m, np.int64)
    client = np.empty(m, np.int32)
    label = np.empty(m, np.int64)
    file = np.empty(m, np.int32)
    for j in range(m):
        i = rows[j]
        ts[j] = rec_f[i, 0]
        line[j] = rec[i, 1]
        margin[j] = rec_f[i, 2]
        status[j] = rec[i, 3]
        client[j] = rec_i4[i, 8]
        label[j] = label_map[rec_i4[i, 10]]
        file[j] = rec_i4[i, 11]
    return ts, line, margin, status, client, label, file
