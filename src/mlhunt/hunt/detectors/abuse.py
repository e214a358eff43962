"""Abuse of the API itself, per source address: credential stuffing (bursts of rejected
credentials) and denial-of-AI-service floods (request-rate bursts). Both are sliding-window
counts over the address's events (one searchsorted per batch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlhunt.hunt.detectors.base import Detector, GroupNeed, Scored
from mlhunt.hunt.events import GroupBatch, Population, window_count


class CredentialStuffingDetector(Detector):
    needs = ("status",)

    def need(self) -> GroupNeed | None:
        count = math.ceil(self.p("min_failures") * self.spec.alert_at)
        return GroupNeed("burst", count, self.p("window_s"), denied=True)

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        denied = np.isin(batch.status, (401, 403))
        w = self.p("window_s")
        count = window_count(batch.ts, batch.offsets, denied, w)
        online = np.where(denied, count / self.p("min_failures"), 0.0)
        return Scored(online, {"denied": denied, "count": count})

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        denied = scored.columns["denied"][a:b]
        return {
            "denied_requests": int(denied.sum()),
            "peak_denied_in_window": int(scored.columns["count"][a:b].max()),
            "window_s": self.p("window_s"),
            "client_ids_tried": len(set(batch.client[a:b][denied].tolist())),
        }


class RequestFloodDetector(Detector):
    def need(self) -> GroupNeed | None:
        w = self.p("window_s")
        count = math.ceil(self.p("max_rate_per_s") * w * self.spec.alert_at)
        return GroupNeed("burst", count, w)

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        w = self.p("window_s")
        count = window_count(batch.ts, batch.offsets, np.ones(batch.n), w)
        online = count / (self.p("max_rate_per_s") * w)
        return Scored(online, {"count": count})

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
        w = self.p("window_s")
        peak = float(scored.columns["count"][a:b].max())
        return {
            "peak_requests_in_window": int(peak),
            "peak_rate_per_s": round(peak / w, 1),
            "window_s": w,
            "client_ids": len(set(batch.client[a:b].tolist())),
        }
