"""Proof that the scanner never unpickles, imports, executes or reads outside its root.

Two independent witnesses:

* a canary module on ``sys.path`` whose import (or whose ``trip`` function, called by a
  payload) writes a marker file: ``pickle.loads`` of the payloads built here trips it (checked
  by a test), the scanner must not;
* a process audit hook (PEP 578) recording, while a :func:`watch` block is active, every event a
  deserialiser, an import, a command or a file open would raise.

Audit hooks cannot be removed, so the hook is installed once and is inert outside ``watch``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CANARY = "mlhunt_scan_canary"
_FORBIDDEN = {
    "pickle.find_class",  # an unpickler resolving a global
    "marshal.loads",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "subprocess.Popen",
    "socket.connect",
    "socket.getaddrinfo",
    "ctypes.dlopen",
}


from mlhunt.scan.h5child import worker_argv  # noqa: E402

# The scanner's own HDF5 reader process (its file run by path, isolated mode, no site import:
# it is given the site folders), never the input.
_H5_CHILD = worker_argv()


@dataclass
class Seen:
    forbidden: list[tuple[str, str]] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    children: int = 0


_local = threading.local()


def _hook(event: str, args: tuple) -> None:
    seen: Seen | None = getattr(_local, "seen", None)
    if seen is None:
        return
    if event == "marshal.loads" and seen.opened and seen.opened[-1].endswith(".pyc"):
        return  # the import system loading installed bytecode (a codec on first use ...)
    if event == "subprocess.Popen" and list(args[1])[: len(_H5_CHILD)] == _H5_CHILD:
        seen.children += 1  # the scanner's own isolated HDF5 reader, nothing from the input
        return
    if event in _FORBIDDEN:
        seen.forbidden.append((event, repr(args)[:200]))
    elif event == "import":
        seen.imports.append(str(args[0]))
    elif event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        seen.opened.append(os.fsdecode(args[0]))


sys.addaudithook(_hook)


@contextmanager
def watch() -> Iterator[Seen]:
    """Record audit events of this thread inside the block."""
    seen = Seen()
    _local.seen = seen
    try:
        yield seen
    finally:
        _local.seen = None


def install_canary(folder: Path) -> Path:
    """Write the canary module into ``folder``, put it on sys.path; return its marker file."""
    marker = folder / "CANARY-TRIPPED"
    (folder / f"{CANARY}.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        "def trip(*args, **kwargs):\n"
        f"    Path({str(marker)!r}).write_text('called')\n"
        "    return 0\n"
    )
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return marker


def assert_untouched(seen: Seen, marker: Path) -> None:
    assert not seen.forbidden, seen.forbidden
    assert CANARY not in seen.imports and CANARY not in sys.modules
    assert not marker.exists(), "the canary was imported or called"


_H5_MAKER = """
import io, json, sys, h5py
buf = io.BytesIO()
with h5py.File(buf, "w", track_order=False) as f:
    f.attrs["model_config"] = sys.argv[1]
    f.create_dataset("w", data=[1.0, 2.0], track_times=False)
sys.stdout.buffer.write(buf.getvalue())
"""


def make_h5(model_config: str) -> bytes | None:
    """A small Keras-style HDF5 file made by h5py in a child process (None without h5py).

    Never in this process: h5py's libhdf5 and torch's abort the interpreter when torch is
    imported after h5py, and pytest workers import both."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _H5_MAKER, model_config],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return out.stdout if out.returncode == 0 else None
