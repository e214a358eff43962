"""Unbounded consumption: a client's tokens in a sliding window against the population's.

The population statistic is the median over clients of each one's busiest window; a client
alerts when its window holds ``factor`` times that (and at least ``min_tokens``). Steady heavy
users (a support bot, long documents now and then) spread their tokens; floods and
maximum-context loops do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mlhunt.llmhunt.detectors.base import ClientScore, Context, LlmDetector
from mlhunt.llmhunt.records import Call

SMALL = 64  # calls of a client below which a plain loop beats numpy's per-call overhead


def window_tokens(calls: Sequence[Call], window_s: float) -> np.ndarray:
    """Tokens of each call's trailing window (the calls in (ts - window_s, ts])."""
    if len(calls) < SMALL:  # the same sums (integers), one pointer for the window's start
        out, start, total, cum = [], 0, 0, []
        for c in calls:
            total += c.total_tokens
            cum.append(total)
            edge = c.ts - window_s
            while start < len(calls) and calls[start].ts <= edge:
                start += 1
            out.append(total - (cum[start - 1] if start else 0))
        return np.array(out, float)
    ts = np.fromiter((c.ts for c in calls), float, len(calls))
    cum = np.cumsum(np.fromiter((c.total_tokens for c in calls), np.int64, len(calls)))
    start = np.searchsorted(ts, ts - window_s, side="right")
    before = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0)
    return (cum - before).astype(float)


class UnboundedConsumption(LlmDetector):
    yaml_name = "unbounded_consumption.yaml"
    population = True

    def score(
        self, by_client: Mapping[str, Sequence[Call]], ctx: Context
    ) -> dict[str, ClientScore]:
        window = float(self.param("window_s"))
        chats = {k: [c for c in v if c.kind == "chat"] for k, v in by_client.items()}
        windows = {k: window_tokens(v, window) for k, v in chats.items() if v}
        if not windows:
            return {}
        median = float(np.median([w.max() for w in windows.values()]))
        limit = max(float(self.param("factor")) * median, float(self.param("min_tokens")))
        max_ctx = int(self.param("max_context_tokens"))
        out: dict[str, ClientScore] = {}
        for client, calls in by_client.items():
            w = windows.get(client)
            if w is None or w.max() < limit * 0.5:
                continue
            per_chat = iter(w / limit)
            online, last = [], 0.0
            for c in calls:  # tool spans carry no tokens: they keep the last score
                last = next(per_chat) if c.kind == "chat" else last
                online.append(last)
            out[client] = ClientScore(
                online,
                {
                    "peak_window_tokens": int(w.max()),
                    "window_s": window,
                    "population_median_peak": median,
                    "limit_tokens": limit,
                    "total_tokens": sum(c.total_tokens for c in chats[client]),
                    "calls": len(chats[client]),
                    "max_context_calls": sum(c.prompt_tokens >= max_ctx for c in chats[client]),
                },
            )
        return out
