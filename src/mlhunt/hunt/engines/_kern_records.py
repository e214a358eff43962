"""Compiled kernels that prepare the in-memory path's scopes and population (:mod:`._mem_prep`),
reading the store's packed records directly (``rec``: int64 words, ``rec_f``/``rec_i4``: the
same memory as float64 and int32; layout in ``_mem.Store``), so each is one pass over memory:
the store's counts, the stable counting sort into per-target order, the population's feature
sums and sample, and the source-address statistics."""

from __future__ import annotations

import numpy as np

from mlhunt.hunt._jit import njit

# record word / int32 column indices (see _mem.Store)
_TS, _LINE, _MARGIN, _STATUS = 0, 1, 2, 3
_CLIENT, _SOURCE, _LABEL, _FILE = 8, 9, 10, 11


@njit
def _denied(rec: np.ndarray, i: int) -> bool:
    return rec[i, _STATUS] == 401 or rec[i, _STATUS] == 403


@njit
def scan_records(
    rec: np.ndarray,
    rec_f: np.ndarray,
    rec_i4: np.ndarray,
    n: int,
    n_clients: int,
    n_sources: int,
    n_labels: int,
    near: float,
) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray, int, int, np.ndarray, np.ndarray]:
    """Over the first ``n`` records: whether they are in (ts, file, line) order (then a stable
    sort by target alone gives the detectors' order), events per client, source and label
    code, events with a known margin and those with a margin below ``near``; per source also
    denied (401/403) answers and client-id runs (changes of client id from one of its events
    to the next: at least its distinct client ids, a bound found without sorting)."""
    c_count = np.zeros(n_clients, np.int64)
    s_count = np.zeros(n_sources, np.int64)
    s_denied = np.zeros(n_sources, np.int64)
    s_runs = np.zeros(n_sources, np.int64)
    s_last = np.full(n_sources, -1, np.int32)
    l_count = np.zeros(n_labels, np.int64)
    ordered = True
    known = 0
    below = 0
    for i in range(n):
        if ordered and i > 0:
            a, b = rec_f[i - 1, _TS], rec_f[i, _TS]
            f, e = rec_i4[i, _FILE], rec_i4[i - 1, _FILE]
            if b < a or (b == a and (f < e or (f == e and rec[i, _LINE] < rec[i - 1, _LINE]))):
                ordered = False
        c_count[rec_i4[i, _CLIENT]] += 1
        s = rec_i4[i, _SOURCE]
        if s >= 0:
            s_count[s] += 1
            s_denied[s] += _denied(rec, i)
            if s_last[s] != rec_i4[i, _CLIENT]:
                s_last[s] = rec_i4[i, _CLIENT]
                s_runs[s] += 1
        l_count[rec_i4[i, _LABEL]] += 1
        m = rec_f[i, _MARGIN]
        if not np.isnan(m):
            known += 1
            if m < near:
                below += 1
    return ordered, c_count, s_count, l_count, known, below, s_denied, s_runs


@njit
def counting_sort(
    rec_i4: np.ndarray, col: int, rank: np.ndarray, order: np.ndarray, n: int, n_keys: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, offsets): the first ``n`` records grouped by ``rank[code]`` of int32 column
    ``col`` (records whose code is negative or ranks negative are left out), stably in
    ``order`` (row order when empty); group k is ``rows[offsets[k]:offsets[k + 1]]``."""
    count = np.zeros(n_keys + 1, np.int64)
    m = len(order) if len(order) else n
    for j in range(m):
        i = order[j] if len(order) else j
        c = rec_i4[i, col]
        if c >= 0 and rank[c] >= 0:
            count[rank[c] + 1] += 1
    for k in range(n_keys):
        count[k + 1] += count[k]
    offsets = count.copy()
    rows = np.empty(count[n_keys], np.int64)
    for j in range(m):
        i = order[j] if len(order) else j
        c = rec_i4[i, col]
        if c >= 0 and rank[c] >= 0:
            k = rank[c]
            rows[count[k]] = i
            count[k] += 1
    return rows, offsets


@njit
def first_inputs(rows: np.ndarray, offsets: np.ndarray, x: np.ndarray, per: int) -> np.ndarray:
    """Each group's first ``per`` rows that have an input (a NaN row has none), in order."""
    out = np.empty(len(rows), np.int64)
    m = 0
    for g in range(len(offsets) - 1):
        taken = 0
        for j in range(offsets[g], offsets[g + 1]):
            if taken >= per:
                break
            if not np.isnan(x[rows[j], 0]):
                out[m] = rows[j]
                m += 1
                taken += 1
    return out[:m]


@njit
def feature_sums(
    x: np.ndarray, n: int, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
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
def group_counts(
    rows: np.ndarray, offsets: np.ndarray, rec: np.ndarray, rec_i4: np.ndarray, n_clients: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
            nd[g] += _denied(rec, i)
            c = rec_i4[i, _CLIENT]
            if last[c] != g:
                last[c] = g
                nc[g] += 1
    return n, nc, nd


@njit
def bucket_peaks(
    rows: np.ndarray,
    offsets: np.ndarray,
    rec: np.ndarray,
    rec_f: np.ndarray,
    window_s: float,
    denied_only: bool,
    groups: np.ndarray,
) -> np.ndarray:
    """Per group in ``groups`` (a mask; rows in time order): the most events (denied ones only
    if ``denied_only``) in 4 consecutive buckets of ``floor(ts / window_s)`` (a superset of any
    window of ``window_s`` seconds, as the SQL pre-filter counts it); 0 for the other groups."""
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
            if denied_only and not _denied(rec, i):
                continue
            b = np.floor(rec_f[i, _TS] / window_s)
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
