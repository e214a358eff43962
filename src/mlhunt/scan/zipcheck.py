"""Structural checks on a zip central directory that need no member to be read.

Overlapping entries are how non-recursive zip bombs (David Fifield's "better zip bomb") reach
huge ratios: many directory entries share one compressed kernel, so each entry alone looks
harmless. Honest writers (zipfile, torch.save, Keras, numpy.savez) never overlap entries.
"""

from __future__ import annotations

import itertools
import zipfile

__all__ = ["distinct_regions", "overlapping"]

_LOCAL_HEADER = 30  # fixed part of a local file header, before its name and extra field


def _stored_name(info: zipfile.ZipInfo) -> bytes:
    """The name's bytes as stored: UTF-8 when flag bit 11 is set, else cp437 (zipfile decoded
    it from cp437, so it encodes back; a name set by hand may not, and then UTF-8 is used)."""
    if not info.flag_bits & 0x800:
        try:
            return info.orig_filename.encode("cp437")
        except UnicodeEncodeError:
            pass
    return info.orig_filename.encode("utf-8")


def _data_end(info: zipfile.ZipInfo) -> int:
    # The local extra field is unknown without a read, so this end is a lower bound: an
    # overlap found with it is certain.
    name = len(_stored_name(info))
    return info.header_offset + _LOCAL_HEADER + name + info.compress_size


def overlapping(infos: list[zipfile.ZipInfo]) -> list[tuple[str, str]]:
    """(earlier, later) entry names whose stored bytes overlap, in offset order."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    pairs = []
    for prev, cur in itertools.pairwise(ordered):
        if cur.header_offset < _data_end(prev):
            pairs.append((prev.filename, cur.filename))
    return pairs


def distinct_regions(infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """The first entry for each local header offset: shared data is scanned once."""
    seen: set[int] = set()
    out = []
    for info in infos:
        if info.header_offset not in seen:
            seen.add(info.header_offset)
            out.append(info)
    return out
