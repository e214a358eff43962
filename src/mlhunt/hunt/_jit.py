"""Compiled kernels for the hunt detectors (numba).

The per-target sequential logic (online scores event by event) is a loop over each group's
events; numpy expresses it as a dozen passes over the whole batch with (n, bins) temporaries,
numba as one pass with a few counters. :func:`njit` is the one decorator every kernel uses:

- ``cache=True``: compiled once per installation, then loaded from ``__pycache__`` (or
  ``NUMBA_CACHE_DIR``) in a fraction of a second;
- ``nogil=True``: the DuckDB engine scores batches in threads; the kernels run in parallel;
- ``error_model="numpy"``: division by zero gives inf/nan as numpy does, no exception;
- lazy: numba is imported, and the kernel compiled or loaded, on the kernel's first call, not
  when its module is imported (numba's import takes a quarter of a second, and a hunt makes its
  first call in a thread while pyarrow decodes the logs).

Kernels take and return plain arrays (no Python objects), so the Spark engine's workers and
the guard's scoring process run the same code.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
_LOCK = threading.RLock()


class _Lazy:
    """A kernel whose numba dispatcher is made on first use (a call or any dispatcher
    attribute, such as ``signatures``)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        functools.update_wrapper(self, fn)
        self.py_func = fn
        self._dispatcher: Any = None

    def dispatcher(self) -> Any:
        if self._dispatcher is None:
            with _LOCK:
                if self._dispatcher is None:
                    import numba

                    _callees(self.py_func)
                    self._dispatcher = numba.njit(cache=True, nogil=True, error_model="numpy")(
                        self.py_func
                    )
        return self._dispatcher

    def __call__(self, *args: Any) -> Any:
        return self.dispatcher()(*args)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dispatcher(), name)


def _callees(fn: Callable[..., Any]) -> None:
    """Replace the lazy kernels that ``fn`` names in its module by their dispatchers: numba
    types a call to another kernel only when the global is a dispatcher."""
    names = fn.__globals__
    for name in fn.__code__.co_names:
        g = names.get(name)
        if isinstance(g, _Lazy):
            names[name] = g.dispatcher()


def njit(fn: F) -> F:
    """``fn`` as a kernel, compiled lazily on first call (see the module docstring)."""
    out: F = _Lazy(fn)  # type: ignore[assignment]
    return out
