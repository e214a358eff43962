"""``hunt(paths)``: read clickstream events (or a recommender API log), run the clickstream
detectors, return findings and what was read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlhunt.clickhunt.detectors import ClickDetector, ClickDetectorSpec, GroupAlert, load_detectors
from mlhunt.clickhunt.readers import CLICKSTREAM, ClickRead, read
from mlhunt.findings import Finding, Severity
from mlhunt.hunt.alerts import finding_id, rfc3339
from mlhunt.hunt.readers import ReadReport


@dataclass
class ClickHuntResult:
    """Findings (worst first), what was read, the detectors run and their contained errors."""

    findings: list[Finding]
    read: ClickRead
    detectors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reference: ReadReport | None = None

    def read_summary(self) -> dict[str, Any]:
        out = {**self.read.report.to_dict(), "log_kind": self.read.kind}
        if self.reference is not None:
            out["reference"] = self.reference.to_dict()
        return out

    def document(self) -> dict[str, Any]:
        """The JSON document of ``mlhunt hunt`` (``command`` "hunt")."""
        from mlhunt.findings import document

        return document(
            "hunt",
            self.findings,
            read=self.read_summary(),
            detectors=list(self.detectors),
            detector_errors=list(self.errors),
            log_kind=self.read.kind,
        )


def to_finding(alert: GroupAlert, spec: ClickDetectorSpec) -> Finding:
    """A group alert as a finding: ``target`` the pushed item, the accounts in the evidence."""
    evidence: dict[str, Any] = {
        "detector": alert.detector,
        "first_event_ts": rfc3339(alert.first_event_ts),
        "detected_ts": rfc3339(alert.detected_ts),
        "events": alert.events,
        "score": alert.score,
        "validates": list(spec.validates),
        **alert.evidence,
    }
    summary = (
        f"{len(alert.members):,} new accounts with near-identical sessions (mean similarity "
        f"{alert.evidence.get('mean_similarity')}) all touch item {alert.target}; they hold "
        f"{alert.evidence.get('group_share_of_item_weight', 0):.0%} of its interaction weight."
    )
    return Finding(
        id=finding_id(alert.detector, "item", alert.target),
        rule_id=alert.detector,
        title=f"{spec.title}: {alert.target}",
        severity=Severity(alert.severity),
        source="hunt",
        target=alert.target,
        description=f"{summary} {' '.join(spec.description.split())} False positives: "
        f"{' '.join(spec.false_positive_notes.split())}",
        atlas=list(spec.atlas),
        owasp_ml=list(spec.owasp_ml),
        evidence=evidence,
        mitigations=list(spec.mitigations),
    )


def hunt_events(
    result: ClickRead,
    *,
    detectors: list[ClickDetector] | None = None,
    known: frozenset[str] | None = None,
) -> ClickHuntResult:
    """Run the detectors over events already read (:func:`~.readers.read`); ``known``: the
    accounts of a reference (see :func:`hunt`)."""
    dets = detectors if detectors is not None else load_detectors()
    found: list[Finding] = []
    errors: list[str] = []
    for det in dets:
        try:
            found += [to_finding(a, det.spec) for a in det.groups(result.events, known)]
        except Exception as exc:  # one detector's bug must not hide the others' findings
            errors.append(f"{det.spec.id}: {type(exc).__name__}: {exc}")
    found.sort(key=lambda f: (-f.severity.rank, f.rule_id, f.target))
    return ClickHuntResult(found, result, [d.spec.id for d in dets], errors)


def hunt(
    paths: Any,
    *,
    kind: str | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    reference: Any = None,
) -> ClickHuntResult:
    """Hunt clickstream events or recommender API logs (files, folders or globs) for shilling.

    ``kind``: ``"clickstream"`` or ``"recommender-api"`` (None: recognised by content);
    ``params``: detector id -> parameter overrides; ``reference``: earlier clickstream events
    (e.g. the week the model was trained on): an account is new when it is not in them, instead
    of when it is first seen late in the log (needed for a log of a day or less).
    """
    if reference is None:
        return hunt_events(read(paths, kind=kind), detectors=load_detectors(params))
    ref = read(reference, kind=CLICKSTREAM)
    known = frozenset(ref.events["user"].unique().to_pylist())
    result = hunt_events(read(paths, kind=kind), detectors=load_detectors(params), known=known)
    result.reference = ref.report
    return result
