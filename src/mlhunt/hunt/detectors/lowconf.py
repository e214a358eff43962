"""Low-confidence concentration: a client whose queries land near the decision boundary far
more often than the population's (uncertainty-sampling extraction, boundary search)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.detectors.base import Detector, GroupNeed, Scored, sample_rows
from mlhunt.hunt.events import GroupBatch, Population, seg_cumsum


class LowConfidenceDetector(Detector):
    needs = ("margin",)

    def applies(self, pop: Population) -> bool:
        return pop.near_share > 0 or pop.n_events > 0

    def need(self) -> GroupNeed | None:
        return GroupNeed("events", self.p("min_events"))

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        known = ~np.isnan(batch.margin)
        near = known & (np.nan_to_num(batch.margin, nan=1.0) < pop.near_margin)
        k = seg_cumsum(near.astype(float), batch.offsets)
        n = seg_cumsum(known.astype(float), batch.offsets)
        p0 = min(max(pop.near_share, 0.01), 0.5)
        z = (k - n * p0) / np.sqrt(np.maximum(n, 1.0) * p0 * (1 - p0))
        share = k / np.maximum(n, 1.0)
        s = np.minimum(z / self.p("z_threshold"), share / (self.p("ratio") * p0))
        online = np.where(n >= self.p("min_events"), np.maximum(s, 0.0), 0.0)
        return Scored(online, {"near": near, "z": z, "share": share})

    def evidence(self, batch: GroupBatch, pop: Population, scored: Scored, g: int,
                 fired: int) -> dict[str, Any]:  # fmt: skip
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        c = scored.columns
        return {
            "near_boundary_share": round(float(c["share"][b - 1]), 3),
            "population_near_boundary_share": round(pop.near_share, 3),
            "margin_below": pop.near_margin,
            "binomial_z": round(float(c["z"][b - 1]), 1),
            "sample_queries": sample_rows(batch, g, np.flatnonzero(c["near"][a:b]) + a),
        }
