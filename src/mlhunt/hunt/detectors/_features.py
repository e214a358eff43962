"""Per-event features shared by several detectors, all vectorised over a group batch."""

from __future__ import annotations

import numpy as np

from mlhunt.hunt.events import GroupBatch, Population

_MULT = np.random.default_rng(20240305).integers(1, 2**61, size=512, dtype=np.int64) | 1


def has_input(batch: GroupBatch) -> np.ndarray:
    """Events that carry an input (cached per batch: do not modify the result)."""
    if "has_input" not in batch.cache:
        _input_features(batch)
    out: np.ndarray = batch.cache["has_input"]
    return out


def changed_vs_prev(batch: GroupBatch) -> tuple[np.ndarray, np.ndarray]:
    """(index of the previous event of the group or -1, number of features that differ from
    it; d+1 where there is no comparable previous event). Cached per batch."""
    if "changed" not in batch.cache:
        _input_features(batch)
    cached: tuple[np.ndarray, np.ndarray] = batch.cache["changed"]
    return cached


def _input_features(batch: GroupBatch) -> None:
    """Both features above in one compiled pass over the inputs (they are read together)."""
    from mlhunt.hunt.detectors import _kern_extraction as kern  # numba: only when scoring

    # the previous event is the previous row, except at group starts (prev == -1)
    valid, prev, diff = kern.input_features(batch.x, batch.offsets)
    batch.cache.setdefault("has_input", valid)
    batch.cache.setdefault("changed", (prev, diff))


def robust_inputs(batch: GroupBatch, pop: Population) -> np.ndarray:
    """Inputs in the population's robust units, 0 for events without an input (cached)."""
    key = ("robust", id(pop))
    if key not in batch.cache:
        from mlhunt.hunt.detectors import _kern_extraction as kern

        width = np.ascontiguousarray(pop.width, dtype=np.float64)
        batch.cache[key] = kern.robust_rows(batch.x, has_input(batch), width)
    out: np.ndarray = batch.cache[key]
    return out


def hash_inputs(batch: GroupBatch, pop: Population) -> tuple[np.ndarray, np.ndarray, int]:
    """What the near-duplicate kernels read: (inputs in robust units, 0 rows without an input
    (:func:`robust_inputs`); events with an input (:func:`has_input`); coordinates per hash
    chunk: all of them for short vectors, 8 for long ones such as images). Both arrays are
    cached per batch and shared with other detectors."""
    d = batch.x.shape[1]
    z = np.ascontiguousarray(robust_inputs(batch, pop), dtype=np.float64)
    return z, has_input(batch), max(1, d if d <= 16 else 8)
