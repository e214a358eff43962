"""Fuzzing of mlhunt's user-facing input parsers (issue #9), the scan parsers excepted.

Every generated input must end in a result or a one-line :class:`~mlhunt.errors.InputError`
(exit 2 in the CLI); any other exception, or a hang, fails the test and hypothesis shrinks it to
the minimal input. Inputs come three ways: valid documents mutated structurally (wrong types,
missing and extra keys, huge numbers, NaN, unicode, deep nesting), their YAML text mutated
(duplicate keys, BOMs, CRLF, truncation, tags, anchors), and raw bytes. The regression tests
at the end keep the minimal inputs of the bugs this found. Counts: :mod:`tests.fuzzcount`.
"""

from __future__ import annotations

import copy
import io
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mlhunt.errors import InputError
from tests.conftest import EXAMPLES
from tests.fuzzcount import Tally, flush_after_module, outcome, scaled

pytestmark = pytest.mark.fuzz
TALLY = Tally()


_write_counts = flush_after_module(TALLY)


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mlhunt-fuzz-") as d:
        yield Path(d)


# ---------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------

# Words the schemas know, so mutations reach deep validation, not only "unknown field".
WORDS = [
    "id",
    "name",
    "kind",
    "elements",
    "flows",
    "source",
    "target",
    "data",
    "boundary",
    "model",
    "output",
    "controls",
    "applies_to",
    "type",
    "actor",
    "inference_api",
    "data_store",
    "personal",
    "high",
    "critical",
    "scores",
    "label",
    "tabular",
    "image",
    "features",
    "lower",
    "upper",
    "shape",
    "classes",
    "url",
    "body",
    "timeout",
    "retries",
    "scenario",
    "http",
    "path",
    "logs",
    "scan",
    "models",
    "thresholds",
    "params",
    "<<",
    "loan-approval",
    "sklearn",
    "system.yaml",
    "x" * 300,
    "é\u0301",
    "\u202e",
    "a:b",
    "\x00",
    "../" * 40,
    "",
    " ",
    "{vector}",
    "{image}",
]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**40), 10**40),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(WORDS),
)
VALUES = st.recursive(
    SCALARS,
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.sampled_from(WORDS), c, max_size=4)
    ),
    max_leaves=12,
)

# YAML snippets that exercise the constructor, not only the scanner.
SNIPPETS = [
    "\n",
    " ",
    "  ",
    "- ",
    ": ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "!!python/object:os.system ",
    "? ",
    "|\n",
    ">\n",
    "'",
    '"',
    "#",
    "%YAML 1.1\n---\n",
    "---\n",
    "...\n",
    "\t",
    "\r",
    "\r\n",
    "\ufeff",
    "\x00",
    "\x85",
    "\u2028",
    "<<: *a\n",
    "1e999",
    ".nan",
    "-.inf",
    "0x1F",
    "0o17",
    "1_000",
    "~",
    "null",
    "2001-13-45",
    "2001-12-14t21:59:43.10-05:00",
    "9" * 5000,
    '"\\ud800"',
    "!!set ",
    "!!omap ",
    "!!timestamp ",
    "!!float x",
    "!!int x",
    "? [a]\n: 1\n",
    "{[a]: 1}",
    "[" * 300,
    "{a: " * 200,
    "\\",
    "\udcff",
    "é",
    "🙂",
]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if len(prefix) > 12:  # inside a deliberately deep nest: not worth walking
        return out
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with 0-4 structural mutations: replace, delete, add a key, wrap, nest deep."""
    doc = copy.deepcopy(base)  # only the shallow base: a deep nest would blow deepcopy's stack
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(doc)
        path = paths[draw(st.integers(0, len(paths) - 1))]
        op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "nest", "clone"]))
        if not path:
            if op in ("replace", "wrap", "nest"):
                doc = draw(VALUES) if op == "replace" else [doc]
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key, cur = path[-1], parent[path[-1]]
        if op == "replace":
            parent[key] = draw(VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(cur, dict):
            cur[draw(st.sampled_from(WORDS) | st.text(max_size=6))] = draw(VALUES)
        elif op == "add" and isinstance(cur, list):
            cur.append(draw(VALUES))
        elif op == "wrap":
            parent[key] = draw(st.sampled_from([[cur], {"x": cur}, str(cur), 1]))
        elif op == "nest":
            depth = draw(st.sampled_from([50, 400, 990]))
            deep: Any = cur
            for _ in range(depth):
                deep = [deep]
            parent[key] = deep
        elif op == "clone" and isinstance(cur, list) and cur:
            cur.append(cur[0])  # duplicate ids (and a shared node, as a YAML anchor makes)
    return doc


RAW_VALUES = [
    "9" * 5000,
    "-" + "1" * 4400,
    "0x" + "f" * 4000,
    "1e99999",
    "2001-13-45",
    "2001-02-30 25:61:61",
    "!!timestamp 2001-13-45",
    "? [a]\n: 1",
    "{[a]: 1}",
    "{{a: 1}: 2}",
    "!!set {[a]}",
    "&a [*a]",
    "*nope",
    "!!binary '@@@'",
    "!!binary aGk=",
    "!!int x",
    "!!float x",
    "!!bool x",
    "!!null x",
    "!!str",
    "!!map [1]",
    "!!omap [a: 1, a: 2]",
    "!!pairs [a, b]",
    "!!python/name:os.system",
    "!<tag:yaml.org,2002:int> 12",
    '"\\ud800"',
    ".nan",
    "-.inf",
    "~",
    "<<: *a",
    "[" * 990 + "]" * 990,
    "{a: " * 400 + "1" + "}" * 400,
    "x" * 100_000,
    "\udcff",
    "\x00",
    "\x1b[31m",
    "'unterminated",
    "|\n  block\n",
    "0o8",
    "1:2:3",
]
# (a seed-and-grow alias bomb: a few lines that expand to 9**6 leaves when walked)
BOMB = (
    "["
    + ", ".join(
        ["&b0 [x, x, x, x, x, x, x, x, x]"]
        + [f"&b{i} [" + ", ".join([f"*b{i - 1}"] * 9) + "]" for i in range(1, 7)]
    )
    + "]"
)
RAW_VALUES.append(BOMB)


def dump(draw: st.DrawFn, doc: Any) -> str:
    how = draw(st.sampled_from(["block", "flow", "json"]))
    try:
        if how == "json":
            return json.dumps(doc, ensure_ascii=draw(st.booleans()))
        return yaml.safe_dump(
            doc,
            allow_unicode=draw(st.booleans()),
            sort_keys=False,
            default_flow_style=how == "flow",
            width=10**6,
        )
    except (RecursionError, ValueError):  # too deep for the emitter: an anchor-free stand-in
        return "[" * 2000 + "]" * 2000


@st.composite
def text_mutated(draw: st.DrawFn, text: str) -> str:
    """0-4 edits of YAML text: snippets inserted, lines cut or repeated, CRLF, BOM, truncation."""
    for _ in range(draw(st.integers(0, 4))):
        op = draw(
            st.sampled_from(
                ["value", "value", "insert", "delete", "truncate", "dup_line", "crlf", "bom"]
            )
        )
        pos = draw(st.integers(0, len(text)))
        if op == "value":  # a raw YAML value where the dumper would have quoted one
            marks = [m.end() for m in re.finditer(r": |- ", text)] or [pos]
            at = marks[draw(st.integers(0, len(marks) - 1))]
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
            if text[at:end].rstrip().endswith((",", "}", "]")):  # flow style: keep the rest
                end = at + len(re.match(r"[^,}\]]*", text[at:]).group(0))  # type: ignore[union-attr]
            text = text[:at] + draw(st.sampled_from(RAW_VALUES)) + text[end:]
        elif op == "insert":
            text = text[:pos] + draw(st.sampled_from(SNIPPETS) | st.text(max_size=8)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)) :]
        elif op == "truncate":
            text = text[:pos]
        elif op == "dup_line":  # a duplicate key when the line is a mapping entry
            lines = text.split("\n")
            i = min(pos, len(lines) - 1)
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op == "crlf":
            text = text.replace("\n", "\r\n")
        else:
            text = "\ufeff" + text
    return text


@st.composite
def yaml_bytes(draw: st.DrawFn, base: Any) -> bytes:
    """A document's bytes: mutated structure, dumped, text-mutated, then maybe byte-mutated."""
    text = draw(text_mutated(dump(draw, draw(mutated(base)))))
    data = text.encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["utf8", "utf8", "utf8", "flip", "utf16", "raw"]))
    if kind == "flip" and data:
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    elif kind == "utf16":
        data = text.encode("utf-16", "surrogatepass")
    elif kind == "raw":
        data = draw(st.binary(max_size=200))
    return data


YAML_ALPHABET = st.sampled_from(list("abk:-[]{},&*!?|>'\"#%@`\\ \n\t\r.01e+~") + SNIPPETS[:40])
RAW_YAML = st.lists(YAML_ALPHABET, max_size=60).map("".join)


# ---------------------------------------------------------------------------------------------
# System description (`mlhunt model FILE`)
# ---------------------------------------------------------------------------------------------

SYSTEM: dict[str, Any] = {
    "name": "fuzz",
    "criticality": "high",
    "regulations": ["gdpr"],
    "data_assets": [{"id": "records", "classification": "personal", "data_subjects": ["a"]}],
    "trust_boundaries": [{"id": "corp"}, {"id": "cluster", "parent": "corp"}],
    "elements": [
        {"id": "user", "kind": "actor"},
        {
            "id": "db",
            "kind": "data_store",
            "boundary": "corp",
            "data": ["records"],
            "uses_sql": True,
        },
        {
            "id": "api",
            "kind": "inference_api",
            "boundary": "cluster",
            "internet_facing": True,
            "authentication": "api_key",
            "rate_limit": "10/s",
            "model": {"algorithm": "cnn", "output": "scores", "ip_value": "high"},
        },
    ],
    "flows": [
        {
            "id": "query",
            "source": "user",
            "target": "api",
            "data": ["records"],
            "protocol": "https",
            "encrypted": True,
        }
    ],
    "controls": [{"id": "waf", "type": "input_validation", "applies_to": ["api"]}],
    "risk_tracking": [{"threat": "MLH-ML-EXTRACTION", "status": "accepted"}],
}
EXAMPLE_SYSTEMS = sorted(EXAMPLES.glob("*/system.yaml"))


def _model_file(tally: Tally, path: Path) -> None:
    """What `mlhunt model FILE --format sarif` does with a file, up to the rendered report."""
    from mlhunt.report import render
    from mlhunt.system.loader import definition_lines, parse_system, read_text
    from mlhunt.threatmodel import build_threat_model, load_catalog

    def run() -> None:
        text = read_text(path)
        system = parse_system(text, str(path))
        doc = build_threat_model(system, load_catalog(())).to_document()
        render(doc, "sarif", source_path=str(path), lines=definition_lines(text))
        render(doc, "markdown")

    outcome(tally, "system-yaml", run)


@given(data=st.data())
def test_system_yaml_mutated(work: Path, data: st.DataObject) -> None:
    path = work / "system.yaml"
    path.write_bytes(data.draw(yaml_bytes(SYSTEM)))
    _model_file(TALLY, path)


@scaled(4)
@given(data=st.data())
def test_system_yaml_examples_mutated(work: Path, data: st.DataObject) -> None:
    src = EXAMPLE_SYSTEMS[data.draw(st.integers(0, len(EXAMPLE_SYSTEMS) - 1))]
    text = data.draw(text_mutated(src.read_text("utf-8")))
    path = work / "system.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _model_file(TALLY, path)


@given(text=RAW_YAML)
def test_system_yaml_raw_text(work: Path, text: str) -> None:
    from mlhunt.system.loader import parse_system

    outcome(TALLY, "system-yaml", parse_system, "name: x\n" + text, "raw.yaml")
    outcome(TALLY, "system-yaml", parse_system, text, "raw.yaml")


# ---------------------------------------------------------------------------------------------
# Project file (`mlhunt run FILE`)
# ---------------------------------------------------------------------------------------------

PROJECT: dict[str, Any] = {
    "name": "fuzz",
    "system": "system.yaml",
    "output": "out",
    "seed": 3,
    "fail_on": "high",
    "models": [
        {
            "scenario": "loan-approval",
            "element": "api",
            "max_queries": 100,
            "max_seconds": 5,
            "attacks": ["fgsm"],
            "params": {"MLH-ASSESS-FGSM.eps": 0.1},
        },
        {
            "kind": "http",
            "url": "http://127.0.0.1:1/predict",
            "http_config": "http.yaml",
            "spec": "spec.yaml",
            "data": "d.npz",
            "api_key_env": "KEY",
        },
    ],
    "logs": [
        {
            "path": "logs/*.jsonl",
            "engine": "duckdb",
            "reference": "ref.npz",
            "simulate": "fraud-detection",
            "scale": 0.5,
        }
    ],
    "scan": [{"path": "deploy", "element": "api"}],
    "harden": [
        {
            "scenario": "loan-approval",
            "element": "api",
            "mitigations": ["dp-logreg"],
            "params": {"dp-logreg.epsilon": 1.0},
        }
    ],
    "thresholds": {"extraction": {"critical": 0.99, "high": 0.9}},
}


@given(data=st.data())
def test_project_file_mutated(work: Path, data: st.DataObject) -> None:
    from mlhunt.run.project import load_project

    (work / "system.yaml").write_text(yaml.safe_dump(SYSTEM), "utf-8")
    path = work / "mlhunt.yaml"
    path.write_bytes(data.draw(yaml_bytes(PROJECT)))
    project = outcome(TALLY, "project", load_project, path)
    if project is not None:  # what `run` does next with the paths it names
        for p in [
            project.system,
            *(m.spec or "" for m in project.models),
            *(x.path for x in project.logs),
            *(s.path or "" for s in project.scan),
        ]:
            project.resolve(p)


@given(text=RAW_YAML)
def test_project_file_raw_text(work: Path, text: str) -> None:
    from mlhunt.run.project import load_project

    (work / "system.yaml").write_text(yaml.safe_dump(SYSTEM), "utf-8")
    path = work / "raw-project.yaml"
    path.write_text("system: system.yaml\n" + text, "utf-8", errors="surrogatepass")
    outcome(TALLY, "project", load_project, path)


# ---------------------------------------------------------------------------------------------
# assess: input spec (--spec), HTTP mapping (--http-config), thresholds, ID.key=value params
# ---------------------------------------------------------------------------------------------

SPEC_TABULAR: dict[str, Any] = {
    "kind": "tabular",
    "classes": ["no", "yes"],
    "sensitive": "age",
    "features": [
        {"name": "age", "lower": 18, "upper": 99, "integer": True, "mutable": False},
        {"name": "income", "lower": 0.0, "upper": 1e6},
        "debt",
    ],
}
SPEC_IMAGE: dict[str, Any] = {"kind": "image", "shape": [3, 8, 8], "classes": ["a", "b"]}
HTTP_CONFIG: dict[str, Any] = {
    "url": "http://127.0.0.1:1/predict",
    "method": "POST",
    "body": {"instances": ["{features}"], "meta": {"img": "{image}"}},
    "scores": "predictions.0.probs",
    "label": "predictions.0.label",
    "classes": ["a", "b"],
    "api_key_env": "KEY",
    "api_key_header": "Authorization",
    "headers": {"X-T": "1"},
    "timeout": 2.5,
    "retries": 3,
    "backoff": 0.1,
    "max_backoff": 2,
    "rate_limit": 50,
    "burst": 5,
    "concurrency": 8,
}


@given(data=st.data())
def test_assess_spec_yaml(work: Path, data: st.DataObject) -> None:
    from mlhunt.assess.targets import load_spec

    base = data.draw(st.sampled_from([SPEC_TABULAR, SPEC_IMAGE]))
    path = work / "spec.yaml"
    path.write_bytes(data.draw(yaml_bytes(base)))
    x = data.draw(st.sampled_from([None, np.zeros((4, 3)), np.ones((2, 5)), np.zeros(3)]))
    outcome(TALLY, "assess-spec", load_spec, path, x)


@given(data=st.data())
def test_assess_http_config_yaml(work: Path, data: st.DataObject) -> None:
    from mlhunt.assess.http import load_http_config

    path = work / "http.yaml"
    path.write_bytes(data.draw(yaml_bytes(HTTP_CONFIG)))
    url = data.draw(st.sampled_from([None, "http://127.0.0.1:1/"]))
    outcome(TALLY, "http-config", load_http_config, path, url=url)


@pytest.fixture(scope="module")
def attacks() -> Any:
    from mlhunt.assess.catalog import default_attacks

    return default_attacks()


@pytest.fixture(scope="module")
def mitigations() -> Any:
    from mlhunt.harden.catalog import default_mitigations

    return default_mitigations()


THRESHOLDS: dict[str, Any] = {
    "extraction": {"critical": 0.99, "high": 0.9},
    "MLH-ASSESS-FGSM": {"medium": 0.2},
}
ASSIGN_WORDS = st.sampled_from(
    [
        "fgsm",
        "extraction",
        "evasion",
        "MLH-ASSESS-FGSM",
        "eps",
        "critical",
        "HIGH",
        "dp-logreg",
        "epsilon",
        "membership",
        "shadow_models",
        ".",
        "..",
        "=",
        "==",
        "[1, 2]",
        "{a: 1}",
        "1e9",
        "nan",
        "!!binary x",
        "&a",
        "*a",
        "9" * 5000,
        "2001-13-45",
        "? [a]\n: 1",
        "\x00",
        "\ud800",
    ]
)
ASSIGNMENT = st.lists(ASSIGN_WORDS | st.text(max_size=4), max_size=6).map("".join)


@given(data=st.data())
def test_assess_thresholds(work: Path, attacks: Any, data: st.DataObject) -> None:
    from mlhunt.assess.results import parse_thresholds

    path = None
    if data.draw(st.booleans()):
        path = work / "thresholds.yaml"
        path.write_bytes(data.draw(yaml_bytes(THRESHOLDS)))
    items = data.draw(st.lists(ASSIGNMENT, max_size=3))
    outcome(TALLY, "thresholds", parse_thresholds, items, attacks, path)


@given(items=st.lists(ASSIGNMENT, min_size=1, max_size=3))
def test_param_assignments(attacks: Any, mitigations: Any, items: list[str]) -> None:
    from mlhunt._units import parse_assignment
    from mlhunt.assess.runner import parse_params as assess_params
    from mlhunt.harden.api import parse_params as harden_params

    for item in items:
        outcome(TALLY, "param-assignment", parse_assignment, item)
    outcome(TALLY, "param-assignment", assess_params, items, attacks)
    outcome(TALLY, "param-assignment", harden_params, items, mitigations)


# ---------------------------------------------------------------------------------------------
# Arrays: hunt --reference (.npz, .npy or a log file) and assess --data (.npz)
# ---------------------------------------------------------------------------------------------

DTYPES = {
    "f8": "f8",
    "f4": "f4",
    "f2": "f2",
    "i8": "i8",
    "u1": "u1",
    "bool": "bool",
    "c16": "c16",
    "U3": "U3",
    "S2": "S2",
    "V4": "V4",
    "M8": "M8[s]",
    "record": [("a", "f8"), ("b", "i4")],
}


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(DTYPES[draw(st.sampled_from(sorted(DTYPES)))])
    shape = tuple(draw(st.lists(st.integers(0, 12), max_size=4)))
    a = np.zeros(shape, dtype)
    if a.size and dtype.kind == "f":
        flat = a.reshape(-1)
        for _ in range(draw(st.integers(0, 3))):
            flat[draw(st.integers(0, a.size - 1))] = draw(st.floats(width=16))
    return a


@st.composite
def array_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes) of an .npy or .npz file, maybe truncated or with bytes flipped."""
    buf = io.BytesIO()
    suffix = draw(st.sampled_from([".npy", ".npz"]))
    if suffix == ".npy":
        np.save(buf, draw(arrays()), allow_pickle=False)
    else:
        names = draw(
            st.lists(
                st.sampled_from(["x", "y", "x_members", "y_members", "x_pool", "z"]),
                max_size=4,
                unique=True,
            )
        )
        found = {n: draw(arrays()) for n in names}
        if draw(st.booleans()):  # a usable x and y, so the checks after reading run too
            n = draw(st.integers(0, 12))
            found |= {"x": np.full((n, 3), draw(st.floats(width=16))), "y": np.arange(n) % 2}
        np.savez(buf, **found)
    data = buf.getvalue()
    how = draw(st.sampled_from(["keep", "keep", "truncate", "flip", "raw"]))
    if how == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "flip" and data:
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    elif how == "raw":
        data = draw(st.binary(max_size=300))
    return suffix, data


@scaled(2)
@given(file=array_file())
def test_hunt_reference_arrays(work: Path, file: tuple[str, bytes]) -> None:
    from mlhunt.hunt.api import load_reference

    path = work / f"reference{file[0]}"
    path.write_bytes(file[1])
    outcome(TALLY, "hunt-reference", load_reference, path)


@scaled(2)
@given(file=array_file())
def test_assess_data_npz(work: Path, file: tuple[str, bytes]) -> None:
    from mlhunt.assess.targets import load_data

    path = work / f"data{file[0]}"
    path.write_bytes(file[1])
    outcome(TALLY, "assess-data", load_data, path)


# ---------------------------------------------------------------------------------------------
# Regressions: the minimal inputs of the bugs the fuzzing found (each crashed before the fix)
# ---------------------------------------------------------------------------------------------

YAML_REGRESSIONS = {
    "unhashable_key": "? [a]\n: 1\n",  # TypeError: unhashable type: 'list'
    "unhashable_key_nested": "name: x\nelements: [{id: a, kind: actor, ? {a: 1}: 2}]\n",
    "map_tag_on_sequence": "name: x\nelements: [{id: !!map [1], kind: actor}]\n",  # TypeError
    "int_over_4300_digits": "name: " + "9" * 5000 + "\n",  # ValueError (int max str digits)
    "hex_int_without_repr": "name: 0x" + "f" * 4000 + "\nelements: [{id: a, kind: actor}]\n",
    "timestamp_bad_month": "name: 2001-13-45\n",  # ValueError: month must be in 1..12
    "bool_tag_bad_value": "name: !!bool x\n",  # KeyError: 'x'
    "timestamp_tag_bad_value": "name: !!timestamp x\n",  # AttributeError (no regex match)
    "float_tag_bad_value": "name: !!float x\n",  # ValueError
    "deep_nesting_in_error_line": "name: x\nelements: [{id: a, kind: actor, name: "
    + "[" * 500
    + "]" * 500
    + "}]\n",  # RecursionError in the pure-Python composer
}


@pytest.mark.parametrize("text", YAML_REGRESSIONS.values(), ids=YAML_REGRESSIONS.keys())
def test_regression_system_yaml(text: str) -> None:
    from mlhunt.system.loader import parse_system

    with pytest.raises(InputError) as err:
        parse_system(text, "system.yaml")
    assert str(err.value).startswith("system.yaml") and "\n" not in str(err.value)


ASSESS_YAML = {
    "not_utf8": b"kind: \xff\n",
    "huge_int": ("kind: " + "9" * 5000).encode(),
    "deep": b"kind: tabular\nfeatures: " + b"[" * 600 + b"]" * 600,
    "unhashable": b"? [a]\n: 1\n",
    "bool_tag": b"kind: !!bool x\n",
}


@pytest.mark.parametrize("data", ASSESS_YAML.values(), ids=ASSESS_YAML.keys())
@pytest.mark.parametrize("loader", ["spec", "http", "thresholds"])
def test_regression_assess_yaml_files(
    tmp_path: Path, attacks: Any, loader: str, data: bytes
) -> None:
    """--spec, --http-config and --thresholds files: UnicodeDecodeError, ValueError and
    RecursionError escaped their loaders (they called yaml.safe_load on read_text)."""
    from mlhunt.assess.http import load_http_config
    from mlhunt.assess.results import parse_thresholds
    from mlhunt.assess.targets import load_spec

    path = tmp_path / "f.yaml"
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"f\.yaml"):
        if loader == "spec":
            load_spec(path)
        elif loader == "http":
            load_http_config(path)
        else:
            parse_thresholds([], attacks, path)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


ARRAY_REGRESSIONS = {
    "empty_file": (".npy", b""),  # EOFError
    "truncated_npz": (".npz", _npz(x=np.zeros((20, 3)))[:40]),  # BadZipFile
    "scalar": (".npy", _npy(np.float64(1.0))),  # TypeError: len() of unsized object
    "strings": (".npy", _npy(np.array(["a"] * 20))),  # ValueError: could not convert
    "empty_3d": (".npz", _npz(x=np.zeros((0, 0, 3)), y=np.zeros(0))),  # ValueError: reshape
    "header_not_literal": (".npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': \x00     \n"),
    "npy_as_data": (".npz", _npy(np.zeros((20, 3)))),  # ndarray is no context manager
}


@pytest.mark.parametrize(
    "item", ["a.b=" + "9" * 5000, "a.b=" + "[" * 5000, "a.b=!!bool x", "a.b=2001-13-45"]
)
def test_regression_param_value(item: str) -> None:
    """ValueError, RecursionError, KeyError out of yaml.safe_load in ID.key=value."""
    from mlhunt._units import parse_assignment

    with pytest.raises(InputError, match="not valid YAML"):
        parse_assignment(item)


@pytest.mark.parametrize(
    "item", ["extraction.high=" + "9" * 400, "extraction.high=nan", "extraction.high=-inf"]
)
def test_regression_threshold_value(attacks: Any, item: str) -> None:
    """OverflowError out of float() on an integer past 1e308 (found by the full-budget run)."""
    from mlhunt.assess.results import parse_thresholds

    with pytest.raises(InputError, match="expected a finite number"):
        parse_thresholds([item], attacks)


@pytest.mark.parametrize("data", [b"id: \xff\n", b"id: 2001-13-45\n", b"? [a]\n: 1\n"])
def test_regression_catalog_dirs(tmp_path: Path, data: bytes) -> None:
    """--rules and --catalog folders: UnicodeDecodeError and ValueError escaped the loaders."""
    from mlhunt.assess.catalog import load_attacks
    from mlhunt.errors import CatalogError
    from mlhunt.threatmodel import load_catalog

    (tmp_path / "x.yaml").write_bytes(data)
    with pytest.raises(CatalogError, match=r"x\.yaml"):
        load_catalog([tmp_path])
    with pytest.raises(CatalogError, match=r"x\.yaml"):
        load_attacks(tmp_path)


@pytest.mark.parametrize("case", ARRAY_REGRESSIONS.values(), ids=ARRAY_REGRESSIONS.keys())
def test_regression_arrays(tmp_path: Path, case: tuple[str, bytes]) -> None:
    """hunt --reference and assess --data on damaged or odd .npy/.npz files."""
    from mlhunt.assess.targets import load_data
    from mlhunt.hunt.api import load_reference

    path = tmp_path / f"a{case[0]}"
    path.write_bytes(case[1])
    loads = (
        (load_data,)
        if case[0] == ".npz" and case[1][:1] == b"\x93"
        else (load_reference, load_data)
    )
    for load in loads:  # (load_reference reads an .npy by its magic bytes, whatever its name)
        with pytest.raises(InputError):
            load(path)


def test_reference_keeps_finite_rows_only(tmp_path: Path) -> None:
    x = np.arange(36.0).reshape(12, 3)
    x[0, 1], x[1, 2] = np.inf, np.nan
    np.save(tmp_path / "r.npy", x)
    from mlhunt.hunt.api import load_reference

    assert load_reference(tmp_path / "r.npy").shape == (10, 3)


# ---------------------------------------------------------------------------------------------
# Through the real CLI: exit 2 and one line on stderr, no traceback
# ---------------------------------------------------------------------------------------------


def _cli(args: list[str]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from mlhunt.cli import app

    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stderr


def test_cli_found_inputs_exit_2_one_line(tmp_path: Path) -> None:
    (tmp_path / "system.yaml").write_text(yaml.safe_dump(SYSTEM), "utf-8")
    cases: list[list[str]] = []
    for name, text in list(YAML_REGRESSIONS.items())[:4]:
        (tmp_path / f"{name}.yaml").write_text(text, "utf-8")
        cases.append(["model", str(tmp_path / f"{name}.yaml")])
    (tmp_path / "mlhunt.yaml").write_text("system: system.yaml\nseed: 0x" + "f" * 90, "utf-8")
    cases.append(["run", str(tmp_path / "mlhunt.yaml")])
    (tmp_path / "logs.jsonl").write_text('{"ts": 1, "client_id": "a", "output": {"label": 1}}\n')
    for name, (suffix, data) in list(ARRAY_REGRESSIONS.items())[:4]:
        (tmp_path / f"{name}{suffix}").write_bytes(data)
        cases.append(
            ["hunt", str(tmp_path / "logs.jsonl"), "--reference", str(tmp_path / f"{name}{suffix}")]
        )
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 3)), y=np.zeros(20))
    (tmp_path / "spec.yaml").write_bytes(ASSESS_YAML["bool_tag"])
    (tmp_path / "http.yaml").write_bytes(ASSESS_YAML["not_utf8"])
    api = ["assess", "http://127.0.0.1:9/", "--data", str(tmp_path / "d.npz")]  # never reached
    cases += [
        [*api, "--spec", str(tmp_path / "spec.yaml")],
        [*api, "--http-config", str(tmp_path / "http.yaml")],
        ["assess", "--scenario", "loan-approval", "--param", "fgsm.eps=" + "9" * 5000],
        ["harden", "--scenario", "loan-approval", "--param", "dp-logreg.epsilon=!!bool x"],
    ]
    for args in cases:
        code, err = _cli(args)
        assert code == 2, (args[:2], code, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args[:2], err)
        assert "Traceback" not in err


def test_cli_process_bad_system_file(tmp_path: Path) -> None:
    """The same through a real process (the one users run)."""
    import os
    import subprocess
    import sys

    path = tmp_path / "s.yaml"
    path.write_text(YAML_REGRESSIONS["unhashable_key"], "utf-8")
    env = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run(
        [sys.executable, "-m", "mlhunt", "model", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert str(path) in line and "unhashable key" in line


# ---------------------------------------------------------------------------------------------
# Catalog extensions: `mlhunt model --rules DIR` (threat rules, with their condition language)
# and `mlhunt assess --catalog DIR` (attack units). A CatalogError is exit 2 as well.
# ---------------------------------------------------------------------------------------------

RULE = yaml.safe_load(
    (
        Path(__file__).resolve().parent.parent
        / "src/mlhunt/threatmodel/rules/ml"
        / "MLH-ML-ADVERSARIAL-PATCH.yaml"
    ).read_text("utf-8")
)
RULE["id"] = "MLH-ML-FUZZ"
ATTACK = yaml.safe_load(
    (
        Path(__file__).resolve().parent.parent
        / "src/mlhunt/assess/attacks"
        / "extraction_tabular.yaml"
    ).read_text("utf-8")
)
ATTACK["id"] = "MLH-ASSESS-FUZZ"
CONDITION_WORDS = [
    "element",
    ".",
    "model",
    "input_type",
    " in ",
    "(",
    ")",
    "'image'",
    ",",
    " or ",
    " and ",
    " not ",
    "==",
    "flow",
    "internet_facing",
    "__class__",
    "[0]",
    "1",
    "\x00",
    "'",
    "lambda",
    "**",
    "kind",
]
CONDITIONS = st.lists(st.sampled_from(CONDITION_WORDS), max_size=12).map("".join)


@scaled(3)
@given(data=st.data())
def test_threat_rules_dir(work: Path, data: st.DataObject) -> None:
    from mlhunt.errors import CatalogError
    from mlhunt.threatmodel import load_catalog

    base = dict(RULE, condition=data.draw(CONDITIONS)) if data.draw(st.booleans()) else RULE
    folder = work / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "fuzz.yaml").write_bytes(data.draw(yaml_bytes(base)))
    try:
        outcome(TALLY, "rules-catalog", load_catalog, [folder])
    except CatalogError:
        TALLY.add("rules-catalog", "catalog-error")


@given(data=st.data())
def test_attack_catalog_dir(work: Path, data: st.DataObject) -> None:
    from mlhunt.assess.catalog import load_attacks
    from mlhunt.errors import CatalogError

    folder = work / "attacks"
    folder.mkdir(exist_ok=True)
    (folder / "fuzz.yaml").write_bytes(data.draw(yaml_bytes(ATTACK)))
    try:
        outcome(TALLY, "attack-catalog", load_attacks, folder)
    except CatalogError:
        TALLY.add("attack-catalog", "catalog-error")
