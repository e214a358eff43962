"""The detector contract.

A detector is one module (the code) plus one YAML file (what it is: id, title, scope, ATLAS and
OWASP ML ids, the threat-model rules it validates, thresholds, severity mapping, description,
false-positive notes, Sigma hints), registered in :mod:`mlhunt.hunt.detectors`.

An engine hands a detector a :class:`~mlhunt.hunt.events.GroupBatch` of its scope (client ids or
source addresses) and the :class:`~mlhunt.hunt.events.Population`. :meth:`Detector.score`
returns a :class:`Scored`: the detector's *online* score after each event (computed from that
target's events up to and including it, so it is what the detector would have said had it run
live; ``1.0`` is the alert threshold) plus per-event columns it wants for evidence.
:func:`alerts_from_scores` turns the scores into :class:`Alert`s (first crossing =
``detected_at_event``, peak = severity) and asks :meth:`Detector.evidence` for the few targets
that alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlhunt.hunt.events import GroupBatch, Population

Scope = Literal["client_id", "source_ip"]
SEVERITIES = ("info", "low", "medium", "high", "critical")


class SigmaHint(BaseModel):
    """Tuning of one correlation rule of the Sigma export (``mlhunt/hunt/sigma/inference.yaml``)
    that expresses part of this detector over raw logs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gte: int | None = None
    timespan: str | None = Field(None, pattern=r"^[0-9]+[smhd]$")


class DetectorSpec(BaseModel):
    """The YAML half of a detector (unknown keys are errors naming the file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^MLH-HUNT-[A-Z0-9-]+$")
    title: str
    scope: Scope
    atlas: list[str]
    owasp_ml: list[str] = Field(default_factory=list)
    validates: list[str] = Field(default_factory=list)
    params: dict[str, float | int | bool | str] = Field(default_factory=dict)
    severity: dict[str, float] = Field(
        description="Severity name -> minimum peak score (1.0 = the alert threshold)."
    )
    description: str
    false_positive_notes: str
    mitigations: list[str] = Field(default_factory=list)
    sigma: dict[str, SigmaHint] = Field(
        default_factory=dict, description="Correlation rule name -> threshold/timespan."
    )

    @field_validator("severity")
    @classmethod
    def _levels(cls, v: dict[str, float]) -> dict[str, float]:
        for name in v:
            if name not in SEVERITIES:
                raise ValueError(f"unknown severity {name!r}")
        if not v:
            raise ValueError("at least one severity level")
        return dict(sorted(v.items(), key=lambda kv: kv[1]))

    @property
    def alert_at(self) -> float:
        """The lowest score that makes an alert."""
        return min(self.severity.values())

    def severity_for(self, score: float) -> str | None:
        out = None
        for name, floor in self.severity.items():  # sorted by floor
            if score >= floor:
                out = name
        return out


@dataclass(frozen=True)
class GroupNeed:
    """What a group (one target's events) must have for a detector to fire on it at all; an
    engine may drop every group that meets no detector's need before the sequential scan (the
    alerts do not change, since the scores are per group).

    ``events``: at least ``count`` events. ``clients``: at least ``count`` distinct client ids.
    ``burst``: at least ``count`` events (only 401/403 answers if ``denied``) inside some
    window of ``window_s`` seconds.
    """

    kind: Literal["events", "clients", "burst"]
    count: float
    window_s: float = 0.0
    denied: bool = False


@dataclass
class Scored:
    """A detector's online score per event (``>= spec.alert_at`` fires) and evidence columns."""

    online: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Alert:
    """One target a detector fired on (engine-neutral; becomes a Finding in ``alerts.py``)."""

    detector: str
    scope: str
    target: str
    score: float
    severity: str
    detected_at_event: int
    first_event_ts: float
    detected_ts: float
    events: int
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """Flat row (evidence as JSON text) for engines that ship alerts between processes."""
        import json

        return {
            "detector": self.detector,
            "scope": self.scope,
            "target": self.target,
            "score": self.score,
            "severity": self.severity,
            "detected_at_event": self.detected_at_event,
            "first_event_ts": self.first_event_ts,
            "detected_ts": self.detected_ts,
            "events": self.events,
            "evidence": json.dumps(self.evidence, sort_keys=True, default=str),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        import json

        data = dict(row)
        data["evidence"] = json.loads(data["evidence"]) if data.get("evidence") else {}
        return cls(**data)


class Detector:
    """Base class: subclasses set ``module_id`` and implement :meth:`score` (and may override
    :meth:`evidence`). ``needs`` names what the detector reads: "input", "margin", "status"."""

    module_id: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec

    def p(self, name: str) -> float:
        return float(self.spec.params[name])

    def applies(self, pop: Population) -> bool:
        """False when the logs lack what this detector reads (e.g. no inputs logged)."""
        return not ("input" in self.needs and (pop.d == 0 or not pop.edges))

    def score(self, batch: GroupBatch, pop: Population) -> Scored:
        raise NotImplementedError

    def prefilter(self) -> GroupNeed | None:
        """A necessary condition for an alert on a group (None: any group may alert). Only
        valid while a score of 0 cannot alert, so never offered for ``alert_at <= 0``."""
        return self.need() if self.spec.alert_at > 0 else None

    def need(self) -> GroupNeed | None:
        """See :meth:`prefilter`; must hold for every group that can alert. By default, at
        least ``min_events`` events for a detector with that parameter (it counts events, so
        a group with fewer cannot reach it), else None; subclasses override it."""
        return (
            GroupNeed("events", self.p("min_events")) if "min_events" in self.spec.params else None
        )

    def evidence(
        self, batch: GroupBatch, pop: Population, scored: Scored, g: int, fired: int
    ) -> dict[str, Any]:
        """Evidence for group ``g`` that first fired at its event ``fired`` (0-based)."""
        return {}


def alerts_from_scores(
    det: Detector, batch: GroupBatch, pop: Population, scored: Scored
) -> list[Alert]:
    """Alerts for every group whose online score reached the alert threshold."""
    from mlhunt.hunt._kern_segments import first_and_peak  # (numba: imported on use)

    spec = det.spec
    # one compiled pass (the scores are cleaned as np.nan_to_num(nan=0, posinf=1e6) would)
    first, peaks = first_and_peak(
        np.ascontiguousarray(scored.online, dtype=np.float64), batch.offsets, float(spec.alert_at)
    )
    out = []
    for g in np.flatnonzero(first >= 0).tolist():
        start = int(batch.offsets[g])
        fired = int(first[g])
        peak = float(peaks[g])
        sev = spec.severity_for(peak)
        if sev is None:
            continue
        scores = scored.online[start : start + int(batch.lengths[g])]
        ev = {
            "detector": spec.id,
            "scope": spec.scope,
            "validates": list(spec.validates),
            **det.evidence(batch, pop, scored, g, fired),
            "series": score_series(np.nan_to_num(scores, nan=0.0, posinf=1e6), fired),
            "threshold": spec.alert_at,
        }
        out.append(
            Alert(
                detector=spec.id,
                scope=spec.scope,
                target=batch.keys[g],
                score=round(peak, 3),
                severity=sev,
                detected_at_event=fired + 1,
                first_event_ts=float(batch.ts[start]),
                detected_ts=float(batch.ts[start + fired]),
                events=int(batch.lengths[g]),
                evidence=ev,
            )
        )
    return out


SERIES_POINTS = 120  # enough for a timeline plot, small enough for the JSON


def score_series(scores: np.ndarray, fired: int) -> list[list[float]]:
    """The target's online score after each event, thinned to ``SERIES_POINTS`` (event number
    1-based, score), always keeping the event where the alert fired: the hunt timeline."""
    n = len(scores)
    idx = np.unique(np.r_[np.linspace(0, n - 1, min(n, SERIES_POINTS)).round().astype(int), fired])
    return [[int(i) + 1, round(float(scores[i]), 4)] for i in idx]


def run_detectors(batch: GroupBatch, pop: Population, detectors: list[Detector]) -> list[Alert]:
    """Run every detector of ``batch.scope`` on the batch: what an engine calls per batch."""
    out: list[Alert] = []
    for det in detectors:
        if det.spec.scope != batch.scope or not det.applies(pop) or batch.n == 0:
            continue
        out.extend(alerts_from_scores(det, batch, pop, det.score(batch, pop)))
    return out


def sample_rows(batch: GroupBatch, g: int, rows: np.ndarray, k: int = 5) -> list[dict[str, Any]]:
    """Up to ``k`` of group ``g``'s events (``rows``: absolute indices) for a hunter to look at."""
    out = []
    for i in rows[:k].tolist():
        x = batch.x[i]
        out.append(
            {
                "file": str(batch.file[i]),
                "line": int(batch.line[i]),
                "ts": float(batch.ts[i]),
                "client_id": str(batch.client[i]),
                "input": None if np.isnan(x).any() else [round(float(v), 6) for v in x[:16]],
            }
        )
    return out
