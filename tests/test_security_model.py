"""docs/security.md rests on mlhunt's own threat model: it must keep loading and say what the
doc claims (attacker-controlled inputs into the CLI, the guard's Redis flow, tracked risks)."""

from __future__ import annotations

from pathlib import Path

from mlhunt.system.loader import parse_system, read_text
from mlhunt.threatmodel import build_threat_model, load_catalog
from mlhunt.threatmodel.grouping import unfold

SYSTEM = Path(__file__).resolve().parent.parent / "docs" / "security" / "mlhunt.system.yaml"


def _doc() -> dict:
    parsed = parse_system(read_text(SYSTEM), str(SYSTEM))
    tm = build_threat_model(parsed, load_catalog(()))
    assert tm.warnings == []
    return tm.to_document()


def _hits(doc: dict) -> dict[tuple[str, str], str]:
    """(rule id, element or flow) -> status of every rule hit, grouped findings unfolded."""
    out: dict[tuple[str, str], str] = {}
    for f in doc["findings"]:
        out.update(unfold(f))
    return out


def test_own_threat_model_loads_and_tracks_risks() -> None:
    doc = _doc()
    hits = _hits(doc)
    # Every flow into the CLI carries hostile input; the tracking says how it is handled.
    tampering = {
        k: s for k, s in hits.items() if k[0].startswith("MLH-STRIDE-T") and k[1].endswith("-cli")
    }
    assert tampering
    assert all(s != "open" for s in tampering.values()), tampering
    # The guard's Redis flow is cleartext by default and stays open, among the top risks.
    assert hits[("MLH-STRIDE-I-FLOW-CLEARTEXT", "guard-redis")] == "open"
    top = [t for f in doc["findings"][:3] for t in f["affected"]]
    assert "guard-redis" in top
    # Personal data in the logs mlhunt reads is the top risk and is not hidden by tracking.
    first = doc["findings"][0]
    assert first["rule_id"] == "MLH-LINDDUN-DISCLOSURE-STORE" and "logs" in first["affected"]
    assert first["status"] == "open"
    # The CLI's missing authentication and rate limit are stated, and accepted.
    assert hits[("MLH-STRIDE-D-NO-RATE-LIMIT", "cli")] == "accepted"
