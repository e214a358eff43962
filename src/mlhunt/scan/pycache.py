"""Files derived from what mlhunt ships, kept beside its bytecode between scans.

Only mlhunt's own inputs are kept (the allow-list parsed from YAML, the shipped Rego policies
compiled into a bundle), never anything from a scanned tree, and each file is named after
everything it was made from, so an edited source never meets a stale copy. They live in the
package's ``__pycache__``, like bytecode: whoever can write there can already change mlhunt's
code, so a cached file asks for no more trust than the code does (a folder in the home
directory would: CI caches restore it, and a doctored allow-list would hide findings). A
read-only install gets no cache; a file that cannot be read or written only means doing the
work again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlhunt import pycache

__all__ = ["cache_dir", "cached_path", "write_atomic"]


def cache_dir() -> Path:
    return Path(__file__).with_name("__pycache__")


def cached_path(name: str) -> Path:
    return cache_dir() / name


def write_atomic(name: str, write: Callable[[str], None]) -> None:
    """``write(tmp_path)`` in the cache folder, then renamed to ``name``; errors ignored."""
    pycache.write_atomic(cache_dir(), name, write)
