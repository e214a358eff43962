"""Loading system descriptions: valid files link up; bad ones give one line with file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlhunt.errors import InputError
from mlhunt.system import load_system, parse_system, system_from_dict
from mlhunt.system.loader import definition_lines
from tests.conftest import EXAMPLES, SCENARIOS

GOOD = textwrap.dedent(
    """\
    name: demo
    data_assets:
      - id: rec
        classification: personal
    trust_boundaries:
      - id: outer
      - id: inner
        parent: outer
    elements:
      - id: user
        kind: actor
      - id: api
        kind: inference_api
        boundary: inner
        model:
          output: scores
    flows:
      - id: q
        source: user
        target: api
        data: [rec]
    controls:
      - id: mesh-mtls
        type: mtls
        applies_to: [outer]
    """
)


def _error(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        parse_system(text, "sys.yaml")
    return info.value


def test_links_are_resolved() -> None:
    s = parse_system(GOOD, "sys.yaml")
    api = next(e for e in s.elements if e.id == "api")
    flow = s.flows[0]
    assert api.boundaries == ("inner", "outer")
    assert flow.source_element.id == "user" and flow.target_element is api
    assert flow.crosses_boundary
    assert api.has_personal_data  # through the flow that reaches it
    assert "mtls" in {c.value for c in api.controls}  # declared on the enclosing boundary
    assert api.control_refs  # and traceable to the control id
    assert api.control_refs[next(c for c in api.controls if c.value == "mtls")] == ("mesh-mtls",)


@pytest.mark.parametrize("name", SCENARIOS)
def test_examples_load(name: str) -> None:
    s = load_system(EXAMPLES / name / "system.yaml")
    assert len(s.elements) >= 8 and len(s.flows) >= 8


@pytest.mark.parametrize(
    ("text", "line", "expect"),
    [
        ("name: x\nelements: [\n", 3, "invalid YAML"),
        ("", 1, "empty file"),
        ("- a\n- b\n", 1, "expected a mapping"),
        (
            GOOD.replace("kind: inference_api", "kind: inference_apii"),
            13,
            "elements[1].kind: Input should be",
        ),
        (
            GOOD.replace("boundary: inner", "boundry: inner"),
            14,
            "unknown field 'boundry' (did you mean 'boundary'?)",
        ),
        (
            GOOD.replace("target: api", "target: apii"),
            20,
            "flows[0].target: unknown element 'apii' (did you mean 'api'?)",
        ),
        (GOOD.replace("  - id: api\n", "  - id: user\n"), 12, "duplicate id 'user'"),
        (GOOD.replace("parent: outer", "parent: nowhere"), 8, "unknown trust boundary 'nowhere'"),
        (GOOD.replace("data: [rec]", "data: [recs]"), 21, "unknown data asset 'recs'"),
        (GOOD.replace("name: demo\n", ""), 1, "name: required field is missing"),
        (
            GOOD.replace("  - id: q\n", "  - id: q\n    source: user\n"),
            20,
            "duplicate key 'source'",
        ),
        (
            GOOD.replace("applies_to: [outer]", "applies_to: [outter]"),
            25,
            "unknown element, flow or trust boundary 'outter'",
        ),
        (GOOD.replace("output: scores", "output: probabilities"), 16, "elements[1].model.output"),
    ],
)
def test_bad_input_names_file_line_and_field(text: str, line: int, expect: str) -> None:
    err = _error(text)
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(f"sys.yaml:{line}: "), msg
    assert expect in msg, msg


def test_boundary_cycle_is_an_error() -> None:
    text = GOOD.replace("  - id: outer\n", "  - id: outer\n    parent: inner\n")
    assert "cycle" in str(_error(text))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_system(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="is a directory"):
        load_system(tmp_path)


def test_system_from_dict_without_text(minimal_system: dict) -> None:
    minimal_system["elements"][0]["kind"] = "robot"
    with pytest.raises(InputError, match=r"elements\[0\]\.kind"):
        system_from_dict(minimal_system)


def test_definition_lines() -> None:
    lines = definition_lines(GOOD)
    assert lines["api"] == 12 and lines["q"] == 18 and lines["rec"] == 3
