"""Hostile artifacts (issue #9): each ends with a finding, in bounded time and memory, with
nothing unpickled or imported and nothing read outside the scanned root."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlhunt.scan import Limits, scan_path
from mlhunt.scan.artifacts import scan_artifact
from tests.scan_corpus import P4, sg, u
from tests.scan_guard import CANARY, assert_untouched, install_canary, make_h5, watch

MB = 1 << 20


def _bounded(fn: Callable[[], Any], seconds: float, megabytes: int) -> Any:
    """Run fn; assert it took under ``seconds`` of CPU and allocated under ``megabytes`` at peak.

    CPU time of this process, not the wall clock: another process on a busy machine does not
    inflate it, while a bomb that was not defused still blows far past the bound."""
    tracemalloc.start()
    start = time.process_time()
    try:
        out = fn()
    finally:
        elapsed = time.process_time() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f}s"
    assert peak < megabytes * MB, f"peak {peak / MB:.0f} MB"
    return out


def _rules(findings: list) -> set[str]:
    return {f.rule_id for f in findings}


def _limits(findings: list) -> set[str]:
    return {f.evidence.get("limit") for f in findings if f.rule_id == "MLH-SCAN-LIMIT"}


# ------------------------------------------------------------------------------- zip bombs


def _raw_zip(entries: list[tuple[bytes, int]], data: bytes, size: int, crc: int) -> bytes:
    """A zip whose central directory lists ``entries`` (name, local header offset), every one
    pointing into the single deflated ``data`` written once: entries share stored bytes."""
    name0 = entries[0][0]
    sizes = (crc, len(data), size)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, *sizes, len(name0), 0)
    body = local + name0 + data
    central = [
        struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, *sizes, len(name), 0, 0, 0, 0, 0, off
        )
        + name
        for name, off in entries
    ]
    cd = b"".join(central)
    n = len(entries)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, n, n, len(cd), len(body), 0)
    return body + cd + eocd


def test_overlapping_entries_are_a_bomb_and_shared_bytes_are_read_once(tmp_path: Path) -> None:
    plain = P4 + sg("posix", "system") + u("id") + b"\x85R." + b"\0" * MB
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = comp.compress(plain) + comp.flush()
    path = tmp_path / "overlap.zip"
    path.write_bytes(_raw_zip([(b"data.pkl", 0)] * 5000, data, len(plain), zlib.crc32(plain)))
    findings = _bounded(lambda: scan_artifact(path), 10, 64)
    bomb = [f for f in findings if f.rule_id == "MLH-SCAN-ZIP-BOMB"]
    assert bomb and bomb[0].evidence["overlapping"] == 4999
    # the shared kernel is still judged (once): it holds a payload
    assert "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL" in _rules(findings)


def test_high_ratio_and_many_entries_end_with_findings(tmp_path: Path) -> None:
    ratio = tmp_path / "ratio.zip"
    with zipfile.ZipFile(ratio, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("a.pkl", "w") as m:
        for _ in range(256):  # 256 MB of zeros, ~250 KB on disk
            m.write(b"\0" * MB)
    findings = _bounded(lambda: scan_artifact(ratio), 5, 32)
    assert "MLH-SCAN-ZIP-BOMB" in _rules(findings)

    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(3000):
            zf.writestr(f"w/{i}.npy", b"")
    findings = _bounded(lambda: scan_artifact(many, limits=Limits(max_zip_entries=500)), 10, 64)
    assert _limits(findings) == {"max_zip_entries"}


def test_nested_archives_stop_at_max_depth(tmp_path: Path) -> None:
    blob = P4 + sg("posix", "system") + u("id") + b"\x85R."
    for level in range(12):  # zip in gzip-free zip in zip ... twelve deep
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"l{level}.zip" if level else "x.pkl", blob)
        blob = buf.getvalue()
    path = tmp_path / "nest.zip"
    path.write_bytes(blob)
    findings = _bounded(lambda: scan_artifact(path, limits=Limits(max_depth=3)), 5, 32)
    assert any(f.rule_id == "MLH-SCAN-ZIP-BOMB" and f.evidence.get("depth") for f in findings)


# ------------------------------------------------------------------------------- pickle bombs


def test_memo_bomb_billion_laughs_stays_small(tmp_path: Path) -> None:
    # 40 levels, each a list of ten references to the level below: 10**40 leaves if expanded.
    body = u("lol") + b"\x94"
    for i in range(1, 40):
        body += b"](" + (b"h" + bytes([i - 1])) * 10 + b"e\x94"
    path = tmp_path / "laughs.pkl"
    path.write_bytes(P4 + sg("posix", "system") + body + b"\x85R.")
    findings = _bounded(lambda: scan_artifact(path), 5, 32)
    (f,) = findings
    assert f.rule_id == "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL"
    assert len(json.dumps(f.evidence)) < 4000  # evidence is a bounded description


def test_memo_flood_hits_max_memo(tmp_path: Path) -> None:
    body = b"".join(b"N\x94" for _ in range(50_000))
    path = tmp_path / "flood.pkl"
    path.write_bytes(P4 + body + b"N.")
    findings = _bounded(lambda: scan_artifact(path, limits=Limits(max_memo=10_000)), 5, 32)
    assert _limits(findings) == {"max_memo"}


_NESTS = {
    "tuple1": b"N" + b"\x85" * 100_000,  # TUPLE1 of TUPLE1 of ...
    "lists": b"N" + b"]" * 100_000 + b"a" * 99_999,  # lists appended into lists
    "dicts": b"N" + b"}" * 50_000 + b"\x85" * 10,  # a deep stack of dicts, then tuples
    "marks": b"(" * 9_000 + b"N" + b"t" * 9_000,  # MARK ... TUPLE, as deep as max_marks allows
}


def _deep(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for name, nest in _NESTS.items():
        (folder / f"{name}.pkl").write_bytes(P4 + sg("posix", "system") + nest + b"\x85R.")
    return folder


@pytest.mark.parametrize("name", list(_NESTS))
def test_recursion_bombs_as_call_arguments(tmp_path: Path, name: str) -> None:
    path = _deep(tmp_path) / f"{name}.pkl"
    start = time.process_time()  # tracemalloc would slow this 50x: memory is measured below
    findings = scan_artifact(path)
    assert time.process_time() - start < 5  # CPU seconds: load elsewhere does not count
    assert "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL" in _rules(findings)
    json.dumps([f.to_dict() for f in findings])  # the report can still be written


def test_recursion_bombs_memory(tmp_path: Path) -> None:
    got = _child(_deep(tmp_path / "deep"))
    assert {
        Path(t).name for rule, t, _ in got["f"] if rule == "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL"
    } == {f"{n}.pkl" for n in _NESTS}
    assert got["s"] < 10 and got["rss_kb"] < 150_000, got  # measured: 0.5 s, 26 MB


def test_mark_bomb_hits_max_marks(tmp_path: Path) -> None:
    path = tmp_path / "marks.pkl"
    path.write_bytes(P4 + b"(" * 50_000 + b"N.")
    findings = _bounded(lambda: scan_artifact(path, limits=Limits(max_marks=1000)), 5, 32)
    assert _limits(findings) == {"max_marks"}


# ------------------------------------------------------------------------------- huge files


def _sparse(path: Path, head: bytes, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


# Peak RSS from VmHWM: it starts afresh at exec, whereas getrusage's ru_maxrss carries over the
# forking parent's peak (pytest's, hundreds of MB after other tests).
_SCAN_CHILD = (
    "import json, re, sys, time\n"
    "from pathlib import Path\n"
    "from mlhunt.scan import Limits, scan_path\n"
    "t = time.process_time()\n"
    "r = scan_path(Path(sys.argv[1]), limits=Limits(max_file_bytes=int(sys.argv[2])))\n"
    "s = time.process_time() - t\n"
    "hwm = re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1)\n"
    "print(json.dumps({'s': s, 'rss_kb': int(hwm), 'f': [[f.rule_id, f.target, "
    "f.evidence.get('limit')] for f in r.findings]}))\n"
)


def _child(root: Path, max_file_bytes: int = Limits().max_file_bytes) -> dict[str, Any]:
    """scan_path in a separate process, so that its peak RSS is this scan's alone."""
    out = subprocess.run(
        [sys.executable, "-c", _SCAN_CHILD, str(root), str(max_file_bytes)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def test_files_over_2gb_are_not_read(tmp_path: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    size = (2 << 30) + 4096
    _sparse(root / "model.pt", P4 + sg("posix", "system") + u("id") + b"\x85R.", size)
    _sparse(root / "notes.txt", b"token = hf_" + b"a" * 40 + b"\n", size)
    _sparse(root / "blob.bin", b"", size)
    got = _child(root, max_file_bytes=1 << 30)
    limited = {Path(t).name for rule, t, limit in got["f"] if limit == "max_file_bytes"}
    assert limited == {"model.pt", "notes.txt", "blob.bin"}
    assert got["s"] < 5 and got["rss_kb"] < 100_000, got  # measured: 0.1 s, 18 MB
    # under the default limits (64 GiB) the pickle is judged from its first bytes through mmap:
    # the 2 GB of zeros after it are never read
    got = _child(root)
    assert [(rule, Path(t).name) for rule, t, _ in got["f"]] == [
        ("MLH-SCAN-PICKLE-DANGEROUS-GLOBAL", "model.pt"),
        ("MLH-SCAN-LIMIT", "notes.txt"),
    ]
    assert got["s"] < 5 and got["rss_kb"] < 100_000, got  # measured: 0.2 s, 19 MB


def test_large_text_is_not_read_for_secrets(tmp_path: Path) -> None:
    big = _sparse(tmp_path / "dump.txt", b"token = hf_" + b"a" * 40 + b"\n", 3 << 30)
    findings = _bounded(lambda: scan_path(big).findings, 5, 32)
    assert [(f.rule_id, f.evidence["limit"]) for f in findings] == [
        ("MLH-SCAN-LIMIT", "max_text_bytes")
    ]


# ------------------------------------------------------------------------------- symlinks


def test_symlinks_out_of_the_root_are_reported_never_read(tmp_path: Path) -> None:
    marker = install_canary(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    payload = P4 + sg(CANARY, "trip") + u("x") + b"\x85R."
    (outside / "evil.pkl").write_bytes(payload)
    (outside / "creds.env").write_text("HF_TOKEN=hf_" + "Zq8vN3kLp2Wx" * 3 + "\n")
    root = tmp_path / "root"
    (root / "models").mkdir(parents=True)
    os.symlink(outside / "evil.pkl", root / "models" / "linked.pkl")
    os.symlink(outside / "creds.env", root / ".env")
    os.symlink(outside, root / "models" / "shared")  # a folder link
    os.symlink("../../outside/evil.pkl", root / "models" / "relative.pkl")
    os.symlink(root / "models" / "loop", root / "models" / "loop")  # a loop
    (root / "models" / "ok.pkl").write_bytes(pickle.dumps([1, 2]))
    os.symlink(root / "models" / "ok.pkl", root / "models" / "inside.pkl")  # stays inside

    with watch() as seen:
        result = _bounded(lambda: scan_path(root), 10, 64)
    assert_untouched(seen, marker)
    escapes = {
        Path(f.target).name for f in result.findings if f.rule_id == "MLH-SCAN-SYMLINK-ESCAPE"
    }
    assert escapes == {"linked.pkl", ".env", "shared", "relative.pkl", "loop"}
    # what the outside files would have raised, had they been read
    assert not _rules(result.findings) & {
        "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL",
        "MLH-SCAN-PICKLE-UNKNOWN-GLOBAL",
        "MLH-SECRET-HF-TOKEN",
    }
    real_root = root.resolve()
    leaked = [p for p in seen.opened if str(outside) in os.path.realpath(p)]
    assert not leaked, leaked
    assert all(
        not os.path.realpath(p).startswith(str(tmp_path))
        or Path(os.path.realpath(p)).is_relative_to(real_root)
        for p in seen.opened
    )
    # the same files, scanned where they are, are flagged: the test would see a read
    direct = scan_path(outside).findings
    assert {"MLH-SCAN-PICKLE-UNKNOWN-GLOBAL", "MLH-SECRET-HF-TOKEN"} <= _rules(direct)


def test_canary_payload_does_trip_a_real_unpickler(tmp_path: Path) -> None:
    """The witness works: pickle.loads on the same bytes imports and calls the canary."""
    marker = install_canary(tmp_path)
    try:
        pickle.loads(P4 + sg(CANARY, "trip") + u("x") + b"\x85R.")  # on purpose
        assert marker.read_text() == "called"
    finally:
        sys.modules.pop(CANARY, None)
        marker.unlink(missing_ok=True)


# ------------------------------------------------------------------------------- archive members


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/cron.d/x",
        "/etc/passwd",
        "C:/Windows/x.pkl",
        "C:\\x.pkl",
        "..\\..\\x.pkl",
        "a/../../x.pkl",
    ],
)
def test_member_path_traversal(tmp_path: Path, name: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), pickle.dumps(1))
    path = tmp_path / "t.zip"
    path.write_bytes(buf.getvalue())
    findings = _bounded(lambda: scan_artifact(path), 5, 16)
    assert "MLH-SCAN-ZIP-PATH-TRAVERSAL" in _rules(findings)


def test_symlink_member_is_reported_not_followed(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("model/data.pkl")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/shadow")
    path = tmp_path / "l.zip"
    path.write_bytes(buf.getvalue())
    with watch() as seen:
        findings = scan_artifact(path)
    assert _rules(findings) == {"MLH-SCAN-ZIP-SYMLINK"}
    assert "/etc/shadow" not in seen.opened


# ------------------------------------------------------------------------------- configurable


def test_cli_exposes_the_limits(tmp_path: Path) -> None:
    model = tmp_path / "m.pkl"
    model.write_bytes(pickle.dumps(list(range(1000))))
    run = [sys.executable, "-m", "mlhunt", "scan", str(model), "--format", "json"]
    out = subprocess.run(
        [
            *run,
            "--max-file-bytes",
            "1K",
            "--max-seconds",
            "5",
            "--max-depth",
            "2",
            "--max-entry-bytes",
            "1M",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    (f,) = json.loads(out.stdout)["findings"]
    assert f["evidence"]["limit"] == "max_file_bytes" and f["evidence"]["max_file_bytes"] == 1024
    bad = subprocess.run(
        [*run, "--max-file-bytes", "lots"], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--max-file-bytes" in bad.stderr


# ------------------------------------------------------------------------------- fuzz finds
# Minimal inputs of the bugs tests/test_fuzz_scan.py found, kept as regressions.


def test_zip_member_with_an_empty_name(tmp_path: Path) -> None:
    """zipfile's ZipInfo.is_dir() raises IndexError on an empty name (was MLH-SCAN-ERROR)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.pkl", pickle.dumps(1))
    data = buf.getvalue()
    cd = data.index(b"PK\x01\x02")
    name_len = cd + 28
    # central entry's name length -> 0 (the name bytes become part of the next record's slack)
    patched = data[:name_len] + b"\x00\x00" + data[name_len + 2 :]
    path = tmp_path / "empty-name.zip"
    path.write_bytes(patched)
    assert "MLH-SCAN-ERROR" not in _rules(scan_artifact(path))


def _manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        "spec: {containers: [{name: c, image: x, securityContext: {privileged: true}}]}\n" + text,
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "x0: &a0 [l, l, l, l, l, l, l, l, l]\n"
            + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)),
            "alias bomb",
        ),
        ("self: &s [*s]\n", "cycle"),
        ("deep: " + "[" * 300 + "]" * 300 + "\n", "nested too deeply"),
    ],
    ids=["billion-laughs", "cycle", "deep"],
)
def test_yaml_bombs_are_clean_input_errors(tmp_path: Path, text: str, reason: str) -> None:
    from mlhunt.errors import InputError
    from mlhunt.scan.manifests import scan_manifest

    path = _manifest(tmp_path, text)
    start = time.process_time()
    with pytest.raises(InputError, match=reason) as err:
        scan_manifest(path)
    assert time.process_time() - start < 5  # CPU seconds: load elsewhere does not count
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_yaml_lone_surrogate_is_scanned(tmp_path: Path) -> None:
    """``"\\ud800"`` in YAML made Rego's UTF-8 input encoding raise UnicodeEncodeError."""
    from mlhunt.scan.manifests import scan_manifest

    rules = {f.rule_id for f in scan_manifest(_manifest(tmp_path, 'u: "\\ud800"\n'))}
    assert "MLH-K8S-PRIVILEGED" in rules


def test_numeric_names_are_a_policy_error_finding_not_a_crash(tmp_path: Path) -> None:
    """A number where a name belongs made concat() return an error term (was a ValueError);
    the policies that could not judge the document say so, the others still report."""
    from mlhunt.scan.manifests import scan_manifests

    path = tmp_path / "isvc.yaml"
    path.write_text(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        "metadata: {name: 0.0, namespace: 0.0}\n"
        "spec: {predictor: {containers: [{name: c, image: x, "
        "securityContext: {privileged: true}}]}}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        "spec: {containers: [{name: c, image: x, securityContext: {privileged: true}}]}\n"
    )
    findings = scan_manifests([path])
    errors = [f for f in findings if f.rule_id == "MLH-K8S-POLICY-ERROR"]
    assert errors and all(f.severity.value == "low" and f.evidence["policy"] for f in errors)
    assert {f.evidence["document"] for f in errors} == {1}
    assert any(f.rule_id == "MLH-K8S-PRIVILEGED" and f.evidence["document"] == 2 for f in findings)


# One byte of a small h5py file that makes libhdf5 (h5py 3.16) die with SIGSEGV while reading
# attributes; found by the byte-mutation fuzzing of HDF5 models. Before h5child, it took the
# whole scanning process down.
_H5_CRASH = {"sha256": "88fa226c74f71353", "patch": [(857, 66)]}


def test_hdf5_that_crashes_libhdf5_is_a_finding(tmp_path: Path) -> None:
    import hashlib

    layers = [{"class_name": "Lambda", "config": {"function": "x"}}]
    made = make_h5(json.dumps({"class_name": "Sequential", "config": {"layers": layers}}))
    if made is None:
        pytest.skip("h5py is not installed")
    data = bytearray(made)
    same_layout = hashlib.sha256(data).hexdigest()[:16] == _H5_CRASH["sha256"]
    clean = tmp_path / "clean.h5"
    clean.write_bytes(data)
    assert _rules(scan_artifact(clean)) == {"MLH-SCAN-KERAS-LAMBDA"}  # read through the child
    for offset, value in _H5_CRASH["patch"]:
        data[offset] = value
    bad = tmp_path / "crash.h5"
    bad.write_bytes(data)
    findings = _bounded(lambda: scan_artifact(bad), 30, 16)  # and this process is still here
    assert "MLH-SCAN-ERROR" not in _rules(findings)
    if same_layout:  # another h5py may lay the file out differently: then only "no crash" holds
        (f,) = findings
        assert f.rule_id == "MLH-SCAN-HDF5-PARSER-CRASH" and "signal 11" in f.evidence["reason"]


def test_one_hdf5_reader_per_scan_survives_a_crash(tmp_path: Path) -> None:
    """scan_path reads every HDF5 file through one reader process, one forked child per file:
    the file that crashes libhdf5 is a finding and the files after it are still read."""
    layers = [{"class_name": "Lambda", "config": {"function": "x"}}]
    made = make_h5(json.dumps({"class_name": "Sequential", "config": {"layers": layers}}))
    if made is None:
        pytest.skip("h5py is not installed")
    crash = bytearray(made)
    for offset, value in _H5_CRASH["patch"]:
        crash[offset] = value
    (tmp_path / "a-crash.h5").write_bytes(crash)
    (tmp_path / "b-clean.h5").write_bytes(made)
    (tmp_path / "c-other.h5").write_bytes(made)
    result = _bounded(lambda: scan_path(tmp_path, secrets=False), 30, 16)
    by_file = {Path(f.target).name: f.rule_id for f in result.findings}
    assert by_file["b-clean.h5"] == by_file["c-other.h5"] == "MLH-SCAN-KERAS-LAMBDA"
    assert "MLH-SCAN-ERROR" not in by_file.values()


@pytest.mark.parametrize(
    "notebook",
    [
        {"cells": [{"cell_type": "code", "source": [], "outputs": True}]},
        {"worksheets": [1, {"cells": "x"}, {"cells": [{"source": "HF=1", "outputs": {}}]}]},
        {"cells": [{"cell_type": "code", "source": ["\ud800"], "outputs": []}]},  # surrogate
    ],
    ids=["outputs-bool", "worksheets", "surrogate"],
)
def test_notebook_with_wrong_types_is_scanned(tmp_path: Path, notebook: dict) -> None:
    """A notebook is attacker-written JSON: ``outputs: true`` raised TypeError, a lone
    surrogate (valid JSON, not UTF-8) UnicodeEncodeError."""
    from mlhunt.scan.secrets import scan_secrets

    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(notebook))
    assert scan_secrets(path) == []


def test_yaml_escape_past_unicode_is_not_a_crash(tmp_path: Path) -> None:
    """PyYAML raises ValueError (not a YAMLError) for "\\U10010000": it escaped is_manifest and
    stopped a whole folder walk with a traceback."""
    from mlhunt.errors import InputError
    from mlhunt.scan.manifests import is_manifest, scan_manifest

    path = tmp_path / "m.yaml"
    path.write_text('apiVersion: v1\nkind: Pod\nmetadata: {name: "\\U10010000"}\n')
    assert not is_manifest(path)
    with pytest.raises(InputError, match="invalid YAML"):
        scan_manifest(path)
    assert scan_path(tmp_path).files == 1  # the walk goes on


def _legacy_zip(names: list[str]) -> bytes:
    """A stored zip with cp437 names and flag bit 11 (UTF-8) unset, as old writers make them:
    each entry's local header follows the previous entry's data with no gap."""
    body, central = b"", b""
    for name in names:
        raw, data = name.encode("cp437"), name.encode("utf-8")  # data: any bytes
        crc, n = zlib.crc32(data), len(data)
        off = len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, n, n, len(raw), 0)
        body += raw + data
        central += (
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20,
                20,
                0,
                0,
                0,
                0,
                crc,
                n,
                n,
                len(raw),
                0,
                0,
                0,
                0,
                0,
                off,
            )
            + raw
        )
    k = len(names)
    return (
        body
        + central
        + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, k, k, len(central), len(body), 0)
    )


def test_legacy_cp437_names_are_not_overlapping(tmp_path: Path) -> None:
    """Name lengths come from the stored (cp437) bytes, not UTF-8: 'é' is 1 byte, not 2."""
    from mlhunt.scan.zipcheck import overlapping

    path = tmp_path / "legacy.zip"
    path.write_bytes(_legacy_zip(["résumé-été.txt", "naïve-Ö.txt", "ÿü.txt"]))
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert [i.flag_bits & 0x800 for i in infos] == [0, 0, 0]
        assert infos[0].filename == "résumé-été.txt"  # decoded from cp437
        assert zf.read(infos[1]) == "naïve-Ö.txt".encode()  # the layout is valid
    assert overlapping(infos) == []
    assert "MLH-SCAN-ZIP-BOMB" not in _rules(scan_artifact(path))


# ------------------------------------------------------------------------------- unreadable


def _not_readable(findings: list) -> list:
    errors = [f for f in findings if f.rule_id == "MLH-SCAN-ERROR"]
    return [f for f in errors if f.evidence["error"].startswith("not readable: ")]


def test_file_vanishing_between_stat_and_read_is_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic stand-in for a race: the file is really deleted right before it is opened
    (after scan_path listed and sized it), in both is_artifact and scan_artifact."""
    from mlhunt.scan import artifacts

    folder = tmp_path / "models"
    folder.mkdir()
    victim = folder / "model.pkl"

    def deleting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        Path(file).unlink(missing_ok=True)
        return open(file, *args, **kwargs)

    monkeypatch.setattr(artifacts, "open", deleting_open, raising=False)
    victim.write_bytes(pickle.dumps({"w": [1.0]}))
    (hit,) = _not_readable(scan_artifact(victim, display="model.pkl"))
    assert "No such file or directory" in hit.evidence["error"] and hit.target == "model.pkl"
    victim.write_bytes(pickle.dumps({"w": [1.0]}))  # same, through a folder walk
    (hit,) = _not_readable(scan_path(folder).findings)
    assert "No such file or directory" in hit.evidence["error"]
    assert _not_readable(scan_artifact(tmp_path / "never-there.pkl"))  # gone before stat


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file regardless")
def test_permission_denied_is_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "locked.pkl"
    path.write_bytes(pickle.dumps(1))
    path.chmod(0)
    try:
        (hit,) = _not_readable(scan_path(tmp_path).findings)
        assert "Permission denied" in hit.evidence["error"]
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
