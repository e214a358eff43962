"""Format sniffing and the byte-level parsers of non-pickle formats.

Formats are recognised by magic bytes and structure, never by file extension. Everything here
reads bytes as data: NumPy headers through ``ast.literal_eval`` on a bounded header (a literal
parser, no evaluation), safetensors and Keras configurations as JSON, ONNX through a small
protobuf field walker.
"""

from __future__ import annotations

import ast
import base64
import bz2
import json
import lzma
import re
import struct
import zlib
from typing import Any

from mlhunt.record import Record
from mlhunt.scan.pickleops import Limits, scan_pickles

PICKLE = "pickle"  # protocol 2+ (PROTO opcode)
PICKLE_TEXT = "pickle-text"  # protocol 0/1 candidate: confirmed by a trial parse
ZIP = "zip"
NPY = "npy"
HDF5 = "hdf5"
SAFETENSORS = "safetensors"
ONNX = "onnx"
GZIP = "gzip"
BZIP2 = "bz2"
XZ = "xz"
LZMA = "lzma"
ZLIB = "zlib"
COMPRESSED = (GZIP, BZIP2, XZ, LZMA, ZLIB)
_ZLIB_DECOMPRESS = type(zlib.decompressobj())

TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Opcodes a protocol 0/1 pickle can start with (anything that pushes onto an empty stack).
_TEXT_PICKLE_START = set(b"(cNIFLSVXKJMUTG]})i") | {0x88, 0x89}


def sniff(head: bytes, size: int) -> str | None:
    """The format of a byte stream from its first bytes (64 are plenty) and total size."""
    if len(head) < 2:
        return None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return ZIP
    if head[:6] == b"\x93NUMPY":
        return NPY
    if head[:8] == _HDF5_MAGIC:
        return HDF5
    if head[0] == 0x80 and head[1] <= 5:
        return PICKLE
    if len(head) >= 9 and head[8:9] == b"{":
        n = struct.unpack_from("<Q", head)[0]
        if 2 <= n <= size - 8:
            return SAFETENSORS
    if head[:2] == b"\x1f\x8b":
        return GZIP
    if head[:3] == b"BZh":
        return BZIP2
    if head[:6] == b"\xfd7zXZ\x00":
        return XZ
    if head[:3] == b"\x5d\x00\x00":
        return LZMA
    if (
        head[0] == 0x78
        and head[1] in (0x01, 0x5E, 0x9C, 0xDA)
        and (head[0] * 256 + head[1]) % 31 == 0
    ):
        return ZLIB
    if _looks_like_onnx(head):
        return ONNX
    if head[0] in _TEXT_PICKLE_START:
        return PICKLE_TEXT
    return None


def confirm_text_pickle(data: Any, limits: Limits, end: int | None = None) -> bool:
    """Whether a protocol 0/1 candidate (no PROTO opcode) really is a pickle; ``data`` may be
    just the start of the file."""
    scan = scan_pickles(data, 0, end, limits=limits, single=True)
    return text_pickle_confirmed(scan, window=True)


def text_pickle_confirmed(scan: Any, *, window: bool = False) -> bool:
    """A text candidate is a pickle when it parses to STOP, when a well-formed import is called
    before the stream breaks (that part runs under pickle.load), or, for a window onto a longer
    file, when every opcode up to the window's end parsed."""
    if not scan.pickles:
        return False
    first = scan.pickles[0]
    if first.complete:
        return True
    if any(rec.called and not rec.dynamic and _is_dotted(rec.fullname) for rec in scan.imports):
        return True
    return window and scan.at_end and first.opcodes >= 8


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _is_dotted(text: str) -> bool:
    return bool(_DOTTED.match(text))


# --------------------------------------------------------------------------- decompression


def decompressor(kind: str) -> Any:
    if kind == GZIP:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == ZLIB:
        return zlib.decompressobj()
    if kind == BZIP2:
        return bz2.BZ2Decompressor()
    if kind == XZ:
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)


def decompress_bounded(
    data: Any, kind: str, max_out: int, chunk: int = 1 << 20
) -> tuple[bytes, bool]:
    """Decompress ``data`` (bytes or mmap) to at most ``max_out`` bytes.

    Returns (output, complete). Raises ValueError on corrupt input.
    """
    dec = decompressor(kind)
    out = bytearray()
    pos = 0
    size = len(data)
    try:
        while pos < size and len(out) < max_out:
            piece = data[pos : pos + chunk]
            pos += len(piece)
            room = max_out - len(out)
            if isinstance(dec, _ZLIB_DECOMPRESS):
                out += dec.decompress(piece, room)
                while dec.unconsumed_tail and len(out) < max_out:
                    out += dec.decompress(dec.unconsumed_tail, max_out - len(out))
                if dec.unconsumed_tail:
                    return bytes(out), False
                if dec.eof:
                    return bytes(out), True
            else:
                out += dec.decompress(piece, room)
                while not dec.needs_input and not dec.eof and len(out) < max_out:
                    out += dec.decompress(b"", max_out - len(out))
                if dec.eof:
                    return bytes(out), True
                if not dec.needs_input:
                    return bytes(out), False
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
        raise ValueError(f"corrupt {kind} stream: {exc}") from None
    return bytes(out), pos >= size


# --------------------------------------------------------------------------- NumPy .npy


class NpyHeader(Record):
    __slots__ = ("data_offset", "descr", "fortran_order", "has_object", "shape", "version")

    def __init__(
        self,
        version: tuple[int, int],
        descr: Any,
        shape: tuple[int, ...],
        fortran_order: bool,
        data_offset: int,
        has_object: bool,
    ) -> None:
        self.version = version
        self.descr = descr
        self.shape = shape
        self.fortran_order = fortran_order
        self.data_offset = data_offset
        self.has_object = has_object


def parse_npy_header(data: Any, max_header: int = 1 << 20) -> NpyHeader:
    """Parse a .npy header. Raises ValueError with a reason when it is malformed."""
    if bytes(data[:6]) != b"\x93NUMPY" or len(data) < 10:
        raise ValueError("not a .npy file")
    major, minor = data[6], data[7]
    if major == 1:
        hlen = struct.unpack_from("<H", data, 8)[0]
        start = 10
    elif major in (2, 3):
        if len(data) < 12:
            raise ValueError("truncated .npy header")
        hlen = struct.unpack_from("<I", data, 8)[0]
        start = 12
    else:
        raise ValueError(f"unsupported .npy version {major}.{minor}")
    if hlen > max_header:
        raise ValueError(f".npy header of {hlen} bytes exceeds {max_header}")
    raw = bytes(data[start : start + hlen])
    if len(raw) < hlen:
        raise ValueError("truncated .npy header")
    text = raw.decode("utf-8" if major == 3 else "latin-1", "replace")
    try:
        header = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError) as exc:
        raise ValueError(f".npy header is not a Python literal: {exc}") from None
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        raise ValueError(".npy header lacks descr/fortran_order/shape")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f".npy shape {shape!r} is not a tuple of non-negative ints")
    return NpyHeader(
        (major, minor),
        header["descr"],
        shape,
        bool(header["fortran_order"]),
        start + hlen,
        _descr_has_object(header["descr"]),
    )


def _descr_has_object(descr: Any, depth: int = 0) -> bool:
    if depth > 32:
        return True
    if isinstance(descr, str):
        return descr.lstrip("<>=|").startswith("O")
    if isinstance(descr, list | tuple):
        for item in descr:
            if isinstance(item, tuple) and len(item) >= 2:
                if _descr_has_object(item[1], depth + 1):
                    return True
            elif _descr_has_object(item, depth + 1):
                return True
    return False


# --------------------------------------------------------------------------- safetensors


class Issue(Record):
    __slots__ = ("detail", "evidence", "message", "rule_id", "severity")

    def __init__(
        self,
        rule_id: str,
        detail: str,  # short, stable: part of the finding id
        message: str,
        evidence: dict[str, Any] | None = None,
        severity: str | None = None,  # overrides the rule's default
    ) -> None:
        self.rule_id = rule_id
        self.detail = detail
        self.message = message
        self.evidence: dict[str, Any] = {} if evidence is None else evidence
        self.severity = severity


_ST_DTYPES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
    "C64": 8,
    "F4": 1,
    "F6_E2M3": 1,
    "F6_E3M2": 1,
}


def check_safetensors(data: Any, size: int, limits: Limits) -> list[Issue]:
    issues: list[Issue] = []
    rule = "MLH-SCAN-SAFETENSORS-HEADER"
    n = struct.unpack_from("<Q", data, 0)[0]
    if n > size - 8:
        return [
            Issue(
                rule,
                "header-size",
                f"header length {n} exceeds the file ({size} bytes)",
                {"header_length": n, "file_size": size},
            )
        ]
    if n > limits.max_header_bytes:
        return [
            Issue(
                "MLH-SCAN-LIMIT",
                "safetensors-header",
                f"safetensors header of {n} bytes exceeds max_header_bytes",
                {"header_length": n, "limit": limits.max_header_bytes},
            )
        ]
    raw = bytes(data[8 : 8 + n])
    dupes: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in items:
            if k in seen:
                dupes.append(k)
            seen[k] = v
        return seen

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return [Issue(rule, "json", f"header is not valid UTF-8 JSON: {exc}", {"header_length": n})]
    if not isinstance(header, dict):
        return [Issue(rule, "json", "header is not a JSON object", {})]
    if dupes:
        issues.append(
            Issue(
                rule,
                "duplicate-keys",
                "header repeats keys (parsers disagree on which one wins)",
                {"keys": dupes[:20]},
            )
        )
    body = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    bad: list[dict[str, Any]] = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        problem = None
        if not isinstance(spec, dict):
            problem = "entry is not an object"
        else:
            dtype, shape, offs = spec.get("dtype"), spec.get("shape"), spec.get("data_offsets")
            if dtype not in _ST_DTYPES:
                problem = f"unknown dtype {dtype!r}"
            elif not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
            ):
                problem = f"bad shape {shape!r}"
            elif (
                not isinstance(offs, list)
                or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
            ):
                problem = f"bad data_offsets {offs!r}"
            else:
                begin, stop = offs
                numel = 1
                for d in shape:
                    numel *= d
                nbytes = numel * _ST_DTYPES[dtype]
                if dtype in ("F4",):
                    nbytes = (numel + 1) // 2
                elif dtype in ("F6_E2M3", "F6_E3M2"):
                    nbytes = (numel * 6 + 7) // 8
                if begin < 0 or stop < begin:
                    problem = f"data_offsets {offs} are inverted or negative"
                elif stop > body:
                    problem = f"data_offsets {offs} run past the end of the data ({body} bytes)"
                elif stop - begin != nbytes:
                    problem = f"{stop - begin} bytes for shape {shape} of {dtype} ({nbytes} needed)"
                else:
                    spans.append((begin, stop, name))
        if problem:
            bad.append({"tensor": name, "problem": problem})
    if bad:
        issues.append(
            Issue(
                rule,
                "tensors",
                f"{len(bad)} tensor entr{'y' if len(bad) == 1 else 'ies'} lie about their data",
                {"tensors": bad[:20], "data_bytes": body},
            )
        )
    spans.sort()
    cursor = 0
    gaps: list[dict[str, Any]] = []
    for begin, stop, name in spans:
        if begin < cursor:
            gaps.append({"tensor": name, "problem": f"overlaps previous data at {begin}"})
        elif begin > cursor:
            gaps.append(
                {"tensor": name, "problem": f"{begin - cursor} unreferenced bytes before it"}
            )
        cursor = max(cursor, stop)
    if spans and cursor < body and not bad:
        gaps.append({"tensor": None, "problem": f"{body - cursor} unreferenced bytes at the end"})
    if gaps:
        issues.append(
            Issue(
                rule, "layout", "tensor data overlaps or leaves hidden bytes", {"spans": gaps[:20]}
            )
        )
    meta = header.get("__metadata__")
    if meta is not None:
        odd: list[str] = []
        if not isinstance(meta, dict):
            odd.append("__metadata__ is not an object")
        else:
            for k, v in list(meta.items())[:10_000]:
                if not isinstance(v, str):
                    odd.append(f"{k}: value is {type(v).__name__}, not a string")
                elif len(v) > 65_536:
                    odd.append(f"{k}: value of {len(v)} characters")
                elif any(ord(c) < 32 and c not in "\t\n\r" for c in v[:4096]):
                    odd.append(f"{k}: value holds control characters")
            if len(meta) > 10_000:
                odd.append(f"{len(meta)} metadata keys")
        if odd:
            issues.append(
                Issue(
                    "MLH-SCAN-SAFETENSORS-METADATA",
                    "metadata",
                    "__metadata__ is not a small string-to-string map",
                    {"oddities": odd[:20]},
                )
            )
    return issues


# --------------------------------------------------------------------------- ONNX


class _PBError(ValueError):
    pass


def _varint(data: Any, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _PBError("bad varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(data: Any, start: int, end: int):  # type: ignore[no-untyped-def]
    """Yield (field_number, wire_type, value_or_(start,end)) of one protobuf message."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, end)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise _PBError("field number 0")
        if wt == 0:
            val, pos = _varint(data, pos, end)
            yield num, wt, val
        elif wt == 1:
            pos += 8
            yield num, wt, None
        elif wt == 2:
            n, pos = _varint(data, pos, end)
            if pos + n > end:
                raise _PBError("length-delimited field runs past its message")
            yield num, wt, (pos, pos + n)
            pos += n
        elif wt == 5:
            pos += 4
            yield num, wt, None
        else:
            raise _PBError(f"unsupported wire type {wt}")
    if pos != end:
        raise _PBError("message overruns")


_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto starts with ir_version (field 1, varint) in every exporter we know of.
    if len(head) < 4 or head[0] != 0x08 or not 1 <= head[1] <= 30:
        return False
    pos = 2
    seen = 0
    try:
        while pos < len(head):
            key, pos = _varint(head, pos, len(head))
            num, wt = key >> 3, key & 7
            if _MODEL_FIELDS.get(num) != wt:
                return False
            seen += 1
            if wt == 0:
                _, pos = _varint(head, pos, len(head))
            else:
                n, pos = _varint(head, pos, len(head))
                if num == 7:
                    return True
                pos += n
    except _PBError:
        return seen > 0
    return seen > 0


def onnx_external_data(data: Any, end: int, limits: Limits) -> list[dict[str, Any]]:
    """Every external-data ``location`` in an ONNX model (graph, subgraphs, functions).

    Raises ValueError when the bytes are not a well-formed ModelProto.
    """
    found: list[dict[str, Any]] = []
    # (kind, start, end, depth)
    todo: list[tuple[str, int, int, int]] = [("model", 0, end, 0)]
    visited = 0
    try:
        while todo:
            kind, s, e, depth = todo.pop()
            visited += 1
            if depth > 64 or visited > 5_000_000:
                raise _PBError("ONNX graph nesting too deep")
            for num, wt, val in _fields(data, s, e):
                if wt != 2:
                    continue
                a, b = val
                child = None
                if kind == "model":
                    child = {7: "graph", 20: "training", 25: "function"}.get(num)
                elif kind == "training":
                    child = "graph" if num in (1, 2) else None
                elif kind == "graph":
                    child = {1: "node", 5: "tensor", 15: "sparse"}.get(num)
                elif kind == "function":
                    child = "node" if num == 7 else None
                elif kind == "node":
                    child = "attribute" if num == 5 else None
                elif kind == "attribute":
                    child = {
                        5: "tensor",
                        10: "tensor",
                        6: "graph",
                        11: "graph",
                        22: "sparse",
                        23: "sparse",
                    }.get(num)
                elif kind == "sparse":
                    child = "tensor" if num in (1, 2) else None
                elif kind == "tensor" and num == 13:
                    entry = {}
                    for fnum, fwt, fval in _fields(data, a, b):
                        if fwt == 2 and fnum in (1, 2):
                            entry[fnum] = bytes(data[fval[0] : fval[1]]).decode("utf-8", "replace")
                    if entry.get(1) == "location":
                        name = _tensor_name(data, s, e)
                        found.append({"location": entry.get(2, ""), "tensor": name})
                if child:
                    todo.append((child, a, b, depth + 1))
    except _PBError as exc:
        raise ValueError(f"malformed ONNX protobuf: {exc}") from None
    return found


def _tensor_name(data: Any, s: int, e: int) -> str | None:
    try:
        for num, wt, val in _fields(data, s, e):
            if num == 8 and wt == 2:
                return bytes(data[val[0] : val[1]]).decode("utf-8", "replace")
    except _PBError:
        return None
    return None


def location_escapes(location: str) -> str | None:
    """Why an external-data location leaves the model's folder, or None if it stays inside."""
    if not location:
        return "empty location"
    if "\x00" in location:
        return "location contains a NUL byte"
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location) or location.startswith("file:"):
        return "location is a URL"
    norm = location.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return "absolute path"
    depth = 0
    for part in norm.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return "relative path climbs out of the model folder"
        elif part not in ("", "."):
            depth += 1
    return None


# --------------------------------------------------------------------------- Keras


_KERAS_MODULES = ("keras", "tensorflow", "tf_keras", "keras_hub", "keras_nlp", "keras_cv", "tf")


def keras_config_issues(config: Any, policy: Any, where: str) -> list[Issue]:
    """Lambda layers, functions and custom objects in a Keras model configuration (JSON)."""
    issues: list[Issue] = []
    stack: list[tuple[Any, str, int]] = [(config, "$", 0)]
    nodes = 0
    while stack:
        node, path, depth = stack.pop()
        nodes += 1
        if nodes > 2_000_000 or depth > 256:
            issues.append(
                Issue(
                    "MLH-SCAN-LIMIT",
                    "keras-config",
                    "Keras config too large or deep to inspect fully",
                    {"where": where},
                )
            )
            break
        if isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for k, v in node.items():
            if isinstance(v, dict | list):
                stack.append((v, f"{path}.{k}", depth + 1))
        cls = node.get("class_name")
        if not isinstance(cls, str):
            continue
        cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
        module = node.get("module")
        if cls in ("Lambda", "__lambda__") or (
            cls == "function" and isinstance(cfg, dict) and "code" in cfg
        ):
            if cls == "__lambda__":
                continue  # reported with its enclosing Lambda layer
            issues.append(_lambda_issue(node, cfg, path, where))
            continue
        if isinstance(module, str) and module and module.split(".")[0] not in _KERAS_MODULES:
            target = (
                node.get("config")
                if cls == "function" and isinstance(node.get("config"), str)
                else cls
            )
            full = f"{module}.{target}"
            verdict = policy.classify(module, str(target))
            evidence = {
                "import": full,
                "module": module,
                "class_name": cls,
                "json_path": path,
                "registered_name": node.get("registered_name"),
                "config_file": where,
            }
            if verdict.level == "deny":
                issues.append(
                    Issue(
                        "MLH-SCAN-KERAS-MODULE-IMPORT",
                        full,
                        f"Keras config makes the loader import {full}",
                        {**evidence, "policy": verdict.matched},
                        "critical",
                    )
                )
            elif cls == "function":
                issues.append(
                    Issue(
                        "MLH-SCAN-KERAS-MODULE-IMPORT",
                        full,
                        f"Keras config names the function {full} from outside Keras",
                        evidence,
                    )
                )
            elif verdict.level != "allow":
                issues.append(
                    Issue(
                        "MLH-SCAN-KERAS-CUSTOM-OBJECT",
                        full,
                        f"Keras config needs the custom object {full}",
                        evidence,
                    )
                )
        elif ">" in cls or (
            isinstance(node.get("registered_name"), str)
            and ">" in node["registered_name"]
            and not (isinstance(module, str) and module.split(".")[0] in _KERAS_MODULES)
        ):
            name = node.get("registered_name") or cls
            issues.append(
                Issue(
                    "MLH-SCAN-KERAS-CUSTOM-OBJECT",
                    str(name),
                    f"Keras config needs the custom object {name}",
                    {
                        "class_name": cls,
                        "registered_name": node.get("registered_name"),
                        "json_path": path,
                        "config_file": where,
                    },
                )
            )
    return issues


def _lambda_issue(node: dict[str, Any], cfg: dict[str, Any], path: str, where: str) -> Issue:
    fn = cfg.get("function")
    evidence: dict[str, Any] = {
        "layer": cfg.get("name"),
        "json_path": path,
        "config_file": where,
        "function_type": cfg.get("function_type"),
    }
    code = None
    if isinstance(fn, list) and fn and isinstance(fn[0], str):
        code = fn[0]  # Keras 2: [base64 marshal bytecode, defaults, closure]
    elif isinstance(fn, dict):
        inner = fn.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            code = inner["code"]  # Keras 3: {"class_name": "__lambda__", "config": {"code": ...}}
        elif isinstance(inner, str):
            evidence["function"] = f"{fn.get('module')}.{inner}"
    elif isinstance(fn, str):
        evidence["function"] = fn
    elif isinstance(cfg.get("code"), str):
        code = cfg["code"]
    if code is not None:
        evidence["bytecode_base64_chars"] = len(code)
        try:
            raw = base64.b64decode(code[:1_000_000], validate=False)
            # Printable strings of the marshalled code object (names and constants), like
            # strings(1): the bytecode is never unmarshalled.
            words = re.findall(rb"[\x20-\x7e]{3,}", raw)
            evidence["bytecode_strings"] = [w.decode() for w in words[:40]]
        except (ValueError, TypeError):
            evidence["bytecode_strings"] = []
    layer = cfg.get("name") or path
    return Issue(
        "MLH-SCAN-KERAS-LAMBDA",
        str(layer),
        f"Keras Lambda layer {layer!r} carries Python code run at load time",
        evidence,
    )
