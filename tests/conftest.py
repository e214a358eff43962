"""Shared test set-up: the process environment, the scenario cache, fixtures, the fuzz budget.

Sections: paths, test order and marks, the environment (set before anything loads torch),
fixtures, hypothesis profiles.
See docs/testing.md for how the suite runs and what it costs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCENARIOS = ("loan-approval", "image-moderation", "fraud-detection", "clickstream-recommender")

# ------------------------------------------------------------------------------ order and marks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (minutes each: whole runs, training, kill loops) go first.

    pytest-xdist deals the first quarter of the tests out in turn and the rest as workers free
    up, so the long ones start at once, side by side, and the end of the run is short tests
    filling both workers instead of one long test running alone. The sort is stable and the
    same on every worker (xdist requires identical collections)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# ---------------------------------------------------------------------------------- environment
# Set here, at import, so that the pytest-xdist workers and every `python -m mlhunt` a test starts
# inherit them.


def _environment() -> None:
    # OpenMP threads that wait for work sleep instead of spinning: with two workers (and whatever
    # else the machine runs) on two cores, spinning threads steal the cores the work needs.
    # Measured on a busy 2-core machine, 15 steps of the image CNN with 2 torch threads: 23-37 s
    # wall (5-6 CPU s) spinning, 5-7 s (1.2 CPU s) passive, bit-identical results. libgomp reads
    # it once, when torch loads: hence before preload_torch below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Built scenarios (data, trained models) and harden's trained weights are cached here across
    # tests, workers and runs; a scenario's build is file-locked (mlhunt.scenarios.ensure_built),
    # so two workers never build the same scenario twice.
    os.environ.setdefault("MLHUNT_CACHE", str(ROOT / ".mlhunt-cache"))

    from mlhunt._native import preload_torch

    # A worker may run a manifest-scan test (regopy) before a torch test; that order aborts.
    preload_torch()


_environment()

# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session", autouse=True)
def scenarios_built(request: pytest.FixtureRequest) -> None:
    """Under pytest-xdist (`make test`), build every seed scenario before the first test.

    Otherwise the first test to use a scenario pays for its build inside its own bounds: on a
    fresh clone under load, `mlhunt assess --scenario image-moderation` spent over 10 minutes of
    its 900 s subprocess timeout training the CNN (at a tenth of a core). Built here, in the
    worker, there is no such bound; ensure_built's file lock makes one worker build and the other
    wait, and the workers start from opposite ends of the list, so two builds run side by side.
    A run without workers (one file, `-n 0`) builds what its tests use, when they use it; built
    scenarios stay cached in $MLHUNT_CACHE for later runs."""
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    if worker is None:
        return
    from mlhunt.scenarios import ensure_built, names

    order = names()
    for name in order if int(worker.removeprefix("gw") or 0) % 2 == 0 else order[::-1]:
        ensure_built(name)


@pytest.fixture
def minimal_system() -> dict:
    """A small but complete system description as a dict (copy freely)."""
    return {
        "name": "mini",
        "criticality": "high",
        "data_assets": [
            {"id": "records", "classification": "personal"},
            {"id": "weights", "classification": "confidential"},
        ],
        "trust_boundaries": [
            {"id": "corp"},
            {"id": "cluster", "parent": "corp"},
        ],
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
                "id": "train",
                "kind": "training_job",
                "boundary": "cluster",
                "model": {"algorithm": "logistic_regression"},
            },
            {
                "id": "api",
                "kind": "inference_api",
                "boundary": "cluster",
                "internet_facing": True,
                "authentication": "api_key",
                "model": {
                    "algorithm": "logistic_regression",
                    "output": "scores",
                    "ip_value": "high",
                },
            },
        ],
        "flows": [
            {
                "id": "db-train",
                "source": "db",
                "target": "train",
                "data": ["records"],
                "protocol": "jdbc",
            },
            {
                "id": "query",
                "source": "user",
                "target": "api",
                "data": ["records"],
                "protocol": "https",
                "encrypted": True,
                "authenticated": True,
            },
        ],
    }


# ---------------------------------------------------------------------------- hypothesis profiles


# Fuzz budget (issue #9): a small one in `make test`, the full one with `make fuzz`
# (MLHUNT_FUZZ=full). Fuzz tests use `@settings(parent=FUZZ)` or the registered profile.
# `make test` draws the same inputs every run (derandomize: a red CI run is reproducible and
# never depends on the luck of the draw); `make fuzz` draws new ones each time to explore.
def _fuzz_profile() -> None:
    from hypothesis import HealthCheck, settings

    common = {
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    settings.register_profile("mlhunt-ci", max_examples=150, derandomize=True, **common)
    settings.register_profile("mlhunt-full", max_examples=20_000, derandomize=False, **common)
    full = os.environ.get("MLHUNT_FUZZ", "") == "full"
    settings.load_profile("mlhunt-full" if full else "mlhunt-ci")


_fuzz_profile()
