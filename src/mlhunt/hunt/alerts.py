"""Alerts become findings (DESIGN.md: ``source`` "hunt", ``target`` the client id or source
address, ``rule_id`` the detector id, evidence with ``detector``, ``first_event_ts``,
``detected_at_event`` and ``score`` plus what a hunter needs)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from mlhunt.findings import Finding, Severity
from mlhunt.hunt.detectors.base import Alert, DetectorSpec


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def finding_id(detector: str, scope: str, target: str) -> str:
    """Stable across runs for the same detector and target."""
    digest = hashlib.sha256(f"{detector}\0{scope}\0{target}".encode()).hexdigest()[:12]
    return f"hunt-{digest}"


def to_finding(alert: Alert, spec: DetectorSpec) -> Finding:
    what = "source address" if alert.scope == "source_ip" else "client"
    evidence: dict[str, Any] = {
        "detector": alert.detector,
        "first_event_ts": rfc3339(alert.first_event_ts),
        "detected_ts": rfc3339(alert.detected_ts),
        "detected_at_event": alert.detected_at_event,
        "events": alert.events,
        "score": alert.score,
        **{k: v for k, v in alert.evidence.items() if k != "detector"},
    }
    summary = (
        f"{spec.title} by {what} {alert.target}: score {alert.score:g} after "
        f"{alert.events:,} events, first over the threshold at event "
        f"{alert.detected_at_event:,}."
    )
    return Finding(
        id=finding_id(alert.detector, alert.scope, alert.target),
        rule_id=alert.detector,
        title=f"{spec.title}: {alert.target}",
        severity=Severity(alert.severity),
        source="hunt",
        target=alert.target,
        description=f"{summary} {spec.description.strip()} False positives: "
        f"{spec.false_positive_notes.strip()}",
        atlas=list(spec.atlas),
        owasp_ml=list(spec.owasp_ml),
        evidence=evidence,
        mitigations=list(spec.mitigations),
    )


def to_findings(alerts: Iterable[Alert], specs: dict[str, DetectorSpec]) -> list[Finding]:
    """Findings sorted by severity (worst first), detector and target."""
    out = [to_finding(a, specs[a.detector]) for a in alerts]
    out.sort(key=lambda f: (-f.severity.rank, f.rule_id, f.target))
    return out
