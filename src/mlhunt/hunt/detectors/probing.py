"""Probing with near-duplicate queries, found with a Blacklight-style index: each input is
quantised on shifted grids and hashed (in chunks for long vectors such as images); a query whose
hashes were seen before in the same client's traffic is a near duplicate of an earlier query
(one sort per grid, so this scales to millions of queries, unlike pairwise distances).

- Evasion probing (decision-based attacks such as HopSkipJump, Boundary, patch search): chains
  of near duplicates whose answers flip between classes as they converge on the boundary.
- Membership-inference probing: the same records again and again with tiny noise on several
  features. Plain retries (identical requests) and what-if variants (one field changed) are
  not noisy repeats and are not counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.detectors._features import _MULT, hash_inputs
from mlhunt.hunt.detectors.base import Detector, Scored, sample_rows
from mlhunt.hunt.events import GroupBatch, Population

_NONE = np.empty(0)
_NO_LABEL = np.empty(0, dtype=np.int64)


def _x(batch: GroupBatch) -> np.ndarray:
    return np.ascontiguousarray(batch.x, dtype=np.float64)


class EvasionProbingDetector(Detector):
    needs = ("input",)

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        from mlhunt.hunt.detectors import _kern_probing as kern  # numba: only when scoring

        # near duplicates (see _kern_probing._match_group) and, group by group right after
        # them, the online rates: flips (near duplicates whose label flipped) so far; and for
        # long inputs (images) the chain of near duplicates too, as score-based searches
        # (patch search) rarely flip until they succeed (in short tabular vectors with
        # categorical fields natural near duplicates are common: there the flips carry it)
        z, valid, chunk = hash_inputs(batch, pop)
        names = ("min_flips", "flip_share", "min_chain", "chain_share", "min_events")
        p = np.array([*map(self.p, names), float(batch.x.shape[1] > 16)])
        label = batch.label.astype(np.int64, copy=False)
        args = (z, valid, _x(batch), label, batch.offsets, _NONE, self.p("cell"), chunk, _MULT)
        match, online, near, flip, flips = kern.probing(*args, kern.EVASION, p)
        return Scored(online, {"near": near, "flip": flip, "flips": flips, "match": match})

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        c = scored.columns
        near = c["near"][a:b]
        flips = np.flatnonzero(c["flip"][a:b]) + a
        z = pop.normalise(np.nan_to_num(batch.x[flips]))
        zm = pop.normalise(np.nan_to_num(batch.x[c["match"][flips]]))
        dist = np.sqrt(((z - zm) ** 2).mean(axis=1)) if len(flips) else np.empty(0)
        return {
            "near_duplicate_share": round(float(near.mean()), 3),
            "label_flips": len(flips),
            "median_flip_distance": round(float(np.median(dist)), 5) if len(dist) else None,
            "sample_queries": sample_rows(batch, g, flips),
        }


class MembershipProbingDetector(Detector):
    needs = ("input",)

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        from mlhunt.hunt.detectors import _kern_probing as kern  # numba: only when scoring

        # noisy repeat: close to an earlier query (near duplicates as in evasion probing),
        # but several fields nudged (not a retry, not a what-if variant that changes one
        # field), every changed field by a tiny *relative* step (multiplicative noise), which
        # natural neighbours (amounts that happen to be close) rarely do
        z, valid, chunk = hash_inputs(batch, pop)
        width = np.ascontiguousarray(pop.width, dtype=np.float64)
        names = ("min_changed", "max_step", "min_repeats", "repeat_share", "min_events")
        p = np.array([*map(self.p, names)])
        args = (z, valid, _x(batch), _NO_LABEL, batch.offsets, width, self.p("cell"), chunk, _MULT)
        match, online, noisy, _, _ = kern.probing(*args, kern.MEMBERSHIP, p)
        return Scored(online, {"noisy": noisy, "match": match})

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        noisy = scored.columns["noisy"][a:b]
        match = scored.columns["match"][a:b]
        rows = np.flatnonzero(noisy) + a
        # distinct records probed: chains of repeats collapse onto their first query
        root = np.arange(a, b)
        for _ in range(12):
            m = match[root - a]
            step = noisy[root - a] & (m >= a)
            if not step.any():
                break
            root = np.where(step, m, root)
        return {
            "noisy_repeats": int(noisy.sum()),
            "noisy_repeat_share": round(float(noisy.mean()), 3),
            "records_probed": len(np.unique(root[noisy])),
            "sample_queries": sample_rows(batch, g, rows),
        }
