"""Files derived from what mlhunt ships, kept beside its bytecode (``__pycache__``).

Only mlhunt's own inputs are kept (the scan's allow-list and Rego bundle, the threat rules
parsed from YAML), never anything a user passes in, and each file is named after everything it
was made from, so an edited source never meets a stale copy. Whoever can write a package's
``__pycache__`` can already change mlhunt's code, so a cached file asks for no more trust than
the code does. A read-only install gets no cache; a file that cannot be read or written only
means doing the work again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["cached_json", "write_atomic"]


def write_atomic(folder: Path, name: str, write: Callable[[str], None]) -> None:
    """``write(tmp_path)`` in ``folder``, then renamed to ``name``; errors ignored."""
    import tempfile

    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o644)  # like a .pyc: readable by whoever runs this mlhunt
        os.replace(tmp, folder / name)
        tmp = None
    except Exception:  # read-only install, full disk ...: the next run does the work again
        return
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def cached_json(folder: Path, prefix: str, raw: bytes, parse: Callable[[], Any]) -> Any:
    """``parse()``'s data for the source bytes ``raw``, kept in ``folder`` as JSON named by the
    source's size and CRC-32 (they tell an edited file from the one parsed; the location is
    what makes the copy trustworthy). Data JSON cannot hold exactly is parsed every time."""
    import json
    import zlib

    name = f"{prefix}-{len(raw)}-{zlib.crc32(raw):08x}.json"
    try:
        return json.loads((folder / name).read_bytes())
    except (OSError, ValueError):
        pass
    data = parse()
    try:
        doc = json.dumps(data)
    except (TypeError, ValueError):
        return data
    if json.loads(doc) == data:
        write_atomic(folder, name, lambda tmp: Path(tmp).write_text(doc, encoding="utf-8"))
    return data
