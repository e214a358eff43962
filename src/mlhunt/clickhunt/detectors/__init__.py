"""The clickstream detectors, registered in one place (:data:`REGISTRY`: YAML stem -> class).

A clickstream detector looks at the whole population at once (groups of accounts, not one
client's stream), so it has its own small contract: a YAML half validated like the inference
detectors' (unknown keys, unknown ATLAS / OWASP ML / threat-rule ids are errors naming the
file) and a :meth:`ClickDetector.groups` that returns :class:`GroupAlert` s.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlhunt.errors import CatalogError, InputError

SEVERITIES = ("info", "low", "medium", "high", "critical")
#: YAML stem -> "module:Class" (modules under mlhunt.clickhunt.detectors).
REGISTRY: dict[str, str] = {"shilling": "shilling:ShillingDetector"}


class SigmaHint(BaseModel):
    """Tuning of one raw-event correlation rule of the clickstream Sigma export."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gte: int | None = None
    timespan: str | None = Field(None, pattern=r"^[0-9]+[smhd]$")


class ClickDetectorSpec(BaseModel):
    """The YAML half of a clickstream detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^MLH-HUNT-[A-Z0-9-]+$")
    title: str
    scope: str = "group"
    atlas: list[str]
    owasp_ml: list[str] = Field(default_factory=list)
    validates: list[str] = Field(default_factory=list)
    params: dict[str, float | int | bool | str] = Field(default_factory=dict)
    severity: dict[str, float]
    description: str
    false_positive_notes: str
    mitigations: list[str] = Field(default_factory=list)
    sigma: dict[str, SigmaHint] = Field(default_factory=dict)

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
class GroupAlert:
    """One group a detector fired on: ``target`` is what the group pushes (an item id)."""

    detector: str
    target: str
    score: float
    severity: str
    members: list[str]
    first_event_ts: float
    detected_ts: float
    events: int
    evidence: dict[str, Any] = field(default_factory=dict)


class ClickDetector:
    """Base class: subclasses implement :meth:`groups`."""

    def __init__(self, spec: ClickDetectorSpec) -> None:
        self.spec = spec

    def p(self, name: str) -> float:
        return float(self.spec.params[name])

    def groups(self, events: pa.Table, known: frozenset[str] | None = None) -> list[GroupAlert]:
        """Alerts over ``events``; ``known``: accounts seen in a reference (earlier events, the
        data the model was trained on), which makes every other account new."""
        raise NotImplementedError


def _known_ids() -> tuple[set[str], set[str], set[str]]:
    import mlhunt

    tm = Path(mlhunt.__file__).parent / "threatmodel"
    tax = yaml.safe_load((tm / "taxonomy.yaml").read_text("utf-8"))
    rules = {p.stem for p in (tm / "rules").rglob("MLH-*.yaml")}
    return set(tax["atlas"]), set(tax["owasp_ml"]), rules


def load_spec(path: Path) -> ClickDetectorSpec:
    """One detector YAML, validated; errors are :class:`CatalogError` naming the file."""
    try:
        spec = ClickDetectorSpec.model_validate(yaml.safe_load(path.read_text("utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CatalogError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    atlas, owasp, rules = _known_ids()
    for kind, ids, known in (
        ("atlas", spec.atlas, atlas),
        ("owasp_ml", spec.owasp_ml, owasp),
        ("validates", spec.validates, rules),
    ):
        bad = [i for i in ids if i not in known]
        if bad:
            raise CatalogError(f"{path}: {kind}: unknown id(s) {', '.join(bad)}")
    return spec


def load_detectors(params: dict[str, dict[str, Any]] | None = None) -> list[ClickDetector]:
    """Every registered clickstream detector; ``params`` overrides thresholds per detector id."""
    out = []
    for stem, target in REGISTRY.items():
        spec = load_spec(Path(__file__).with_name(f"{stem}.yaml"))
        if params and spec.id in params:
            unknown = set(params[spec.id]) - set(spec.params)
            if unknown:
                raise InputError(f"{spec.id}: unknown parameter(s) {', '.join(sorted(unknown))}")
            spec = spec.model_copy(update={"params": {**spec.params, **params[spec.id]}})
        mod, cls = target.split(":")
        det_cls = getattr(importlib.import_module(f"mlhunt.clickhunt.detectors.{mod}"), cls)
        out.append(det_cls(spec))
    return out


__all__ = [
    "REGISTRY",
    "ClickDetector",
    "ClickDetectorSpec",
    "GroupAlert",
    "load_detectors",
    "load_spec",
]
