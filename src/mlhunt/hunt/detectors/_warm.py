"""Compile every detector kernel ahead of real work: ``python -m mlhunt.hunt.detectors._warm``.

numba compiles a kernel on its first call (a few seconds each under load) and caches the
machine code on disk; later processes load it in milliseconds. ``make`` runs this module once
after installing, so neither the first hunt nor a guard's first rescoring (which would hold
its scoring worker for seconds) pays for compilation, and a process that will score calls
:func:`warm_up` at start to load the kernels before traffic arrives.

The batches are synthetic but built with the dtypes and layouts the engines and the guard use
(C-contiguous float64 inputs, int64 offsets, labels and statuses, object client ids), since
numba compiles one version per argument type.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from mlhunt.hunt.detectors import load_detectors
from mlhunt.hunt.detectors.base import run_detectors
from mlhunt.hunt.events import GroupBatch, PopulationBuilder

#: Input lengths warmed: tabular (hashed whole) and long vectors (chunked hashes, projection).
_DIMS = (9, 40)


def warm_up() -> float:
    """Run every registered detector on small synthetic batches of both scopes; returns the
    seconds it took (compiling on a fresh installation, loading from the cache after)."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    dets = load_detectors()
    for d in _DIMS:
        n, clients = 1_500, 12
        x = np.round(rng.normal(size=(n, d)), 2)
        x[5] = np.nan  # an event without an input
        client = np.array([f"c{i % clients}" for i in range(n)], dtype=object)
        labels = np.array(["approved", "rejected"], dtype=object)[rng.integers(0, 2, n)]
        margin = rng.random(n)
        b = PopulationBuilder()
        b.update(client, x, labels, margin)
        b.add_sample(x)
        pop = b.build()
        for scope, key in (("client_id", client), ("source_ip", client.astype(str) < "c5")):
            order = np.argsort(key.astype(str), kind="stable")
            k = key[order].astype(str)
            starts = np.concatenate([[0], np.flatnonzero(k[1:] != k[:-1]) + 1])
            batch = GroupBatch(
                scope=scope,
                keys=k[starts].tolist(),
                offsets=np.append(starts, n).astype(np.int64),
                ts=np.sort(rng.random(n) * 600.0),
                x=np.ascontiguousarray(x[order]),
                label=np.array([pop.classes.index(v) for v in labels[order]], dtype=np.int64),
                margin=margin[order],
                status=rng.choice([200, 401], n).astype(np.int64),
                client=client[order],
                file=np.full(n, "warm", dtype=object),
                line=np.arange(n, dtype=np.int64),
            )
            run_detectors(batch, pop, dets)
    return time.perf_counter() - start


def main() -> int:
    seconds = warm_up()
    print(f"mlhunt: detector kernels ready in {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
