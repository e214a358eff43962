"""write_atomic: whole files for regular paths, in-place writes for devices and pipes."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from mlhunt._io import write_atomic


def test_a_regular_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.json"
    write_atomic(path, "one")
    write_atomic(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary left


def test_a_pipe_is_written_into_not_replaced(tmp_path: Path) -> None:
    """`-o /dev/null` as root once replaced the machine's /dev/null with a regular file: a
    rename over a device or pipe replaces the node itself. A FIFO stands in for the device."""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    write_atomic(fifo, "report")
    reader.join(timeout=60)
    assert got == ["report"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
