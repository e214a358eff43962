"""PRADA-style query-distance test: a client whose queries lie farther from its own earlier
queries than population queries lie from each other (uniform, synthetic or spread-out query
designs that cover the input space instead of following real cases).

Per counted query (an input, not a retry or a one-field variant, a full history window behind
it), the distance to the nearest of the client's previous ``WINDOW`` queries in the population's
robust units; the client's distances so far are compared with the population's distribution of
the same distance (:func:`~mlhunt.hunt.detectors._distance.reference_edges`) by a one-sided,
binned Kolmogorov-Smirnov statistic D+ (client stochastically larger). It fires when the test is
significant (lambda = D+ sqrt(m)) *and* large (D+ itself), so volume alone never alerts.

Only the "larger" side is scored: clients whose distances are *smaller* than the population's
are people editing the same case (what-if variants), membership and evasion probes (covered by
the probing detectors); the benign ones among them reach D- as high as 0.95.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.detectors import _distance as dist_mod
from mlhunt.hunt.detectors._features import changed_vs_prev, has_input, robust_inputs
from mlhunt.hunt.detectors.base import Detector, GroupNeed, Scored, sample_rows
from mlhunt.hunt.events import GroupBatch, Population


class QueryDistanceDetector(Detector):
    needs = ("input",)

    def applies(self, pop: Population) -> bool:
        return super().applies(pop) and len(pop.nn_edges) > 0

    def need(self) -> GroupNeed | None:
        return GroupNeed("events", self.p("min_events") + dist_mod.WINDOW)

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        valid = has_input(batch)
        _prev, diff = changed_vs_prev(batch)
        # project + window_nn + counted + online_ks + the score in one compiled pass (same
        # numbers as those functions)
        limits = (self.p("lambda_threshold"), self.p("d_threshold"), self.p("min_events"))
        online, cols = dist_mod.distance_test(
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
            "history_window": dist_mod.WINDOW,
            "sample_queries": sample_rows(batch, g, far),
        }
