"""Files derived from what mlhunt ships, kept between scans in the user's own cache.

Only mlhunt's own inputs are cached (the allow-list parsed from YAML, the compiled shipped Rego
policies), never anything from a scanned tree: each file is named by a sha256 of everything it
was made from, so an edited source never meets a stale copy. The folder is
``$MLHUNT_CACHE/scan`` (else ``~/.cache/mlhunt/scan``), created private; files are written
atomically. A cache that cannot be read or written only means doing the work again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["cache_dir", "cached_path", "write_atomic"]


def cache_dir() -> Path:
    root = os.environ.get("MLHUNT_CACHE") or Path.home() / ".cache" / "mlhunt"
    return Path(root) / "scan"


def cached_path(name: str) -> Path:
    return cache_dir() / name


def write_atomic(name: str, write: Callable[[str], None]) -> None:
    """``write(tmp_path)`` into the cache folder, then renamed to ``name``; errors ignored."""
    import tempfile

    folder = cache_dir()
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        os.close(fd)
        write(tmp)
        os.replace(tmp, folder / name)
        tmp = None
    except Exception:  # read-only home, full disk ...: the next scan does the work again
        return
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
