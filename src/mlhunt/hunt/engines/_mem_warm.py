"""Load (or compile) every kernel of the in-memory path, with the argument types a hunt passes:
a few synthetic rows go through the same reading, preparing and gathering code as a real log
(the rows are an Arrow batch shaped like pyarrow's decoding of a log file). :func:`warm` is
called by :func:`mlhunt.hunt.detectors._warm.warm_up`, which ``make`` runs once; the engine runs
:func:`preload` in a thread while pyarrow decodes the first rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.detectors.base import Detector


def _rows(n: int) -> Any:
    """A record batch shaped like pyarrow's decoding of a log file (string columns
    dictionary-encoded); the store it fills is thrown away."""
    import pyarrow as pa

    from mlhunt.hunt.engines._arrow import float_array, int_array, list_array, strings

    i = np.arange(n)
    odd = i % 2 == 1
    output = pa.StructArray.from_arrays(
        [
            strings(["a", "b"] * (n // 2)).dictionary_encode(),
            list_array([[0.2, 0.8], None, [0.1, 0.3, 0.6]] * (n // 3)),  # n: a multiple of 6
            float_array(np.full(n, 0.7), odd),
        ],
        ["label", "scores", "score"],
    )
    return pa.RecordBatch.from_arrays(
        [
            strings([f"2024-03-05T00:00:{k % 60:02d}.5Z" for k in i]),
            strings([f"c{k % 3}" for k in i]).dictionary_encode(),
            strings([None if k % 5 == 0 else f"10.0.0.{k % 2}" for k in i]).dictionary_encode(),
            list_array([None if k == 3 else [float(k), 1.0, 2.0] for k in i]),
            output,
            int_array(np.where(odd, 401, 200).astype(np.int32)),
            float_array(np.full(n, 1.5), odd),
        ],
        names=["ts", "client_id", "source_ip", "input", "output", "status", "latency_ms"],
    )


def _read(n: int) -> tuple[Any, Any]:
    from mlhunt.hunt.engines._mem import Store, _columns
    from mlhunt.hunt.engines._mem_read import _File, flat
    from mlhunt.hunt.readers import ReadReport

    rb = _rows(n)
    sel = _columns(rb.schema)
    report = ReadReport()
    store = Store(n)
    _File(store, Path("warm"), 0, sel, report)._batch(flat(rb, sel), n, 0)
    return store, report


#: JSON Lines taking every branch of the compiled parser (and a line it leaves to Python).
_JSON_LINES = b"""\xef\xbb\xbf{"ts":"2024-03-05T00:00:01.5Z","client_id":"c0",\
"source_ip":"10.0.0.1","input":[1.0,2,-3e2],"output":{"label":"a","scores":[0.25,0.75],"extra":[{"k":null}]},\
"status":200,"latency_ms":1.5,"model":"m","note":"x\\u00e9\xc3\xa9",\
"more":[true,false,NaN,-Infinity,1.5e300]}
{"ts":1709596800.25,"client_id":"c1","source_ip":"","input":null,"output":{"label":"b",\
"score":0.5,"scores":null},"status":null,"latency_ms":null,"model":null}
\t
{"ts":"2024-03-05T00:00:02+01:00","client_id":"c2","output":{"label":"a","score":0.5},\
"source_ip":null,"input":[0.1234567890123456789,7,8]}
{"ts":"not a time","client_id":"c3","output":{"label":"a"}}
"""


def _read_json(d: int) -> tuple[Any, Any]:
    from mlhunt.hunt.engines._mem import Store
    from mlhunt.hunt.engines._mem_json import JsonFile, _parse
    from mlhunt.hunt.readers import ReadReport

    block = np.frombuffer(_JSON_LINES.removeprefix(b"\xef\xbb\xbf"), np.uint8).copy()
    report = ReadReport()
    store = Store(16)
    reader = JsonFile(store, Path("warm.jsonl"), 0, report, d)
    reader.take(block, _parse(block, d, reader.seeds))
    return store, report


def preload(json_first: bool = False) -> None:
    """The reading kernels only (the engine runs this while the first rows are read), those
    of the first file's format first."""
    if json_first:
        _read_json(0)
    _read(6)
    if not json_first:
        _read_json(0)


def warm(detectors: list[Detector]) -> None:
    """Every kernel of the path: reading, preparing (both scopes) and gathering."""
    from mlhunt.hunt.engines._arrow import strings
    from mlhunt.hunt.engines._mem_prep import prepare
    from mlhunt.hunt.engines._names import Names

    # more names than a new table holds: its growth (a rehash) is a kernel of its own
    Names().column(strings([f"id-{i}" for i in range(2_000)]))
    n = 600  # enough denied answers from one address to reach the burst pre-filter
    _read_json(0)  # the width unknown: the parser writes no inputs, then again with them
    store, report = _read(n)
    prep = prepare(store, ["warm"], None, detectors, report.input_dim or 0)
    for scope in prep.scopes:
        for make in prep.batches(scope):
            make()
