"""Opcode-level pickle analysis that never unpickles.

A small simulator walks the opcodes of one or more pickle streams the way CPython's C unpickler
would, without importing or calling anything: it keeps a stack (with MARK fences), the memo
(PUT/BINPUT/LONG_BINPUT/MEMOIZE and the GET variants), the protocol (for the Python 2 name
mapping that ``find_class`` applies below protocol 3) and a symbolic value for every object.
Each import (GLOBAL, STACK_GLOBAL, INST, EXT*) becomes an :class:`ImportRecord` with its offset,
and every place a callable is invoked (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD) marks it
as called, so the policy can judge the exact names a loader would import.

What precedes a parse error is still reported: ``pickle.load`` executes opcodes as it reads them,
so a payload followed by garbage still runs. Every loop is bounded by :class:`Limits`; hitting a
limit stops the analysis and is reported, never a hang.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
import time
from typing import Any

from mlhunt.record import FrozenRecord, Record

__all__ = [
    "ImportRecord",
    "Limits",
    "NestedPayload",
    "PickleInfo",
    "PickleScan",
    "scan_pickles",
]


class Limits(FrozenRecord):
    """Bounds for one ``scan_artifact`` call. Reaching one ends with an MLH-SCAN-LIMIT finding."""

    __slots__ = (
        "max_depth",
        "max_entry_bytes",
        "max_file_bytes",
        "max_header_bytes",
        "max_line",
        "max_marks",
        "max_memo",
        "max_opcodes",
        "max_pickle_bytes",
        "max_pickles",
        "max_seconds",
        "max_stack",
        "max_zip_entries",
        "max_zip_ratio",
        "max_zip_total",
        "zip_ratio_min_bytes",
    )
    max_file_bytes: int
    max_pickle_bytes: int
    max_opcodes: int
    max_memo: int
    max_stack: int
    max_marks: int
    max_pickles: int
    max_line: int
    max_zip_entries: int
    max_zip_total: int
    max_zip_ratio: float
    zip_ratio_min_bytes: int
    max_entry_bytes: int
    max_depth: int
    max_header_bytes: int
    max_seconds: float

    def __init__(
        self,
        max_file_bytes: int = 64 << 30,  # files larger than this are not opened at all
        max_pickle_bytes: int = 2 << 30,  # one pickle stream (bytes from its first opcode)
        max_opcodes: int = 20_000_000,  # per stream, all pickles in it together
        max_memo: int = 2_000_000,  # memo entries per pickle
        max_stack: int = 2_000_000,  # values on the stack per pickle
        max_marks: int = 10_000,  # MARK nesting depth
        max_pickles: int = 256,  # pickles read one after another in one stream
        max_line: int = 1 << 20,  # one text argument (GLOBAL, INT, STRING, ... in protocol 0)
        max_zip_entries: int = 100_000,
        max_zip_total: int = 64 << 30,  # declared uncompressed bytes over all entries
        max_zip_ratio: float = 200.0,  # declared compression ratio of one entry ...
        zip_ratio_min_bytes: int = 4 << 20,  # ... checked for entries at least this large
        max_entry_bytes: int = 512 << 20,  # an archive member read into memory (pickles, zips)
        max_depth: int = 4,  # archives inside archives, payloads inside payloads
        max_header_bytes: int = 100 << 20,  # safetensors header, Keras config, ONNX walk
        max_seconds: float = 120.0,  # wall-clock budget of one scan_artifact call
    ) -> None:
        self.set_fields(
            max_file_bytes=max_file_bytes,
            max_pickle_bytes=max_pickle_bytes,
            max_opcodes=max_opcodes,
            max_memo=max_memo,
            max_stack=max_stack,
            max_marks=max_marks,
            max_pickles=max_pickles,
            max_line=max_line,
            max_zip_entries=max_zip_entries,
            max_zip_total=max_zip_total,
            max_zip_ratio=max_zip_ratio,
            zip_ratio_min_bytes=zip_ratio_min_bytes,
            max_entry_bytes=max_entry_bytes,
            max_depth=max_depth,
            max_header_bytes=max_header_bytes,
            max_seconds=max_seconds,
        )


class LimitReached(Exception):
    """Raised inside the scanners when a bound of :class:`Limits` is reached."""

    def __init__(self, limit: str, detail: str, offset: int | None = None) -> None:
        super().__init__(f"{limit}: {detail}")
        self.limit = limit
        self.detail = detail
        self.offset = offset


class _ParseError(Exception):
    def __init__(self, message: str, offset: int, *, at_end: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.at_end = at_end


class ImportRecord(Record):
    """One name a loader would import (``module``, ``name``) and how the pickle uses it."""

    __slots__ = (
        "called",
        "calls",
        "dynamic",
        "module",
        "name",
        "offset",
        "opcode",
        "pickle_index",
        "via",
        "written_as",
    )

    def __init__(
        self,
        module: str,
        name: str,
        offset: int,
        opcode: str,
        pickle_index: int,
        written_as: str | None = None,  # the name in the file before Python 2 name mapping
        via: str | None = None,  # a callable that resolved this name at load time (getattr...)
        dynamic: bool = False,  # the name could not be resolved statically
        called: bool = False,
        calls: list[dict[str, Any]] | None = None,
    ) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.opcode = opcode
        self.pickle_index = pickle_index
        self.written_as = written_as
        self.via = via
        self.dynamic = dynamic
        self.called = called
        self.calls: list[dict[str, Any]] = [] if calls is None else calls

    @property
    def fullname(self) -> str:
        if not self.name:
            return self.module
        return f"{self.module}.{self.name}"


class NestedPayload(Record):
    """Bytes handed to a deserialiser inside the pickle (``pickle.loads(b"...")`` and kin)."""

    __slots__ = ("data", "offset", "pickle_index", "via")

    def __init__(self, via: str, offset: int, data: bytes, pickle_index: int) -> None:
        self.via = via
        self.offset = offset
        self.data = data
        self.pickle_index = pickle_index


class PickleInfo(Record):
    __slots__ = (
        "complete",
        "end",
        "error",
        "error_offset",
        "index",
        "opcodes",
        "protocol",
        "start",
    )

    def __init__(
        self,
        index: int,
        start: int,
        end: int,
        protocol: int,
        opcodes: int,
        complete: bool,
        error: str | None = None,
        error_offset: int | None = None,
    ) -> None:
        self.index = index
        self.start = start
        self.end = end
        self.protocol = protocol
        self.opcodes = opcodes
        self.complete = complete
        self.error = error
        self.error_offset = error_offset


class PickleScan(Record):
    __slots__ = (
        "at_end",
        "build_on_import",
        "end",
        "features",
        "imports",
        "limit",
        "nested",
        "pickles",
        "trailing",
    )

    def __init__(
        self,
        pickles: list[PickleInfo] | None = None,
        imports: list[ImportRecord] | None = None,
        nested: list[NestedPayload] | None = None,
        build_on_import: list[dict[str, Any]] | None = None,
        features: set[str] | None = None,
        limit: LimitReached | None = None,
        at_end: bool = False,  # the last pickle ran out of data (more bytes might complete it)
        trailing: int = 0,  # bytes after the last pickle that do not parse as one
        end: int = 0,
    ) -> None:
        self.pickles: list[PickleInfo] = [] if pickles is None else pickles
        self.imports: list[ImportRecord] = [] if imports is None else imports
        self.nested: list[NestedPayload] = [] if nested is None else nested
        self.build_on_import: list[dict[str, Any]] = (
            [] if build_on_import is None else build_on_import
        )
        self.features: set[str] = set() if features is None else features
        self.limit = limit
        self.at_end = at_end
        self.trailing = trailing
        self.end = end

    @property
    def has_code(self) -> bool:
        return bool(self.imports)


# --------------------------------------------------------------------------- symbolic values


class _Ref:
    """An imported object (class, function or module)."""

    __slots__ = ("rec",)

    def __init__(self, rec: ImportRecord) -> None:
        self.rec = rec


class _Call:
    """The result of calling something at load time."""

    __slots__ = ("args", "func", "kwargs", "offset", "op", "state")

    def __init__(self, func: Any, args: Any, op: str, offset: int, kwargs: Any = None) -> None:
        self.func = func
        self.args = args
        self.op = op
        self.offset = offset
        self.kwargs = kwargs
        self.state: Any = None


class _Blob:
    """A long string or any bytes value, kept by position rather than copied."""

    __slots__ = ("kind", "length", "offset")

    def __init__(self, kind: str, offset: int, length: int) -> None:
        self.kind = kind
        self.offset = offset
        self.length = length


class _List(list):
    __slots__ = ()


class _Dict(list):  # a list of (key, value) pairs: keys may be unhashable symbols
    __slots__ = ()


class _Set(list):
    __slots__ = ()


class _Pers:
    __slots__ = ("pid",)

    def __init__(self, pid: Any) -> None:
        self.pid = pid


class _Opaque:
    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label


_MAX_STR = 4096
_KEEP_ITEMS = 16  # list/set items kept per container (for evidence)
_KEEP_PAIRS = 256  # dict pairs kept per container (array-wrapper state, evidence)

# Callables whose literal arguments name another import (they are judged like GLOBAL).
_MODULE_IMPORTERS = {
    "builtins.__import__",
    "importlib.import_module",
    "importlib.__import__",
    "importlib._bootstrap._gcd_import",
    "importlib._bootstrap.__import__",
}
_ATTR_IMPORTERS = {  # f(module, name) -> module.name
    "numpy.core._ufunc_reconstruct",
    "numpy._core._ufunc_reconstruct",
    "numpy.core.numeric._ufunc_reconstruct",
    "pickle._getattribute",
}
_GETATTR = {"builtins.getattr", "operator.attrgetter"}
_RESOLVERS = {"pkgutil.resolve_name"}
_NESTED_LOADERS = {
    "pickle.loads",
    "_pickle.loads",
    "pickle._loads",
    "dill.loads",
    "dill._dill.loads",
    "cloudpickle.loads",
    "torch.storage._load_from_bytes",
    "torch.load",
    "numpy.loads",
    "joblib.load",
    "pandas.read_pickle",
    "marshal.loads",
}
_JOBLIB_WRAPPERS = {
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
}

_UNPACK_I = struct.Struct("<i").unpack_from
_UNPACK_I_U = struct.Struct("<I").unpack_from
_UNPACK_H = struct.Struct("<H").unpack_from
_UNPACK_Q = struct.Struct("<Q").unpack_from
_UNPACK_D = struct.Struct(">d").unpack_from


def describe(value: Any, data: Any = None, depth: int = 0) -> str:
    """A short, bounded, human-readable rendering of a symbolic value for evidence."""
    if depth > 4:
        return "…"
    if isinstance(value, _Ref):
        return value.rec.fullname
    if isinstance(value, _Call):
        inner = describe(value.args, data, depth + 1)
        if isinstance(value.args, tuple):
            inner = inner[1:-1].rstrip(",")
        return _clip(f"{describe(value.func, data, depth + 1)}({inner})", 300)
    if isinstance(value, str):
        return repr(_clip(value, 120))
    if isinstance(value, bytes):
        return repr(value[:60]) + ("…" if len(value) > 60 else "")
    if isinstance(value, _Blob):
        head = b""
        if data is not None:
            head = bytes(data[value.offset : value.offset + min(value.length, 40)])
        if value.kind == "str":
            return repr(_clip(head.decode("utf-8", "replace"), 40)) + f"…(len {value.length})"
        return f"{head!r}…(len {value.length})" if value.length > 40 else repr(head)
    if isinstance(value, tuple):
        parts = [describe(v, data, depth + 1) for v in value[:6]]
        if len(value) > 6:
            parts.append("…")
        return "(" + ", ".join(parts) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, _Dict):
        parts = [
            f"{describe(k, data, depth + 1)}: {describe(v, data, depth + 1)}" for k, v in value[:4]
        ]
        return "{" + ", ".join(parts) + (", …" if len(value) > 4 else "") + "}"
    if isinstance(value, _List | _Set):
        parts = [describe(v, data, depth + 1) for v in value[:6]]
        return "[" + ", ".join(parts) + (", …" if len(value) > 6 else "") + "]"
    if isinstance(value, _Pers):
        return f"persistent_id({describe(value.pid, data, depth + 1)})"
    if isinstance(value, _Opaque):
        return f"<{value.label}>"
    return _clip(repr(value), 80)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class _Stream:
    """State shared by all pickles of one stream: records, budgets and the source buffer."""

    def __init__(self, data: Any, end: int, limits: Limits, deadline: float, depth: int) -> None:
        self.data = data
        self.end = end
        self.limits = limits
        self.deadline = deadline
        self.depth = depth
        self.scan = PickleScan()
        self.opcodes = 0

    # -- helpers ---------------------------------------------------------------------------

    def literal(self, value: Any) -> Any:
        """A str/bytes literal for a symbolic value, or None if it is not one."""
        if isinstance(value, str | bytes):
            return value
        if isinstance(value, _Blob):
            if value.length > self.limits.max_entry_bytes:
                return None
            raw = bytes(self.data[value.offset : value.offset + value.length])
            return raw.decode("utf-8", "surrogatepass") if value.kind == "str" else raw
        if (
            isinstance(value, _Call)
            and isinstance(value.func, _Ref)
            and value.func.rec.fullname in ("_codecs.encode", "codecs.encode")
            and isinstance(value.args, tuple)
            and value.args
        ):
            text = self.literal(value.args[0])
            if isinstance(text, str):
                return text.encode("latin-1", "replace")
        return None

    def new_import(
        self,
        module: str,
        name: str,
        op: str,
        offset: int,
        index: int,
        proto: int,
        *,
        via: str | None = None,
        dynamic: bool = False,
    ) -> ImportRecord:
        written = None
        if proto < 3 and not dynamic and via is None:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                written = f"{module}.{name}"
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                written = f"{module}.{name}"
                module = _compat_pickle.IMPORT_MAPPING[module]
        rec = ImportRecord(
            module=module,
            name=name,
            offset=offset,
            opcode=op,
            pickle_index=index,
            written_as=written,
            via=via,
            dynamic=dynamic,
        )
        self.scan.imports.append(rec)
        return rec

    def call(
        self, func: Any, args: Any, op: str, offset: int, index: int, kwargs: Any = None
    ) -> Any:
        """Record a load-time call and return the symbolic result."""
        result = _Call(func, args, op, offset, kwargs)
        if not isinstance(func, _Ref):
            return result
        rec = func.rec
        rec.called = True
        if len(rec.calls) < 8:
            rec.calls.append({"opcode": op, "offset": offset, "call": describe(result, self.data)})
        full = rec.fullname
        argv = args if isinstance(args, tuple) else ()
        lits = [self.literal(a) for a in argv]
        if full in _MODULE_IMPORTERS:
            mod = lits[0] if lits else None
            if isinstance(mod, str) and mod:
                return _Ref(self.new_import(mod, "", op, offset, index, 4, via=full))
            return _Ref(self.new_import("?", "?", op, offset, index, 4, via=full, dynamic=True))
        if full in _ATTR_IMPORTERS:
            if len(lits) >= 2 and isinstance(lits[0], str) and isinstance(lits[1], str):
                return _Ref(self.new_import(lits[0], lits[1], op, offset, index, 4, via=full))
            return _Ref(self.new_import("?", "?", op, offset, index, 4, via=full, dynamic=True))
        if full in _RESOLVERS:
            target = lits[0] if lits else None
            if isinstance(target, str) and target:
                mod, _, name = target.partition(":")
                if not name and "." in mod:
                    mod, _, name = mod.rpartition(".")
                return _Ref(self.new_import(mod, name, op, offset, index, 4, via=full))
            return _Ref(self.new_import("?", "?", op, offset, index, 4, via=full, dynamic=True))
        if full == "builtins.getattr" and len(argv) >= 2:
            base, attr = argv[0], lits[1]
            if isinstance(base, _Ref) and isinstance(attr, str):
                return _Ref(
                    self.new_import(base.rec.fullname, attr, op, offset, index, 4, via=full)
                )
            label = describe(base, self.data)
            attr_text = attr if isinstance(attr, str) else "?"
            return _Ref(
                self.new_import(label, attr_text, op, offset, index, 4, via=full, dynamic=True)
            )
        if full in _NESTED_LOADERS and lits and isinstance(lits[0], bytes):
            self.scan.nested.append(NestedPayload(full, offset, lits[0], index))
        return result

    def tick(self) -> None:
        if self.opcodes > self.limits.max_opcodes:
            raise LimitReached("max_opcodes", f"more than {self.limits.max_opcodes} opcodes")
        if time.monotonic() > self.deadline:
            raise LimitReached("max_seconds", f"scan took longer than {self.limits.max_seconds}s")

    # -- one pickle ------------------------------------------------------------------------

    def parse_one(self, pos: int, index: int) -> PickleInfo:
        data = self.data
        end = self.end
        limits = self.limits
        max_memo = limits.max_memo
        max_stack = limits.max_stack
        max_line = limits.max_line
        start = pos
        stack: list[Any] = []
        marks: list[int] = []
        fence = 0
        memo: dict[int, Any] = {}
        proto = 0
        count = 0
        info = PickleInfo(index, start, start, 0, 0, False)
        op_pos = pos

        def need(n: int) -> int:
            if op_pos + 1 + n > end:
                raise _ParseError("pickle data was truncated", op_pos, at_end=True)
            return op_pos + 1

        def line(at: int) -> tuple[bytes, int]:
            stop = data.find(b"\n", at, min(end, at + max_line + 1))
            if stop < 0:
                if at + max_line < end:
                    raise LimitReached("max_line", f"text argument longer than {max_line} bytes")
                raise _ParseError("pickle data was truncated", op_pos, at_end=True)
            return bytes(data[at:stop]), stop + 1

        def underflow() -> _ParseError:
            return _ParseError("unpickling stack underflow", op_pos)

        def pop_mark() -> list[Any]:
            nonlocal fence
            if not marks:
                raise _ParseError("could not find MARK", op_pos)
            k = marks.pop()
            fence = marks[-1] if marks else 0
            items = stack[k:]
            del stack[k:]
            return items

        def pop() -> Any:
            if len(stack) <= fence:
                raise underflow()
            return stack.pop()

        def top() -> Any:
            if len(stack) <= fence:
                raise underflow()
            return stack[-1]

        def text(raw: bytes, kind: str, at: int) -> Any:
            if len(raw) > _MAX_STR:
                return _Blob("str", at, len(raw))
            try:
                return raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise _ParseError(f"{kind}: invalid UTF-8", op_pos) from None

        try:
            while True:
                op_pos = pos
                if pos >= end:
                    raise _ParseError("pickle data was truncated", pos, at_end=True)
                code = data[pos]
                count += 1
                if count & 0xFFFF == 0:
                    self.opcodes += 0x10000
                    self.tick()
                if code == 0x71:  # BINPUT
                    at = need(1)
                    if len(stack) <= fence:
                        raise underflow()
                    memo[data[at]] = stack[-1]
                    pos = at + 1
                elif code == 0x68:  # BINGET
                    at = need(1)
                    try:
                        stack.append(memo[data[at]])
                    except KeyError:
                        raise _ParseError(
                            f"memo value not found at index {data[at]}", pos
                        ) from None
                    pos = at + 1
                elif code == 0x94:  # MEMOIZE
                    if len(stack) <= fence:
                        raise underflow()
                    memo[len(memo)] = stack[-1]
                    pos += 1
                elif code == 0x8C:  # SHORT_BINUNICODE
                    at = need(1)
                    n = data[at]
                    at += 1
                    if at + n > end:
                        raise _ParseError("pickle data was truncated", pos, at_end=True)
                    stack.append(text(bytes(data[at : at + n]), "SHORT_BINUNICODE", at))
                    pos = at + n
                elif code == 0x58 or code == 0x8D:  # BINUNICODE, BINUNICODE8
                    width = 4 if code == 0x58 else 8
                    at = need(width)
                    n = _UNPACK_I_U(data, at)[0] if width == 4 else _UNPACK_Q(data, at)[0]
                    at += width
                    if at + n > end:
                        raise _ParseError("pickle data was truncated", pos, at_end=True)
                    if n > _MAX_STR:
                        stack.append(_Blob("str", at, n))
                    else:
                        stack.append(text(bytes(data[at : at + n]), "BINUNICODE", at))
                    pos = at + n
                elif code == 0x28:  # MARK
                    marks.append(len(stack))
                    if len(marks) > limits.max_marks:
                        raise LimitReached(
                            "max_marks", f"MARK nesting deeper than {limits.max_marks}", pos
                        )
                    fence = len(stack)
                    pos += 1
                elif code == 0x4B:  # BININT1
                    at = need(1)
                    stack.append(data[at])
                    pos = at + 1
                elif code == 0x4D:  # BININT2
                    at = need(2)
                    stack.append(_UNPACK_H(data, at)[0])
                    pos = at + 2
                elif code == 0x4A:  # BININT
                    at = need(4)
                    stack.append(_UNPACK_I(data, at)[0])
                    pos = at + 4
                elif code in (0x85, 0x86, 0x87):  # TUPLE1..3
                    n = code - 0x84
                    if len(stack) - n < fence:
                        raise underflow()
                    items = tuple(stack[-n:])
                    del stack[-n:]
                    stack.append(items)
                    pos += 1
                elif code == 0x74:  # TUPLE
                    stack.append(tuple(pop_mark()))
                    pos += 1
                elif code == 0x29:  # EMPTY_TUPLE
                    stack.append(())
                    pos += 1
                elif code == 0x5D:  # EMPTY_LIST
                    stack.append(_List())
                    pos += 1
                elif code == 0x7D:  # EMPTY_DICT
                    stack.append(_Dict())
                    pos += 1
                elif code == 0x8F:  # EMPTY_SET
                    stack.append(_Set())
                    pos += 1
                elif code == 0x75:  # SETITEMS
                    items = pop_mark()
                    if len(items) % 2:
                        raise _ParseError("odd number of items for SETITEMS", pos)
                    target = top()
                    pairs = list(zip(items[0::2], items[1::2], strict=True))
                    self._setitems(target, pairs, pos, index)
                    pos += 1
                elif code == 0x73:  # SETITEM
                    value = pop()
                    key = pop()
                    self._setitems(top(), [(key, value)], pos, index)
                    pos += 1
                elif code == 0x65:  # APPENDS
                    items = pop_mark()
                    self._append(top(), items, "extend", pos, index)
                    pos += 1
                elif code == 0x61:  # APPEND
                    value = pop()
                    self._append(top(), [value], "append", pos, index)
                    pos += 1
                elif code == 0x90:  # ADDITEMS
                    items = pop_mark()
                    self._append(top(), items, "add", pos, index)
                    pos += 1
                elif code == 0x52:  # REDUCE
                    args = pop()
                    func = pop()
                    stack.append(self.call(func, args, "REDUCE", pos, index))
                    pos += 1
                elif code == 0x81:  # NEWOBJ
                    args = pop()
                    cls = pop()
                    stack.append(self.call(cls, args, "NEWOBJ", pos, index))
                    pos += 1
                elif code == 0x92:  # NEWOBJ_EX
                    kwargs = pop()
                    args = pop()
                    cls = pop()
                    stack.append(self.call(cls, args, "NEWOBJ_EX", pos, index, kwargs))
                    pos += 1
                elif code == 0x6F:  # OBJ
                    items = pop_mark()
                    if not items:
                        raise _ParseError("OBJ without a class", pos)
                    stack.append(self.call(items[0], tuple(items[1:]), "OBJ", pos, index))
                    pos += 1
                elif code == 0x62:  # BUILD
                    state = pop()
                    inst = top()
                    pos = self._build(inst, state, stack, pos, index)
                elif code == 0x63 or code == 0x69:  # GLOBAL, INST
                    mod_raw, at = line(pos + 1)
                    name_raw, at = line(at)
                    try:
                        module = mod_raw.decode("utf-8")
                        name = name_raw.decode("utf-8")
                    except UnicodeDecodeError:
                        raise _ParseError("GLOBAL/INST name is not UTF-8", pos) from None
                    opname = "GLOBAL" if code == 0x63 else "INST"
                    rec = self.new_import(module, name, opname, pos, index, proto)
                    if code == 0x63:
                        stack.append(_Ref(rec))
                    else:
                        args = tuple(pop_mark())
                        stack.append(self.call(_Ref(rec), args, "INST", pos, index))
                    pos = at
                elif code == 0x93:  # STACK_GLOBAL
                    name_v = pop()
                    mod_v = pop()
                    mod_l = self.literal(mod_v) if isinstance(mod_v, str | _Blob) else None
                    name_l = self.literal(name_v) if isinstance(name_v, str | _Blob) else None
                    if isinstance(mod_l, str) and isinstance(name_l, str):
                        rec = self.new_import(mod_l, name_l, "STACK_GLOBAL", pos, index, proto)
                    elif isinstance(mod_v, _Call | _Ref | _Pers) or isinstance(
                        name_v, _Call | _Ref | _Pers
                    ):
                        rec = self.new_import(
                            describe(mod_v, data),
                            describe(name_v, data),
                            "STACK_GLOBAL",
                            pos,
                            index,
                            proto,
                            dynamic=True,
                        )
                    else:
                        raise _ParseError("STACK_GLOBAL requires str", pos)
                    stack.append(_Ref(rec))
                    pos += 1
                elif code == 0x80:  # PROTO
                    at = need(1)
                    proto = data[at]
                    if proto > 5:
                        raise _ParseError(f"unsupported pickle protocol: {proto}", pos)
                    if info.protocol == 0:
                        info.protocol = proto
                    pos = at + 1
                elif code == 0x95:  # FRAME
                    at = need(8)
                    pos = at + 8
                elif code == 0x2E:  # STOP
                    pop()
                    info.complete = True
                    pos += 1
                    break
                elif code == 0x4E:  # NONE
                    stack.append(None)
                    pos += 1
                elif code == 0x88 or code == 0x89:  # NEWTRUE, NEWFALSE
                    stack.append(code == 0x88)
                    pos += 1
                elif code == 0x47:  # BINFLOAT
                    at = need(8)
                    stack.append(_UNPACK_D(data, at)[0])
                    pos = at + 8
                elif code == 0x8A or code == 0x8B:  # LONG1, LONG4
                    width = 1 if code == 0x8A else 4
                    at = need(width)
                    n = data[at] if width == 1 else _UNPACK_I(data, at)[0]
                    if n < 0:
                        raise _ParseError("LONG pickle has negative byte count", pos)
                    at += width
                    if at + n > end:
                        raise _ParseError("pickle data was truncated", pos, at_end=True)
                    if n <= 64:
                        stack.append(int.from_bytes(data[at : at + n], "little", signed=True))
                    else:
                        stack.append(_Opaque(f"int of {n} bytes"))
                    pos = at + n
                elif code in (0x42, 0x43, 0x8E, 0x96, 0x54, 0x55):
                    # BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8, BINSTRING, SHORT_BINSTRING
                    width = {0x42: 4, 0x43: 1, 0x8E: 8, 0x96: 8, 0x54: 4, 0x55: 1}[code]
                    at = need(width)
                    if width == 1:
                        n = data[at]
                    elif width == 4:
                        n = _UNPACK_I(data, at)[0] if code == 0x54 else _UNPACK_I_U(data, at)[0]
                    else:
                        n = _UNPACK_Q(data, at)[0]
                    if n < 0:
                        raise _ParseError("negative byte count", pos)
                    at += width
                    if at + n > end:
                        raise _ParseError("pickle data was truncated", pos, at_end=True)
                    if code in (0x54, 0x55) and n <= _MAX_STR:
                        stack.append(bytes(data[at : at + n]).decode("latin-1"))
                    else:
                        kind = "str" if code in (0x54, 0x55) else "bytes"
                        stack.append(_Blob(kind, at, n))
                    pos = at + n
                elif code == 0x67 or code == 0x6A:  # GET, LONG_BINGET
                    if code == 0x67:
                        raw, at = line(pos + 1)
                        try:
                            idx = int(raw)
                        except ValueError:
                            raise _ParseError("GET argument is not an integer", pos) from None
                    else:
                        at = need(4)
                        idx = _UNPACK_I_U(data, at)[0]
                        at += 4
                    if idx not in memo:
                        raise _ParseError(f"memo value not found at index {idx}", pos)
                    stack.append(memo[idx])
                    pos = at
                elif code == 0x70 or code == 0x72:  # PUT, LONG_BINPUT
                    if code == 0x70:
                        raw, at = line(pos + 1)
                        try:
                            idx = int(raw)
                        except ValueError:
                            raise _ParseError("PUT argument is not an integer", pos) from None
                        if idx < 0:
                            raise _ParseError("negative PUT argument", pos)
                    else:
                        at = need(4)
                        idx = _UNPACK_I_U(data, at)[0]
                        at += 4
                    if len(stack) <= fence:
                        raise underflow()
                    memo[idx] = stack[-1]
                    pos = at
                elif code == 0x30:  # POP
                    if marks and marks[-1] == len(stack):
                        marks.pop()
                        fence = marks[-1] if marks else 0
                    else:
                        pop()
                    pos += 1
                elif code == 0x31:  # POP_MARK
                    pop_mark()
                    pos += 1
                elif code == 0x32:  # DUP
                    stack.append(top())
                    pos += 1
                elif code in (0x46, 0x49, 0x4C):  # FLOAT, INT, LONG (text)
                    raw, at = line(pos + 1)
                    try:
                        if code == 0x46:
                            stack.append(float(raw))
                        elif code == 0x49 and raw in (b"00", b"01"):
                            stack.append(raw == b"01")
                        else:
                            stack.append(int(raw[:-1] if raw.endswith(b"L") else raw))
                    except ValueError:
                        raise _ParseError("invalid number literal", pos) from None
                    pos = at
                elif code == 0x53:  # STRING
                    raw, at = line(pos + 1)
                    raw = raw.rstrip()
                    if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
                        raise _ParseError("the STRING opcode argument must be quoted", pos)
                    try:
                        value = codecs.escape_decode(raw[1:-1])[0]
                    except ValueError:
                        raise _ParseError("invalid STRING escape", pos) from None
                    stack.append(value.decode("latin-1"))
                    pos = at
                elif code == 0x56:  # UNICODE
                    raw, at = line(pos + 1)
                    try:
                        stack.append(raw.decode("raw-unicode-escape"))
                    except UnicodeDecodeError:
                        raise _ParseError("invalid UNICODE literal", pos) from None
                    pos = at
                elif code == 0x6C:  # LIST
                    stack.append(_List(pop_mark()[:_KEEP_ITEMS]))
                    pos += 1
                elif code == 0x64:  # DICT
                    items = pop_mark()
                    if len(items) % 2:
                        raise _ParseError("odd number of items for DICT", pos)
                    stack.append(_Dict(zip(items[0::2], items[1::2], strict=True)))
                    pos += 1
                elif code == 0x91:  # FROZENSET
                    stack.append(_Set(pop_mark()[:_KEEP_ITEMS]))
                    pos += 1
                elif code == 0x50:  # PERSID
                    raw, at = line(pos + 1)
                    stack.append(_Pers(raw.decode("latin-1")))
                    self.scan.features.add("persistent-id")
                    pos = at
                elif code == 0x51:  # BINPERSID
                    stack.append(_Pers(pop()))
                    self.scan.features.add("persistent-id")
                    pos += 1
                elif code in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
                    width = {0x82: 1, 0x83: 2, 0x84: 4}[code]
                    at = need(width)
                    ext = int.from_bytes(data[at : at + width], "little", signed=width == 4)
                    if ext <= 0:
                        raise _ParseError("EXT specifies code <= 0", pos)
                    rec = self.new_import(
                        "<copyreg extension>",
                        str(ext),
                        f"EXT{width}",
                        pos,
                        index,
                        proto,
                        dynamic=True,
                    )
                    stack.append(_Ref(rec))
                    pos = at + width
                elif code == 0x97:  # NEXT_BUFFER
                    self.scan.features.add("out-of-band-buffer")
                    stack.append(_Opaque("out-of-band buffer"))
                    pos += 1
                elif code == 0x98:  # READONLY_BUFFER
                    top()
                    pos += 1
                else:
                    raise _ParseError(f"invalid load key {chr(code)!r} (0x{code:02x})", pos)
                if len(stack) > max_stack:
                    raise LimitReached(
                        "max_stack", f"more than {max_stack} values on the stack", pos
                    )
                if len(memo) > max_memo:
                    raise LimitReached("max_memo", f"more than {max_memo} memo entries", pos)
                if pos - start > limits.max_pickle_bytes:
                    raise LimitReached(
                        "max_pickle_bytes", f"pickle longer than {limits.max_pickle_bytes} bytes"
                    )
        except LimitReached as exc:
            if exc.offset is None:
                exc.offset = op_pos
            self.scan.limit = exc
            info.error = str(exc)
            info.error_offset = op_pos
            pos = op_pos
        except _ParseError as exc:
            info.error = str(exc)
            info.error_offset = exc.offset
            self.scan.at_end = exc.at_end
            pos = exc.offset
        except (IndexError, struct.error):
            info.error = "pickle data was truncated"
            info.error_offset = op_pos
            self.scan.at_end = True
            pos = op_pos
        finally:
            self.opcodes += count & 0xFFFF
            info.opcodes = count
            info.end = pos
            info.protocol = info.protocol or proto
        return info

    # -- container and BUILD semantics ----------------------------------------------------

    def _setitems(self, target: Any, pairs: list[tuple[Any, Any]], pos: int, index: int) -> None:
        if isinstance(target, _Dict):
            if len(target) < _KEEP_PAIRS:  # contents only feed evidence and array wrappers
                target.extend(pairs[: _KEEP_PAIRS - len(target)])
        elif isinstance(target, _Call | _Ref):
            # A non-dict target makes the unpickler call target.__setitem__.
            self._method_call(target, "__setitem__", pos)
        else:
            raise _ParseError("SETITEM(S) target is not a mapping", pos)

    def _append(self, target: Any, items: list[Any], method: str, pos: int, index: int) -> None:
        if isinstance(target, _List | _Set):
            if len(target) < _KEEP_ITEMS:  # no opcode reads list items back: keep a sample
                target.extend(items[: _KEEP_ITEMS - len(target)])
        elif isinstance(target, _Call | _Ref):
            self._method_call(target, method, pos)
        else:
            raise _ParseError("APPEND(S)/ADDITEMS target is not a list or set", pos)

    def _method_call(self, target: Any, method: str, pos: int) -> None:
        cls = target.func if isinstance(target, _Call) else target
        if isinstance(cls, _Ref) and len(cls.rec.calls) < 8:
            cls.rec.called = True
            cls.rec.calls.append({"opcode": method, "offset": pos, "call": f".{method}(...)"})

    def _build(self, inst: Any, state: Any, stack: list[Any], pos: int, index: int) -> int:
        if isinstance(inst, _Ref):
            self.scan.build_on_import.append(
                {
                    "offset": pos,
                    "target": inst.rec.fullname,
                    "state": describe(state, self.data),
                }
            )
            return pos + 1
        if not isinstance(inst, _Call):
            return pos + 1
        inst.state = state
        cls = inst.func
        if isinstance(cls, _Ref):
            rec = cls.rec
            rec.called = True
            if len(rec.calls) < 8:
                rec.calls.append(
                    {"opcode": "BUILD", "offset": pos, "call": "__setstate__/__dict__ update"}
                )
            if rec.fullname in _JOBLIB_WRAPPERS:
                return self._joblib_array(inst, state, stack, pos, index)
        return pos + 1

    def _joblib_array(self, inst: _Call, state: Any, stack: list[Any], pos: int, index: int) -> int:
        """joblib writes the array bytes right after the wrapper's BUILD: skip them."""
        self.scan.features.add("joblib")
        fields = {k: v for k, v in state if isinstance(k, str)} if isinstance(state, _Dict) else {}
        shape = fields.get("shape")
        itemsize, has_object = _dtype_size(fields.get("dtype"))
        after = pos + 1
        stack[-1] = _Opaque("ndarray")
        if has_object:
            # A nested pickle stream (fresh stack and memo) follows immediately.
            nested = self.parse_one(after, index)
            if not nested.complete:
                raise _ParseError(
                    f"joblib object array: {nested.error}", nested.error_offset or after
                )
            return nested.end
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise _ParseError("joblib array wrapper without a readable shape", pos)
        if itemsize is None:
            raise _ParseError("joblib array wrapper with an unknown dtype", pos)
        count = 1
        for d in shape:
            count *= d
        if "numpy_array_alignment_bytes" in fields:
            if after >= self.end:
                raise _ParseError("pickle data was truncated", pos, at_end=True)
            after += 1 + self.data[after]
        after += count * itemsize
        if after > self.end:
            raise _ParseError("joblib array data runs past the end", pos, at_end=True)
        return after


_DTYPE_SIZES = {"b": 1, "B": 1, "?": 1, "h": 2, "H": 2, "e": 2, "i": 4, "I": 4, "f": 4}


def _dtype_size(dtype: Any) -> tuple[int | None, bool]:
    """itemsize and has-object flag of a symbolic ``numpy.dtype(...)`` call."""
    if not isinstance(dtype, _Call) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None, False
    descr = dtype.args[0]
    if not isinstance(descr, str) or not descr:
        return None, False
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    if len(state) >= 5 and isinstance(state[4], _Dict):
        for _name, spec in state[4]:
            if isinstance(spec, tuple) and spec and _dtype_size(spec[0])[1]:
                return None, True
    elsize = state[5] if len(state) >= 6 and isinstance(state[5], int) else -1
    kind = descr.lstrip("<>=|")[:1]
    digits = descr.lstrip("<>=|")[1:]
    if kind == "O":
        return 8, True
    if elsize and elsize > 0 and kind in ("V", "U", "S", "a"):
        return elsize, False
    if digits.isdigit():
        n = int(digits)
        return (n * 4 if kind == "U" else n), False
    if kind in _DTYPE_SIZES:
        return _DTYPE_SIZES[kind], False
    if elsize and elsize > 0:
        return elsize, False
    return None, False


def scan_pickles(
    data: Any,
    start: int = 0,
    end: int | None = None,
    *,
    limits: Limits | None = None,
    deadline: float | None = None,
    depth: int = 0,
    single: bool = False,
) -> PickleScan:
    """Analyse the pickle stream(s) in ``data[start:end]`` (bytes, bytearray or mmap).

    Pickles are read one after another, as repeated ``pickle.load`` calls on one file would;
    reading stops at the first pickle that does not parse (what it read before the error is
    kept), at ``end``, or after ``limits.max_pickles`` pickles. ``single`` reads only the first.
    """
    limits = limits or Limits()
    end = len(data) if end is None else end
    deadline = deadline if deadline is not None else time.monotonic() + limits.max_seconds
    stream = _Stream(data, end, limits, deadline, depth)
    scan = stream.scan
    pos = start
    index = 0
    try:
        while pos < end:
            before_imports = len(scan.imports)
            info = stream.parse_one(pos, index)
            if index > 0 and not info.complete and len(scan.imports) == before_imports:
                # Bytes after the last pickle that are not another pickle (tensor data, padding,
                # garbage): pickle.load would stop at the previous STOP or fail harmlessly here.
                scan.trailing = end - pos
                scan.at_end = False
                break
            scan.pickles.append(info)
            if scan.limit is not None or not info.complete or single:
                break
            pos = info.end
            index += 1
            if index >= limits.max_pickles and pos < end:
                raise LimitReached("max_pickles", f"more than {limits.max_pickles} pickles", pos)
    except LimitReached as exc:
        scan.limit = exc
    scan.end = scan.pickles[-1].end if scan.pickles else start
    return scan
