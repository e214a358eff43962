"""Build scenarios in a background process while the caller works on something else.

``mlhunt demo`` runs its scenarios one after the other, and most of each run (simulated
traffic over HTTP, black-box attacks, the load test's paced requests) keeps one core busy at
most; the builds of the scenarios it reaches later (data generation, model training) fill the
other core meanwhile. The builds are the same seeded, thread-capped :func:`mlhunt.scenarios.build`
calls the run would make itself, so what lands in the cache is identical; the run's own
``ensure_built`` waits on the build's file lock when it gets there first. A failed background
build is left to the run, which builds again and reports the error where it happens.

The child is a plain ``python -m mlhunt.scenarios.prebuild NAME...`` (not multiprocessing's
spawn, which re-runs the caller's main script): it inherits ``MLHUNT_CACHE`` and the thread
settings from the environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def build_all(names: Sequence[str], seed: int = 0) -> int:
    """Build each scenario not yet built; the number that failed (the run reports why)."""
    from mlhunt.scenarios import build

    failed = 0
    for name in names:
        try:
            build(name, seed=seed)
        except Exception as exc:  # the run builds it again and reports the error there
            print(f"mlhunt: background build of {name} failed ({exc})", file=sys.stderr)
            failed += 1
    return failed


def _watch_parent(parent: int) -> None:
    """Stop this build when the parent is gone (killed outright, it cannot stop us itself)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def pending(names: Sequence[str], seed: int = 0) -> list[str]:
    """Those of ``names`` not built yet for ``seed`` (each once, in order)."""
    from mlhunt.scenarios import is_built

    out: list[str] = []
    for name in names:
        if name not in out and not is_built(name, seed=seed):
            out.append(name)
    return out


@contextmanager
def building(names: Sequence[str], seed: int = 0) -> Iterator[subprocess.Popen[bytes] | None]:
    """Build ``names`` (those not built yet) in a background process for the duration of the
    block; on leaving it, wait for the build in progress (or stop it when the block raised).
    Yields the process, or None when there was nothing to build."""
    todo = pending(names, seed)
    if not todo:
        yield None
        return
    cmd = [sys.executable, "-m", "mlhunt.scenarios.prebuild", "--seed", str(seed), *todo]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        yield proc
    except BaseException:
        proc.terminate()  # its build unwinds: the half-built folder is removed
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    proc.wait()


def main(argv: Sequence[str]) -> int:
    """``python -m mlhunt.scenarios.prebuild [--seed N] NAME...``: the background builder."""
    # Terminated by the parent (Ctrl-C, an error): unwind, so the build's ``finally`` removes
    # its half-written folder and releases the lock. Ctrl-C reaches the whole process group:
    # the parent decides.
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(1))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    args = list(argv)
    seed = 0
    if args[:1] == ["--seed"]:
        seed, args = int(args[1]), args[2:]
    return 1 if build_all(args, seed) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
