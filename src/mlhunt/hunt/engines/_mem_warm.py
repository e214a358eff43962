"""Load (or compile) every kernel of the in-memory path, with the argument types a hunt passes:
a few synthetic rows go through the same reading, preparing and gathering code as a real log
(the rows are an Arrow batch shaped like DuckDB's output). Called by
:func:`mlhunt.hunt.detectors._warm.warm_up`, which ``make`` runs once and the engine runs in a
thread while DuckDB starts decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlhunt.hunt.detectors.base import Detector


def warm(detectors: list[Detector]) -> None:
    import duckdb
    import pyarrow as pa

    from mlhunt.hunt.engines._mem import Store
    from mlhunt.hunt.engines._mem_prep import prepare
    from mlhunt.hunt.engines._mem_read import _File
    from mlhunt.hunt.readers import ReadReport

    n = 600  # enough denied answers from one address to reach the burst pre-filter
    i = np.arange(n)
    scores = [[0.2, 0.8], None, [0.1, 0.3, 0.6]] * (n // 3)  # n: a multiple of 6
    rb = pa.record_batch({
        "line": pa.array(i + 1, pa.int64()),
        "ts": pa.array([f"2024-03-05T00:00:{k % 60:02d}.5Z" for k in i], pa.string()),
        "client_id": pa.array([f"c{k % 3}" for k in i], pa.string()),
        "source_ip": pa.array([None if k % 5 == 0 else f"10.0.0.{k % 2}" for k in i]),
        "input": pa.array([None if k == 3 else [float(k), 1.0, 2.0] for k in i],
                          pa.list_(pa.float64())),
        "label": pa.array(["a", "b"] * (n // 2), pa.string()),
        "scores": pa.array(scores, pa.list_(pa.float64())),
        "score": pa.array([0.7 if k % 2 else None for k in i], pa.float64()),
        "status": pa.array([401.0 if k % 2 else 200.0 for k in i], pa.float64()),
        "latency_ms": pa.array([1.5 if k % 2 else None for k in i], pa.float64()),
    })  # fmt: skip
    con = duckdb.connect()  # the strings' hashes, as the reading query adds them
    try:
        con.register("warm", pa.table(rb))
        rb = (
            con.sql(
                "SELECT *, hash(client_id) AS client_hash, hash(source_ip) AS source_hash, "
                "hash(label) AS label_hash FROM warm"
            )
            .to_arrow_table()
            .to_batches()[0]
        )
    finally:
        con.close()
    sel = {name: "" for name in rb.schema.names}
    report = ReadReport()
    store = Store(n)
    _File(None, store, Path("warm"), 0, sel, report)._batch(rb)
    prep = prepare(store, ["warm"], None, detectors, report.input_dim or 0)
    for scope in prep.scopes:
        for make in prep.batches(scope):
            make()
