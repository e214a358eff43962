"""The never-execute model artifact scanner (mlhunt.scan.artifacts) against a generated corpus."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import struct
import sys
import time
import zipfile
from pathlib import Path

import pytest

from mlhunt.findings import Severity
from mlhunt.scan.art_policy import Policy, PolicyError
from mlhunt.scan.artifacts import Limits, is_artifact, scan_artifact
from tests.scan_corpus import P4, CorpusItem, build_corpus, call, canaries_present, sg, u

HIGH = Severity.HIGH.rank


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[CorpusItem]:
    return build_corpus(tmp_path_factory.mktemp("scan-corpus"))


@pytest.fixture(scope="module")
def results(corpus: list[CorpusItem]) -> dict[Path, list]:
    return {item.path: scan_artifact(item.path) for item in corpus}


def _worst(findings: list) -> int:
    return max((f.severity.rank for f in findings), default=-1)


def test_corpus_has_at_least_30_distinct_malicious_techniques(corpus: list[CorpusItem]) -> None:
    techniques = {i.technique for i in corpus if i.malicious}
    assert len(techniques) >= 30
    assert all(i.canary is not None for i in corpus if i.malicious)
    assert {i.technique for i in corpus if not i.malicious} >= {
        "sklearn-pipeline-joblib",
        "sklearn-pipeline-pickle",
        "torch-state-dict",
        "torch-checkpoint",
        "torch-legacy",
        "numpy-npy",
        "numpy-npz",
        "keras-zip",
        "safetensors",
    }


def test_every_malicious_item_is_caught(
    corpus: list[CorpusItem], results: dict[Path, list]
) -> None:
    missed = []
    for item in corpus:
        if not item.malicious:
            continue
        need = Severity(item.expect).rank
        if _worst(results[item.path]) < need:
            got = [(f.rule_id, f.severity.value) for f in results[item.path]]
            missed.append(f"{item.technique}: wanted >= {item.expect}, got {got}")
    assert not missed, "\n".join(missed)


def test_benign_files_yield_nothing_high(
    corpus: list[CorpusItem], results: dict[Path, list]
) -> None:
    noisy = [
        f"{item.technique}: {[(f.rule_id, f.severity.value, f.evidence.get('import')) for f in fs]}"
        for item in corpus
        if not item.malicious
        for fs in [results[item.path]]
        if _worst(fs) >= HIGH
    ]
    assert not noisy, "\n".join(noisy)


def test_canaries_never_appear(corpus: list[CorpusItem], results: dict[Path, list]) -> None:
    for item in corpus:  # scan everything once more, is_artifact included
        is_artifact(item.path)
        scan_artifact(item.path)
    assert canaries_present(corpus) == []
    assert not any((corpus[0].path.parents[1] / "canaries").iterdir())


def test_scanner_never_loads_or_imports_what_it_reads(
    corpus: list[CorpusItem], monkeypatch: pytest.MonkeyPatch
) -> None:
    import _pickle
    import marshal

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("the scanner called a deserialiser")

    for mod, name in (
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
        (_pickle, "load"),
        (_pickle, "loads"),
        (marshal, "loads"),
    ):
        monkeypatch.setattr(mod, name, forbidden)
    watched = {
        "runpy",
        "pty",
        "cProfile",
        "pdb",
        "timeit",
        "code",
        "pkgutil",
        "webbrowser",
        "shutil",
        "subprocess",
        "importlib",
        "tempfile",
        "operator",
        "profile",
    }
    before = set(sys.modules)
    for item in corpus:
        if item.malicious:
            scan_artifact(item.path)
    assert not (set(sys.modules) - before) & watched


def test_findings_carry_rule_target_and_evidence(
    corpus: list[CorpusItem], results: dict[Path, list]
) -> None:
    by_tech = {i.technique: i for i in corpus}
    item = by_tech["reduce-os-system"]
    (f,) = [f for f in results[item.path] if f.rule_id == "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL"]
    assert f.severity is Severity.CRITICAL and f.source == "scan"
    assert f.target == str(item.path)
    assert f.evidence["import"] == "posix.system" and f.evidence["called"] is True
    assert f.evidence["occurrences"][0]["opcode"] == "STACK_GLOBAL"
    assert isinstance(f.evidence["occurrences"][0]["offset"], int)
    assert f.evidence["format"] == "pickle"
    assert "AML.T0011.000" in f.atlas and "ML06" in f.owasp_ml and "CWE-502" in f.cwe
    assert f.mitigations and f.id == f"{f.rule_id}@{item.path}#posix.system"
    assert json.dumps(f.to_dict())

    renamed = by_tech["torch-zip-renamed-entry"]
    targets = {f.target for f in results[renamed.path]}
    assert any(
        tg.endswith("!" + "state_dict/extra/model.dat") or "extra/model.dat" in tg for tg in targets
    )
    nested = by_tech["nested-zip"]
    assert any(f.target.endswith("!inner/model.zip!weights.bin") for f in results[nested.path])
    joblib_item = by_tech["joblib-after-array"]
    assert results[joblib_item.path][0].evidence["format"] == "joblib"
    legacy = by_tech["torch-legacy-third-pickle"]
    hit = [f for f in results[legacy.path] if f.rule_id == "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL"]
    assert hit[0].evidence["format"] == "torch-legacy"
    assert hit[0].evidence["occurrences"][0]["pickle_index"] == 2
    memo = by_tech["stack-global-memo"]
    assert results[memo.path][0].evidence["import"] == "os.system"
    py2 = by_tech["py2-builtin-name"]
    occ = results[py2.path][0].evidence["occurrences"][0]
    assert occ["written_as"] == "__builtin__.eval"
    getattr_item = by_tech["import-memo-getattr"]
    derived = {f.evidence["import"]: f for f in results[getattr_item.path]}
    assert derived["os.system"].evidence["occurrences"][0]["via"] == "builtins.getattr"


def test_ids_are_stable_across_runs(corpus: list[CorpusItem]) -> None:
    for item in corpus[:20]:
        assert [f.id for f in scan_artifact(item.path)] == [f.id for f in scan_artifact(item.path)]


def test_display_names_the_target(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(P4 + call(sg("os", "system"), u("true")) + b".")
    (f,) = scan_artifact(path, display="models/m.bin")
    assert f.target == "models/m.bin" and f.id.startswith(
        "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL@models/"
    )


def test_unknown_global_is_high_and_allow_list_is_extendable(tmp_path: Path) -> None:
    path = tmp_path / "custom.pkl"
    path.write_bytes(P4 + call(sg("acme.models", "Scorer"), u("v1")) + b".")
    (f,) = scan_artifact(path)
    assert f.rule_id == "MLH-SCAN-PICKLE-UNKNOWN-GLOBAL" and f.severity is Severity.HIGH
    assert f.evidence["import"] == "acme.models.Scorer"
    # Allow-listed: only the info finding that says what the file is.
    for allow in (["acme.models.Scorer"], ["acme.*"]):
        (info,) = scan_artifact(path, allow=allow)
        assert info.rule_id == "MLH-SCAN-PICKLE-ALLOWLISTED" and info.severity is Severity.INFO
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(P4 + call(sg("posix", "system"), u("true")) + b".")
    assert scan_artifact(bad, allow=["posix.*", "posix.system"])[0].severity is Severity.CRITICAL
    with pytest.raises(PolicyError):
        scan_artifact(path, allow=["not a name"])


def test_policy_file_is_validated() -> None:
    Policy.default()  # the shipped file loads
    with pytest.raises(PolicyError):
        Policy({"version": 2})
    with pytest.raises(PolicyError):
        Policy({"version": 1, "allow": {"exact": ["ok.name", "bad name"]}})
    with pytest.raises(PolicyError):
        Policy({"version": 1, "allow": {"exact": ["os.system"]}, "deny": {"exact": ["os.system"]}})
    with pytest.raises(PolicyError):
        Policy({"version": 1, "allow": {"patterns": [{"module_prefix": "x.", "name_regex": "("}]}})
    with pytest.raises(PolicyError):
        Policy({"version": 1, "surprise": {}})


def test_sklearn_functions_are_not_allowed_by_the_class_pattern() -> None:
    policy = Policy.default()
    assert policy.classify("sklearn.linear_model._logistic", "LogisticRegression").level == "allow"
    assert policy.classify("sklearn.utils.validation", "check_array").level == "unknown"
    assert policy.classify("sklearn.utils._testing", "TempMemmap").level == "deny"
    assert policy.classify("numpy", "testing._private.utils.os.system").level == "deny"
    assert policy.classify("torch.storage", "_load_from_bytes").level == "deny"


def test_what_precedes_a_parse_error_is_judged(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(P4 + call(sg("subprocess", "getoutput"), u("true")) + b"\xffjunk")
    rules = {f.rule_id for f in scan_artifact(path)}
    assert rules == {"MLH-SCAN-PICKLE-DANGEROUS-GLOBAL", "MLH-SCAN-PICKLE-MALFORMED"}


def test_unrecognised_files_are_not_artifacts(tmp_path: Path) -> None:
    samples = {
        "notes.md": b"# cats\nclassification notes\n",
        "data.csv": b"0.1,0.2\n0.3,0.4\n",
        "script.py": b"import os\nprint(os.getcwd())\n",
        "words.txt": b"cat\ndog\nbird\nfish\n",
        "list.txt": b"(1, 2)\nN/A\n",
        "random.bin": bytes(range(256)) * 4,
        "empty": b"",
    }
    for name, data in samples.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert not is_artifact(path), name
        assert scan_artifact(path) == [], name
    gz = tmp_path / "log.gz"
    import gzip

    gz.write_bytes(gzip.compress(b"just a log line\n" * 10))
    assert not is_artifact(gz) and scan_artifact(gz) == []
    # a file that cannot be read is reported, never passed silently
    (gone,) = scan_artifact(tmp_path / "missing.pkl")
    assert gone.rule_id == "MLH-SCAN-ERROR" and gone.evidence["error"].startswith("not readable")


def test_zip_member_name_and_symlink_entries(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.txt", b"x")
        link = zipfile.ZipInfo("weights/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    path = tmp_path / "a.zip"
    path.write_bytes(buf.getvalue())
    rules = {f.rule_id for f in scan_artifact(path)}
    assert {"MLH-SCAN-ZIP-PATH-TRAVERSAL", "MLH-SCAN-ZIP-SYMLINK"} <= rules


def test_safetensors_metadata_and_layout(tmp_path: Path) -> None:
    header = {
        "__metadata__": {"format": "pt", "n": 3},
        "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    }
    raw = json.dumps(header).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8 + b"hidden payload")
    found = {f.rule_id: f for f in scan_artifact(path)}
    assert found["MLH-SCAN-SAFETENSORS-METADATA"].severity is Severity.LOW
    assert found["MLH-SCAN-SAFETENSORS-HEADER"].evidence["spans"][0]["problem"].endswith("end")


def test_npy_malformed_header_is_low(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    hdr = b"{'descr': __import__('os').system('true'), 'shape': (1,), 'fortran_order': False}"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr)
    (f,) = scan_artifact(path)
    assert f.rule_id == "MLH-SCAN-NPY-MALFORMED" and f.severity is Severity.LOW


# --------------------------------------------------------------------------- limits


def _timed(path: Path, limits: Limits | None = None) -> tuple[list, float]:
    """Findings and the CPU seconds the scan took (a busy machine does not inflate them)."""
    start = time.process_time()
    findings = scan_artifact(path, limits=limits)
    return findings, time.process_time() - start


def test_zip_bomb_ratio_is_reported_without_inflating(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("data.pkl", "w") as m:
        chunk = b"\0" * (1 << 20)
        for _ in range(64):
            m.write(chunk)
    findings, elapsed = _timed(path)
    assert [f.rule_id for f in findings] == ["MLH-SCAN-ZIP-BOMB"]
    assert findings[0].evidence["ratio"] > 200 and elapsed < 5


def test_zip_nesting_total_size_and_entry_count_limits(tmp_path: Path) -> None:
    blob = pickle.dumps({"a": 1})
    for _ in range(8):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("inner.zip" if blob[:2] == b"PK" else "x.pkl", blob)
        blob = buf.getvalue()
    deep = tmp_path / "deep.zip"
    deep.write_bytes(blob)
    findings, elapsed = _timed(deep)
    assert any(f.rule_id == "MLH-SCAN-ZIP-BOMB" and f.evidence.get("depth") for f in findings)
    assert elapsed < 5

    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(50):
            zf.writestr(f"f{i}.txt", b"hello")
    limited = scan_artifact(many, limits=Limits(max_zip_entries=10, max_zip_total=100))
    assert {f.rule_id for f in limited} == {"MLH-SCAN-LIMIT", "MLH-SCAN-ZIP-BOMB"}


def test_huge_memo_ends_with_a_limit_finding(tmp_path: Path) -> None:
    body = b"".join(u(f"s{i}") + b"r" + struct.pack("<I", i) + b"0" for i in range(5000))
    path = tmp_path / "memo.pkl"
    path.write_bytes(P4 + body + b"N.")
    findings, elapsed = _timed(path, Limits(max_memo=1000))
    assert [f.rule_id for f in findings] == ["MLH-SCAN-LIMIT"]
    assert findings[0].evidence["limit"] == "max_memo" and elapsed < 5
    # a huge memo index allocates nothing here (CPython would try to)
    sparse = tmp_path / "sparse.pkl"
    sparse.write_bytes(P4 + u("x") + b"r\xff\xff\xff\xff" + b".")
    assert scan_artifact(sparse) == []


def test_deep_nesting_ends_quickly(tmp_path: Path) -> None:
    marks = tmp_path / "marks.pkl"
    marks.write_bytes(P4 + b"(" * 200_000 + b"N.")
    findings, elapsed = _timed(marks)
    assert [f.evidence["limit"] for f in findings] == ["max_marks"] and elapsed < 5
    lists = tmp_path / "lists.pkl"
    lists.write_bytes(P4 + b"]" * 300_000 + b"a" * 299_999 + b".")
    findings, elapsed = _timed(lists)
    assert findings == [] and elapsed < 10
    ops = tmp_path / "ops.pkl"
    ops.write_bytes(P4 + b"N0" * 200_000 + b"N.")
    findings, elapsed = _timed(ops, Limits(max_opcodes=100_000))
    assert [f.evidence["limit"] for f in findings] == ["max_opcodes"] and elapsed < 5


def test_nested_payloads_are_bounded(tmp_path: Path) -> None:
    payload = P4 + call(sg("posix", "system"), u("true")) + b"."
    for _ in range(8):
        payload = (
            P4
            + call(sg("pickle", "loads"), b"B" + struct.pack("<I", len(payload)) + payload)
            + b"."
        )
    path = tmp_path / "russian.pkl"
    path.write_bytes(payload)
    findings = scan_artifact(path)
    assert any(f.rule_id == "MLH-SCAN-LIMIT" for f in findings)
    assert any(f.severity is Severity.CRITICAL for f in findings)


def test_limits_are_configurable_for_file_size(tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(list(range(100))))
    (f,) = scan_artifact(path, limits=Limits(max_file_bytes=10))
    assert f.rule_id == "MLH-SCAN-LIMIT" and f.evidence["limit"] == "max_file_bytes"


def test_text_pickle_detection_is_structural(tmp_path: Path) -> None:
    benign = tmp_path / "p0.data"
    benign.write_bytes(pickle.dumps({"a": [1, 2.5, "x"]}, protocol=0))
    assert is_artifact(benign) and scan_artifact(benign) == []
    inst = tmp_path / "p0.txt"
    inst.write_bytes(b"(S'x'\nimy_pkg.mod\nThing\n.")
    (f,) = scan_artifact(inst)
    assert f.evidence["import"] == "my_pkg.mod.Thing" and f.evidence["called"]
    cut = tmp_path / "p0_cut.txt"  # a protocol 0 call with no STOP still runs under pickle.load
    cut.write_bytes(b"csubprocess\ngetoutput\n(S'true'\ntR\x00\x01 binary tail")
    assert scan_artifact(cut)[0].severity is Severity.CRITICAL
    big = tmp_path / "p0_big.bin"  # the first import sits beyond is_artifact's 64 KiB window
    big.write_bytes(
        pickle.dumps([str(i) for i in range(20_000)], protocol=0)[:-1]
        + b"0cos\nsystem\n(S'true'\ntR."
    )
    assert is_artifact(big) and scan_artifact(big)[0].evidence["import"] == "os.system"


def test_an_ordinary_sklearn_joblib_gets_an_info_finding(tmp_path: Path) -> None:
    """Issue #21: a plain scikit-learn joblib file got no finding at all (silence)."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    (f,) = scan_artifact(path)
    assert f.rule_id == "MLH-SCAN-PICKLE-ALLOWLISTED" and f.severity is Severity.INFO
    assert f.evidence["format"] == "joblib"
    assert "sklearn.linear_model._logistic.LogisticRegression" in f.evidence["imports"]


def test_storage_entries_are_sniffed_not_read(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "big.pt"
    torch.save({"w": torch.zeros(4 << 20)}, path)  # 16 MB storage
    findings, elapsed = _timed(path)
    assert findings == [] and elapsed < 2


def test_onnx_locations(tmp_path: Path) -> None:
    from tests.scan_corpus import _onnx

    cases = [
        ("w.bin", False),
        ("sub/w.bin", False),
        ("../w.bin", True),
        ("/etc/passwd", True),
        ("a/../../w", True),
        ("C:\\w.bin", True),
    ]
    for location, bad in cases:
        path = tmp_path / "m.onnx"
        path.write_bytes(_onnx(location))
        rules = [f.rule_id for f in scan_artifact(path)]
        assert rules == (["MLH-SCAN-ONNX-EXTERNAL-DATA-PATH"] if bad else []), location


def test_mutated_corpus_never_crashes_or_hangs(corpus: list[CorpusItem], tmp_path: Path) -> None:
    import random

    rng = random.Random(7)
    start = time.process_time()  # CPU seconds: load elsewhere does not count
    for n, item in enumerate(corpus):
        data = bytearray(item.path.read_bytes())
        for k in range(4):
            mutated = bytearray(data)
            if k == 0:
                mutated = mutated[: rng.randrange(len(mutated))]
            else:
                for _ in range(k * 3):
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            path = tmp_path / f"m{n}_{k}"
            path.write_bytes(bytes(mutated))
            is_artifact(path)
            assert all(f.rule_id != "MLH-SCAN-ERROR" for f in scan_artifact(path)), item.technique
    assert time.process_time() - start < 30


def test_zip_with_unsupported_version_is_reported_not_crashed(tmp_path: Path) -> None:
    """zipfile raises NotImplementedError for an 'extract version' it does not know (found by
    mutating the corpus): that is an unreadable archive, not a scanner error."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x04K\x01.")
    data = bytearray(buf.getvalue())
    cd = data.index(b"PK\x01\x02")
    data[cd + 6 : cd + 8] = (250).to_bytes(2, "little")  # version needed to extract: 25.0
    path = tmp_path / "weird.pt"
    path.write_bytes(bytes(data))
    rules = [f.rule_id for f in scan_artifact(path)]
    assert "MLH-SCAN-ERROR" not in rules
    assert "MLH-SCAN-ZIP-UNREADABLE" in rules


def test_allowlist_parsed_once_into_the_cache(tmp_path, monkeypatch):
    """allowlist.yaml is parsed with PyYAML once and read back from a JSON copy named by its
    size and CRC-32; a damaged copy is parsed again, never trusted."""
    import yaml

    from mlhunt.scan import art_policy, pycache

    monkeypatch.setattr(pycache, "cache_dir", lambda: tmp_path / "scan")
    expected = yaml.safe_load(art_policy.POLICY_FILE.read_text(encoding="utf-8"))
    assert art_policy._shipped_raw() == expected
    (copy,) = (tmp_path / "scan").glob("allowlist-*.json")
    assert art_policy._shipped_raw() == expected
    copy.write_text('{"truncated": ', encoding="utf-8")
    assert art_policy._shipped_raw() == expected


def test_corpus_findings_unchanged_without_the_secrets_precheck(
    corpus: list[CorpusItem], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-check that spares detect-secrets (mlhunt.scan.secret_shapes) hides nothing."""
    from mlhunt.findings import document
    from mlhunt.scan import scan_path

    root = Path(os.path.commonpath([i.path for i in corpus]))
    shaped = json.dumps(document("scan", scan_path(root).findings), sort_keys=True)
    monkeypatch.setattr("mlhunt.scan.secrets.could_hold_secret", lambda text, suffix: True)
    plain = json.dumps(document("scan", scan_path(root).findings), sort_keys=True)
    assert shaped == plain
    assert canaries_present(corpus) == []


def test_module_lists_match_as_a_linear_scan_would() -> None:
    """Allow- and deny-listed modules are found by looking up a module's dotted parents; the
    answer is the entry a scan of the list in order finds (seeded module names built from
    the lists' own segments, so parents, children and near misses all occur)."""
    import random

    from mlhunt.scan.art_policy import _first_listed, _ranks

    policy = Policy.default()
    rng = random.Random(4)
    # The shipped deny list, and a list where a parent comes after its child and repeats.
    overlapping = ("os.path", "torch._C", "os", "torch", "a.b.c", "os", "a")
    for listed in (policy.deny_modules, overlapping):
        segs = sorted({s for m in listed for s in m.split(".")} | {"x", "os_", "_"})
        ranks = _ranks(listed)
        for _ in range(3000):
            module = ".".join(rng.choice(segs) for _ in range(rng.randint(1, 4)))
            if rng.random() < 0.3:
                module = rng.choice(listed) + rng.choice(["", ".", ".sub", "x"])
            linear = next((m for m in listed if module == m or module.startswith(m + ".")), None)
            assert _first_listed(module, ranks) == linear, module
