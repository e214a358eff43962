"""Load (or compile) every kernel of the in-memory path, with the argument types a hunt passes:
a few synthetic rows go through the same reading, preparing and gathering code as a real log
(the rows are an Arrow batch shaped like DuckDB's output). :func:`warm` is called by
:func:`mlhunt.hunt.detectors._warm.warm_up`, which ``make`` runs once; the engine runs
:func:`preload` in a thread while DuckDB decodes the first rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.detectors.base import Detector


def _rows(n: int) -> Any:
    """A record batch shaped like the reading query's output (hashes: any uint64 will do for
    compiling; the store it fills is thrown away)."""
    import pyarrow as pa

    i = np.arange(n)
    scores = [[0.2, 0.8], None, [0.1, 0.3, 0.6]] * (n // 3)  # n: a multiple of 6
    code = i.astype(np.uint64)
    return pa.record_batch({
        "line": pa.array(i + 1, pa.int64()),
        "ts": pa.array([f"2024-03-05T00:00:{k % 60:02d}.5Z" for k in i], pa.string()),
        "client_id": pa.array([f"c{k % 3}" for k in i], pa.string()),
        "client_hash": pa.array(code % 3),
        "source_ip": pa.array([None if k % 5 == 0 else f"10.0.0.{k % 2}" for k in i]),
        "source_hash": pa.array(code % 2),
        "input": pa.array([None if k == 3 else [float(k), 1.0, 2.0] for k in i],
                          pa.list_(pa.float64())),
        "label": pa.array(["a", "b"] * (n // 2), pa.string()), "label_hash": pa.array(code % 2),
        "scores": pa.array(scores, pa.list_(pa.float64())),
        "score": pa.array([0.7 if k % 2 else None for k in i], pa.float64()),
        "status": pa.array([401.0 if k % 2 else 200.0 for k in i], pa.float64()),
        "latency_ms": pa.array([1.5 if k % 2 else None for k in i], pa.float64()),
    })  # fmt: skip


def _read(n: int) -> tuple[Any, Any]:
    from mlhunt.hunt.engines._mem import Store
    from mlhunt.hunt.engines._mem_read import _File
    from mlhunt.hunt.readers import ReadReport

    rb = _rows(n)
    report = ReadReport()
    store = Store(n)
    _File(None, store, Path("warm"), 0, {c: "" for c in rb.schema.names}, report)._batch(rb)
    return store, report


def preload() -> None:
    """The reading kernels only (the engine runs this while DuckDB decodes the first rows)."""
    _read(6)


def warm(detectors: list[Detector]) -> None:
    """Every kernel of the path: reading, preparing (both scopes) and gathering."""
    from mlhunt.hunt.engines._mem_prep import prepare

    n = 600  # enough denied answers from one address to reach the burst pre-filter
    store, report = _read(n)
    prep = prepare(store, ["warm"], None, detectors, report.input_dim or 0)
    for scope in prep.scopes:
        for make in prep.batches(scope):
            make()
