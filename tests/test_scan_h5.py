"""The HDF5 reader's libhdf5 path (no NumPy) answers exactly as h5py does, or hands over."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlhunt.scan import h5worker

h5py = pytest.importorskip("h5py")
np = pytest.importorskip("numpy")

# Each writes the root attributes of one file: how Keras versions, h5py's defaults and odd
# writers store them.
CASES: dict[str, Callable[[Any], Any]] = {
    "vlen-str": lambda a: a.__setitem__("model_config", '{"a": "é"}'),
    "fixed-bytes": lambda a: a.__setitem__("model_config", b'{"a": 1}'),
    "fixed-bad-utf8": lambda a: a.__setitem__("model_config", np.bytes_(b'{"a": "\xff\xfe"}')),
    "vlen-ascii-bad-utf8": lambda a: a.create(
        "model_config", b'{"x": "\xff"}', dtype=h5py.string_dtype("ascii")
    ),
    "vlen-utf8-bad-utf8": lambda a: a.create(
        "model_config", b'{"x": "\xff"}', dtype=h5py.string_dtype("utf-8")
    ),
    "fixed-utf8": lambda a: a.create(
        "training_config",
        np.array('{"ü": 1}'.encode(), dtype="S12"),
        dtype=h5py.string_dtype("utf-8", 12),
    ),
    "embedded-nul": lambda a: a.__setitem__("model_config", np.bytes_(b"ab\x00cd\x00\x00")),
    "both-truncated": lambda a: (
        a.__setitem__("model_config", "x" * 5000),
        a.__setitem__("training_config", b"y"),
    ),
    "none": lambda a: None,
}
HANDED_OVER: dict[str, Callable[[Any], Any]] = {
    "array": lambda a: a.__setitem__("model_config", ["a", "b"]),
    "int": lambda a: a.__setitem__("model_config", 5),
    "empty": lambda a: a.__setitem__("model_config", h5py.Empty("S10")),
}


@pytest.fixture(scope="module")
def lib() -> Any:
    found = h5worker.load_libhdf5()
    if found is None:
        pytest.skip("h5py here does not ship its libhdf5 in h5py.libs")
    return found


def _write(tmp_path: Path, name: str, fill: Callable[[Any], Any]) -> str:
    path = str(tmp_path / f"{name}.h5")
    with h5py.File(path, "w") as f:
        fill(f.attrs)
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_libhdf5_reads_as_h5py(tmp_path: Path, lib: Any, name: str) -> None:
    path = _write(tmp_path, name, CASES[name])
    fast = h5worker.read_fast(lib, path, 100)
    assert fast is not None
    assert fast == h5worker.read(path, False, 100)


@pytest.mark.parametrize("name", sorted(HANDED_OVER))
def test_other_shapes_go_to_h5py(tmp_path: Path, lib: Any, name: str) -> None:
    path = _write(tmp_path, name, HANDED_OVER[name])
    assert h5worker.read_fast(lib, path, 100) is None
    assert "attrs" in h5worker.read(path, False, 100)


def test_damaged_file_gets_h5pys_error(tmp_path: Path, lib: Any) -> None:
    path = tmp_path / "junk.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert h5worker.read_fast(lib, str(path), 100) is None
    assert "error" in h5worker.read(str(path), False, 100)
    # and through the reader process: h5py's message, not a crash
    assert h5worker.handle(
        {"id": 0, "path": str(path), "member": False, "max_bytes": 100, "timeout": 30}, lib
    )["error"].startswith("OSError")


def test_reader_bounds_the_answers_it_holds(tmp_path: Path) -> None:
    """Past MAX_OUTSTANDING waiting answers, submit() handles the oldest itself; finish()
    returns every callback's value in submission order, archive members included."""
    from mlhunt.scan.h5child import MAX_OUTSTANDING, H5Reader

    path = _write(tmp_path, "one", CASES["vlen-str"])
    data = Path(path).read_bytes()
    called: list[int] = []

    def done(n: int) -> Callable[[Any], int]:
        def record(result: Any) -> int:
            assert result.attrs == {"model_config": '{"a": "é"}'.encode()}
            called.append(n)
            return n

        return record

    total = MAX_OUTSTANDING + 12
    with H5Reader() as reader:
        for n in range(total):
            member = n % 3 == 0  # bytes of an archive member, spilled to a private file
            reader.submit(
                data if member else None,
                path=None if member else path,
                timeout=30,
                max_bytes=1000,
                done=done(n),
            )
        assert len(called) >= total - MAX_OUTSTANDING
        assert reader.finish() == list(range(total)) == called
