"""The kernel warm-up (``python -m mlhunt.hunt.detectors._warm``, run by ``make``) compiles every
version of every detector kernel that a real hunt calls, so neither a hunt nor a guard's
scoring worker compiles anything after it. Checked in a fresh process: numba dispatchers list
the argument types each kernel was compiled or loaded for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

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

result = hunt([sys.argv[1]])
json.dump({"warmed": warmed, "after": sigs(), "alerts": len(result.findings)}, sys.stdout)
"""


def test_warm_up_covers_every_kernel_a_hunt_calls(tmp_path: Path) -> None:
    path = _write(tmp_path, _logs(np.random.default_rng(3)))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True,
                         text=True, check=True, timeout=600)  # fmt: skip
    got = json.loads(out.stdout)
    assert got["alerts"] > 0  # the hunt ran its detectors to alerts
    # the kernels the detectors call warmed (helpers they call are compiled into them)
    assert sum(bool(v) for v in got["warmed"].values()) >= 6
    assert got["after"] == got["warmed"]  # ... and the hunt compiled nothing more
