"""The demo's background builder (:mod:`mlhunt.scenarios.prebuild`): it builds what the later
scenarios use while the first one runs, and the run finds the same build it would have made."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlhunt.demo import built_scenarios, scenarios
from mlhunt.run.project import load_project
from mlhunt.scenarios import BuiltScenario, ensure_built, is_built
from mlhunt.scenarios.prebuild import building, pending

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_each_example_names_the_scenarios_it_builds() -> None:
    used = {p.name: built_scenarios(load_project(p / "mlhunt.yaml")) for p in scenarios(EXAMPLES)}
    assert used["fraud-detection"] == ["fraud-detection"]
    assert used["clickstream-recommender"] == ["clickstream-recommender"]
    assert used["llm-helpdesk"] == []  # the LLM range simulates calls: no model to build


def test_background_build_is_the_build_the_run_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLHUNT_CACHE", str(tmp_path))  # the child inherits it
    assert pending(["fraud-detection", "fraud-detection"]) == ["fraud-detection"]
    with building(["fraud-detection"]) as proc:
        assert proc is not None
        built, loaded = ensure_built("fraud-detection")  # waits on the build's lock
    assert proc.returncode == 0
    assert is_built("fraud-detection") and pending(["fraud-detection"]) == []
    # built by the child, not again by the run: the child's record is the one in the cache
    assert BuiltScenario.read(built.directory).seconds == built.seconds > 0
    assert loaded.predict_proba(loaded.x_holdout[:3]).shape == (3, 2)
    with building(["fraud-detection"]) as again:  # nothing left to build: no process
        assert again is None


def test_stopped_background_build_leaves_nothing_half_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLHUNT_CACHE", str(tmp_path))
    with pytest.raises(KeyboardInterrupt), building(["fraud-detection"]) as proc:
        raise KeyboardInterrupt  # the demo interrupted while the child builds
    assert proc is not None and proc.returncode is not None  # stopped and waited for
    folder = tmp_path / "scenarios"
    leftovers = [p.name for p in folder.iterdir() if p.is_dir()] if folder.exists() else []
    assert leftovers in ([], ["fraud-detection-seed0"]), leftovers  # finished, or nothing
