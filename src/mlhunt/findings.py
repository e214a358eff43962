"""The one currency of mlhunt: a :class:`Finding`, and the JSON document that carries them.

Every part (model, assess, hunt, scan, harden, guard) emits the same type; the document shape is
the contract in docs/architecture.md and is relied on from outside the code, so fields are only
ever added.
"""

from __future__ import annotations

import enum
from typing import Any

from mlhunt import __version__
from mlhunt.record import Record


class Severity(enum.StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls(value.lower())
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {value!r} (expected one of: {allowed})") from None


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}

FINDING_STATUSES = ("open", "accepted", "mitigated", "false-positive")


class Finding(Record):
    """One thing mlhunt found. ``id`` is stable across runs for the same rule and target.

    Compared and shown by value like a dataclass (:class:`mlhunt.record.Record`: no dataclass,
    so that ``mlhunt scan`` never imports ``dataclasses`` and ``inspect``); :meth:`replace` is
    ``dataclasses.replace``."""

    __slots__ = (
        "affected",
        "atlas",
        "cwe",
        "description",
        "evidence",
        "framework",
        "id",
        "impact",
        "likelihood",
        "linddun",
        "mitigations",
        "owasp_ml",
        "references",
        "risk",
        "rule_id",
        "severity",
        "source",
        "status",
        "stride",
        "target",
        "title",
        "tracking",
    )

    def __init__(
        self,
        id: str,
        rule_id: str,
        title: str,
        severity: Severity,
        source: str,
        target: str,
        description: str = "",
        atlas: list[str] | None = None,
        owasp_ml: list[str] | None = None,
        stride: list[str] | None = None,
        linddun: list[str] | None = None,
        cwe: list[str] | None = None,
        evidence: dict[str, Any] | None = None,
        mitigations: list[str] | None = None,
        status: str = "open",
        # Threat-model extras (None elsewhere, and then left out of the JSON).
        framework: str | None = None,
        likelihood: float | None = None,
        impact: float | None = None,
        risk: float | None = None,
        references: dict[str, list[str]] | None = None,
        tracking: dict[str, Any] | None = None,
        # Every element or flow the finding's cause applies to, worst first (threat model only).
        affected: list[str] | None = None,
    ) -> None:
        self.id = id
        self.rule_id = rule_id
        self.title = title
        self.severity = severity
        self.source = source
        self.target = target
        self.description = description
        self.atlas: list[str] = [] if atlas is None else atlas
        self.owasp_ml: list[str] = [] if owasp_ml is None else owasp_ml
        self.stride: list[str] = [] if stride is None else stride
        self.linddun: list[str] = [] if linddun is None else linddun
        self.cwe: list[str] = [] if cwe is None else cwe
        self.evidence: dict[str, Any] = {} if evidence is None else evidence
        self.mitigations: list[str] = [] if mitigations is None else mitigations
        self.status = status
        self.framework = framework
        self.likelihood = likelihood
        self.impact = impact
        self.risk = risk
        self.references = references
        self.tracking = tracking
        self.affected = affected

    def replace(self, **changes: Any) -> Finding:
        """A copy with ``changes`` (field values shared, as ``dataclasses.replace`` does)."""
        values = {n: getattr(self, n) for n in self.__slots__}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"Finding has no field(s) {sorted(unknown)}")
        return Finding(**{**values, **changes})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity.value,
            "source": self.source,
            "target": self.target,
            "description": self.description,
            "atlas": list(self.atlas),
            "owasp_ml": list(self.owasp_ml),
            "stride": list(self.stride),
            "linddun": list(self.linddun),
            "cwe": list(self.cwe),
            "evidence": self.evidence,
            "mitigations": list(self.mitigations),
            "status": self.status,
        }
        for key in (
            "framework",
            "likelihood",
            "impact",
            "risk",
            "references",
            "tracking",
            "affected",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def summarize(findings: list[Finding]) -> dict[str, Any]:
    counts = {s.value: 0 for s in reversed(Severity)}
    for f in findings:
        counts[f.severity.value] += 1
    return {"by_severity": counts, "total": len(findings)}


def document(command: str, findings: list[Finding], **extras: Any) -> dict[str, Any]:
    """The JSON document every command emits (docs/architecture.md, "The finding contract")."""
    doc: dict[str, Any] = {
        "tool": "mlhunt",
        "version": __version__,
        "command": command,
        "findings": [f.to_dict() for f in findings],
        "summary": summarize(findings),
    }
    doc.update(extras)
    return doc


def worst(findings: list[Finding]) -> Severity | None:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)
