"""The HDF5 reader process: Keras config attributes read in one forked child per file.

Started by :class:`mlhunt.scan.h5child.H5Reader` as ``python -I .../h5worker.py``, by path, so
it imports the standard library and h5py and nothing of mlhunt. It imports h5py once, then for
each request line (JSON: ``id``, ``path``, ``member``, ``max_bytes``, ``timeout``) forks a child
that reads that one file under an address-space limit and exits. A crafted file that crashes
libhdf5 or corrupts its memory takes down only its own child: neither this process nor the
reading of the next file sees it. One JSON line answers each request: ``{"id", "attrs"}``,
``{"id", "error"}`` (h5py refused the file) or ``{"id", "crashed"}`` (signal, timeout, no answer).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import select
import signal
import sys
import time

ATTRS = ("model_config", "training_config")
MEMORY = 2 << 30  # address space of a reading child: enough for h5py, not for a runaway parse


def read(path: str, member: bool, max_bytes: int) -> dict[str, object]:
    """The Keras attributes of one HDF5 file (``member``: bytes cut from an archive, read from
    memory as an archive member always was)."""
    try:
        import h5py
    except ImportError:
        return {"error": "h5py is not installed"}
    if member:
        with open(path, "rb") as fh:
            source: object = io.BytesIO(fh.read())
    else:
        source = path
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


def _child(request: dict, out: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    doc = read(str(request["path"]), bool(request.get("member")), int(request["max_bytes"]))
    data = json.dumps(doc).encode("utf-8")
    while data:
        data = data[os.write(out, data) :]


def handle(request: dict) -> dict[str, object]:
    """Fork a child for one request, collect its JSON within the timeout, judge its exit."""
    timeout = max(1.0, float(request["timeout"]))
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, answer, exit without running this process's cleanup
        code = 0
        try:
            os.close(rfd)
            _child(request, wfd)
        except BaseException:
            code = 3
        os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        ready = select.select([rfd], [], [], left)[0] if left > 0 else []
        if not ready:
            timed_out = True
            break
        chunk = os.read(rfd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(rfd)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"crashed": f"no answer within {timeout:.0f} s"}
    if os.WIFSIGNALED(status):
        return {"crashed": f"the HDF5 library died with signal {os.WTERMSIG(status)}"}
    try:
        doc = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {"crashed": f"the HDF5 reader failed (exit {os.waitstatus_to_exitcode(status)})"}
    return doc if isinstance(doc, dict) else {"crashed": "the HDF5 reader answered nonsense"}


def main() -> None:
    with contextlib.suppress(ImportError):  # loaded once, so every forked child has it
        import h5py  # noqa: F401
    for line in sys.stdin.buffer:
        request = json.loads(line)  # written by mlhunt itself, never by the scanned files
        answer = {**handle(request), "id": request["id"]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
