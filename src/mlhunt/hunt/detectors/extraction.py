"""Model extraction: a client (or, for sybils, a source address) whose queries do not look like
the population's (uniform, synthetic, shifted or boundary-hugging inputs).

The test is an online G-test of the target's per-feature binned inputs against the
population's bin shares (quantile bins, fine in the tails, so out-of-distribution queries
weigh heavily), required to be both significant (z of G against chi2) and large (KL per query).
Heavy legitimate users send realistic inputs: their G grows with volume but their KL stays
small, so volume alone never alerts. Retries and what-if variants (a query equal to the
previous one in all features but at most one) are not counted, so they cannot inflate G.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.detectors._features import changed_vs_prev, has_input
from mlhunt.hunt.detectors.base import Detector, GroupNeed, Scored
from mlhunt.hunt.events import GroupBatch, Population, seg_max


def _ood(batch: GroupBatch, pop: Population, a: int, b: int) -> np.ndarray:
    """Per event of rows a..b: some feature lies outside the population's 1st..99th
    percentile bins."""
    x = np.nan_to_num(batch.x[a:b])
    out = np.zeros(len(x), dtype=bool)
    for f, edges in enumerate(pop.edges):
        out |= (x[:, f] < edges[0]) | (x[:, f] >= edges[-1])
    return out & has_input(batch)[a:b]


class ExtractionDetector(Detector):
    needs = ("input",)

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        return self._g_test(batch, pop, None)

    def _g_test(self, batch: GroupBatch, pop: Population, keep: np.ndarray | None) -> Scored:
        """G-test and score in one compiled pass over the groups where ``keep`` (all if None);
        zeros elsewhere."""
        from mlhunt.hunt.detectors import _kern_extraction as kern  # numba: only when scoring

        _prev, diff = changed_vs_prev(batch)
        weight = has_input(batch) & (diff >= 2)
        if keep is not None:
            weight &= np.repeat(keep, batch.lengths)
        _g, n_eff, score, z, kl, _df = kern.g_scan(
            batch.x,
            batch.offsets,
            weight,
            pop.edges,
            pop.bin_probs,
            keep,
            z_thr=self.p("z_threshold"),
            kl_thr=self.p("kl_threshold"),
            min_events=self.p("min_events"),
        )
        return Scored(score, {"z": z, "kl": kl, "n_eff": n_eff, "weight": weight})

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        last = b - 1
        ood = _ood(batch, pop, a, b)
        c = scored.columns
        vol = b - a
        return {
            "g_test_z": round(float(c["z"][last]), 1),
            "kl_per_query": round(float(c["kl"][last]), 3),
            "counted_queries": int(c["n_eff"][last]),
            "ood_share": round(float(ood.mean()), 3),
            "population_ood_share_expected": 0.02 * pop.d,
            "volume_vs_p90_client": round(vol / max(pop.volume_q["p90"], 1.0), 2),
            "sample_queries": _samples(batch, g, a + np.flatnonzero(ood)),
        }


def _samples(batch: GroupBatch, g: int, rows: np.ndarray) -> list[dict[str, Any]]:
    from mlhunt.hunt.detectors.base import sample_rows

    if len(rows) == 0:
        rows = np.arange(int(batch.offsets[g]), int(batch.offsets[g + 1]))
    return sample_rows(batch, g, rows)


class SybilExtractionDetector(ExtractionDetector):
    """The same test on a source address's combined traffic, once enough distinct client ids
    share it: extraction spread over many API keys to stay under per-key limits."""

    def need(self) -> GroupNeed | None:
        return GroupNeed("clients", self.p("min_clients"))

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        distinct = _distinct_clients(batch)
        gate = distinct >= self.p("min_clients")
        # most addresses never reach min_clients: the G-test skips the others (scores are
        # per group, so the result is the same as scoring the whole batch)
        keep = seg_max(distinct, batch.offsets) >= self.p("min_clients")
        if not keep.any():
            return Scored(np.zeros(batch.n), {"distinct": distinct})
        base = self._g_test(batch, pop, keep)
        online = np.where(gate, base.online, 0.0)
        return Scored(online, {"distinct": distinct, **base.columns})

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        out = super().evidence(batch, pop, scored, g, fired)
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        ids, counts = np.unique(batch.client[a:b].astype(str), return_counts=True)
        order = np.argsort(-counts, kind="stable")
        out["client_ids"] = len(ids)
        out["top_clients"] = {str(ids[i]): int(counts[i]) for i in order[:10]}
        return out


def _distinct_clients(batch: GroupBatch) -> np.ndarray:
    """Per event: distinct client ids seen so far in the group (ids compared as strings, as
    ``np.unique(client.astype(str))`` would; integer codes are compared as they are)."""
    from mlhunt.hunt.detectors import _kern_extraction as kern

    return kern.distinct_running(_id_words(batch.client), batch.offsets)


def _id_words(ids: np.ndarray) -> np.ndarray:
    """Ids as rows of fixed-width integer words (equal rows = equal ids), for the kernel."""
    arr = np.asarray(ids)
    if arr.dtype.kind in "iub":
        return np.ascontiguousarray(arr, dtype=np.int64).reshape(len(arr), 1)
    u = np.ascontiguousarray(arr.astype(str))
    return u.view(np.uint32).reshape(len(u), u.itemsize // 4)
