"""Natural-data extraction: a client whose inputs look like everyone's (drawn like the training
data, Knockoff Nets style) but whose answers fall in the model's uncertain tail far more often
than the typical client's.

An adaptive thief picks, from a natural pool, the inputs its current copy is least sure about,
so its answers pile up where the model is least confident. Honest clients, the nightly batch
re-scorer included, send what their business brings and land there at the population's rate.
Which margin is "uncertain" depends on the model (loan answers spread over 0..1, fraud answers
sit above 0.99), so the tail is read from the population: :attr:`Population.margin_cdf` gives the
typical client's share below each :data:`~mlhunt.hunt.margins.MARGIN_GRID` cut point, and every cut
point whose share lies in ``[tail_low, tail_high]`` is tested. Per cut point, a running binomial
likelihood-ratio test (signed root of G, which stays calibrated for small shares) of the
client's counted answers below it; the score is, at the best cut point, the smaller of
``z / z_threshold`` and ``share / (ratio * population share)``, so a heavy client needs a real
excess, not only volume. Retries and what-if variants (a query equal to the previous one in all
features but at most one) are not counted.

Sigma: not expressible over raw logs (the cut points come from the population's per-client
margin shares and the test is a running likelihood ratio); the alert-stream rule is exported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.detectors._features import changed_vs_prev, has_input
from mlhunt.hunt.detectors.base import Detector, Scored, sample_rows
from mlhunt.hunt.events import GroupBatch, Population
from mlhunt.hunt.margins import MARGIN_GRID, MARGIN_LO, margin_bucket


def _running(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per event: how many ``flags`` are set in its group up to and including it."""
    c = np.cumsum(flags, dtype=np.float64)
    before = np.r_[0.0, c][offsets[:-1]]
    return c - np.repeat(before, np.diff(offsets))


def _xlogy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a * ln(a / b)``, 0 where ``a`` is 0."""
    return np.where(a > 0, a * np.log(np.maximum(a, 1e-300) / np.maximum(b, 1e-300)), 0.0)


class NaturalExtractionDetector(Detector):
    needs = ("margin",)

    def cuts(self, pop: Population) -> np.ndarray:
        """Indices of the :data:`MARGIN_GRID` cut points in the population's uncertain tail
        (none without a margin baseline: then every score is 0)."""
        f = pop.margin_cdf
        if len(f) != len(MARGIN_GRID):
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero((f >= self.p("tail_low")) & (f <= self.p("tail_high")))

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        bucket = margin_bucket(batch.margin)
        known = ~np.isnan(bucket)
        if batch.x.shape[1]:
            _prev, diff = changed_vs_prev(batch)
            counted = known & (~has_input(batch) | (diff >= 2))
        else:
            counted = known
        n = _running(counted, batch.offsets)
        online = np.zeros(batch.n)
        best = np.full(batch.n, -1, dtype=np.int64)
        z_thr, ratio, min_n = self.p("z_threshold"), self.p("ratio"), self.p("min_events")
        for j in self.cuts(pop).tolist():
            p0 = float(pop.margin_cdf[j])
            # below MARGIN_GRID[j] exactly when in a bucket below MARGIN_LO + 1 + j
            k = _running(counted & (bucket <= MARGIN_LO + j), batch.offsets)
            g = 2.0 * (_xlogy(k, n * p0) + _xlogy(n - k, n * (1.0 - p0)))
            z = np.sign(k - n * p0) * np.sqrt(np.maximum(g, 0.0))
            s = np.minimum(z / z_thr, k / np.maximum(n, 1.0) / (ratio * p0))
            s = np.where(n >= min_n, np.maximum(s, 0.0), 0.0)
            better = s > online
            online = np.where(better, s, online)
            best = np.where(better, j, best)
        return Scored(online, {"counted": counted, "n": n, "cut": best, "bucket": bucket})

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        c = scored.columns
        j = int(c["cut"][b - 1]) if c["cut"][b - 1] >= 0 else int(c["cut"][a + fired])
        cut = float(MARGIN_GRID[j])
        hits = c["counted"][a:b] & (c["bucket"][a:b] <= MARGIN_LO + j)
        n = int(c["n"][b - 1])
        return {
            "margin_below": round(cut, 6),
            "uncertain_share": round(float(hits.sum()) / max(n, 1), 4),
            "population_uncertain_share": round(float(pop.margin_cdf[j]), 4),
            "counted_queries": n,
            "volume_vs_p90_client": round((b - a) / max(pop.volume_q["p90"], 1.0), 2),
            "sample_queries": sample_rows(batch, g, a + np.flatnonzero(hits)),
        }
