"""Fuzzing of the scan parsers (issue #9): pickle opcodes, zip, npy, Keras (zip and HDF5),
safetensors and torch checkpoints; manifests and secrets are in test_fuzz_scan_text.py.

Allowed outcomes: findings (limit and parse-error findings included) or a one-line
:class:`~mlhunt.errors.InputError`. Never an uncaught exception, never an MLH-SCAN-ERROR (the
artifact scanner's catch-all for its own bugs), never more than :data:`PER_INPUT_S` CPU seconds on
one input, and never an unpickle or import: every generated payload names a canary module
whose import or call would leave a marker, and an audit hook watches for ``pickle.find_class``,
``marshal.loads``, commands and sockets (:mod:`tests.scan_guard`). Counts per parser are written
by :mod:`tests.fuzzcount` to ``test-artifacts/fuzz-counts-<parser>.json``. Shared pieces:
:mod:`tests.scan_fuzzkit`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import pickle
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlhunt._native import preload_torch
from mlhunt.scan.formats import parse_npy_header
from mlhunt.scan.pickleops import scan_pickles
from tests.fuzzcount import flush_after_module, scaled
from tests.scan_fuzzkit import (
    CANARY_PKL,
    TALLY,
    artifact,
    guarded,
    json_values,
    mutated,
    npy,
    warm,
)
from tests.scan_guard import CANARY, install_canary, make_h5

pytestmark = pytest.mark.fuzz


_write_counts = flush_after_module(TALLY)


@pytest.fixture(scope="module")
def work() -> Iterator[tuple[Path, Path]]:
    """A scratch folder and the canary's marker file."""
    with tempfile.TemporaryDirectory(prefix="mlhunt-fuzz-scan-") as d:
        folder = Path(d)
        warm(folder)
        yield folder, install_canary(folder)


# ---------------------------------------------------------------------------------- pickles

NAMES = [
    (CANARY, "trip"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("builtins", "getattr"),
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("pickle", "loads"),
    ("__builtin__", "set"),
    ("copy_reg", "_reconstructor"),
    ("", ""),
    ("a\nb", "c d"),
]
_text = st.text(max_size=12)
_small = st.integers(-(2**31), 2**31 - 1)


def _sbu(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogatepass")[:255]
    return b"\x8c" + bytes([len(raw)]) + raw


def _op(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 21))
    mod, name = draw(st.sampled_from(NAMES))
    if kind == 0:
        return b"c" + f"{mod}\n{name}\n".encode("utf-8", "surrogatepass")
    if kind == 1:
        return _sbu(mod) + _sbu(name) + b"\x93"
    if kind == 2:
        return b"i" + f"{mod}\n{name}\n".encode("utf-8", "surrogatepass")
    if kind == 3:
        return _sbu(draw(_text))
    if kind == 4:  # length fields that may lie
        n, body = draw(st.integers(0, 2**32 - 1)), draw(st.binary(max_size=16))
        return draw(st.sampled_from([b"B", b"X", b"T"])) + struct.pack("<I", n) + body
    if kind == 5:
        n = draw(st.one_of(st.integers(0, 64), st.integers(0, 2**64 - 1)))
        return draw(st.sampled_from([b"\x8e", b"\x8d", b"\x96", b"\x95"])) + struct.pack("<Q", n)
    if kind == 6:
        return b"J" + struct.pack("<i", draw(_small))
    if kind == 7:
        return draw(
            st.sampled_from([b"K", b"h", b"q", b"\x82", b"j", b"r", b"g", b"p", b"\x83", b"\x84"])
        ) + bytes([draw(st.integers(0, 255))])
    if kind == 8:
        return draw(st.sampled_from([b"M", b"\x83"])) + struct.pack(
            "<H", draw(st.integers(0, 65535))
        )
    if kind == 9:
        return draw(st.sampled_from([b"j", b"r", b"\x84"])) + struct.pack(
            "<I", draw(st.integers(0, 2**32 - 1))
        )
    if kind == 10:
        n = draw(st.integers(0, 300))
        return b"\x8a" + bytes([n % 256]) + draw(st.binary(max_size=8))
    if kind == 11:
        return b"\x8b" + struct.pack("<i", draw(st.integers(-5, 2**31 - 1)))
    if kind == 12:  # protocol 0 text arguments
        tag = draw(st.sampled_from([b"I", b"L", b"F", b"S", b"V", b"P", b"a"]))
        arg = draw(
            st.sampled_from(
                [
                    "1",
                    "01",
                    "-9" * 50,
                    "1e999",
                    "nan",
                    "'x'",
                    '"y"',
                    "'",
                    "\\u0000",
                    "True",
                    "",
                    "0x10",
                ]
            )
        )
        return tag + arg.encode() + b"\n"
    if kind == 13:
        return b"\x80" + bytes([draw(st.integers(0, 7))])
    if kind == 14:
        return b"G" + struct.pack(">d", draw(st.floats(allow_nan=True)))
    if kind == 15:
        return b"(" * draw(st.integers(1, 4))
    if kind == 16:
        return b"N" * draw(st.integers(1, 3))
    if kind == 17:
        return b"\x96" + struct.pack("<Q", draw(st.integers(0, 40)))
    # structural opcodes, most of the time: they drive the stack, memo and calls
    return draw(
        st.sampled_from(
            [
                b"R",
                b"b",
                b"\x81",
                b"\x92",
                b"o",
                b"t",
                b"\x85",
                b"\x86",
                b"\x87",
                b")",
                b"]",
                b"}",
                b"\x8f",
                b"\x90",
                b"\x91",
                b"a",
                b"e",
                b"s",
                b"u",
                b"l",
                b"d",
                b"0",
                b"1",
                b"2",
                b"\x94",
                b"Q",
                b"\x88",
                b"\x89",
                b"\x97",
                b"\x98",
                b".",
            ]
        )
    )


@st.composite
def opcode_pickles(draw: st.DrawFn) -> bytes:
    """Pickles built opcode by opcode (protocol header, a random body, usually a STOP)."""
    head = b"\x80" + bytes([draw(st.integers(0, 5))]) if draw(st.booleans()) else b""
    body = b"".join(_op(draw) for _ in range(draw(st.integers(0, 40))))
    tail = b"." if draw(st.integers(0, 3)) else b""
    return head + body + tail


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=5)
        | st.frozensets(st.integers())
    ),
    max_leaves=20,
)


@st.composite
def dumped(draw: st.DrawFn) -> bytes:
    """Real pickles of plain values at every protocol, then mutated."""
    data = pickle.dumps(draw(_values), protocol=draw(st.integers(0, 5)))
    return draw(mutated(data))


@given(data=opcode_pickles())
def test_fuzz_pickle_opcodes(work: tuple[Path, Path], data: bytes) -> None:
    scan = guarded("scan-pickleops", work[1], scan_pickles, data)
    assert scan is not None and scan.end <= len(data)
    artifact("scan-pickle", work, data, "x.pkl")


@given(data=dumped())
def test_fuzz_pickle_mutated(work: tuple[Path, Path], data: bytes) -> None:
    guarded("scan-pickleops", work[1], scan_pickles, data)
    artifact("scan-pickle", work, data, "x.pkl")


@given(
    prefix=st.sampled_from([b"\x80\x02", b"\x80\x04", b"\x80\x05", b"c", b"("]),
    data=st.binary(max_size=512),
)
def test_fuzz_pickle_random_bytes(work: tuple[Path, Path], prefix: bytes, data: bytes) -> None:
    guarded("scan-pickleops", work[1], scan_pickles, prefix + data)
    artifact("scan-pickle", work, prefix + data, "x.pkl")


@given(rest=opcode_pickles())
def test_a_leading_canary_global_is_always_reported(work: tuple[Path, Path], rest: bytes) -> None:
    """pickle.load imports as it reads: a GLOBAL first is reported whatever follows it."""
    data = b"\x80\x02c" + f"{CANARY}\ntrip\n".encode() + rest
    findings = artifact("scan-pickle", work, data, "x.pkl")
    assert any(f.evidence.get("import") == f"{CANARY}.trip" for f in findings), findings


# ---------------------------------------------------------------------------------- zip

_members = st.one_of(
    st.just(CANARY_PKL),
    dumped(),
    opcode_pickles(),
    st.just(npy("'|O'", "(1,)", CANARY_PKL)),
    st.just(npy("'<f4'", "(2, 2)", b"\0" * 16)),
    st.binary(max_size=64),
)
_names = st.one_of(
    st.sampled_from(
        [
            "data.pkl",
            "archive/data.pkl",
            "archive/data/0",
            "archive/version",
            "config.json",
            "metadata.json",
            "a.npy",
            "../x.pkl",
            "/abs.pkl",
            "C:\\x",
            "inner.zip",
            "constants.pkl",
            "archive/code/x.py",
        ]
    ),
    st.text(max_size=12),
)


@st.composite
def zips(draw: st.DrawFn) -> bytes:
    buf = io.BytesIO()
    method = draw(
        st.sampled_from(
            [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
        )
    )
    with zipfile.ZipFile(buf, "w", method) as zf:
        for _ in range(draw(st.integers(0, 5))):
            name = draw(_names) or "empty"
            data = draw(_members)
            if name == "inner.zip" and draw(st.booleans()):
                inner = io.BytesIO()
                with zipfile.ZipFile(inner, "w") as z2:
                    z2.writestr("data.pkl", CANARY_PKL)
                data = inner.getvalue()
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            info.external_attr = draw(st.sampled_from([0, 0o100644 << 16, 0o120777 << 16]))
            info.flag_bits |= draw(st.sampled_from([0, 0, 1]))  # sometimes "encrypted"
            zf.writestr(info, data)
    return buf.getvalue()


@st.composite
def mutated_directory(draw: st.DrawFn) -> bytes:
    """A valid zip whose central directory (or end record) has fields overwritten."""
    data = bytearray(draw(zips()))
    cd = data.find(b"PK\x01\x02")
    start = cd if cd >= 0 else data.rfind(b"PK\x05\x06")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(max(start, 0), len(data) - 1))
        width = draw(st.sampled_from([1, 2, 4]))
        value = draw(st.integers(0, 2 ** (8 * width) - 1))
        data[i : i + width] = value.to_bytes(width, "little")[: len(data) - i]
    return bytes(data)


@given(data=st.one_of(zips(), mutated_directory(), zips().flatmap(mutated)))
def test_fuzz_zip(work: tuple[Path, Path], data: bytes) -> None:
    artifact("scan-zip", work, data, "x.zip")


# ---------------------------------------------------------------------------------- npy

_descrs = st.one_of(
    st.sampled_from(
        [
            "'<f8'",
            "'|O'",
            "'<U10'",
            "'|V8'",
            "'S0'",
            "'>i4'",
            "'O'",
            "'xyz'",
            "[('a', '<f4'), ('b', '|O')]",
            "[('a', '<f4', (2, 3))]",
            "[('n', [('o', '|O')])]",
            "[(('t', 'a'), '|O')]",
            "[]",
            "None",
            "b'|O'",
            "__import__('" + CANARY + "').trip()",
            "[" * 200 + "]" * 200,
        ]
    ),
    st.text(max_size=20).map(repr),
)
_shapes = st.one_of(
    st.lists(st.integers(-3, 2**70), max_size=4).map(lambda v: repr(tuple(v))),
    st.sampled_from(["()", "(1,)", "[1]", "None", "(-1,)", "('a',)", "(1.5,)", "(True,)"]),
)


@st.composite
def npys(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x04\x00"]))
    order = draw(st.sampled_from(["False", "True", "'x'", "1", "None"]))
    keys = ["'descr': " + draw(_descrs), f"'fortran_order': {order}", "'shape': " + draw(_shapes)]
    keys = draw(st.permutations(keys))[: draw(st.integers(1, 3))] + draw(
        st.lists(st.sampled_from(["'extra': 1", "'descr': '|O'", "1: 2"]), max_size=2)
    )
    header = ("{" + ", ".join(keys) + "}").encode("utf-8", "surrogatepass") + b"\n"
    size = len(header) if draw(st.integers(0, 3)) else draw(st.integers(0, 2**32 - 1))
    packed = struct.pack("<H", size % 65536) if version == b"\x01\x00" else struct.pack("<I", size)
    payload = draw(st.sampled_from([b"", CANARY_PKL, b"\0" * 32]))
    return draw(mutated(b"\x93NUMPY" + version + packed + header + payload))


@given(data=npys())
def test_fuzz_npy(work: tuple[Path, Path], data: bytes) -> None:
    with contextlib.suppress(ValueError):  # the documented way a bad header is reported
        parse_npy_header(data)
    artifact("scan-npy", work, data, "x.npy")


# ---------------------------------------------------------------------------------- Keras
@st.composite
def keras_configs(draw: st.DrawFn) -> Any:
    def layer() -> dict[str, Any]:
        cls = draw(
            st.sampled_from(
                ["Lambda", "Dense", "TFOpLambda", "Functional", "Custom>X", "Sequential"]
            )
        )
        cfg: dict[str, Any] = {"name": draw(st.text(max_size=6))}
        if draw(st.booleans()):
            cfg["function"] = draw(
                st.one_of(
                    json_values,
                    st.just({"class_name": "__lambda__", "config": {"code": "4wEAAAA="}}),
                    st.just(["4wEAAAAAAAAA", None, None]),
                )
            )
        if draw(st.booleans()):
            cfg["layers"] = [{"class_name": "Lambda", "config": {"function": "x"}}]
        return {
            "class_name": cls,
            "module": draw(st.sampled_from(["keras.layers", CANARY, None])),
            "registered_name": draw(st.sampled_from([None, f"{CANARY}>trip"])),
            "config": cfg,
        }

    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    return {
        "class_name": "Sequential",
        "config": {"layers": [layer() for _ in range(draw(st.integers(0, 4)))]},
    }


@given(config=keras_configs(), raw=st.booleans(), junk=st.binary(max_size=32), h5=st.integers(0, 7))
def test_fuzz_keras(work: tuple[Path, Path], config: Any, raw: bool, junk: bytes, h5: int) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", junk if raw else json.dumps(config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        if h5 == 5:  # one time in eight: each HDF5 read is a child process (see h5child)
            zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + junk)
    artifact("scan-keras", work, buf.getvalue(), "m.keras")


@pytest.fixture(scope="module")
def h5_sample() -> bytes:
    """A real HDF5 Keras-style file (h5py), with a Lambda layer in its model_config."""
    layer = {"class_name": "Lambda", "config": {"function": ["4wEAAAAA", None, None]}}
    data = make_h5(json.dumps({"class_name": "Sequential", "config": {"layers": [layer]}}))
    if data is None:
        pytest.skip("h5py is not installed")
    return data


@settings(scaled(40), deadline=None)  # each HDF5 read starts a child process: ~0.2 s
@given(data=st.data())
def test_fuzz_hdf5(work: tuple[Path, Path], h5_sample: bytes, data: st.DataObject) -> None:
    """libhdf5 crashes and hangs on some of these: the child process takes the hit."""
    artifact("scan-hdf5", work, data.draw(mutated(h5_sample)), "m.h5")


# ---------------------------------------------------------------------------------- safetensors


@st.composite
def safetensors(draw: st.DrawFn) -> bytes:
    header: dict[str, Any] = {}
    for i in range(draw(st.integers(0, 4))):
        header[f"t{i}"] = {
            "dtype": draw(st.sampled_from(["F32", "F16", "I64", "BOOL", "U8", "X", 3, None])),
            "shape": draw(st.lists(st.integers(-2, 2**40), max_size=3)),
            "data_offsets": draw(st.lists(st.integers(-2, 2**40), max_size=3)),
        }
    if draw(st.booleans()):
        header["__metadata__"] = draw(json_values)
    text = json.dumps(header).encode() if draw(st.integers(0, 3)) else draw(st.binary(max_size=40))
    n = len(text) if draw(st.integers(0, 3)) else draw(st.integers(0, 2**64 - 1))
    body = struct.pack("<Q", n) + text + draw(st.binary(max_size=64))
    return draw(mutated(body))


@given(data=safetensors())
def test_fuzz_safetensors(work: tuple[Path, Path], data: bytes) -> None:
    artifact("scan-safetensors", work, data, "m.safetensors")


# ---------------------------------------------------------------------------------- torch


@pytest.fixture(scope="module")
def torch_samples() -> dict[str, bytes]:
    """Real checkpoints from torch.save, the zip format and the legacy pickle format.

    Made in this process: tests/conftest.py loads torch before anything can load regopy (the
    other order aborts the interpreter with a double free), so no child process has to import
    torch again (two of them cost about 4 CPU seconds)."""
    if importlib.util.find_spec("torch") is None:  # not importorskip: no torch in here
        pytest.skip("torch is not installed")
    assert preload_torch(), "torch must load before regopy (tests/conftest.py preloads it)"
    import torch

    state = {
        "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "b": torch.zeros(2),
        "meta": {"epoch": 3, "names": ["a", "b"]},
    }
    out = {}
    for name in ("zip", "legacy"):
        buf = io.BytesIO()
        torch.save(state, buf, _use_new_zipfile_serialization=name == "zip")
        out[name] = buf.getvalue()
    return out


def _repack(data: bytes, mutate: Callable[[bytes], bytes]) -> bytes:
    """The checkpoint with its data.pkl member rewritten (CRC valid, so the pickle is read)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info in src.infolist():
            body = src.read(info)
            zf.writestr(info.filename, mutate(body) if info.filename.endswith("data.pkl") else body)
    return buf.getvalue()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), which=st.sampled_from(["zip", "legacy", "repacked"]))
def test_fuzz_torch_checkpoint(
    work: tuple[Path, Path], torch_samples: dict[str, bytes], data: st.DataObject, which: str
) -> None:
    if which == "repacked":
        blob = _repack(torch_samples["zip"], lambda b: data.draw(mutated(b)))
    else:
        blob = data.draw(mutated(torch_samples[which]))
    artifact("scan-torch", work, blob, "model.pt")
