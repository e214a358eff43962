"""Benchmarks: ``python -m bench NAME [--quick]`` (see bench/README.md and DESIGN.md).

Each benchmark is one module ``bench/<NAME>.py`` exposing ``run(quick: bool) -> dict`` that
returns ``{"mlhunt": {...}, "peer": {...}, "ratio": R}`` (R > 1: mlhunt is better). The
dispatcher in :mod:`bench.__main__` adds ``bench`` and ``machine`` and prints the JSON object as
the last line of stdout; progress goes to stderr through :func:`log`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Benchmarks that ``python -m bench`` knows; each is a module bench/<name>.py with run(quick).
BENCHMARKS: tuple[str, ...] = (
    "model",
    "serving",
    "scan",
    "robustness",
    "hunt",
    "guard",
    "spark",
    "llmhunt",
    "guard_llm",
    "guard_llm_path",
)


def log(message: str) -> None:
    """Progress line on stderr (stdout is reserved for the JSON result)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    """'<cores> cores, <CPU model>' of this machine (cores this process may run on)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        import platform

        model = platform.processor() or model
    return f"{cores} cores, {model}"


@contextmanager
def timed(store: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall seconds of the ``with`` block to ``store[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        store[key] = store.get(key, 0.0) + time.perf_counter() - start


def stopwatch() -> Callable[[], float]:
    """A function returning the seconds elapsed since this call."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start
