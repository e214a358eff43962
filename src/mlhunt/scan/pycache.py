"""Files derived from what mlhunt ships, kept beside its bytecode between scans.

Only mlhunt's own inputs are kept (the allow-list parsed from YAML, the shipped Rego policies
compiled into a bundle), never anything from a scanned tree, and each file is named after
everything it was made from, so an edited source never meets a stale copy. They live in the
package's ``__pycache__``, like bytecode: whoever can write there can already change mlhunt's
code, so a cached file asks for no more trust than the code does (a folder in the home
directory would: CI caches restore it, and a doctored allow-list would hide findings). A
read-only install gets no cache; a file that cannot be read or written only means doing the
work again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["cache_dir", "cached_path", "write_atomic"]


def cache_dir() -> Path:
    return Path(__file__).with_name("__pycache__")


def cached_path(name: str) -> Path:
    return cache_dir() / name


def write_atomic(name: str, write: Callable[[str], None]) -> None:
    """``write(tmp_path)`` in the cache folder, then renamed to ``name``; errors ignored."""
    import tempfile

    folder = cache_dir()
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o644)  # like a .pyc: readable by whoever runs this mlhunt
        os.replace(tmp, folder / name)
        tmp = None
    except Exception:  # read-only install, full disk ...: the next scan does the work again
        return
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
