"""HDF5 attributes read in a child process: libhdf5 is C code that crashes on crafted files.

Fuzzing the scanner (issue #9) found HDF5 files with a few bytes changed that make h5py's
attribute read end in a segmentation fault, which would take the whole ``mlhunt scan`` down
with it (and memory corruption in the scanning process is how a parser becomes the way in).
So the Keras ``model_config`` / ``training_config`` attributes are read by
``python -I -m mlhunt.scan.h5child`` under an address-space limit and a timeout; the parent
only ever sees JSON text on a pipe. A crash becomes a finding.

Run as a program: reads the HDF5 file named in argv (or its bytes from stdin), writes
``{"attrs": {name: text}}`` or ``{"error": message}`` to stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["H5Result", "read_attrs"]

ATTRS = ("model_config", "training_config")
_MEMORY = 2 << 30  # address space of the child: enough for h5py, not for a runaway parse


@dataclass(slots=True)
class H5Result:
    attrs: dict[str, bytes]
    error: str | None = None  # h5py refused the file (damaged, not HDF5 ...)
    crashed: str | None = None  # the child died: signal, timeout, no answer


def read_attrs(
    data: bytes | None, *, path: str | None = None, timeout: float, max_bytes: int
) -> H5Result:
    """The Keras config attributes of an HDF5 file (its ``path``, or its bytes for an archive
    member), read in an isolated child."""
    args = [sys.executable, "-I", "-m", "mlhunt.scan.h5child", str(max_bytes)]
    if path is not None:
        args.append(path)
    try:
        out = subprocess.run(  # our own interpreter and module, no shell
            args,
            input=data if path is None else b"",
            capture_output=True,
            timeout=max(1.0, timeout),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return H5Result({}, crashed=f"no answer within {max(1.0, timeout):.0f} s")
    except OSError as exc:
        return H5Result({}, crashed=f"could not start the HDF5 reader: {exc}")
    if out.returncode < 0:
        return H5Result({}, crashed=f"the HDF5 library died with signal {-out.returncode}")
    try:
        doc = json.loads(out.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        tail = out.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
        return H5Result({}, crashed=f"the HDF5 reader failed (exit {out.returncode}): {tail[0]}")
    if "error" in doc:
        return H5Result({}, error=str(doc["error"])[:500])
    return H5Result({str(k): _raw(v) for k, v in doc.get("attrs", {}).items()})


def _raw(text: object) -> bytes:
    # h5py hands back invalid UTF-8 as surrogate escapes: give the bytes back as they were
    try:
        return str(text).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return str(text).encode("utf-8", "replace")


def _child(max_bytes: int, path: str | None) -> dict[str, object]:
    import io
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY, _MEMORY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        import h5py
    except ImportError:
        return {"error": "h5py is not installed"}
    source = path if path is not None else io.BytesIO(sys.stdin.buffer.read())
    attrs: dict[str, str] = {}
    try:
        with h5py.File(source, "r") as h5:
            for name in ATTRS:
                if name not in h5.attrs:
                    continue
                value = h5.attrs[name]
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                attrs[name] = text[: max_bytes + 1]
    except Exception as exc:  # h5py raises many types on damaged files (OSError, RuntimeError…)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"attrs": attrs}


if __name__ == "__main__":
    sys.stdout.write(
        json.dumps(_child(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
    )
