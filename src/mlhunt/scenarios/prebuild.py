"""Build scenarios in a background process while the caller works on something else.

``mlhunt demo`` runs its scenarios one after the other, and most of each run (simulated
traffic over HTTP, black-box attacks, the load test's paced requests) keeps one core busy at
most; the builds of the scenarios it reaches later (data generation, model training) fill the
other core meanwhile. The builds are the same seeded, thread-capped :func:`mlhunt.scenarios.build`
calls the run would make itself, so what lands in the cache is identical; the run's own
``ensure_built`` waits on the build's file lock when it gets there first. A failed background
build is left to the run, which builds again and reports the error where it happens.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def _build_all(names: Sequence[str], seed: int) -> None:
    """The child: build each scenario not yet built (a failure is the run's to report)."""
    # Terminated by the parent (Ctrl-C, an error): unwind, so the build's ``finally`` removes
    # its half-written folder and releases the lock.
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(1))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C: the parent decides
    from mlhunt.scenarios import build

    for name in names:
        try:
            build(name, seed=seed)
        except Exception as exc:  # the run builds it again and reports the error there
            print(f"mlhunt: background build of {name} failed ({exc})", file=sys.stderr)


def pending(names: Sequence[str], seed: int = 0) -> list[str]:
    """Those of ``names`` not built yet for ``seed`` (each once, in order)."""
    from mlhunt.scenarios import is_built

    out: list[str] = []
    for name in names:
        if name not in out and not is_built(name, seed=seed):
            out.append(name)
    return out


@contextmanager
def building(names: Sequence[str], seed: int = 0) -> Iterator[Any]:
    """Build ``names`` (those not built yet) in a background process for the duration of the
    block; on leaving it, wait for the build in progress (or stop it when the block raised).
    Yields the process, or None when there was nothing to build."""
    todo = pending(names, seed)
    if not todo:
        yield None
        return
    # spawn, not fork: the parent may hold torch's thread pools, a JVM gateway, server threads
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_build_all, args=(todo, seed), name="mlhunt-prebuild", daemon=True)
    proc.start()
    try:
        yield proc
    except BaseException:
        proc.terminate()
        proc.join(timeout=30)
        raise
    proc.join()
