"""``mlhunt run --resume``: each part's document is saved atomically under the output folder
(``parts/<kind>-<n>.json``) the moment it completes, keyed by a hash of everything it was
computed from: the project file, the system description, the part's own settings, the run's
seed, mlhunt's version, and its input files. Input files up to 16 MiB are hashed by content;
larger files and folders by each file's path, size and modification time (hashing gigabytes of
logs on every resume would cost as much as the hunt). A part whose key still matches is reused;
anything else runs again. A killed run therefore leaves whole part files or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlhunt import __version__
from mlhunt._io import write_atomic

CONTENT_LIMIT = 16 * 1024 * 1024
MAX_ENTRIES = 200_000  # a folder this large is fingerprinted by its first entries only


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(path: Path) -> Any:
    """What identifies an input's current state (see the module docstring)."""
    try:
        st = path.stat()
    except OSError:
        return [str(path), "missing"]
    if path.is_file():
        if st.st_size <= CONTENT_LIMIT:
            return [str(path), _file_digest(path)]
        return [str(path), st.st_size, st.st_mtime_ns]
    entries: list[Any] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = Path(root, name)
            try:
                s = p.lstat()
            except OSError:
                continue
            entries.append([str(p.relative_to(path)), s.st_size, s.st_mtime_ns])
            if len(entries) >= MAX_ENTRIES:
                return [str(path), entries]
    return [str(path), entries]


@dataclass
class PartStore:
    """Where a run's finished parts live, and whether this run may reuse them."""

    out_dir: Path
    base: list[Any]  # what every part depends on: version, project (file), system file
    resume: bool = False
    progress: Callable[[str], None] = lambda _m: None
    reused: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_project(
        cls, project: Any, out_dir: Path, resume: bool, progress: Callable[[str], None]
    ) -> PartStore:
        project_file = project.base / Path(project.file).name
        base = [
            __version__,
            project.model_dump(mode="json"),
            fingerprint(project_file),
            fingerprint(project.resolve(project.system)),
        ]
        return cls(out_dir, base, resume, progress)

    def key(self, kind: str, index: int, config: Any, inputs: Iterable[Path | None]) -> str:
        blob = [*self.base, kind, index, config, [fingerprint(p) for p in inputs if p]]
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()

    def path(self, kind: str, index: int) -> Path:
        return self.out_dir / "parts" / f"{kind}-{index}.json"

    def load(self, kind: str, index: int, key: str) -> dict[str, Any] | None:
        if not self.resume:
            return None
        try:
            saved = json.loads(self.path(kind, index).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent (or from before this layout): run it
        if not isinstance(saved, dict) or saved.get("key") != key:
            return None  # its inputs changed since
        doc = saved.get("document")
        if not isinstance(doc, dict):
            return None
        with self._lock:
            self.reused.append(f"{kind}-{index}")
        self.progress(f"{kind} #{index + 1}: reused from {self.path(kind, index)}")
        return doc

    def save(self, kind: str, index: int, key: str, doc: dict[str, Any]) -> None:
        text = json.dumps({"key": key, "document": doc}, default=str)
        write_atomic(self.path(kind, index), text + "\n")

    def part(
        self, kind: str, index: int, key: str, compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """The saved document when the key matches (``--resume``), else computed and saved."""
        doc = self.load(kind, index, key)
        if doc is not None:
            return doc
        doc = compute()
        self.save(kind, index, key, doc)
        return doc
