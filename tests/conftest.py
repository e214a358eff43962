from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlhunt._native import preload_torch

# A worker may run a manifest-scan test (regopy) before a torch test; that order aborts.
preload_torch()

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCENARIOS = ("loan-approval", "image-moderation", "fraud-detection", "clickstream-recommender")


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


# Built scenarios (data, trained models) are cached here across tests, workers and runs.
os.environ.setdefault("MLHUNT_CACHE", str(ROOT / ".mlhunt-cache"))


# Fuzz budget (issue #9): a small one in `make test`, the full one with `make fuzz`
# (MLHUNT_FUZZ=full). Fuzz tests use `@settings(parent=FUZZ)` or the registered profile.
def _fuzz_profile() -> None:
    from hypothesis import HealthCheck, settings

    common = {
        "deadline": None,
        "derandomize": False,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    settings.register_profile("mlhunt-ci", max_examples=150, **common)
    settings.register_profile("mlhunt-full", max_examples=20_000, **common)
    full = os.environ.get("MLHUNT_FUZZ", "") == "full"
    settings.load_profile("mlhunt-full" if full else "mlhunt-ci")


_fuzz_profile()
