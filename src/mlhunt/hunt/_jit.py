"""Compiled kernels for the hunt detectors (numba).

The per-target sequential logic (online scores event by event) is a loop over each group's
events; numpy expresses it as a dozen passes over the whole batch with (n, bins) temporaries,
numba as one pass with a few counters. :func:`njit` is the one decorator every kernel uses:

- ``cache=True``: compiled once per installation, then loaded from ``__pycache__`` (or
  ``NUMBA_CACHE_DIR``) in a fraction of a second;
- ``nogil=True``: the DuckDB engine scores batches in threads; the kernels run in parallel;
- ``error_model="numpy"``: division by zero gives inf/nan as numpy does, no exception.

Kernels take and return plain arrays (no Python objects), so the Spark engine's workers and
the guard's scoring process run the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def njit(fn: F) -> F:
    """Compile ``fn`` lazily on first call (see the module docstring)."""
    import numba

    out: F = numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    return out
