"""Low-confidence concentration: a client whose queries land near the decision boundary far
more often than the population's (uncertainty-sampling extraction, boundary search)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.detectors.base import Detector, Scored, sample_rows
from mlhunt.hunt.events import GroupBatch, Population


class LowConfidenceDetector(Detector):
    needs = ("margin",)

    def applies(self, pop: Population) -> bool:
        return pop.near_share > 0 or pop.n_events > 0

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        from mlhunt.hunt.detectors._kern_extraction import near_scores

        p0 = min(max(pop.near_share, 0.01), 0.5)
        # running binomial z of near-boundary answers among those with a known margin
        online, near, z, share = near_scores(
            np.ascontiguousarray(batch.margin, dtype=np.float64),
            batch.offsets,
            float(pop.near_margin),
            p0,
            float(self.p("z_threshold")),
            float(self.p("ratio")),
            float(self.p("min_events")),
        )
        return Scored(online, {"near": near, "z": z, "share": share})

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        c = scored.columns
        return {
            "near_boundary_share": round(float(c["share"][b - 1]), 3),
            "population_near_boundary_share": round(pop.near_share, 3),
            "margin_below": pop.near_margin,
            "binomial_z": round(float(c["z"][b - 1]), 1),
            "sample_queries": sample_rows(batch, g, np.flatnonzero(c["near"][a:b]) + a),
        }
