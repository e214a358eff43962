"""The LLM detector contract: a YAML half (what it is) and a code half (how it scores).

A detector gets every client's calls in time order and returns, per client, its *online*
score after each call (what it would have said had it run live; ``1.0`` is the usual alert
threshold) and evidence. :func:`alerts` turns the scores into :class:`Alert`s: the first
crossing of the lowest severity floor is ``detected_at_event``, the peak sets the severity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlhunt.llmhunt.records import Call

SEVERITIES = ("info", "low", "medium", "high", "critical")


class SigmaCorrelation(BaseModel):
    """A Sigma correlation over the gateway rule's events (e.g. tool calls per session)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["event_count", "value_count"]
    group_by: list[str]
    timespan: str = Field(pattern=r"^[0-9]+[smhd]$")
    gte: int = Field(ge=1)


class SigmaHint(BaseModel):
    """The part of a detector a SIEM can run over the flat gateway event: one field, one
    Sigma modifier, the values (any matches), optionally counted by a correlation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    modifier: Literal["re", "contains", "exists", "startswith", "endswith"]
    values: list[str | bool | int] = Field(min_length=1)
    correlation: SigmaCorrelation | None = None


class LlmDetectorSpec(BaseModel):
    """The YAML half of an LLM detector (unknown keys are errors naming the file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^MLH-HUNT-LLM-[A-Z0-9-]+$")
    title: str
    scope: str = "client_id"
    atlas: list[str]
    owasp_llm: list[str]
    validates: list[str] = Field(default_factory=list)
    params: dict[str, float | int | bool | str] = Field(default_factory=dict)
    severity: dict[str, float]
    description: str
    false_positive_notes: str
    mitigations: list[str] = Field(default_factory=list)
    sigma: SigmaHint | None = Field(
        None, description="A Sigma detection over the gateway log, where a SIEM can express it."
    )

    @field_validator("severity")
    @classmethod
    def _levels(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any(name not in SEVERITIES for name in v):
            raise ValueError(f"severity names must be among {SEVERITIES}")
        return dict(sorted(v.items(), key=lambda kv: kv[1]))

    @property
    def alert_at(self) -> float:
        return min(self.severity.values())

    def severity_for(self, score: float) -> str | None:
        out = None
        for name, floor in self.severity.items():
            if score >= floor:
                out = name
        return out


@dataclass
class ClientScore:
    """One client's online score after each of its calls, and evidence for a finding."""

    online: list[float]
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Alert:
    detector: str
    target: str
    score: float
    severity: str
    detected_at_event: int  # 1-based index among the client's calls
    events: int
    first_event_ts: float
    detected_ts: float
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Context:
    """Inputs from the user: canaries planted in system prompts, tool argument schemas."""

    canaries: tuple[str, ...] = ()
    tool_limits: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def has_texts(calls: Sequence[Call]) -> bool:
    """Whether any call carries texts: False when the reader's prefilters cleared them all
    (``Call.prefiltered``), so a detector of texts has nothing to find for this client."""
    return not all(c.prefiltered for c in calls)


@lru_cache(maxsize=64)
def load_spec(yaml_name: str) -> LlmDetectorSpec:
    """The validated YAML half of a detector shipped with the package (parsed once: the spec
    is frozen)."""
    path = Path(__file__).with_name(yaml_name)
    try:
        return LlmDetectorSpec.model_validate(yaml.safe_load(path.read_text("utf-8")))
    except Exception as exc:  # a packaging bug: loud, naming the file
        raise RuntimeError(f"{path}: {exc}") from exc


class LlmDetector:
    """Base class: subclasses set ``yaml_name`` and implement :meth:`score`."""

    yaml_name: ClassVar[str]
    #: the score compares a client with the population (the online guard passes it others too)
    population: ClassVar[bool] = False
    #: the guard scores it online per client (False: a hunt-only detector, e.g. campaigns)
    online: ClassVar[bool] = True

    def __init__(self, spec: LlmDetectorSpec) -> None:
        self.spec = spec

    @classmethod
    def load(cls) -> LlmDetector:
        return cls(load_spec(cls.yaml_name))

    def param(self, name: str) -> Any:
        return self.spec.params[name]

    def score(
        self, by_client: Mapping[str, Sequence[Call]], ctx: Context
    ) -> dict[str, ClientScore]:
        raise NotImplementedError

    def find(self, by_client: Mapping[str, Sequence[Call]], ctx: Context) -> list[Alert]:
        """The hunt's alerts: per client, from :meth:`score` (a detector whose finding is about
        a group of clients, such as a campaign, overrides this)."""
        return client_alerts(self, by_client, ctx)


def alerts(det: LlmDetector, by_client: Mapping[str, Sequence[Call]], ctx: Context) -> list[Alert]:
    """Alerts of one detector (:meth:`LlmDetector.find`)."""
    return det.find(by_client, ctx)


def client_alerts(
    det: LlmDetector, by_client: Mapping[str, Sequence[Call]], ctx: Context
) -> list[Alert]:
    """Per-client alerts from the online scores: the first call over the lowest severity floor
    is ``detected_at_event``, the peak sets the severity."""
    out: list[Alert] = []
    at = det.spec.alert_at
    for client, sc in det.score(by_client, ctx).items():
        calls = by_client[client]
        first = next((i for i, s in enumerate(sc.online) if s >= at), None)
        if first is None:
            continue
        peak = max(sc.online)
        out.append(
            Alert(
                detector=det.spec.id,
                target=client,
                score=round(float(peak), 3),
                severity=det.spec.severity_for(peak) or "info",
                detected_at_event=first + 1,
                events=len(calls),
                first_event_ts=calls[0].ts,
                detected_ts=calls[first].ts,
                evidence=sc.evidence,
            )
        )
    return out
