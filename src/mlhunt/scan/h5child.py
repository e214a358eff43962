"""HDF5 attributes read in another process: libhdf5 is C code that crashes on crafted files.

Fuzzing the scanner (issue #9) found HDF5 files with a few bytes changed that make h5py's
attribute read end in a segmentation fault, which would take the whole ``mlhunt scan`` down
with it (and memory corruption in the scanning process is how a parser becomes the way in).
So the Keras ``model_config`` / ``training_config`` attributes are read by the reader process
of :mod:`mlhunt.scan.h5worker`, which forks one child per file under an address-space limit and
a timeout; this process only ever sees JSON text on a pipe. A crash becomes a finding.

One :class:`H5Reader` serves a whole scan: the reader process starts (and imports h5py) at
the first HDF5 file while the scan goes on with the other files, and the answers are collected
at the end (:meth:`H5Reader.finish`). Starting an interpreter and importing h5py and NumPy
costs ~0.15 s, which used to be paid once per file, in line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a reader starts: a scan without HDF5 never needs them
    import subprocess

__all__ = ["BOOT", "WORKER", "H5Reader", "H5Result", "read_attrs", "worker_argv"]

WORKER = str(Path(__file__).with_name("h5worker.py"))
#: Answers that may wait to be handled at once (each holds up to ``max_bytes`` of attributes).
MAX_OUTSTANDING = 8
#: Runs the worker file from its cached bytecode (``__pycache__`` beside it, checked against
#: the source and rewritten when stale, as an import would): a file run as a script is compiled
#: from source every time (~1.7 ms of each scan that meets an HDF5 file).
BOOT = (
    "import sys\n"
    "from importlib.machinery import SourceFileLoader\n"
    "sys.argv = sys.argv[1:]\n"
    "code = SourceFileLoader('__main__', sys.argv[0]).get_code('__main__')\n"
    "exec(code, {'__name__': '__main__', '__file__': sys.argv[0], '__builtins__': __builtins__})\n"
)
#: Extra seconds the reader process gets beyond a request's own timeout (which it enforces on
#: its reading child) before this side gives up on it: start-up and h5py's import on a busy
#: machine.
_GRACE_S = 60.0


class H5Result:
    """What reading one file gave (a plain class: this module is imported by every scan, and
    a dataclass costs ~1 ms to create)."""

    __slots__ = ("attrs", "crashed", "error")

    def __init__(
        self, attrs: dict[str, bytes], error: str | None = None, crashed: str | None = None
    ) -> None:
        self.attrs = attrs
        self.error = error  # h5py refused the file (damaged, not HDF5 ...)
        self.crashed = crashed  # the reading child died: signal, timeout, no answer

    def __repr__(self) -> str:
        return f"H5Result(attrs={self.attrs!r}, error={self.error!r}, crashed={self.crashed!r})"


class _Pending:
    __slots__ = ("done", "timeout")

    def __init__(self, timeout: float, done: Callable[[H5Result], Any]) -> None:
        self.timeout = timeout
        self.done = done


class H5Reader:
    """Reads HDF5 files' Keras attributes in one reader process per scan; ``done`` callbacks
    run in :meth:`finish`, in the order the files were submitted. Use as a context manager."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._failed: str | None = None  # why the reader process could not be used
        self._pending: deque[tuple[int, _Pending, str | None]] = deque()  # id, what, spilled
        self._next = 0
        self._results: list[Any] = []
        self._answers: dict[int, dict[str, Any]] = {}
        self._closed_out = False
        self._cond = threading.Condition()
        self._tmp: str | None = None

    def submit(
        self,
        data: bytes | None,
        *,
        path: str | None,
        timeout: float,
        max_bytes: int,
        done: Callable[[H5Result], Any],
    ) -> None:
        """Queue one file (its ``path``, or its bytes for an archive member). At most
        ``MAX_OUTSTANDING`` answers wait at a time: past that, this call handles the oldest, so
        a folder of files with huge attributes never holds all of them in memory."""
        n = self._next
        self._next += 1
        member = path is None
        if member:
            path = self._spill(data or b"", n)
        self._pending.append((n, _Pending(max(1.0, timeout), done), path if member else None))
        request = {
            "id": n,
            "path": path,
            "member": member,
            "max_bytes": max_bytes,
            "timeout": max(1.0, timeout),
        }
        proc = self._start()
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            proc.stdin.flush()
        except OSError as exc:  # the reader process is gone: finish() reports it per file
            self._failed = self._failed or f"the HDF5 reader stopped: {exc}"
        self._drain(MAX_OUTSTANDING)

    def finish(self) -> list[Any]:
        """Wait for every answer and return what the ``done`` callbacks returned, in the order
        the files were submitted (those handled early by :meth:`submit` included)."""
        self._drain(0)
        out, self._results = self._results, []
        self._answers.clear()
        self.close()
        return out

    def _drain(self, keep: int) -> None:
        while len(self._pending) > keep:
            n, item, spilled = self._pending.popleft()
            result = self._answer(n, item.timeout)
            if spilled is not None:
                with contextlib.suppress(OSError):
                    os.unlink(spilled)
            self._results.append(item.done(result))

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            import subprocess

            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # end of requests: the reader process exits
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._tmp is not None:
            import shutil  # only archive members are spilled to a folder

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> H5Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals

    def _spill(self, data: bytes, n: int) -> str:
        """An archive member's bytes, written where only this user can read them."""
        import tempfile

        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="mlhunt-h5-")
        path = os.path.join(self._tmp, f"{n}.h5")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path

    def _start(self) -> subprocess.Popen[bytes] | None:
        import subprocess

        if self._proc is not None or self._failed is not None:
            return self._proc
        # One BLAS thread: NumPy is imported for h5py only, and the reader forks.
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        # -I: nothing from the working folder or PYTHONPATH; -S without site's ~4 ms, the
        # worker is handed the site folders (where h5py lives) instead.
        import site

        try:
            self._proc = subprocess.Popen(  # our own interpreter and file, no shell
                [*worker_argv(), *site.getsitepackages()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            self._failed = f"could not start the HDF5 reader: {exc}"
            return None
        self._closed_out = False
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True).start()
        return self._proc

    def _read(self, stdout: IO[bytes]) -> None:
        """Drain the reader's answers as they come, so that it never blocks on a full pipe."""
        for line in stdout:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                self._answers[int(doc.get("id", -1))] = doc
                self._cond.notify_all()
        with self._cond:
            self._closed_out = True
            self._cond.notify_all()

    def _answer(self, n: int, timeout: float) -> H5Result:
        if self._proc is not None:
            with self._cond:
                self._cond.wait_for(
                    lambda: n in self._answers or self._closed_out, timeout + _GRACE_S
                )
                doc = self._answers.pop(n, None)
            if doc is None:  # the reader process itself stopped or hung: stop using it
                self._failed = self._failed or "the HDF5 reader stopped answering"
                self._proc.kill()
        else:
            doc = None
        if doc is None:
            return H5Result({}, crashed=self._failed or "the HDF5 reader stopped answering")
        if "crashed" in doc:
            return H5Result({}, crashed=str(doc["crashed"]))
        if "error" in doc:
            return H5Result({}, error=str(doc["error"])[:500])
        attrs = doc.get("attrs", {})
        return H5Result({str(k): _raw(v) for k, v in attrs.items()})


def worker_argv() -> list[str]:
    """How the reader process is started (the site folders follow): our own interpreter,
    isolated (-I: nothing from the working folder or PYTHONPATH), without site's ~4 ms (-S),
    running the worker file through :data:`BOOT`."""
    return [sys.executable, "-I", "-S", "-c", BOOT, WORKER]


def read_attrs(
    data: bytes | None, *, path: str | None = None, timeout: float, max_bytes: int
) -> H5Result:
    """The Keras config attributes of one HDF5 file (its ``path``, or its bytes for an archive
    member), read in another process."""
    with H5Reader() as reader:
        reader.submit(data, path=path, timeout=timeout, max_bytes=max_bytes, done=lambda r: r)
        (result,) = reader.finish()
    return result


def _raw(text: object) -> bytes:
    # h5py hands back invalid UTF-8 as surrogate escapes: give the bytes back as they were
    try:
        return str(text).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return str(text).encode("utf-8", "replace")
