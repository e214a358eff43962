"""Size limits applied before a file is opened, and the ``--max-*`` options' parsing.

The walker checks sizes from ``stat`` alone, so a multi-GB (or sparse) file costs nothing to
refuse; each refusal is an MLH-SCAN-LIMIT finding, never a silent skip.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlhunt.errors import InputError
from mlhunt.findings import Finding
from mlhunt.scan.art_rules import make_finding
from mlhunt.scan.pickleops import Limits

__all__ = ["limits_from", "parse_size", "secrets_size_finding", "size_finding"]

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, option: str = "size") -> int:
    """``"512M"``, ``"2G"``, ``"1.5GiB"`` or plain bytes -> bytes (binary units)."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise InputError(f"{option}: expected a size such as 512M or 2G, got {text!r}")
    value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value <= 0:
        raise InputError(f"{option}: must be positive, got {text!r}")
    return value


def limits_from(
    *,
    max_file_bytes: str | None = None,
    max_entry_bytes: str | None = None,
    max_seconds: float | None = None,
    max_depth: int | None = None,
) -> Limits:
    """Default :class:`Limits` with the given overrides (CLI option values, unparsed sizes)."""
    changes: dict[str, int | float] = {}
    if max_file_bytes is not None:
        changes["max_file_bytes"] = parse_size(max_file_bytes, "--max-file-bytes")
    if max_entry_bytes is not None:
        changes["max_entry_bytes"] = parse_size(max_entry_bytes, "--max-entry-bytes")
    if max_seconds is not None:
        if not max_seconds > 0:
            raise InputError(f"--max-seconds: must be positive, got {max_seconds}")
        changes["max_seconds"] = float(max_seconds)
    if max_depth is not None:
        if max_depth < 0:
            raise InputError(f"--max-depth: must be 0 or more, got {max_depth}")
        changes["max_depth"] = max_depth
    return Limits(**changes)  # type: ignore[arg-type]


def size_finding(path: Path, size: int, limits: Limits) -> Finding:
    """The finding for a file over ``limits.max_file_bytes``: nothing of it was read."""
    return make_finding(
        "MLH-SCAN-LIMIT",
        str(path),
        "max_file_bytes",
        f"File of {size} bytes is larger than max_file_bytes ({limits.max_file_bytes}); "
        "it was not opened.",
        {"limit": "max_file_bytes", "size": size, "max_file_bytes": limits.max_file_bytes},
    )


def secrets_size_finding(path: Path, size: int) -> Finding | None:
    """A low finding for a text file too large for the secrets scan, None when it fits."""
    from mlhunt.scan.secrets import MAX_BYTES  # detect-secrets is imported only on use there

    if size <= MAX_BYTES:
        return None
    return make_finding(
        "MLH-SCAN-LIMIT",
        str(path),
        "max_text_bytes",
        f"Text file of {size} bytes is larger than the secrets scan reads ({MAX_BYTES}); "
        "it was not scanned for secrets.",
        {"limit": "max_text_bytes", "size": size, "max_text_bytes": MAX_BYTES},
        "low",
    )
