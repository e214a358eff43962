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
from mlhunt.hunt.events import GroupBatch, Population


class InversionSweepDetector(Detector):
    needs = ("input",)

    def need(self) -> GroupNeed | None:
        return GroupNeed("events", self.p("min_length"))  # one sweep's run at least

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        from mlhunt.hunt.detectors import _kern_probing as kern  # numba: only when scoring

        prev, diff = changed_vs_prev(batch)
        # a run: consecutive single-field steps on the same field; its coverage: the swept
        # value's range so far, in units of the field's 1..99% population range
        online, done, feat, length, coverage = kern.inversion(
            np.ascontiguousarray(batch.x, dtype=np.float64),
            prev,
            diff,
            np.ascontiguousarray(pop.width, dtype=np.float64),
            batch.offsets,
            self.p("min_length"),
            self.p("min_coverage"),
            self.p("min_sweeps"),
        )
        return Scored(
            online, {"sweep_done": done, "feature": feat, "length": length, "coverage": coverage}
        )

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
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
