"""Segment operations the test oracles and tests use (the engines need only
:func:`mlhunt.hunt.events.seg_max`)."""

from __future__ import annotations

import numpy as np

from mlhunt.hunt.events import GroupBatch


def seg_position(offsets: np.ndarray) -> np.ndarray:
    """0-based position of every event inside its group."""
    lengths = np.diff(offsets)
    n = int(offsets[-1]) if len(offsets) else 0
    return np.arange(n) - np.repeat(offsets[:-1], lengths)


def seg_cumsum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every group (works on (n,) and (n, k) arrays)."""
    if len(values) == 0:
        return values.astype(np.float64)
    c = np.cumsum(values, axis=0, dtype=np.float64)
    # the running total before each group's first row (0 before row 0: also right for empty
    # groups, wherever they are)
    before = np.concatenate([np.zeros((1, *c.shape[1:])), c])[offsets[:-1]]
    return c - np.repeat(before, np.diff(offsets), axis=0)


def seg_cummax(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Running maximum restarting at every group (values must be finite)."""
    if len(values) == 0:
        return values.astype(np.float64)
    lo = float(np.min(values))
    hi = float(np.max(values))
    shift = (hi - lo) + 1.0
    seg = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    # lift each group above every earlier one, so one global running max restarts per group
    lifted = (values - lo) + seg * shift
    return np.maximum.accumulate(lifted) - seg * shift + lo


def seg_prev(offsets: np.ndarray) -> np.ndarray:
    """Index of the previous event of the same group (-1 for a group's first event)."""
    n = int(offsets[-1]) if len(offsets) else 0
    prev = np.arange(n) - 1
    prev[offsets[:-1][np.diff(offsets) > 0]] = -1
    return prev


def seg_first_true(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per group: position (0-based, inside the group) of the first True, or -1."""
    pos = seg_position(offsets)
    big = np.iinfo(np.int64).max
    cand = np.where(mask, pos, big)
    out = np.full(len(offsets) - 1, -1, dtype=np.int64)
    nonempty = np.diff(offsets) > 0
    if nonempty.any():
        firsts = np.minimum.reduceat(cand, offsets[:-1][nonempty])
        out[nonempty] = np.where(firsts == big, -1, firsts)
    return out


def take_groups(batch: GroupBatch, keep: np.ndarray) -> tuple[GroupBatch, np.ndarray]:
    """(a batch of only the groups where ``keep`` is True, the boolean row mask that
    selects their rows here): for detectors that can rule most groups out cheaply."""
    rows = np.repeat(keep, batch.lengths)
    lengths = batch.lengths[keep]
    sub = GroupBatch(
        scope=batch.scope,
        keys=[k for k, y in zip(batch.keys, keep.tolist(), strict=True) if y],
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        ts=batch.ts[rows],
        x=batch.x[rows],
        label=batch.label[rows],
        margin=batch.margin[rows],
        status=batch.status[rows],
        client=batch.client[rows],
        file=batch.file[rows],
        line=batch.line[rows],
    )
    return sub, rows
