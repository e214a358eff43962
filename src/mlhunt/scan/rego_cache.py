"""The shipped Rego policies, parsed and compiled, cached on disk between scans.

Reading the policies' METADATA and checking their syntax (~0.01 s) and building the bundle
(adding every module, compiling every rule) are most of what a scan with a single manifest
costs in Rego. Only the policies mlhunt ships are cached (see :mod:`mlhunt.scan.pycache`): each
file is named by the length and CRC-32 of everything it was made from (the policies' names and
sources; for the bundle also the entry points and the regopy version), so an edited policy or
another rego-cpp never meets a stale copy, and zlib is loaded already where hashlib would cost
~3 ms. A copy that does not load just means doing the work again.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

from mlhunt.scan.pycache import cached_path, write_atomic

__all__ = ["bundle_key", "load_bundle", "load_parsed", "save_bundle", "save_parsed", "source_key"]


def source_key(modules: Iterable[tuple[str, str]], extra: str = "") -> str:
    """Total length and CRC-32 of ``extra`` and the (name, source) pairs, in order."""
    crc = zlib.crc32(extra.encode("utf-8", "surrogateescape"))
    total = 0
    for name, source in modules:
        for part in (name, source):
            data = part.encode("utf-8", "surrogateescape")
            crc = zlib.crc32(data, zlib.crc32(len(data).to_bytes(8, "big"), crc))
            total += len(data)
    return f"{total}-{crc:08x}"


def bundle_key(modules: Iterable[tuple[str, str]], entrypoints: Iterable[str]) -> str:
    """The key of a bundle: its modules in load order, its entry points and regopy's version."""
    import regopy

    version = getattr(regopy, "__version__", "?")
    return source_key(modules, f"regopy {version}\n" + "\n".join(entrypoints))


def load_bundle(interp: Any, key: str) -> Any:
    """The cached bundle for ``key`` loaded into ``interp``, or None."""
    from regopy import BundleFormat

    path = cached_path(f"rego-{key}.rbb")
    if not path.is_file():
        return None
    try:
        bundle = interp.load_bundle(str(path), BundleFormat.Binary)
    except Exception:  # damaged or from another rego-cpp: compile instead
        return None
    return bundle if bundle.ok() else None


def save_bundle(interp: Any, bundle: Any, key: str) -> None:
    from regopy import BundleFormat

    write_atomic(
        f"rego-{key}.rbb", lambda tmp: interp.save_bundle(tmp, bundle, BundleFormat.Binary)
    )


def load_parsed(key: str) -> list[Any] | None:
    """The parsed policies kept for ``key`` (one entry per file, JSON), or None."""
    try:
        data = json.loads(cached_path(f"policies-{key}.json").read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, list) else None


def save_parsed(key: str, data: list[Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)

    write_atomic(f"policies-{key}.json", write)
