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

from mlhunt.hunt.detectors._features import has_input, near_duplicates
from mlhunt.hunt.detectors.base import Detector, GroupNeed, Scored, sample_rows
from mlhunt.hunt.events import GroupBatch, Population, seg_cumsum, seg_position


def _pair_stats(batch: GroupBatch, match: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:  # fmt: skip
    """(has a near-duplicate predecessor that is not identical, label flipped vs it, number of
    features changed vs it)."""
    ok = match >= 0
    changed = np.zeros(batch.n, dtype=np.int64)
    changed[ok] = (batch.x[ok] != batch.x[match[ok]]).sum(axis=1)
    near = ok & (changed > 0)
    flip = np.zeros(batch.n, dtype=bool)
    flip[near] = (batch.label[near] != batch.label[match[near]]) & (batch.label[near] >= 0)
    return near, flip, changed


def _rate_score(count: np.ndarray, n: np.ndarray, count_thr: float, share_thr: float,
                min_events: float) -> np.ndarray:  # fmt: skip
    share = count / np.maximum(n, 1.0)
    s = np.minimum(count / count_thr, share / share_thr)
    return np.where(n >= min_events, s, 0.0)


class EvasionProbingDetector(Detector):
    needs = ("input",)

    def need(self) -> GroupNeed | None:
        return GroupNeed("events", self.p("min_events"))

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        match, _share = near_duplicates(batch, pop, self.p("cell"))
        near, flip, _changed = _pair_stats(batch, match)
        flips = seg_cumsum(flip.astype(float), batch.offsets)
        chain = seg_cumsum(near.astype(float), batch.offsets)
        n = seg_position(batch.offsets) + 1.0
        by_flips = _rate_score(flips, n, self.p("min_flips"), self.p("flip_share"),
                               self.p("min_events"))  # fmt: skip
        # score-based searches (patch search) rarely flip until they succeed: a client whose
        # traffic is mostly a chain of near duplicates is probing too
        by_chain = _rate_score(chain, n, self.p("min_chain"), self.p("chain_share"),
                               self.p("min_events"))  # fmt: skip
        # (long inputs only: in short tabular vectors with categorical fields natural near
        # duplicates are common, and there the flips carry the signal)
        online = np.maximum(by_flips, by_chain) if batch.x.shape[1] > 16 else by_flips
        return Scored(online, {"near": near, "flip": flip, "flips": flips, "match": match})

    def evidence(self, batch: GroupBatch, pop: Population, scored: Scored, g: int,
                 fired: int) -> dict[str, Any]:  # fmt: skip
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

    def need(self) -> GroupNeed | None:
        return GroupNeed("events", self.p("min_events"))

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        match, _share = near_duplicates(batch, pop, self.p("cell"))
        near, _flip, changed = _pair_stats(batch, match)
        # noisy repeat: close to an earlier query, but several fields nudged (not a retry,
        # not a what-if variant that changes one field)
        noisy = near & (changed >= self.p("min_changed")) & has_input(batch)
        if batch.x.shape[1] > 0:
            # every changed field moved by a tiny *relative* step (multiplicative noise),
            # which natural neighbours (amounts that happen to be close) rarely do
            ok = np.flatnonzero(noisy)
            x, xm = batch.x[ok], batch.x[match[ok]]
            rel = np.abs(x - xm) / np.maximum(np.abs(xm), pop.width * 1e-3)
            noisy[ok] = rel.max(axis=1) <= self.p("max_step")
        count = seg_cumsum(noisy.astype(float), batch.offsets)
        n = seg_position(batch.offsets) + 1.0
        online = _rate_score(count, n, self.p("min_repeats"), self.p("repeat_share"),
                             self.p("min_events"))  # fmt: skip
        return Scored(online, {"noisy": noisy, "match": match})

    def evidence(self, batch: GroupBatch, pop: Population, scored: Scored, g: int,
                 fired: int) -> dict[str, Any]:  # fmt: skip
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
