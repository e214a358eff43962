"""The HDF5 reader process: Keras config attributes read in one forked child per file.

Started by :class:`mlhunt.scan.h5child.H5Reader` as ``python -I -S -c BOOT .../h5worker.py
SITE...`` (BOOT runs this file by path, from its cached bytecode), with the site folders to
find h5py in, so it imports the standard library and h5py and nothing of mlhunt. It imports
h5py once, then for each request line (JSON: ``id``, ``path``, ``member``, ``max_bytes``,
``timeout``) forks a child that reads that one file under an address-space limit and exits.
A crafted file that crashes libhdf5 or corrupts its memory takes down only its own child:
neither this process nor the reading of the next file sees it. One JSON line answers each
request: ``{"id", "attrs"}``, ``{"id", "error"}`` (h5py refused the file) or ``{"id",
"crashed"}`` (signal, timeout, no answer).

Importing h5py costs ~0.15 s of NumPy, so the usual case goes straight to the libhdf5 that h5py
ships (the same C library, through ctypes): a scalar string attribute is read the way h5py reads
it. Anything else (another type or shape, a file libhdf5 refuses, a library not found) is read
again with h5py itself, imported here the first time it is needed, so answers and error
messages stay h5py's.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import io
import json
import os
import resource
import select
import sys
import time

ATTRS = ("model_config", "training_config")
MEMORY = 2 << 30  # address space of a reading child: enough for h5py, not for a runaway parse


# --- libhdf5 directly: the common case without NumPy

_HID = ctypes.c_int64  # hid_t since HDF5 1.10
_H5T_STRING = 3  # H5T_class_t
_H5S_SCALAR = 0  # H5S_class_t
_H5T_VARIABLE = ctypes.c_size_t(-1).value
_H5T_STR_NULLPAD = 1
_MAX_FIXED = 64 << 20  # a larger fixed-length string is left to h5py (and its MemoryError)


def load_libhdf5() -> ctypes.CDLL | None:
    """The libhdf5 bundled with the installed h5py wheel (``h5py.libs``), or None."""
    # PathFinder and listdir, not importlib.util and glob: each import is ~3 ms of a process
    # started per scan.
    spec = importlib.machinery.PathFinder.find_spec("h5py")
    if spec is None or not spec.origin:
        return None
    libs = os.path.join(os.path.dirname(os.path.dirname(spec.origin)), "h5py.libs")
    try:
        names = os.listdir(libs)
    except OSError:
        return None
    found = [n for n in names if n.startswith("libhdf5-") and ".so" in n[len("libhdf5-") :]]
    if len(found) != 1:
        return None
    try:
        lib = ctypes.CDLL(os.path.join(libs, found[0]))
        major, minor, release = ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()
        if lib.H5open() < 0 or lib.H5get_libversion(
            ctypes.byref(major), ctypes.byref(minor), ctypes.byref(release)
        ):
            return None
    except (OSError, AttributeError):
        return None
    if (major.value, minor.value) < (1, 10) or major.value > 2:
        return None
    for name in ("H5Fopen", "H5Aopen", "H5Aget_type", "H5Aget_space", "H5Tcopy"):
        getattr(lib, name).restype = _HID
    lib.H5Fopen.argtypes = [ctypes.c_char_p, ctypes.c_uint, _HID]
    lib.H5Aexists.argtypes = [_HID, ctypes.c_char_p]
    lib.H5Aopen.argtypes = [_HID, ctypes.c_char_p, _HID]
    lib.H5Aget_type.argtypes = lib.H5Aget_space.argtypes = [_HID]
    lib.H5Aread.argtypes = [_HID, _HID, ctypes.c_void_p]
    lib.H5Tget_class.argtypes = lib.H5Tis_variable_str.argtypes = [_HID]
    lib.H5Tget_size.argtypes = lib.H5Tget_cset.argtypes = [_HID]
    lib.H5Tget_size.restype = ctypes.c_size_t
    lib.H5Tcopy.argtypes = [_HID]
    lib.H5Tset_size.argtypes = [_HID, ctypes.c_size_t]
    lib.H5Tset_strpad.argtypes = lib.H5Tset_cset.argtypes = [_HID, ctypes.c_int]
    lib.H5Sget_simple_extent_type.argtypes = [_HID]
    lib.H5Eset_auto2.argtypes = [_HID, ctypes.c_void_p, ctypes.c_void_p]
    lib.H5Eset_auto2(0, None, None)  # errors are return codes here, not stderr
    return lib


def _string_attr(lib: ctypes.CDLL, fid: int, name: bytes) -> str | None:
    """A scalar string attribute as h5py's ``attrs[name]`` then ``h5child`` make it text:
    variable-length read as a C string and decoded with surrogate escapes; fixed-length read
    NUL-padded, trailing NULs dropped (NumPy's ``bytes_``) and decoded with replacement.
    None for anything else."""
    aid = lib.H5Aopen(fid, name, 0)
    if aid < 0:
        return None
    ftype, space = lib.H5Aget_type(aid), lib.H5Aget_space(aid)
    if ftype < 0 or space < 0 or lib.H5Sget_simple_extent_type(space) != _H5S_SCALAR:
        return None
    if lib.H5Tget_class(ftype) != _H5T_STRING:
        return None
    cset = lib.H5Tget_cset(ftype)
    variable = lib.H5Tis_variable_str(ftype)
    mtype = lib.H5Tcopy(_HID.in_dll(lib, "H5T_C_S1_g"))
    if cset < 0 or variable < 0 or mtype < 0 or lib.H5Tset_cset(mtype, cset) < 0:
        return None
    if variable:
        pointer = ctypes.c_char_p()
        if lib.H5Tset_size(mtype, _H5T_VARIABLE) < 0:
            return None
        if lib.H5Aread(aid, mtype, ctypes.byref(pointer)) < 0:
            return None
        return (pointer.value or b"").decode("utf-8", "surrogateescape")
    size = lib.H5Tget_size(ftype)
    if not 0 < size <= _MAX_FIXED:
        return None
    if lib.H5Tset_size(mtype, size) < 0 or lib.H5Tset_strpad(mtype, _H5T_STR_NULLPAD) < 0:
        return None
    buf = ctypes.create_string_buffer(size)
    if lib.H5Aread(aid, mtype, buf) < 0:
        return None
    return buf.raw.rstrip(b"\0").decode("utf-8", "replace")


def read_fast(lib: ctypes.CDLL, path: str, max_bytes: int) -> dict[str, object] | None:
    """The attributes through libhdf5 alone, or None where h5py must decide. Nothing is
    closed or freed: the reading child exits right after."""
    fid = lib.H5Fopen(os.fsencode(path), 0, 0)  # H5F_ACC_RDONLY, H5P_DEFAULT
    if fid < 0:
        return None
    attrs: dict[str, str] = {}
    for name in ATTRS:
        exists = lib.H5Aexists(fid, name.encode("ascii"))
        if exists < 0:
            return None
        if exists:
            text = _string_attr(lib, fid, name.encode("ascii"))
            if text is None:
                return None
            attrs[name] = text[: max_bytes + 1]
    return {"attrs": attrs}


# --- h5py: everything else


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


def _child(request: dict, lib: ctypes.CDLL | None, out: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # A backstop to this process's own timeout, should it be gone (killed with the scan):
    # a parse spinning in libhdf5 still ends, never an orphan.
    cpu = int(float(request["timeout"])) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    path, max_bytes = str(request["path"]), int(request["max_bytes"])
    if lib is not None:
        doc = read_fast(lib, path, max_bytes) or {"again": "h5py"}
    else:
        doc = read(path, bool(request.get("member")), max_bytes)
    data = json.dumps(doc).encode("utf-8")
    while data:
        data = data[os.write(out, data) :]


def handle(request: dict, lib: ctypes.CDLL | None) -> dict[str, object]:
    """Fork a child for one request, collect its JSON within the timeout, judge its exit;
    with ``lib``, a child that could not decide is followed by one that reads with h5py."""
    doc = _fork(request, lib)
    if lib is not None and "again" in doc:
        _import_h5py()  # once: later children start with it loaded
        doc = _fork(request, None)
    return doc


def _fork(request: dict, lib: ctypes.CDLL | None) -> dict[str, object]:
    timeout = max(1.0, float(request["timeout"]))
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, answer, exit without running this process's cleanup
        code = 0
        try:
            os.close(rfd)
            _child(request, lib, wfd)
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
        import signal  # only here: its enums are ~0.5 ms of a process started per scan

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


def _import_h5py() -> None:
    # try/except rather than contextlib.suppress: contextlib is ~1 ms of this process
    try:
        import h5py  # noqa: F401
    except ImportError:  # the h5py fallback then reports it per file
        return


def main() -> None:
    # Started with -S (site's .pth processing is ~4 ms): the parent names its site folders.
    sys.path.extend(p for p in sys.argv[1:] if p not in sys.path)
    lib = load_libhdf5()
    if lib is None:
        _import_h5py()  # loaded once, so every forked child has it
    for line in sys.stdin.buffer:
        request = json.loads(line)  # written by mlhunt itself, never by the scanned files
        answer = {**handle(request, lib), "id": request["id"]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    # Every answer is written: end without the interpreter's and libhdf5's teardown (~1 ms).
    os._exit(0)


if __name__ == "__main__":
    main()
