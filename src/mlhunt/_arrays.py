"""Reading user-given ``.npy`` / ``.npz`` files (``hunt --reference``, ``assess --data``) without
ever unpickling, where every unreadable file is an :class:`~mlhunt.errors.InputError`."""

from __future__ import annotations

import lzma
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mlhunt.errors import InputError

# What np.load raises on a damaged or hostile file: a truncated zip or header (EOFError,
# BadZipFile), a header that is not a Python literal (SyntaxError, TokenError), a shape too big
# to allocate (MemoryError), object arrays that would need pickle (ValueError), a zip member
# that is encrypted (RuntimeError), uses an unknown method (NotImplementedError) or whose
# compressed bytes are damaged (zlib.error, LZMAError; bz2 raises OSError).
_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    SyntaxError,
    tokenize.TokenError,
    MemoryError,
    KeyError,
    RuntimeError,
    NotImplementedError,
    zlib.error,
    lzma.LZMAError,
)


def load_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` by name, or ``{"": array}`` for an ``.npy`` (np.load decides by
    the file's magic bytes, not its suffix)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return {"": np.asarray(loaded)}
    except _READ_ERRORS as exc:
        reason = f"{type(exc).__name__}: {exc}"[:200]
        raise InputError(
            f"{what}: not a readable .npy/.npz file ({reason})", file=str(path)
        ) from None


def numeric(a: np.ndarray, what: str, path: Path, *, min_ndim: int = 1) -> np.ndarray:
    """``a`` as float64 when it holds real numbers (bool, int or float) in at least
    ``min_ndim`` dimensions; strings, bytes, complex, dates and records are refused."""
    if a.dtype.kind not in "biuf":
        raise InputError(f"expected numbers, got dtype {a.dtype}", file=str(path), field=what)
    if a.ndim < min_ndim:
        raise InputError(
            f"expected at least {min_ndim} dimension(s), got shape {list(a.shape)}",
            file=str(path),
            field=what,
        )
    return a.astype(np.float64)
