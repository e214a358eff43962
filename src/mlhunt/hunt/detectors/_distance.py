"""A PRADA-style test of query distances that does not assume normality.

PRADA (Juuti et al. 2019) looks at the distance from each new query to the nearest earlier query
of the same client and alerts when that distribution stops looking normal (Shapiro-Wilk). On
real traffic that test fails both ways (see docs/hunt.md), so here the client's distances are
compared with the *population's* distances of the same kind by a two-sample Kolmogorov-Smirnov
statistic, binned at the reference's quantiles and updated online after every event.

Bounded work: the nearest earlier query is searched among the client's last ``WINDOW`` events
only (numba kernels in ``_kern_distance.py``, no pairwise matrix), and long inputs (images) are
projected to ``PROJECT_DIMS`` random directions first (Johnson-Lindenstrauss: distances roughly
kept).
"""

from __future__ import annotations

import numpy as np

from mlhunt.hunt.events import seg_position

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
    """Per event: Euclidean distance (float32, as ``z`` from ``project``) to the nearest of the
    previous ``window`` events of its group that have an input (inf where there is none). A
    numba loop over each group's bounded history: O(n * window * d), no temporaries."""
    from mlhunt.hunt.detectors import _kern_distance as kern

    return kern.window_nn(_f32(z), _i64(offsets), _bool(valid), int(window))


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
    # the detector's own pass (project + window_nn + counted, no KS): the same distances, and
    # one compiled kernel to load per process instead of two
    ones = np.ones(len(z), dtype=bool)
    _score, cols = distance_test(
        z, offsets, ones, np.full(len(z), 2), np.empty(0), np.empty(0), 1.0, 1.0, 0.0
    )
    dist, keep = cols["dist"], cols["weight"]
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
    """Online binned KS of each group's counted distances (``weight``: a boolean mask) against
    the reference CDF.

    Returns per event (m: counted distances so far, D+ = max_j(F_ref - F_client) at the edges:
    the client's distances are *larger* than the population's, and with ``minus`` D- =
    max_j(F_client - F_ref): smaller). A numba pass per group: counts per bin reset at the
    group start, the statistic recomputed (float32, as the former numpy code) when a counted
    distance arrives."""
    from mlhunt.hunt.detectors import _kern_distance as kern

    m, d_plus, d_minus = kern.online_ks(
        np.ascontiguousarray(dist),
        _bool(weight),
        _i64(offsets),
        _f64(edges),
        _ref32(cdf),
        bool(minus),
    )
    return m, d_plus, (d_minus if minus else None)


def distance_test(
    robust: np.ndarray,
    offsets: np.ndarray,
    valid: np.ndarray,
    diff: np.ndarray,
    edges: np.ndarray,
    cdf: np.ndarray,
    lambda_threshold: float,
    d_threshold: float,
    min_events: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The query-distance detector's pass in one kernel, from the robust inputs: (online
    score, columns dist, weight, m, d_plus, lam), the same numbers as ``project``,
    ``window_nn``, ``counted`` (with a finite distance), ``online_ks`` and then
    ``lam = D+ sqrt(m)``, ``score = min(lam / lambda_threshold, D+ / d_threshold)`` where
    ``m >= min_events`` (else 0)."""
    from mlhunt.hunt.detectors import _kern_distance as kern

    # up to PROJECT_DIMS the kernel rounds each float64 to float32 as project's astype does,
    # while copying the rows it needs: no batch-sized float32 copy
    z = robust if robust.shape[1] <= PROJECT_DIMS else project(robust)
    z = z if z.dtype == np.float32 else np.ascontiguousarray(z, dtype=np.float64)
    thresholds = np.array([lambda_threshold, d_threshold, min_events], dtype=np.float64)
    dist, weight, m, d_plus, lam, online = kern.distance_test(
        np.ascontiguousarray(z),
        _i64(offsets),
        _bool(valid),
        _i64(diff),
        WINDOW,
        _f64(edges),
        _ref32(cdf),
        thresholds,
    )
    return online, {"dist": dist, "weight": weight, "m": m, "d_plus": d_plus, "lam": lam}


# The kernels are compiled for one dtype/layout each: convert (no copy when already right).
def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _bool(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.bool_)


def _ref32(cdf: np.ndarray) -> np.ndarray:
    """The reference CDF as the former numpy code compared it: float32."""
    return np.ascontiguousarray(cdf, dtype=np.float32)
