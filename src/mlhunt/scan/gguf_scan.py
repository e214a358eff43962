"""GGUF files: metadata only, through the ``gguf`` package's reader, with every read bounded.

``gguf.GGUFReader`` maps the file and walks its header, key-value metadata and tensor table; it
never reads tensor data (tensors are views into the map). Two things make it unfit for hostile
files as it stands, and :class:`BoundedReader` changes only those: a read past the end of the
file silently returns fewer bytes (so a lying count can spin forever on empty reads), and large
arrays (the vocabulary: 100k+ strings) are walked one numpy view per element (seconds per file).
Here a short read raises, the number of reads and the time are capped, and arrays longer than
:data:`KEEP_ARRAY` are stepped over (their length is kept, not their items).
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.findings import Finding
from mlhunt.scan.llm_rules import llm_finding
from mlhunt.scan.templates import MAX_TEMPLATE_CHARS, analyze_template

__all__ = ["BoundedReader", "GgufLie", "scan_gguf"]

KEEP_ARRAY = 64  # arrays up to this many items are read item by item (by gguf itself)
MAX_READS = 2_000_000  # reads of the metadata (each key, value, array item, tensor field)
MAX_SECONDS = 30.0
TEMPLATE_KEY = "tokenizer.chat_template"


class GgufLie(ValueError):
    """The file's counts, lengths or offsets point outside it."""


class BoundedReader:
    """Build with :meth:`open`: a ``gguf.GGUFReader`` whose reads are bounded (see module)."""

    @staticmethod
    def open(path: Path, *, max_seconds: float = MAX_SECONDS) -> Any:
        from gguf import GGUFReader, GGUFValueType

        scalar_sizes = {t: np.dtype(d).itemsize for t, d in GGUFReader.gguf_scalar_to_np.items()}

        class _Reader(GGUFReader):  # type: ignore[misc,valid-type]
            def __init__(self) -> None:
                self._deadline = time.monotonic() + max_seconds
                self._reads = 0
                self._next_clock = 4096  # reads between two looks at the clock
                super().__init__(path, "r")

            def _get(
                self, offset: int, dtype: Any, count: int = 1, override_order: Any = None
            ) -> Any:
                offset, count = int(offset), int(count)
                end = offset + np.dtype(dtype).itemsize * count
                if offset < 0 or count < 0 or end > len(self.data):
                    raise GgufLie(
                        f"a read of {count} x {np.dtype(dtype).name} at byte {offset} runs past "
                        f"the end of the file ({len(self.data)} bytes)"
                    )
                self._tick()
                return super()._get(offset, dtype, count, override_order)

            def _tick(self, reads: int = 1) -> None:
                self._reads += reads
                if self._reads > MAX_READS:
                    raise GgufLie(f"more than {MAX_READS} metadata reads")
                if self._reads >= self._next_clock:
                    self._next_clock = self._reads + 4096
                    if time.monotonic() > self._deadline:
                        raise GgufLie(f"metadata not read within {max_seconds:.0f} s")

            def _get_field_parts(self, orig_offs: int, raw_type: int) -> Any:
                if raw_type != GGUFValueType.ARRAY:
                    return super()._get_field_parts(orig_offs, raw_type)
                raw_itype = self._get(orig_offs, np.uint32)
                alen = self._get(orig_offs + 4, np.uint64)
                n = int(alen[0])
                if n <= KEEP_ARRAY:
                    return super()._get_field_parts(orig_offs, raw_type)
                itype = GGUFValueType(int(raw_itype[0]))
                offs = orig_offs + 12
                if itype in scalar_sizes:
                    offs += n * scalar_sizes[itype]
                elif itype == GGUFValueType.STRING:
                    offs = self._skip_strings(offs, n)
                else:
                    raise GgufLie(f"an array of {n} {itype.name} items (nested arrays)")
                if offs > len(self.data):
                    raise GgufLie(
                        f"an array of {n} {itype.name} items runs past the end of the file"
                    )
                return offs - orig_offs, [raw_itype, alen], [], [GGUFValueType.ARRAY, itype]

            def _skip_strings(self, offs: int, n: int) -> int:
                size = len(self.data)
                if n > (size - offs) // 8:
                    raise GgufLie(f"an array of {n} strings cannot fit in the file")
                buf = memoryview(self.data)
                unpack = struct.Struct("<Q" if self.byte_order == "I" else ">Q").unpack_from
                for i in range(n):
                    if offs + 8 > size:
                        raise GgufLie(f"string {i} of {n} starts past the end of the file")
                    offs += 8 + unpack(buf, offs)[0]
                    if i % 4096 == 4095:  # each string counts as one read
                        self._tick(4096)
                return offs

        return _Reader()


def _text(field: Any) -> str:
    return bytes(field.parts[-1]).decode("utf-8", "replace")


def _scalar_text(reader: Any, key: str) -> str:
    field = reader.fields.get(key)
    if field is None or not field.types or field.types[0].name != "STRING":
        return ""
    if field.parts[-1].nbytes > 4096:
        return ""
    return _text(field)


def scan_gguf(path: Path, *, display: str | None = None, render: bool = True) -> list[Finding]:
    """Findings for one GGUF file: a malformed or lying header, and every chat template in its
    metadata (``tokenizer.chat_template`` and the named ``tokenizer.chat_template.*``)."""
    target = display if display is not None else str(path)
    try:
        reader = BoundedReader.open(path)
    except (
        GgufLie,
        ValueError,
        KeyError,
        IndexError,
        OverflowError,
        UnicodeDecodeError,
        TypeError,
    ) as exc:
        return [
            llm_finding(
                "MLH-SCAN-GGUF-MALFORMED",
                target,
                "header",
                f"The GGUF header could not be read: {exc}. A truncated or lying file is not "
                "what its publisher built; loaders disagree on what to do with it.",
                {"error": str(exc)[:500], "error_type": type(exc).__name__},
            )
        ]
    except OSError as exc:
        return [
            llm_finding(
                "MLH-SCAN-GGUF-MALFORMED",
                target,
                "unreadable",
                f"The file could not be read: {exc.strerror or exc}.",
                {"error": str(exc)[:300]},
            )
        ]
    findings = _layout(reader, target)
    hint = " ".join(
        _scalar_text(reader, k)
        for k in ("general.architecture", "general.name", "general.basename")
    )
    for key, field in reader.fields.items():
        if key != TEMPLATE_KEY and not key.startswith(TEMPLATE_KEY + "."):
            continue
        if not field.types or field.types[0].name != "STRING":
            continue
        if field.parts[-1].nbytes > MAX_TEMPLATE_CHARS * 4:
            findings.append(
                llm_finding(
                    "MLH-SCAN-TEMPLATE-SYNTAX",
                    target,
                    f"{key}:size",
                    f"The chat template is {field.parts[-1].nbytes} bytes long; not analysed.",
                    {"field": key, "bytes": int(field.parts[-1].nbytes)},
                    "medium",
                )
            )
            continue
        findings.extend(analyze_template(_text(field), target, where=key, hint=hint, render=render))
    return findings


def _layout(reader: Any, target: str) -> list[Finding]:
    """Tensors whose data overlap (two names for the same bytes, or a tensor hidden in another)."""
    spans = sorted(
        (int(t.data_offset), int(t.data_offset) + int(t.n_bytes), t.name) for t in reader.tensors
    )
    overlaps = []
    end, last = -1, ""
    for begin, stop, name in spans:
        if begin < end:
            overlaps.append({"tensor": name, "overlaps": last, "at": begin})
        if stop > end:
            end, last = stop, name
    if not overlaps:
        return []
    return [
        llm_finding(
            "MLH-SCAN-GGUF-MALFORMED",
            target,
            "overlap",
            f"{len(overlaps)} tensor(s) share bytes with another tensor.",
            {"overlaps": overlaps[:20], "tensors": len(spans)},
        )
    ]
