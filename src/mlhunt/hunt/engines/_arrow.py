"""Arrow arrays to numpy and back through their buffers, for the in-memory path.

pyarrow's own conversions (``Array.to_numpy``, ``pa.array``) import pandas the first time they
run: half a second of one core, which every hunt paid while its kernels were loading. Only the
types the path reads are handled: primitive numbers (values, validity) and strings.

Conventions the kernels' compiled signatures rely on: :func:`floats` is always read-only (a
zero-copy view when it can be), :func:`valid` always a fresh writable array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# pyarrow's names of the primitive number types
_DTYPES = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "float": np.float32,
    "double": np.float64,
}


def values(arr: Any) -> np.ndarray:
    """The value buffer of a primitive number array as numpy (read-only; null slots hold
    whatever the buffer holds)."""
    dt = _DTYPES.get(str(arr.type))
    if dt is None:
        raise TypeError(f"not a primitive number array: {arr.type}")
    n = len(arr)
    buf = arr.buffers()[1]
    if n == 0 or buf is None:
        return np.empty(0, dt)
    return np.frombuffer(buf, dt, count=arr.offset + n)[arr.offset :]


def valid(arr: Any) -> np.ndarray:
    """Validity as a bool array of the array's length (all True when there is no bitmap)."""
    n = len(arr)
    bits = arr.buffers()[0]
    if arr.null_count == 0 or bits is None:
        return np.ones(n, bool)
    first, last = arr.offset // 8, (arr.offset + n + 7) // 8
    start = arr.offset % 8
    unpacked = np.unpackbits(np.frombuffer(bits, np.uint8)[first:last], bitorder="little")
    return unpacked[start : start + n].view(np.bool_)


def offsets(arr: Any) -> np.ndarray:
    """The offsets of a string or list array (int32, or int64 for the large types), the
    array's own slice of them: row i is ``[out[i], out[i + 1])`` (read-only)."""
    import pyarrow as pa

    t = arr.type
    wide = pa.types.is_large_string(t) or pa.types.is_large_list(t)
    n = len(arr)
    return np.frombuffer(
        arr.buffers()[1], np.int64 if wide else np.int32, count=arr.offset + n + 1
    )[arr.offset :]


def data(arr: Any) -> np.ndarray:
    """The bytes of a string array (all of its buffer: index it with :func:`offsets`)."""
    buf = arr.buffers()[2]
    return np.frombuffer(buf, np.uint8) if buf is not None else np.zeros(0, np.uint8)


def floats(arr: Any) -> np.ndarray:
    """float64 values, NaN where null (read-only)."""
    out = values(arr)
    if arr.null_count:
        out = out.astype(np.float64)  # a copy: the nulls are written
        out[~valid(arr)] = np.nan
    elif out.dtype != np.float64:
        out = out.astype(np.float64)
    out.flags.writeable = False
    return out


def _buf(a: np.ndarray) -> Any:
    import pyarrow as pa

    return pa.py_buffer(np.ascontiguousarray(a))


def _bits(ok: np.ndarray) -> Any:
    return _buf(np.packbits(ok, bitorder="little"))


def strings(items: list[str | None]) -> Any:
    """A pyarrow string array of Python strings (None: null)."""
    import pyarrow as pa

    raw = [(v or "").encode() for v in items]
    off = np.concatenate([[0], np.cumsum([len(r) for r in raw], dtype=np.int64)])
    ok = np.array([v is not None for v in items], bool)
    return pa.StringArray.from_buffers(
        len(items),
        _buf(off.astype(np.int32)),
        pa.py_buffer(b"".join(raw)),
        _bits(ok),
        int((~ok).sum()),
    )


def float_array(vals: np.ndarray, ok: np.ndarray | None = None) -> Any:
    """A pyarrow float64 array (``ok``: the validity; None: no nulls)."""
    import pyarrow as pa

    nulls = 0 if ok is None else int((~ok).sum())
    bits = None if ok is None else _bits(ok)
    return pa.Array.from_buffers(pa.float64(), len(vals), [bits, _buf(vals.astype(float))], nulls)


def list_array(rows: list[list[float] | None]) -> Any:
    """A pyarrow list<double> array (None: null)."""
    import pyarrow as pa

    off = np.concatenate([[0], np.cumsum([len(r or []) for r in rows], dtype=np.int64)])
    ok = np.array([r is not None for r in rows], bool)
    child = float_array(np.array([v for r in rows for v in (r or [])], float))
    return pa.ListArray.from_buffers(
        pa.list_(pa.float64()),
        len(rows),
        [_bits(ok), _buf(off.astype(np.int32))],
        int((~ok).sum()),
        children=[child],
    )


def int_array(vals: np.ndarray) -> Any:
    """A pyarrow array of ``vals``' integer type, no nulls."""
    import pyarrow as pa

    return pa.Array.from_buffers(pa.from_numpy_dtype(vals.dtype), len(vals), [None, _buf(vals)])
