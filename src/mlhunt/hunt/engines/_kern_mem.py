"""Compiled kernels of the in-memory path (:mod:`._mem`): checking Arrow list columns, the
top-2 margin, the stable counting sort into per-target order, the population's one pass and the
source-address statistics. Each is one loop over plain arrays (see :mod:`mlhunt.hunt._jit`)."""

from __future__ import annotations

import numpy as np

from mlhunt.hunt._jit import njit


@njit
def vec_check(offsets: np.ndarray, values: np.ndarray, valid: np.ndarray,
              val_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
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
def put_x(offsets: np.ndarray, values: np.ndarray, length: np.ndarray, keep: np.ndarray,
          d: int, out: np.ndarray, start: int) -> int:  # fmt: skip
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
    offsets: np.ndarray,
    values: np.ndarray,
    valid: np.ndarray,
    val_valid: np.ndarray,
    score: np.ndarray,
    score_valid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(margin, ok) per row from ``scores`` (a list column, possibly absent: ``offsets`` of
    length 0) and ``score`` (possibly absent: empty): top-1 minus top-2 probability for several
    scores, |2p - 1| for one, NaN when neither says. ``ok`` is False where ``scores`` is not a
    vector of finite numbers or ``score`` is not finite (the reader's checks)."""
    n = len(score_valid) if len(offsets) == 0 else len(offsets) - 1
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
def in_time_order(ts: np.ndarray, file: np.ndarray, line: np.ndarray) -> bool:
    """Whether rows are already ordered by (ts, file, line): then a stable sort by target alone
    gives the (target, ts, file, line) order."""
    for i in range(1, len(ts)):
        if ts[i] < ts[i - 1]:
            return False
        if ts[i] == ts[i - 1] and (
            file[i] < file[i - 1] or (file[i] == file[i - 1] and line[i] < line[i - 1])
        ):
            return False
    return True


@njit
def counting_sort(keys: np.ndarray, order: np.ndarray,
                  n_keys: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(rows, offsets): the rows with a key >= 0 grouped by key, stably (in ``order``, or in row
    order when ``order`` is empty); group k is ``rows[offsets[k]:offsets[k + 1]]``."""
    count = np.zeros(n_keys + 1, np.int64)
    m = len(order) if len(order) else len(keys)
    for j in range(m):
        k = keys[order[j]] if len(order) else keys[j]
        if k >= 0:
            count[k + 1] += 1
    for k in range(n_keys):
        count[k + 1] += count[k]
    offsets = count.copy()
    rows = np.empty(count[n_keys], np.int64)
    for j in range(m):
        i = order[j] if len(order) else j
        k = keys[i]
        if k >= 0:
            rows[count[k]] = i
            count[k] += 1
    return rows, offsets


@njit
def first_inputs(rows: np.ndarray, offsets: np.ndarray, has: np.ndarray, per: int) -> np.ndarray:
    """Each group's first ``per`` rows that have an input, group by group."""
    out = np.empty(len(rows), np.int64)
    m = 0
    for g in range(len(offsets) - 1):
        taken = 0
        for j in range(offsets[g], offsets[g + 1]):
            if taken >= per:
                break
            if has[rows[j]]:
                out[m] = rows[j]
                m += 1
                taken += 1
    return out[:m]


@njit
def feature_sums(x: np.ndarray, n: int, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                              np.ndarray, int]:  # fmt: skip
    """Per-feature min, max and, per chunk of ``chunk`` rows, sums and sums of squares of the
    first ``n`` rows that have an input (NaN rows have none); and how many have one. The chunk
    sums are added exactly (``math.fsum``) by the caller."""
    d = x.shape[1]
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    n_chunks = (n + chunk - 1) // chunk
    sums = np.zeros((max(n_chunks, 1), d))
    sq = np.zeros((max(n_chunks, 1), d))
    count = 0
    for i in range(n):
        if np.isnan(x[i, 0]):
            continue
        c = i // chunk
        count += 1
        for k in range(d):
            v = x[i, k]
            lo[k] = min(lo[k], v)
            hi[k] = max(hi[k], v)
            sums[c, k] += v
            sq[c, k] += v * v
    return lo, hi, sums, sq, count


@njit
def count_codes(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Rows per code (negative codes are not counted)."""
    out = np.zeros(n_codes, np.int64)
    for i in range(len(codes)):
        if codes[i] >= 0:
            out[codes[i]] += 1
    return out


@njit
def group_counts(rows: np.ndarray, offsets: np.ndarray, client: np.ndarray, denied: np.ndarray,
                 n_clients: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per group: events, distinct client codes and denied (401/403) answers."""
    g_n = len(offsets) - 1
    n = np.zeros(g_n, np.int64)
    nc = np.zeros(g_n, np.int64)
    nd = np.zeros(g_n, np.int64)
    last = np.full(n_clients, -1, np.int64)
    for g in range(g_n):
        n[g] = offsets[g + 1] - offsets[g]
        for j in range(offsets[g], offsets[g + 1]):
            i = rows[j]
            nd[g] += denied[i]
            c = client[i]
            if last[c] != g:
                last[c] = g
                nc[g] += 1
    return n, nc, nd


@njit
def bucket_peaks(rows: np.ndarray, offsets: np.ndarray, ts: np.ndarray, flag: np.ndarray,
                 window_s: float, groups: np.ndarray) -> np.ndarray:  # fmt: skip
    """Per group in ``groups`` (a mask; rows in time order): the most flagged events in 4
    consecutive buckets of ``floor(ts / window_s)`` (a superset of any window of ``window_s``
    seconds, as the SQL pre-filter counts it); 0 for the other groups."""
    out = np.zeros(len(offsets) - 1, np.int64)
    longest = 0
    for g in range(len(offsets) - 1):
        longest = max(longest, offsets[g + 1] - offsets[g])
    bk = np.empty(longest)
    cnt = np.empty(longest, np.int64)
    for g in range(len(offsets) - 1):
        if not groups[g]:
            continue
        m = 0
        for j in range(offsets[g], offsets[g + 1]):
            i = rows[j]
            if not flag[i]:
                continue
            b = np.floor(ts[i] / window_s)
            if m and bk[m - 1] == b:
                cnt[m - 1] += 1
            else:
                bk[m] = b
                cnt[m] = 1
                m += 1
        best, inside, hi = 0, 0, 0
        for lo in range(m):
            while hi < m and bk[hi] <= bk[lo] + 3.0:
                inside += cnt[hi]
                hi += 1
            best = max(best, inside)
            inside -= cnt[lo]
        out[g] = best
    return out


@njit
def gather(rec: np.ndarray, rec_f: np.ndarray, rec_i4: np.ndarray, rows: np.ndarray,
           label_map: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                           np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
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
