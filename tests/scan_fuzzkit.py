"""Shared pieces of the scan fuzz tests (tests/test_fuzz_scan*.py): the per-input witnesses,
the scan budget, byte mutations and a few generators. See test_fuzz_scan.py's docstring."""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from mlhunt.scan import scan_path
from mlhunt.scan.artifacts import scan_artifact
from mlhunt.scan.pickleops import Limits
from tests.fuzzcount import Tally, outcome
from tests.scan_guard import CANARY, assert_untouched, watch

TALLY = Tally()
PER_INPUT_S = 5.0
# A scan budget under PER_INPUT_S: a parser that ignores its own deadline fails the test.
LIMITS = Limits(max_seconds=3.0)


def warm(folder: Path, *, text: bool = False) -> None:
    """One scan of each kind before anything is watched: first use imports codecs and, for
    ``text``, regopy (which dlopens its library) and detect-secrets; those are the scanner's
    own imports, not something an input made it do. Archives alone leave regopy out: torch
    imported after regopy aborts the interpreter (a double free between their native libs)."""
    keras = io.BytesIO()
    with zipfile.ZipFile(keras, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("metadata.json", "{}")
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    samples = {
        "m.keras": keras.getvalue(),
        "p.pkl": b"Vx\np0\n.",
        "a.npy": npy("'<f4'", "()"),
        "m.yaml": b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
        ".env": b"A=1\n",
    }
    if not text:
        del samples["m.yaml"], samples[".env"]
    for name, data in samples.items():
        (folder / name).write_bytes(data)
    scan_path(folder)


def guarded(parser: str, marker: Path, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run one parser on one input under every witness; return its result (None after an
    InputError)."""
    # CPU seconds, so that a loaded machine (make test -n 2 beside other jobs) cannot fail it;
    # wall-clock hangs are caught by fuzzcount's alarm (HANG_S).
    start = time.process_time()
    with watch() as seen:
        result = outcome(TALLY, parser, fn, *args, **kw)
    elapsed = time.process_time() - start
    assert elapsed < PER_INPUT_S, f"{parser}: {elapsed:.1f} CPU s on one input"
    assert_untouched(seen, marker)
    return result


def artifact(parser: str, work: tuple[Path, Path], data: bytes, name: str = "x.bin") -> list:
    folder, marker = work
    path = folder / name
    path.write_bytes(data)
    findings = guarded(parser, marker, scan_artifact, path, limits=LIMITS)
    errors = [f.description for f in findings or [] if f.rule_id == "MLH-SCAN-ERROR"]
    assert not errors, errors
    json.dumps([f.to_dict() for f in findings or []])  # the report can be written
    return findings or []


# ---------------------------------------------------------------------------------- mutations


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, with bytes flipped, spliced or duplicated (or untouched)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "dup"]))
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        if op == "flip":
            out[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del out[i:]
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[i : i + draw(st.integers(1, 16))]
        else:
            j = draw(st.integers(i, min(len(out), i + 64)))
            out[i:i] = out[i:j] * draw(st.integers(1, 8))
    return bytes(out)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)


def npy(descr: str, shape: str, payload: bytes = b"") -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


CANARY_PKL = b"\x80\x02c" + f"{CANARY}\ntrip\n".encode() + b"N\x85R."
