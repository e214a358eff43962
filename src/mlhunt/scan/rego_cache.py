"""The shipped Rego policies' compiled bundle, cached on disk between scans.

Building the bundle (adding every module, compiling every rule) is most of what a scan with a
single manifest costs in Rego. Only the policies mlhunt ships are cached (see
:mod:`mlhunt.scan.pycache`): the key is a sha256 of their sources, the names they run under,
the entry points and the regopy version, so an edited policy or another rego-cpp never gets a
stale bundle. A bundle that does not load just means compiling as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from mlhunt.scan.pycache import cached_path, write_atomic

__all__ = ["bundle_key", "load_bundle", "save_bundle"]


def bundle_key(modules: Iterable[tuple[str, str]], entrypoints: Iterable[str]) -> str:
    """sha256 of (module name, source) pairs in load order, the entry points and regopy."""
    import regopy

    h = hashlib.sha256(f"regopy {getattr(regopy, '__version__', '?')}\n".encode())
    for name, source in modules:
        for part in (name, source):
            data = part.encode("utf-8", "surrogateescape")
            h.update(len(data).to_bytes(8, "big") + data)
    h.update("\n".join(entrypoints).encode())
    return h.hexdigest()


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
