"""Reference (oracle) for the query-distance kernels: the numpy implementation of
``mlhunt.hunt.detectors._distance`` as it was before the numba kernels, kept unchanged so the
kernels can be compared with it (tests/test_hunt_kernels_distance.py). Not used by the library."""

from __future__ import annotations

import numpy as np


# mlhunt.hunt.events' helpers as they were (frozen here: the library's may become kernels).
def seg_position(offsets: np.ndarray) -> np.ndarray:
    """0-based position of every event inside its group."""
    lengths = np.diff(offsets)
    n = int(offsets[-1]) if len(offsets) else 0
    return np.arange(n) - np.repeat(offsets[:-1], lengths)


def seg_cumsum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every group (works on (n,) and (n, k) arrays)."""
    if len(values) == 0:
        return values.astype(np.float64)
    c = np.cumsum(values, axis=0, dtype=np.float64)
    before = np.concatenate([np.zeros((1, *c.shape[1:])), c[offsets[:-1][1:] - 1]])
    return c - np.repeat(before, np.diff(offsets), axis=0)


#: Earlier events searched for each query's nearest neighbour (the bounded history).
WINDOW = 16
#: Inputs longer than this are randomly projected to this many dimensions.
PROJECT_DIMS = 32
#: Quantile bins of the reference distances (the KS statistic is read at their edges).
NN_BINS = 20
#: Length of the pseudo-clients the reference distances are measured in.
_PSEUDO = 64
#: Sample rows used for the reference (~24,000 distances: plenty for 19 quantiles).
_REF_ROWS = 32_768


def project(z: np.ndarray) -> np.ndarray:
    """float32 copy of ``z``; inputs with more than ``PROJECT_DIMS`` features are projected on
    fixed random directions (the same for every engine and run)."""
    d = z.shape[1]
    if d <= PROJECT_DIMS:
        return z.astype(np.float32)
    rng = np.random.default_rng(20240917)
    proj = rng.standard_normal((d, PROJECT_DIMS)) / np.sqrt(PROJECT_DIMS)
    return (z @ proj).astype(np.float32)


def window_nn(
    z: np.ndarray, offsets: np.ndarray, valid: np.ndarray, window: int = WINDOW
) -> np.ndarray:
    """Per event: Euclidean distance to the nearest of the previous ``window`` events of its
    group that have an input (inf where there is none). One pass per lag: O(n * window * d)."""
    n = len(z)
    best = np.full(n, np.inf, dtype=np.float32)
    if n == 0:
        return best
    pos = seg_position(offsets)
    for lag in range(1, min(window, n - 1) + 1):
        diff = z[lag:] - z[:-lag]
        d2 = np.einsum("ij,ij->i", diff, diff)
        ok = (pos[lag:] >= lag) & valid[:-lag]
        np.minimum(best[lag:], np.where(ok, d2, np.inf), out=best[lag:])
    return np.sqrt(best)


def counted(
    valid: np.ndarray, diff: np.ndarray, offsets: np.ndarray, window: int = WINDOW
) -> np.ndarray:
    """Events whose distance enters the test: an input, not a retry or a one-field variant of
    the previous query (``diff`` >= 2 fields changed), and a full history window behind it."""
    return valid & (diff >= 2) & (seg_position(offsets) >= window)


def reference_edges(base: np.ndarray, robust: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges, reference CDF at the edges) of the population's window distances.

    ``base`` is the population sample (or ``--reference``) and ``robust`` its rows in robust
    units. The rows are sorted (so the result does not depend on the order an engine delivered
    them in), shuffled with a fixed seed and cut into pseudo-clients of ``_PSEUDO`` queries:
    the reference is "the distance from a population query to the nearest of ``WINDOW`` other
    population queries"."""
    ok = ~np.isnan(robust).any(axis=1)
    z, raw = robust[ok], base[ok]
    if len(z) < 2 * _PSEUDO:
        return np.empty(0), np.empty(0)
    order = np.lexsort(raw.T[::-1])
    z = z[order][np.random.default_rng(7).permutation(len(z))][:_REF_ROWS]
    offsets = np.append(np.arange(0, len(z), _PSEUDO), len(z)).astype(np.int64)
    zz = project(z)
    dist = window_nn(zz, offsets, np.ones(len(z), dtype=bool))
    diff = np.full(len(z), 2)
    keep = counted(np.ones(len(z), dtype=bool), diff, offsets) & np.isfinite(dist)
    ref = np.sort(dist[keep].astype(np.float64))
    if len(ref) < NN_BINS * 5:
        return np.empty(0), np.empty(0)
    edges = np.unique(np.quantile(ref, np.arange(1, NN_BINS) / NN_BINS, method="nearest"))
    cdf = np.searchsorted(ref, edges, side="right") / len(ref)
    return edges, cdf


def online_ks(
    dist: np.ndarray,
    weight: np.ndarray,
    offsets: np.ndarray,
    edges: np.ndarray,
    cdf: np.ndarray,
    *,
    minus: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Online binned KS of each group's counted distances against the reference CDF.

    Returns per event (m: counted distances so far, D+ = max_j(F_ref - F_client) at the edges:
    the client's distances are *larger* than the population's, and with ``minus`` D- =
    max_j(F_client - F_ref): smaller). The client's counts at or below each edge are one int32
    running sum over a (edges, n) indicator (rows contiguous), minus its value before the
    group."""
    b = np.searchsorted(edges, dist, side="left")  # dist <= edges[j]  <=>  b <= j
    le = (b[None, :] <= np.arange(len(edges))[:, None]).astype(np.int32)
    le *= weight.astype(np.int32)[None, :]
    np.cumsum(le, axis=1, out=le)
    starts = offsets[:-1]
    base = np.where(starts > 0, le[:, np.maximum(starts - 1, 0)], 0)
    le -= base[:, np.repeat(np.arange(len(starts)), np.diff(offsets))]
    m = seg_cumsum(weight.astype(np.float64), offsets)
    inv = (1.0 / np.maximum(m, 1.0)).astype(np.float32)
    fc = le.astype(np.float32) * inv[None, :]
    ref = cdf.astype(np.float32)[:, None]
    d_plus = np.maximum((ref - fc).max(axis=0, initial=0.0), 0.0).astype(np.float64)
    if not minus:
        return m, d_plus, None
    d_minus = np.maximum((fc - ref).max(axis=0, initial=0.0), 0.0).astype(np.float64)
    return m, d_plus, d_minus
