"""PRADA-style query-distance test: a client whose queries lie farther from its own earlier
queries than population queries lie from each other (uniform, synthetic or spread-out query
designs that cover the input space instead of following real cases).

Per counted query (an input, not a retry or a one-field variant, a full history window behind
it), the distance to the nearest of the client's previous ``WINDOW`` queries in the population's
robust units; the client's distances so far are compared with the population's distribution of
the same distance (:func:`reference_edges`) by a one-sided,
binned Kolmogorov-Smirnov statistic D+ (client stochastically larger). It fires when the test is
significant (lambda = D+ sqrt(m)) *and* large (D+ itself), so volume alone never alerts.

Only the "larger" side is scored: clients whose distances are *smaller* than the population's
are people editing the same case (what-if variants), membership and evasion probes (covered by
the probing detectors); the benign ones among them reach D- as high as 0.95.

Why not PRADA (Juuti et al. 2019) as published: it tests whether a client's nearest-earlier-query
distances look normal (Shapiro-Wilk), which on real traffic fails both ways (docs/hunt.md).

Bounded work: the nearest earlier query is searched among the client's last ``WINDOW`` events
only (numba kernels in ``_kern_distance.py``, no pairwise matrix), and long inputs (images) are
projected to ``PROJECT_DIMS`` random directions first (Johnson-Lindenstrauss: distances roughly
kept).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.detectors._features import changed_vs_prev, has_input, robust_inputs
from mlhunt.hunt.detectors.base import Detector, GroupNeed, Scored, sample_rows
from mlhunt.hunt.events import GroupBatch, Population

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
    # the detector's own pass (its distances and counted events; no KS: no edges yet)
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
    """The query-distance detector's pass in one kernel, from the robust inputs (projected
    past ``PROJECT_DIMS``): (online score, columns dist: nearest of the previous ``WINDOW``
    inputs; weight: counted, i.e. an input, >= 2 fields changed, a full window behind it and
    a finite distance; m: counted so far; d_plus: the online binned KS D+ against ``cdf`` at
    ``edges``; lam = D+ sqrt(m)). The score is ``min(lam / lambda_threshold, D+ /
    d_threshold)`` where ``m >= min_events``, else 0."""
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


class QueryDistanceDetector(Detector):
    needs = ("input",)

    def applies(self, pop: Population) -> bool:
        return super().applies(pop) and len(pop.nn_edges) > 0

    def need(self) -> GroupNeed | None:
        return GroupNeed("events", self.p("min_events") + WINDOW)

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        valid = has_input(batch)
        _prev, diff = changed_vs_prev(batch)
        limits = (self.p("lambda_threshold"), self.p("d_threshold"), self.p("min_events"))
        online, cols = distance_test(
            robust_inputs(batch, pop), batch.offsets, valid, diff, pop.nn_edges, pop.nn_cdf, *limits
        )
        return Scored(online, cols)

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        c = scored.columns
        w = c["weight"][a:b]
        d = c["dist"][a:b][w]
        half = min(int(np.searchsorted(pop.nn_cdf, 0.5)), len(pop.nn_edges) - 1)
        far = a + np.flatnonzero(w)[np.argsort(-d, kind="stable")]
        return {
            "counted_queries": int(c["m"][b - 1]),
            "ks_d_plus": round(float(c["d_plus"][b - 1]), 3),
            "ks_lambda": round(float(c["lam"][b - 1]), 2),
            "median_nn_distance": round(float(np.median(d)), 4) if len(d) else None,
            "population_median_nn_distance": round(float(pop.nn_edges[half]), 4),
            "history_window": WINDOW,
            "sample_queries": sample_rows(batch, g, far),
        }


# The kernels are compiled for one dtype/layout each: convert (no copy when already right).
def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _bool(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.bool_)


def _ref32(cdf: np.ndarray) -> np.ndarray:
    """The reference CDF as the former numpy code compared it: float32."""
    return np.ascontiguousarray(cdf, dtype=np.float32)
