"""The project file: validation with one-line errors, and `init`'s starter loads as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlhunt.errors import InputError
from mlhunt.run.init import starter
from mlhunt.run.project import load_project


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "system.yaml").write_text("name: x\n", encoding="utf-8")
    path = tmp_path / "mlhunt.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("scenario", ["loan-approval", None])
def test_starter_loads(tmp_path: Path, scenario: str | None) -> None:
    project = load_project(_write(tmp_path, starter(scenario=scenario)))
    assert project.models and project.logs and project.scan
    assert project.resolve(project.system) == tmp_path / "system.yaml"
    if scenario:
        assert project.models[0].scenario == scenario
        assert project.logs[0].simulate == scenario
    else:
        assert project.models[0].kind == "http"


def test_unknown_field_names_line_and_suggests(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "system: system.yaml\nmodels:\n  - scenario: loan-approval\n    max_querys: 10\n"
    )
    with pytest.raises(InputError) as err:
        load_project(path)
    text = str(err.value)
    assert f"{path}:4" in text and "max_querys" in text and "max_queries" in text


def test_target_needs_exactly_one_way(tmp_path: Path) -> None:
    path = _write(tmp_path, "system: system.yaml\nmodels:\n  - element: api\n")
    with pytest.raises(InputError, match="exactly one of 'scenario' or 'kind'"):
        load_project(path)


def test_missing_system_file(tmp_path: Path) -> None:
    path = tmp_path / "mlhunt.yaml"
    path.write_text("system: nope.yaml\n", encoding="utf-8")
    with pytest.raises(InputError, match="system description not found"):
        load_project(path)
