"""The load test as a part of ``run``: for a built-in scenario target whose element the threat
model says can be denied service, start its live API on 127.0.0.1 (as the traffic simulation
does), send the bounded load of :mod:`mlhunt.run.loadtest` and return its evidence finding.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.run.loadtest import VALIDATES, Body, LoadSettings, load_test, to_finding
from mlhunt.run.project import Project, TargetConfig

Progress = Callable[[str], None]
BODIES = 64  # distinct request bodies, sent in turn


def request_bodies(loaded: Any, n: int, rng: np.random.Generator) -> list[Body] | None:
    """(path, JSON body) of ``n`` requests a legitimate client sends; None when the API's
    request shape is unknown. A scenario whose API is not ``POST /predict`` with a feature
    vector or an image array supplies its own ``sample_requests(n, rng)``."""
    own = getattr(loaded, "sample_requests", None)
    if callable(own):
        return [(str(p), dict(b)) for p, b in own(n, rng)]
    kind = getattr(getattr(loaded, "spec", None), "kind", None)
    if kind not in ("tabular", "image"):
        return None
    x = loaded.sample_benign(n, rng)
    if kind == "tabular":
        return [("/predict", {"vector": [float(v) for v in row]}) for row in x]
    return [("/predict", {"array": np.asarray(row, dtype=np.float32).tolist()}) for row in x]


def wants_load_test(cfg: TargetConfig, threats: set[str]) -> bool:
    """A scenario target (its API runs here, on loopback), enabled, with a threat it tests."""
    return bool(cfg.scenario and cfg.load_test.enabled and set(VALIDATES) & threats)


def load_test_part(
    project: Project, cfg: TargetConfig, out: Path, progress: Progress
) -> dict[str, Any] | None:
    """Run the load test on the scenario's live API; the finding as a dict (None, with a
    progress line, when the scenario's request shape is unknown)."""
    from mlhunt.run.api import live_api

    assert cfg.scenario is not None
    lt = cfg.load_test
    settings = LoadSettings(
        rate=lt.rate,
        requests=lt.requests,
        concurrency=lt.concurrency,
        slo_p99_ms=lt.slo_p99_ms,
        slo_error_rate=lt.slo_error_rate,
    )
    folder = out / "load" / cfg.scenario
    folder.mkdir(parents=True, exist_ok=True)
    progress(f"load test {cfg.scenario}: {lt.requests} requests at {lt.rate:g}/s")
    with live_api(cfg.scenario, folder / "api-log.jsonl", 0) as (loaded, base):
        bodies = request_bodies(loaded, BODIES, np.random.default_rng(project.seed))
        if bodies is None:
            progress(f"load test {cfg.scenario}: skipped (no sample_requests for its API)")
            return None
        result = load_test(base, bodies, settings, headers={"X-API-Key": "sim-load-test"})
    progress(f"load test {cfg.scenario}: {result.summary()}")
    return to_finding(result, cfg.scenario).to_dict()
