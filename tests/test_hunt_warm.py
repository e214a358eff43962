"""The kernel warm-up (``python -m mlhunt.hunt.detectors._warm``, run by ``make``) compiles every
version of every detector kernel that a real hunt calls (the engines have no kernels of their
own since the reading moved to DuckDB), so neither a hunt nor a guard's
scoring worker compiles anything after it. Checked in a fresh process: numba dispatchers list
the argument types each kernel was compiled or loaded for."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.test_hunt_distance import _logs, _write

_CHILD = r"""
import json, sys
import mlhunt._native  # noqa: F401 (torch before regopy)
from mlhunt.hunt import _kern_segments
from mlhunt.hunt.detectors import _kern_distance, _kern_extraction, _kern_probing
from mlhunt.hunt.detectors._warm import warm_up


def sigs():
    out = {}
    for mod in (_kern_distance, _kern_extraction, _kern_probing, _kern_segments):
        for name, obj in vars(mod).items():
            if hasattr(obj, "signatures") and hasattr(obj, "py_func"):
                out[f"{mod.__name__}.{name}"] = sorted(str(s) for s in obj.signatures)
    return out


warm_up()
warmed = sigs()
from mlhunt.hunt import hunt

result = hunt([sys.argv[1]])  # JSON Lines
columnar = hunt([sys.argv[2]])  # Parquet
packed = hunt([sys.argv[3]])  # gzip JSON Lines
targets = [sorted(a.to_row()["target"] for a in r.alerts) for r in (result, columnar, packed)]
json.dump({"warmed": warmed, "after": sigs(), "alerts": len(result.findings),
           "same": targets[0] == targets[1] == targets[2]}, sys.stdout)
"""


def test_warm_up_covers_every_kernel_a_hunt_calls(tmp_path: Path) -> None:
    recs = _logs(np.random.default_rng(3))
    path = _write(tmp_path, recs)
    parquet = tmp_path / "logs.parquet"
    pq.write_table(pa.Table.from_pylist(recs), parquet)
    packed = tmp_path / "logs.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(parquet), str(packed)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    got = json.loads(out.stdout)
    assert got["alerts"] > 0  # the hunt ran its detectors to alerts
    # the kernels the detectors call warmed (helpers they call are compiled into them)
    assert sum(bool(v) for v in got["warmed"].values()) >= 6
    assert got["same"]  # the three formats, one reading path: the same alerts
    assert got["after"] == got["warmed"]  # ... and the hunts compiled nothing more
