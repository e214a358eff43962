"""The guard's stacking and per-target verdicts as they were before the packed-record fast path
(src/mlhunt/guard/online.py at the commit before it), kept unchanged as the test oracle."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt.events import GroupBatch, Population


def batch(
    scope: str, keys: list[str], windows: dict[str, list[Any]], pop: Population
) -> GroupBatch:
    rows: list[Any] = []
    for k in keys:
        rows.extend(sorted(windows[k], key=lambda e: e[0]))  # time order inside a target
    n = len(rows)
    cols: dict[str, Any] = {
        "ts": [r[0] for r in rows],
        "client_id": [r[1] for r in rows],
        "source_ip": [r[2] for r in rows],
        "label": [r[3] for r in rows],
        "margin": [r[4] for r in rows],
        "status": [r[5] for r in rows],
        "input": [r[6] for r in rows],
        "file": ["guard"] * n,
        "line": np.arange(n),
    }
    # the group key column must hold the target key (a client may appear under several keys)
    cols[scope] = [k for k in keys for _ in windows[k]]
    return GroupBatch.from_columns(scope, cols, pop.classes, pop.d)


def verdicts(
    detectors: list[Any],
    scope: str,
    windows: dict[str, list[Any]],
    new: dict[str, int],
    pop: Population,
) -> dict[str, dict[str, tuple[float, int]]]:
    """target -> detector id -> (score, fired), as ``Scorer.score`` computed them."""
    dets = [d for d in detectors if d.spec.scope == scope and d.applies(pop)]
    keys = [k for k, w in windows.items() if w]
    if not dets or not keys:
        return {}
    b = batch(scope, keys, windows, pop)
    out: dict[str, dict[str, tuple[float, int]]] = {k: {} for k in keys}
    for det in dets:
        scored = det.score(b, pop)
        online = np.nan_to_num(scored.online, nan=0.0, posinf=1e6)
        for g, key in enumerate(keys):
            a, e = int(b.offsets[g]), int(b.offsets[g + 1])
            tail = max(1, min(new.get(key, 1), e - a))
            seg = online[a:e]
            over = np.flatnonzero(seg >= det.spec.alert_at)
            out[key][det.spec.id] = (float(seg[-tail:].max()), int(over[0]) if len(over) else -1)
    return out
