"""Per-event features shared by several detectors, all vectorised over a group batch."""

from __future__ import annotations

import numpy as np

from mlhunt.hunt.events import GroupBatch, Population, seg_cumsum, seg_prev

_MULT = np.random.default_rng(20240305).integers(1, 2**61, size=512, dtype=np.int64) | 1


def has_input(batch: GroupBatch) -> np.ndarray:
    """Events that carry an input (cached per batch: do not modify the result)."""
    if "has_input" not in batch.cache:
        batch.cache["has_input"] = (~np.isnan(batch.x).any(axis=1) if batch.x.shape[1]
                                    else np.zeros(batch.n, bool))  # fmt: skip
    out: np.ndarray = batch.cache["has_input"]
    return out


def changed_vs_prev(batch: GroupBatch) -> tuple[np.ndarray, np.ndarray]:
    """(index of the previous event of the group or -1, number of features that differ from
    it; d+1 where there is no comparable previous event). Cached per batch."""
    if "changed" in batch.cache:
        cached: tuple[np.ndarray, np.ndarray] = batch.cache["changed"]
        return cached
    prev = seg_prev(batch.offsets)
    d = batch.x.shape[1]
    valid = has_input(batch)
    diff = np.full(batch.n, d + 1, dtype=np.int64)
    if batch.n > 1:
        # the previous event is the previous row, except at group starts (prev == -1)
        ok = (prev[1:] >= 0) & valid[1:] & valid[:-1]
        diff[1:] = np.where(ok, (batch.x[1:] != batch.x[:-1]).sum(axis=1), d + 1)
    batch.cache["changed"] = (prev, diff)
    return prev, diff


def robust_inputs(batch: GroupBatch, pop: Population) -> np.ndarray:
    """Inputs in the population's robust units, 0 for events without an input (cached)."""
    key = ("robust", id(pop))
    if key not in batch.cache:
        valid = has_input(batch)
        batch.cache[key] = np.where(valid[:, None], pop.robust(np.nan_to_num(batch.x)), 0.0)
    out: np.ndarray = batch.cache[key]
    return out


def grid_codes(z: np.ndarray, cell: float, offset: float, chunk: int) -> np.ndarray:
    """(n, chunks) hash of each chunk of ``chunk`` quantised coordinates (Blacklight-style:
    similar inputs share most of their hashes)."""
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
    """For every event: the latest earlier event of the same group with the same ``code``
    (-1 if none). One sort, so it scales like an index lookup, not like pairwise distances.

    ``seg`` must be non-decreasing (a batch's group ids): then a stable sort by ``code`` alone
    keeps each code's events in (group, time) order, so equal (group, code) pairs are adjacent
    and the order is that of a (group, code, index) sort where it matters."""
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


def near_duplicates(batch: GroupBatch, pop: Population, cell: float,
                    grids: int = 2) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(latest earlier event of the group that is a near duplicate, or -1; share of hash chunks
    matched). Inputs are normalised by the population's range, quantised on ``grids`` shifted
    grids of side ``cell``; long vectors (images) are hashed in chunks of 8 and an event is a
    near duplicate when at least half of its chunks were seen before in the group."""
    key = ("near_duplicates", id(pop), cell, grids)
    if key in batch.cache:
        cached: tuple[np.ndarray, np.ndarray] = batch.cache[key]
        return cached
    valid = has_input(batch)
    z = robust_inputs(batch, pop)
    d = z.shape[1]
    chunk = d if d <= 16 else 8
    seg = batch.seg_ids()
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
    batch.cache[key] = (best, share)
    return best, share


def g_statistic(batch: GroupBatch, pop: Population,
                weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """Online G-test of each group's per-feature binned inputs against the population's bin
    shares: (G after each event, weighted event count after each event, degrees of freedom).
    Events with weight 0 (no input, or a variant of the previous query) are not counted.

    Per feature, G = 2 (sum_b c_b ln c_b - sum_b c_b ln q_b - n ln n) is kept up to date event
    by event: an event adds (c+1) ln(c+1) - c ln c for its bin's count c. The running count of
    the event's bin is one int32 cumulative sum over a (bins, n) indicator (rows contiguous),
    minus its value before the group; c ln c comes from a table (counts are integers).
    """
    w = weight > 0
    wf = w.astype(np.float64)
    wi = w.astype(np.int32)
    n_eff = seg_cumsum(wf, batch.offsets)
    acc = np.zeros(batch.n)
    df = 0
    x = np.nan_to_num(batch.x)
    cols = np.arange(batch.n)
    starts = batch.offsets[:-1]
    seg = batch.seg_ids()
    table = _xlogx(np.arange(int(batch.lengths.max(initial=0)) + 2, dtype=np.float64))
    for f, (edges, probs) in enumerate(zip(pop.edges, pop.bin_probs, strict=True)):
        b = np.searchsorted(edges, x[:, f], side="right")
        ind = np.zeros((len(probs), batch.n), dtype=np.int32)
        ind[b, cols] = wi
        np.cumsum(ind, axis=1, out=ind)
        # count up to the event minus the count before its group, in the event's own bin
        base = np.where(starts > 0, ind[:, np.maximum(starts - 1, 0)], 0)
        after = ind[b, cols] - base[b, seg]
        before = after - wi
        acc += wf * (table[after] - table[before] - np.log(probs)[b])
        df += len(probs) - 1
    g = 2.0 * (seg_cumsum(acc, batch.offsets) - len(pop.edges) * _xlogx(n_eff))
    return np.maximum(g, 0.0), n_eff, df


def _xlogx(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v * np.log(np.maximum(v, 1.0)), 0.0)


def extraction_score(g: np.ndarray, n_eff: np.ndarray, df: int, *, z_thr: float,
                     kl_thr: float, min_events: float) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:  # fmt: skip
    """Online extraction score: significant (z of G against chi2(df)) *and* large (KL per
    query, summed over features) departure from the population; 0 before ``min_events``."""
    z = (g - df) / np.sqrt(2.0 * max(df, 1))
    kl = np.where(n_eff > 0, g / (2.0 * np.maximum(n_eff, 1.0)), 0.0)
    score = np.minimum(z / z_thr, kl / kl_thr)
    score = np.where(n_eff >= min_events, np.maximum(score, 0.0), 0.0)
    return score, z, kl
