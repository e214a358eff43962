"""The never-execute model artifact scanner.

``scan_artifact(path)`` reads one file's bytes and returns findings; nothing in it is ever
unpickled, imported, unmarshalled or loaded by an ML framework. Formats are recognised by
content (see :mod:`mlhunt.scan.formats`), containers are opened recursively with bounded reads,
pickles are judged opcode by opcode (:mod:`mlhunt.scan.pickleops`) against the allow/deny policy
in ``allowlist.yaml``.
"""

from __future__ import annotations

import io
import lzma
import mmap
import os
import stat
import struct
import time
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlhunt.findings import Finding
from mlhunt.record import Record
from mlhunt.scan import formats as fmt
from mlhunt.scan import zipcheck
from mlhunt.scan.art_policy import Policy
from mlhunt.scan.art_rules import make_finding
from mlhunt.scan.h5child import H5Reader, H5Result
from mlhunt.scan.pickleops import LimitReached, Limits, PickleScan, scan_pickles

__all__ = ["Limits", "is_artifact", "scan_artifact"]

_HEAD = 64
_FIRST_READ = 256 << 10  # first bounded read of a zip member that might be a pickle


class _Ctx(Record):
    __slots__ = ("deadline", "findings", "h5", "ids", "limits", "policy")

    def __init__(
        self,
        policy: Policy,
        limits: Limits,
        deadline: float,
        *,
        h5: H5Reader | None = None,  # where HDF5 files are sent to be read (see h5child)
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.deadline = deadline
        self.findings: list[Finding] = []
        self.ids: set[str] = set()
        self.h5 = h5

    def add(self, finding: Finding) -> None:
        if finding.id not in self.ids:
            self.ids.add(finding.id)
            self.findings.append(finding)

    def limit(self, target: str, what: str, detail: str, **evidence: Any) -> None:
        self.add(
            make_finding(
                "MLH-SCAN-LIMIT",
                target,
                what,
                detail,
                {"limit": what, "detail": detail, **evidence},
            )
        )

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitReached("max_seconds", f"scan took longer than {self.limits.max_seconds}s")


def scan_artifact(
    path: Path,
    *,
    display: str | None = None,
    allow: Iterable[str] = (),
    limits: Limits | None = None,
    h5: H5Reader | None = None,
) -> list[Finding]:
    """Findings for one file (empty for a clean or unrecognised file). Never executes content.

    ``display`` is the finding target text (default ``str(path)``); members of archives are
    reported as ``display!member``. ``allow`` adds ``module.name`` or ``module.*`` entries to the
    allow-list (known-dangerous callables stay critical). ``limits`` bounds the work.

    ``h5``: a reader shared by a whole scan. The findings from the file's HDF5 attributes then
    come from ``h5.finish()``, not from this call; without one, this call reads them itself.
    """
    if h5 is None:
        with H5Reader() as own:
            findings = scan_artifact(path, display=display, allow=allow, limits=limits, h5=own)
            own.finish()  # its callbacks add the HDF5 findings to the list returned above
        return findings
    path = Path(path)
    limits = limits or Limits()
    policy = Policy.default().with_allow(allow)
    ctx = _Ctx(policy, limits, time.monotonic() + limits.max_seconds, h5=h5)
    target = display if display is not None else str(path)
    try:
        st = path.stat()
    except OSError as exc:  # vanished or unreadable: say so, never pass it silently
        return [_unreadable(target, exc)]
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return []
    if st.st_size > limits.max_file_bytes:
        ctx.limit(
            target,
            "max_file_bytes",
            f"file of {st.st_size} bytes not scanned",
            size=st.st_size,
            max_file_bytes=limits.max_file_bytes,
        )
        return ctx.findings
    try:
        with open(path, "rb") as fh:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                _scan_blob(ctx, data, target, 0, fileobj=fh, path=path)
            except LimitReached as exc:
                ctx.limit(target, exc.limit, exc.detail)
            except (RecursionError, MemoryError) as exc:
                ctx.limit(target, type(exc).__name__, f"scan ran out of resources: {exc}")
            except Exception as exc:  # a scanner bug must not end a whole walk: report it
                ctx.add(_scanner_failed(target, exc))
            finally:
                data.close()
    except OSError as exc:  # permission denied, or gone between stat and open
        ctx.add(_unreadable(target, exc))
    except ValueError:  # mmap of a file emptied between stat and open
        ctx.add(_unreadable(target, OSError("file changed while being read (now empty)")))
    return ctx.findings


def _scanner_failed(target: str, exc: Exception) -> Finding:
    """A scanner bug on one file, reported as a finding so that the walk goes on."""
    return make_finding(
        "MLH-SCAN-ERROR",
        target,
        type(exc).__name__,
        f"The scanner failed on this file: {exc!r}",
        {"error": repr(exc)[:500]},
    )


def _unreadable(target: str, exc: OSError) -> Finding:
    reason = f"not readable: {exc.strerror or exc}"
    return make_finding(
        "MLH-SCAN-ERROR",
        target,
        "not readable",
        f"The file could not be read, so it was not inspected ({reason}).",
        {"error": reason, "errno": exc.errno},
    )


def is_artifact(path: Path) -> bool:
    """Whether the file's content is a model/serialisation format this scanner understands.
    True also when the file cannot be read: ``scan_artifact`` then reports why."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64 << 10)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return True
    return sniff_deep(head, size) is not None


def sniff_deep(head: bytes, size: int) -> str | None:
    """The format of a file from its first bytes, looking inside compressed streams."""
    kind = fmt.sniff(head[:_HEAD], size)
    if kind == fmt.PICKLE_TEXT:
        return kind if fmt.confirm_text_pickle(head, Limits(max_seconds=2.0)) else None
    if kind in fmt.COMPRESSED:
        try:
            inner, _ = fmt.decompress_bounded(head, kind, 64 << 10)
        except ValueError:
            return None
        inner_kind = fmt.sniff(inner[:_HEAD], 1 << 62)
        if inner_kind in (fmt.PICKLE, fmt.NPY) or (
            inner_kind == fmt.PICKLE_TEXT and fmt.confirm_text_pickle(inner, Limits())
        ):
            return kind
        return None
    return kind


# --------------------------------------------------------------------------- dispatch


def _scan_blob(
    ctx: _Ctx,
    data: Any,
    target: str,
    depth: int,
    *,
    fileobj: Any = None,
    path: Path | None = None,
    container: str | None = None,
) -> None:
    """Scan bytes (or an mmap) whose format is unknown yet."""
    ctx.check_time()
    size = len(data)
    head = bytes(data[:_HEAD])
    kind = fmt.sniff(head, size)
    if kind == fmt.ZIP:
        _scan_zip(ctx, fileobj if fileobj is not None else io.BytesIO(data), target, depth)
    elif kind in (fmt.PICKLE, fmt.PICKLE_TEXT):
        judged = _scan_pickle_stream(ctx, data, target, depth, kind, container=container)
        if judged and size > 22 and _has_zip_directory(data):
            ctx.add(
                make_finding(
                    "MLH-SCAN-POLYGLOT",
                    target,
                    "pickle+zip",
                    "The file parses as a pickle and also ends with a zip directory.",
                    {"format": "pickle+zip"},
                )
            )
            _scan_zip(ctx, fileobj if fileobj is not None else io.BytesIO(data), target, depth)
    elif kind == fmt.NPY:
        _scan_npy(ctx, data, target, depth)
    elif kind == fmt.SAFETENSORS:
        _issues(ctx, target, fmt.check_safetensors(data, size, ctx.limits), "safetensors")
    elif kind == fmt.ONNX:
        _scan_onnx(ctx, data, target)
    elif kind == fmt.HDF5:
        _scan_hdf5(ctx, data, target, path)
    elif kind in fmt.COMPRESSED:
        _scan_compressed(ctx, data, target, depth, kind)


def _issues(ctx: _Ctx, target: str, issues: list[fmt.Issue], format_name: str) -> None:
    for issue in issues:
        evidence = {"format": format_name, **issue.evidence}
        ctx.add(
            make_finding(
                issue.rule_id, target, issue.detail, issue.message, evidence, issue.severity
            )
        )


def _has_zip_directory(data: Any) -> bool:
    tail = bytes(data[max(0, len(data) - 66_000) :])
    return tail.rfind(b"PK\x05\x06") >= 0 and bytes(data[:4]) != b"PK\x03\x04"


# --------------------------------------------------------------------------- pickles


def _scan_pickle_stream(
    ctx: _Ctx,
    data: Any,
    target: str,
    depth: int,
    kind: str,
    *,
    start: int = 0,
    single: bool = False,
    container: str | None = None,
    torchscript: bool = False,
    format_name: str | None = None,
) -> bool:
    """Scan the pickle(s) in data[start:]; returns False when a text candidate was no pickle."""
    scan = scan_pickles(
        data, start, limits=ctx.limits, deadline=ctx.deadline, depth=depth, single=single
    )
    if kind == fmt.PICKLE_TEXT and not fmt.text_pickle_confirmed(scan):
        return False
    if format_name is None:
        if "joblib" in scan.features:
            format_name = "joblib"
        elif bytes(data[start : start + len(fmt.TORCH_LEGACY_MAGIC)]) == fmt.TORCH_LEGACY_MAGIC:
            format_name = "torch-legacy"
        else:
            format_name = "pickle"
        if container:
            format_name = f"{container}/{format_name}"
    _judge(ctx, scan, data, target, depth, format_name, torchscript)
    return True


def _judge(
    ctx: _Ctx,
    scan: PickleScan,
    data: Any,
    target: str,
    depth: int,
    format_name: str,
    torchscript: bool,
) -> None:
    protocols = sorted({p.protocol for p in scan.pickles})
    base = {"format": format_name, "pickles": len(scan.pickles), "protocols": protocols}
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in scan.imports:
        if rec.dynamic:
            rule, severity, verdict_note = "MLH-SCAN-PICKLE-DYNAMIC-GLOBAL", None, None
            key_name = f"{rec.module}.{rec.name}" if rec.name else rec.module
        else:
            verdict = ctx.policy.classify(rec.module, rec.name, torchscript=torchscript)
            if verdict.level == "allow":
                continue
            key_name = rec.fullname
            if verdict.level == "deny":
                rule, severity = "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL", None
            else:
                rule, severity = "MLH-SCAN-PICKLE-UNKNOWN-GLOBAL", None
            verdict_note = verdict.matched or verdict.reason
        entry = grouped.setdefault(
            (rule, key_name),
            {
                "import": key_name,
                "module": rec.module,
                "name": rec.name,
                "occurrences": [],
                "called": False,
                "calls": [],
                "policy": verdict_note,
                "severity": severity,
            },
        )
        entry["called"] = entry["called"] or rec.called
        if len(entry["occurrences"]) < 20:
            occ: dict[str, Any] = {
                "offset": rec.offset,
                "opcode": rec.opcode,
                "pickle_index": rec.pickle_index,
            }
            if rec.written_as:
                occ["written_as"] = rec.written_as
            if rec.via:
                occ["via"] = rec.via
            entry["occurrences"].append(occ)
        for call in rec.calls:
            if len(entry["calls"]) < 5:
                entry["calls"].append(call)
    for (rule, name), entry in grouped.items():
        severity = entry.pop("severity")
        called = "called" if entry["called"] else "imported"
        first = entry["occurrences"][0]
        if rule == "MLH-SCAN-PICKLE-DYNAMIC-GLOBAL":
            desc = (
                f"{first['opcode']} at offset {first['offset']} imports a name that is only "
                f"known at load time ({name})."
            )
        else:
            desc = (
                f"The pickle {called} {name} ({first['opcode']} at offset "
                f"{first['offset']}); unpickling it imports that module and "
                f"{'calls it' if entry['called'] else 'can call it'}."
            )
        ctx.add(make_finding(rule, target, name, desc, {**base, **entry}, severity))
    for item in scan.build_on_import:
        ctx.add(
            make_finding(
                "MLH-SCAN-PICKLE-BUILD-ON-IMPORT",
                target,
                f"{item['target']}@{item['offset']}",
                f"BUILD at offset {item['offset']} sets attributes on the imported "
                f"object {item['target']}.",
                {**base, **item},
            )
        )
    for nested in scan.nested:
        ntarget = f"{target}!<{nested.via}@{nested.offset}>"
        ctx.add(
            make_finding(
                "MLH-SCAN-PICKLE-NESTED-PAYLOAD",
                target,
                f"{nested.via}@{nested.offset}",
                f"{nested.via} at offset {nested.offset} deserialises "
                f"{len(nested.data)} embedded bytes; they were scanned as {ntarget}.",
                {
                    **base,
                    "via": nested.via,
                    "offset": nested.offset,
                    "payload_bytes": len(nested.data),
                    "payload_target": ntarget,
                },
            )
        )
        if depth + 1 > ctx.limits.max_depth:
            ctx.limit(target, "max_depth", "nested payload deeper than max_depth")
        else:
            _scan_blob(ctx, nested.data, ntarget, depth + 1)
    clean = not (grouped or scan.build_on_import or scan.nested or scan.limit is not None)
    whole = bool(scan.pickles) and not scan.pickles[-1].error
    if clean and whole and format_name in ("pickle", "joblib") and scan.imports:
        # A whole, ordinary model pickle (a scikit-learn joblib file): say what it is, so a
        # scan of it is not silence, and that the format still needs trust.
        names = sorted({r.fullname for r in scan.imports})
        ctx.add(
            make_finding(
                "MLH-SCAN-PICKLE-ALLOWLISTED",
                target,
                format_name,
                f"{format_name} file: {len(names)} imported name(s), all on the "
                f"allow-list (e.g. {', '.join(names[:3])}).",
                {**base, "imports": names[:50]},
            )
        )
    if scan.limit is not None:
        ctx.limit(
            target,
            scan.limit.limit,
            scan.limit.detail,
            format=format_name,
            offset=scan.limit.offset,
        )
    elif scan.pickles:
        last = scan.pickles[-1]
        if last.error and (last.opcodes > 1 or scan.imports):
            ctx.add(
                make_finding(
                    "MLH-SCAN-PICKLE-MALFORMED",
                    target,
                    f"pickle{last.index}",
                    f"Pickle {last.index} stops with an error at offset "
                    f"{last.error_offset}: {last.error}.",
                    {
                        **base,
                        "pickle_index": last.index,
                        "error": last.error,
                        "error_offset": last.error_offset,
                        "opcodes_before_error": last.opcodes,
                    },
                )
            )


# --------------------------------------------------------------------------- NumPy


def _scan_npy(ctx: _Ctx, data: Any, target: str, depth: int, container: str | None = None) -> None:
    name = f"{container}/npy" if container else "npy"
    try:
        header = fmt.parse_npy_header(data, ctx.limits.max_header_bytes)
    except ValueError as exc:
        ctx.add(
            make_finding(
                "MLH-SCAN-NPY-MALFORMED",
                target,
                "header",
                str(exc),
                {"format": name, "error": str(exc)},
            )
        )
        return
    if not header.has_object:
        return
    ctx.add(
        make_finding(
            "MLH-SCAN-NPY-OBJECT-ARRAY",
            target,
            "object-dtype",
            "The array has an object dtype: numpy stores it as a pickle after the header.",
            {
                "format": name,
                "descr": repr(header.descr)[:200],
                "shape": list(header.shape),
                "pickle_offset": header.data_offset,
            },
        )
    )
    _scan_pickle_stream(
        ctx,
        data,
        target,
        depth,
        fmt.PICKLE,
        start=header.data_offset,
        single=True,
        format_name=f"{name}/pickle",
    )


# --------------------------------------------------------------------------- zip archives


def _scan_zip(ctx: _Ctx, fileobj: Any, target: str, depth: int) -> None:
    limits = ctx.limits
    if depth > limits.max_depth:
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-BOMB",
                target,
                "nesting",
                f"Archives nested deeper than {limits.max_depth} levels.",
                {"format": "zip", "depth": depth, "max_depth": limits.max_depth},
            )
        )
        return
    try:
        zf = zipfile.ZipFile(fileobj)
    except (
        zipfile.BadZipFile,
        OSError,
        NotImplementedError,  # "zip file version N": raised while reading the central directory
        RuntimeError,
        ValueError,
        EOFError,
        struct.error,
        zlib.error,
    ) as exc:
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-UNREADABLE",
                target,
                "archive",
                f"Zip directory unreadable: {exc}",
                {"format": "zip", "error": str(exc)},
            )
        )
        return
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if len(infos) > limits.max_zip_entries:
            ctx.limit(
                target,
                "max_zip_entries",
                f"{len(infos)} entries; only the first {limits.max_zip_entries} scanned",
                entries=len(infos),
            )
            infos = infos[: limits.max_zip_entries]
        names = [i.filename for i in infos]
        container = container_kind(names)
        torchscript = container == "torchscript"
        if total > limits.max_zip_total:
            ctx.add(
                make_finding(
                    "MLH-SCAN-ZIP-BOMB",
                    target,
                    "total-size",
                    f"Entries declare {total} uncompressed bytes in total.",
                    {
                        "format": container,
                        "declared_total": total,
                        "max_zip_total": limits.max_zip_total,
                    },
                )
            )
        _check_overlap(ctx, infos, target, container)
        seen: set[str] = set()
        for info in zipcheck.distinct_regions(infos):
            ctx.check_time()
            _scan_member(ctx, zf, info, target, depth, container, torchscript, seen)


def _check_overlap(ctx: _Ctx, infos: list[zipfile.ZipInfo], target: str, container: str) -> None:
    pairs = zipcheck.overlapping(infos)
    if pairs:
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-BOMB",
                target,
                "overlap",
                f"{len(pairs)} entries share stored bytes with another entry (a non-recursive "
                "zip bomb's trick); each shared region was scanned once.",
                {"format": container, "overlapping": len(pairs), "examples": pairs[:5]},
            )
        )


def container_kind(names: list[str]) -> str:
    """What a zip holds, from its member names: keras, torchscript, torch-zip, npz or zip."""
    roots = {n.split("/", 1)[0] for n in names}
    if "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names):
        return "keras"
    has_pkl = any(n.endswith("data.pkl") for n in names)
    if has_pkl and (
        any(n.endswith("constants.pkl") for n in names) or any("/code/" in f"/{n}" for n in names)
    ):
        return "torchscript"
    if has_pkl and len(roots) == 1:
        return "torch-zip"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def _scan_member(
    ctx: _Ctx,
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: str,
    depth: int,
    container: str,
    torchscript: bool,
    seen: set[str],
) -> None:
    limits = ctx.limits
    name = info.filename
    etarget = f"{target}!{name}"
    base = {"format": container, "entry": name}
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in norm.split("/"):
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-PATH-TRAVERSAL",
                target,
                name,
                f"Entry {name!r} would be extracted outside the target folder.",
                dict(base),
            )
        )
    if name in seen:
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-UNREADABLE",
                target,
                f"duplicate:{name}",
                f"Entry name {name!r} appears more than once; loaders disagree on "
                "which copy they read (all copies are scanned).",
                dict(base),
                "medium",
            )
        )
    seen.add(name)
    if stat.S_ISLNK(info.external_attr >> 16):
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-SYMLINK",
                target,
                name,
                f"Entry {name!r} is a symbolic link.",
                dict(base),
            )
        )
        return
    if name.endswith("/"):  # not info.is_dir(): it raises IndexError on an empty name
        return
    if info.flag_bits & 0x1:
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-UNREADABLE",
                target,
                name,
                f"Entry {name!r} is encrypted and was not inspected.",
                dict(base),
            )
        )
        return
    if info.file_size >= limits.zip_ratio_min_bytes and info.file_size > limits.max_zip_ratio * max(
        info.compress_size, 1
    ):
        ratio = info.file_size / max(info.compress_size, 1)
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-BOMB",
                target,
                name,
                f"Entry {name!r} declares a {ratio:.0f}:1 compression ratio.",
                {
                    **base,
                    "compressed": info.compress_size,
                    "uncompressed": info.file_size,
                    "ratio": round(ratio, 1),
                    "max_zip_ratio": limits.max_zip_ratio,
                },
            )
        )
        return
    try:
        with zf.open(info) as member:
            head = member.read(_HEAD)
            kind = fmt.sniff(head, info.file_size)
            is_pkl_name = name.endswith((".pkl", ".pickle"))
            if container == "keras" and name == "config.json":
                raw = _read_bounded(member, head, info, limits.max_header_bytes, ctx, etarget)
                _keras_json(ctx, raw, etarget, "keras/config.json")
                return
            if kind is None and not is_pkl_name:
                return
            if kind in (fmt.PICKLE, fmt.PICKLE_TEXT) or (is_pkl_name and kind is None):
                _scan_member_pickle(
                    ctx,
                    member,
                    head,
                    info,
                    etarget,
                    depth,
                    container,
                    torchscript,
                    kind or fmt.PICKLE_TEXT,
                )
                return
            raw = _read_bounded(member, head, info, limits.max_entry_bytes, ctx, etarget)
            if raw is None:
                return
    except (
        zipfile.BadZipFile,
        OSError,
        NotImplementedError,
        RuntimeError,
        EOFError,
        ValueError,
        struct.error,
        zlib.error,
        lzma.LZMAError,
    ) as exc:
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-UNREADABLE",
                target,
                name,
                f"Entry {name!r} could not be read: {exc}",
                {**base, "error": str(exc)},
            )
        )
        return
    if kind == fmt.NPY:
        _scan_npy(ctx, raw, etarget, depth + 1, container=container)
    elif kind == fmt.ZIP:
        _scan_zip(ctx, io.BytesIO(raw), etarget, depth + 1)
    else:
        _scan_blob(ctx, raw, etarget, depth + 1, container=container)


def _read_bounded(
    member: Any, head: bytes, info: zipfile.ZipInfo, cap: int, ctx: _Ctx, etarget: str
) -> bytes | None:
    if info.file_size > cap:
        ctx.limit(
            etarget,
            "max_entry_bytes",
            f"entry of {info.file_size} bytes larger than {cap}; not inspected",
            size=info.file_size,
        )
        return None
    return head + member.read(cap - len(head) + 1)[: cap - len(head)]


def _scan_member_pickle(
    ctx: _Ctx,
    member: Any,
    head: bytes,
    info: zipfile.ZipInfo,
    etarget: str,
    depth: int,
    container: str,
    torchscript: bool,
    kind: str,
) -> None:
    """Read a possible pickle member in growing bounded chunks: tensor storages that merely
    start like a pickle fail within a few bytes and are never read whole."""
    limits = ctx.limits
    buf = bytearray(head)
    want = _FIRST_READ
    while True:
        chunk = member.read(max(0, want - len(buf)))
        buf += chunk
        complete = not chunk or len(buf) >= info.file_size
        scan = scan_pickles(buf, 0, limits=limits, deadline=ctx.deadline, depth=depth)
        if not scan.at_end or complete or scan.limit is not None:
            break
        if len(buf) >= limits.max_entry_bytes:
            ctx.limit(
                etarget,
                "max_entry_bytes",
                f"pickle entry larger than "
                f"{limits.max_entry_bytes} bytes; only its start was inspected",
            )
            break
        want = min(len(buf) * 4, limits.max_entry_bytes)
    if kind == fmt.PICKLE_TEXT and not fmt.text_pickle_confirmed(scan):
        return
    parsed = bool(scan.pickles) and scan.pickles[0].complete
    if not scan.imports and not parsed and not info.filename.endswith((".pkl", ".pickle")):
        return
    label = "joblib" if "joblib" in scan.features else "pickle"
    _judge(ctx, scan, buf, etarget, depth, f"{container}/{label}", torchscript)


def _keras_json(ctx: _Ctx, raw: bytes | None, target: str, where: str) -> None:
    import json

    if raw is None:
        return
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-UNREADABLE",
                target,
                "config",
                f"Keras config is not JSON: {exc}",
                {"format": where},
            )
        )
        return
    _issues(ctx, target, fmt.keras_config_issues(config, ctx.policy, where), where)


# --------------------------------------------------------------------------- other formats


def _scan_onnx(ctx: _Ctx, data: Any, target: str) -> None:
    try:
        entries = fmt.onnx_external_data(data, len(data), ctx.limits)
    except ValueError as exc:
        ctx.add(
            make_finding(
                "MLH-SCAN-ONNX-MALFORMED",
                target,
                "protobuf",
                str(exc),
                {"format": "onnx", "error": str(exc)},
            )
        )
        return
    for entry in entries:
        why = fmt.location_escapes(entry["location"])
        if why:
            ctx.add(
                make_finding(
                    "MLH-SCAN-ONNX-EXTERNAL-DATA-PATH",
                    target,
                    entry["location"],
                    f"Tensor {entry['tensor']!r} reads its data from {entry['location']!r}: {why}.",
                    {"format": "onnx", **entry, "reason": why},
                )
            )


def _scan_hdf5(ctx: _Ctx, data: Any, target: str, path: Path | None) -> None:
    """Send the file to the scan's HDF5 reader; its findings come when the reader finishes."""
    import importlib.util

    if importlib.util.find_spec("h5py") is None:
        ctx.add(
            make_finding(
                "MLH-SCAN-HDF5-UNINSPECTED",
                target,
                "h5py",
                "h5py is not installed; the HDF5 model config was not read.",
                {"format": "hdf5"},
            )
        )
        return
    if ctx.h5 is None:
        raise RuntimeError("no HDF5 reader")  # scan_artifact always sets one
    ctx.h5.submit(
        None if path is not None else bytes(data),
        path=str(path) if path is not None else None,
        timeout=min(60.0, ctx.deadline - time.monotonic()),
        max_bytes=ctx.limits.max_header_bytes,
        done=lambda result: _hdf5_done(ctx, result, target),
    )


def _hdf5_done(ctx: _Ctx, result: H5Result, target: str) -> list[Finding]:
    """The findings of one HDF5 file's attributes, added to its context and returned."""
    start = len(ctx.findings)
    try:
        _hdf5_findings(ctx, result, target)
    except (RecursionError, MemoryError) as exc:
        ctx.limit(target, type(exc).__name__, f"scan ran out of resources: {exc}")
    except Exception as exc:  # a scanner bug must not end a whole walk: report it
        ctx.add(_scanner_failed(target, exc))
    return ctx.findings[start:]


def _hdf5_findings(ctx: _Ctx, result: H5Result, target: str) -> None:
    if result.crashed:
        ctx.add(
            make_finding(
                "MLH-SCAN-HDF5-PARSER-CRASH",
                target,
                "hdf5",
                f"Reading the file's attributes crashed the HDF5 reader: {result.crashed}.",
                {"format": "hdf5", "reason": result.crashed},
            )
        )
        return
    if result.error:
        ctx.add(
            make_finding(
                "MLH-SCAN-ZIP-UNREADABLE",
                target,
                "hdf5",
                f"HDF5 file could not be read: {result.error}",
                {"format": "hdf5"},
            )
        )
        return
    for attr, raw in result.attrs.items():
        if len(raw) > ctx.limits.max_header_bytes:
            ctx.limit(target, "max_header_bytes", f"{attr} attribute too large")
            continue
        _keras_json(ctx, raw, target, f"hdf5/{attr}")


def _scan_compressed(ctx: _Ctx, data: Any, target: str, depth: int, kind: str) -> None:
    try:
        probe, _ = fmt.decompress_bounded(data, kind, 64 << 10)
    except ValueError:
        return
    inner = fmt.sniff(probe[:_HEAD], 1 << 62)
    if inner not in (fmt.PICKLE, fmt.PICKLE_TEXT, fmt.NPY, fmt.ZIP, fmt.SAFETENSORS):
        return
    if inner == fmt.PICKLE_TEXT and not fmt.confirm_text_pickle(probe, ctx.limits):
        return
    if depth + 1 > ctx.limits.max_depth:
        ctx.limit(target, "max_depth", "compressed stream nested deeper than max_depth")
        return
    try:
        raw, complete = fmt.decompress_bounded(data, kind, ctx.limits.max_entry_bytes)
    except ValueError:
        return
    if not complete:
        ctx.limit(
            target,
            "max_entry_bytes",
            f"{kind} stream decompresses past "
            f"{ctx.limits.max_entry_bytes} bytes; only its start was inspected",
            format=kind,
        )
    if inner == fmt.NPY:
        _scan_npy(ctx, raw, target, depth + 1, container=kind)
    elif inner in (fmt.PICKLE, fmt.PICKLE_TEXT):
        _scan_pickle_stream(ctx, raw, target, depth + 1, inner, container=kind)
    else:
        _scan_blob(ctx, raw, target, depth + 1, container=kind)
