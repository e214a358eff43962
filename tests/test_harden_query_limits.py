"""`harden` query limits: a token bucket and quota replayed over simulated traffic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlhunt.harden import harden
from mlhunt.harden.mitigations.query_limits import token_bucket

QL = "MLH-HARDEN-QUERY-LIMITS"


def test_token_bucket() -> None:
    burst_of_10 = np.zeros(10)  # ten requests at once
    assert token_bucket(burst_of_10, rate_per_minute=60, burst=4, quota=100) == 4
    one_per_second = np.arange(100.0)
    assert token_bucket(one_per_second, rate_per_minute=60, burst=1, quota=100) == 100
    assert token_bucket(one_per_second, rate_per_minute=60, burst=1, quota=30) == 30
    assert token_bucket(one_per_second, rate_per_minute=30, burst=1, quota=100) == 50


def test_limits_over_simulated_loan_traffic(tmp_path: Path) -> None:
    params = {
        QL: {
            "scale": 0.3,
            "output": "labels",
            "limits": [
                {"rate_per_minute": 1000, "burst": 1000, "daily_quota": 100000},
                {"rate_per_minute": 10, "burst": 20, "daily_quota": 200},
            ],
            "extraction": {"queries": [50, 250, 1000], "n_eval": 500},
        }
    }
    doc = harden("loan-approval", select=[QL], params=params, out_dir=tmp_path).document()
    loose, tight = (f["evidence"] for f in doc["findings"])
    assert set(loose["attack_before"]) >= {"uniform-extraction", "sybil-extraction"}
    for style, a in loose["attack_after"].items():  # no real limit: everything gets through
        assert a["queries_allowed"] == loose["attack_before"][style]["queries"]
    assert loose["utility_after"]["benign_clients_throttled"] == 0
    for style, a in tight["attack_after"].items():
        per_client_cap = 200 * tight["attack_before"][style]["clients"]
        assert a["queries_allowed"] <= per_client_cap
    # Sybil: eight keys, each under the per-client limit -> the limit does not see it.
    sybil = tight["attack_after"]["sybil-extraction"]
    assert sybil["queries_allowed"] == sybil["queries_made"]
    assert tight["benign_throttled"] >= loose["benign_throttled"]
    assert tight["extraction_need"]["output"] == "labels"
