"""Attribute inference / model inversion: systematic sweeps of one feature over its range with
all other features fixed (Fredrikson-style: which value of the sensitive field best explains a
known record's answer?).

What separates a sweep from a loan officer's what-if variants: a sweep is long (many
consecutive queries changing only the same field), covers most of the field's natural range,
and repeats for several records or fields; what-if variants are a handful of steps over a small
part of one field's range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.detectors._features import changed_vs_prev
from mlhunt.hunt.detectors.base import Detector, GroupNeed, Scored, sample_rows
from mlhunt.hunt.events import GroupBatch, Population, seg_cummax, seg_cumsum


class InversionSweepDetector(Detector):
    needs = ("input",)

    def need(self) -> GroupNeed | None:
        return GroupNeed("events", self.p("min_length"))  # one sweep's run at least

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        n = batch.n
        prev, diff = changed_vs_prev(batch)
        single = diff == 1
        feat = np.full(n, -1, dtype=np.int64)
        idx = np.flatnonzero(single)
        feat[idx] = np.argmax(batch.x[idx] != batch.x[prev[idx]], axis=1)
        # a run: consecutive single-field steps on the same field
        prev_feat = np.where(prev >= 0, feat[np.maximum(prev, 0)], -2)
        new_run = (feat < 0) | (feat != prev_feat)
        run_starts = np.flatnonzero(new_run | (prev < 0))
        offsets = np.append(run_starts, n).astype(np.int64)
        lengths = np.diff(offsets)
        pos = np.arange(n) - np.repeat(run_starts, lengths)
        length = np.where(feat >= 0, pos + 2, 0)  # the run's base query counts too
        # swept value and its range so far, in units of the field's 1..99% population range
        f_safe = np.maximum(feat, 0)
        lo = np.array([e[0] for e in pop.edges])
        hi = np.array([e[-1] for e in pop.edges])
        width = np.where(hi > lo, hi - lo, pop.span)
        v = batch.x[np.arange(n), f_safe] / width[f_safe]
        base = np.where(prev >= 0, batch.x[np.maximum(prev, 0), f_safe] / width[f_safe], v)
        run_base = np.repeat(base[run_starts], lengths)
        vmax = np.maximum(seg_cummax(np.nan_to_num(v), offsets), run_base)
        vmin = -np.maximum(seg_cummax(-np.nan_to_num(v), offsets), -run_base)
        coverage = np.where(feat >= 0, vmax - vmin, 0.0)
        ok = (length >= self.p("min_length")) & (coverage >= self.p("min_coverage"))
        # count each run once, at the query where it first qualifies
        first_ok = ok & ~np.concatenate([[False], ok[:-1] & ~new_run[1:]])
        sweeps = seg_cumsum(first_ok.astype(float), batch.offsets)
        online = sweeps / self.p("min_sweeps")
        return Scored(online, {"sweep_done": first_ok, "feature": feat, "length": length,
                               "coverage": coverage})  # fmt: skip

    def evidence(self, batch: GroupBatch, pop: Population, scored: Scored, g: int,
                 fired: int) -> dict[str, Any]:  # fmt: skip
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        c = scored.columns
        done = np.flatnonzero(c["sweep_done"][a:b]) + a
        feats = c["feature"][done]
        names, counts = np.unique(feats, return_counts=True)
        return {
            "sweeps": len(done),
            "swept_features": {
                f"feature[{int(k)}]": int(v) for k, v in zip(names, counts, strict=True)
            },
            "longest_sweep": int(c["length"][a:b].max()),
            "max_coverage_of_range": round(float(c["coverage"][a:b].max()), 3),
            "sample_queries": sample_rows(batch, g, done),
        }
