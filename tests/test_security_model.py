"""docs/security.md rests on mlhunt's own threat model: it must keep loading and say what the
doc claims (attacker-controlled inputs into the CLI, the guard's Redis flow, tracked risks)."""

from __future__ import annotations

from pathlib import Path

from mlhunt.system.loader import parse_system, read_text
from mlhunt.threatmodel import build_threat_model, load_catalog

SYSTEM = Path(__file__).resolve().parent.parent / "docs" / "security" / "mlhunt.system.yaml"


def _doc() -> dict:
    parsed = parse_system(read_text(SYSTEM), str(SYSTEM))
    tm = build_threat_model(parsed, load_catalog(()))
    assert tm.warnings == []
    return tm.to_document()


def test_own_threat_model_loads_and_tracks_risks() -> None:
    doc = _doc()
    by = {(f["rule_id"], f["target"]): f for f in doc["findings"]}
    # Every flow into the CLI carries hostile input; the tracking says how it is handled.
    tampering = [
        f
        for (rule, target), f in by.items()
        if rule.startswith("MLH-STRIDE-T") and target.endswith("-cli")
    ]
    assert tampering
    assert all(f["status"] != "open" for f in tampering)
    # The guard's Redis flow is cleartext by default and stays an open, high finding.
    redis = by[("MLH-STRIDE-I-FLOW-CLEARTEXT", "guard-redis")]
    assert redis["severity"] == "high"
    assert redis["status"] == "open"
    # Personal data in the logs mlhunt reads is the top risk and is not hidden by tracking.
    assert by[("MLH-LINDDUN-DISCLOSURE-STORE", "logs")]["severity"] == "critical"
