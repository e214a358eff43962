"""Smoke test of ``python -m bench model``: a tiny system through mlhunt and pytm (no timing
assertions; the benchmark's numbers live in bench/README.md)."""

from __future__ import annotations

import pytest

pytest.importorskip("pytm")

from bench import model as bench_model


def test_generator_is_deterministic_and_valid() -> None:
    from mlhunt.system.loader import system_from_dict

    a, b = bench_model.generate(60), bench_model.generate(60)
    assert a == b
    assert len(a["elements"]) == 60 and len(a["flows"]) == 120
    system = system_from_dict(a)  # raises on a dangling reference or a bad field
    assert len(system.trust_boundaries) == 50
    assert all(f.source != f.target for f in system.flows)


def test_bench_model_quick_tiny() -> None:
    result = bench_model.run(quick=True, size=60)

    assert set(result) >= {"mlhunt", "peer", "ratio"}
    ml, peer = result["mlhunt"], result["peer"]
    for key in ("seconds", "catalog_s", "validate_s", "rules_s"):
        assert ml[key] > 0, key
    for key in ("seconds", "construct_s", "check_s", "resolve_s"):
        assert peer[key] > 0, key
    assert ml["findings"] > 0
    assert peer["findings"] > 0
    assert peer["name"] == "pytm"
    assert "scaled_from" not in peer
    assert result["ratio"] > 0
    assert result["workload"]["elements"] == 60
