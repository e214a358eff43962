"""Arrow buffers to numpy and back (``engines/_arrow.py``), the in-memory path's replacement for
``to_numpy`` and ``pa.array`` (whose first call imports pandas): the same values as pyarrow's
own conversions, for sliced arrays with and without nulls, and no pandas import in a hunt."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlhunt.hunt.engines import _arrow

_TYPES = [
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint32(),
    pa.uint64(),
    pa.float32(),
    pa.float64(),
]


@pytest.mark.parametrize("typ", _TYPES, ids=str)
@pytest.mark.parametrize("nulls", [False, True])
def test_values_valid_floats_match_pyarrow(typ: pa.DataType, nulls: bool) -> None:
    raw = [None if nulls and i % 3 == 1 else (i * 7) % 100 for i in range(41)]
    for arr in (pa.array(raw, typ), pa.array(raw, typ).slice(5, 19), pa.array(raw, typ)[:0]):
        want = arr.to_pylist()
        ok = _arrow.valid(arr)
        assert ok.tolist() == [v is not None for v in want]
        vals = _arrow.values(arr)
        assert [float(v) for v, k in zip(vals, ok, strict=True) if k] == [
            float(v) for v in want if v is not None
        ]
        f = _arrow.floats(arr)
        assert f.dtype == np.float64 and not f.flags.writeable
        assert [None if math.isnan(v) else v for v in f.tolist()] == [
            None if v is None else float(v) for v in want
        ]


def test_values_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="primitive number"):
        _arrow.values(pa.array(["a"]))


def test_builders_equal_pa_array() -> None:
    texts = ["a", None, "", "Zoë", "x" * 40]
    assert _arrow.strings(texts).equals(pa.array(texts, pa.string()))
    assert _arrow.strings([]).equals(pa.array([], pa.string()))
    rows = [[1.0, 2.5], None, [], [math.inf]]
    assert _arrow.list_array(rows).equals(pa.array(rows, pa.list_(pa.float64())))
    ok = np.array([True, False, True])
    got = _arrow.float_array(np.array([1.0, 9.0, 3.5]), ok)
    assert got.equals(pa.array([1.0, None, 3.5], pa.float64()))
    assert _arrow.int_array(np.array([4, 5], np.int32)).equals(pa.array([4, 5], pa.int32()))


_CHILD = r"""
import sys
from mlhunt.hunt import hunt
res = hunt([sys.argv[1]])
assert res.stats["path"] == "memory", res.stats
print("pandas" in sys.modules)
"""


def test_parquet_hunt_does_not_import_pandas(tmp_path: Path) -> None:
    # pyarrow's conversions import pandas on first use: half a second of every hunt
    recs = [
        {
            "ts": f"2024-03-05T10:00:{i % 60:02d}Z",
            "client_id": f"c{i % 3}",
            "input": [float(i), 1.0],
            "output": {"label": "a", "scores": [0.4, 0.6]},
        }
        for i in range(60)
    ]
    path = tmp_path / "logs.parquet"
    pq.write_table(pa.Table.from_pylist(recs), path)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert out.stdout.strip() == "False"
