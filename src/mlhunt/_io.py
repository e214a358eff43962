"""Small file helpers shared by the library and the CLI."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, fsync, and rename, so a report is never
    left half-written: a reader (or a run killed mid-write) sees the old file or the new one.
    The temporary name holds the process id, so two writers never share one; on an exception
    (Ctrl-C included) it is removed.

    A target that exists and is not a regular file (``-o /dev/null``, a FIFO, ``/dev/stdout``)
    is written in place: renaming over it would replace the device itself, for every other
    process on the machine when run as root."""
    with contextlib.suppress(OSError):
        if not stat.S_ISREG(os.stat(path).st_mode):
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
