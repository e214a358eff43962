"""The attack catalog: one YAML file per attack beside its code in ``mlhunt/assess/attacks/``.

The YAML carries what the attack *is* (id, mappings, when it applies, default parameters, how
its measured impact becomes a severity); the module named by ``entry`` carries what it *does*.
Every file is validated when the catalog loads: an unknown key, an ATLAS or OWASP id not in the
taxonomy, or an entry that does not resolve is a :class:`CatalogError` naming the file.
"""

from __future__ import annotations

import enum
import functools
import importlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlhunt._units import load_units
from mlhunt.assess.base import AttackFn
from mlhunt.errors import CatalogError
from mlhunt.findings import Severity
from mlhunt.threatmodel.catalog import load_taxonomy


class AttackKind(enum.StrEnum):
    EVASION = "evasion"
    PATCH = "patch"
    CORRUPTION = "corruption"
    EXTRACTION = "extraction"
    MEMBERSHIP = "membership"
    ATTRIBUTE = "attribute"
    INVERSION = "inversion"
    POISONING = "poisoning"


class Requirement(enum.StrEnum):
    """What a target or its data must offer for the attack to apply."""

    WHITE_BOX = "white_box"  # target.torch_module() or target.sklearn_estimator()
    TORCH = "torch"  # target.torch_module() specifically
    MEMBERS = "members"  # data.x_members and data.x_nonmembers
    POOL = "pool"  # data.x_pool
    SENSITIVE_FEATURE = "sensitive_feature"
    TRAINER = "trainer"
    BOXES = "boxes"  # data.extra["boxes_eval"]: where the object is (patch attacks)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeverityRule(_Strict):
    """How the measured impact becomes a severity: the first threshold reached, from critical
    down, wins; below ``low`` the finding is ``info``."""

    metric: str = Field(description="Key in the result's metrics that measures impact.")
    higher_is_worse: bool = Field(True, description="False when a lower value is worse.")
    thresholds: dict[Severity, float] = Field(
        description="Severity -> value of metric at which it applies (critical..low)."
    )

    def severity(self, metrics: dict[str, Any]) -> Severity:
        value = metrics.get(self.metric)
        if not isinstance(value, int | float):
            return Severity.INFO
        for sev in (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW):
            t = self.thresholds.get(sev)
            if t is None:
                continue
            if (value >= t) if self.higher_is_worse else (value <= t):
                return sev
        return Severity.INFO


class AttackSpec(_Strict):
    id: str = Field(pattern=r"^MLH-ASSESS-[A-Z0-9]+(-[A-Z0-9]+)*$", description="Stable id.")
    title: str
    kind: AttackKind
    description: str = Field(min_length=20, description="What it does and what a result means.")
    applies_to: list[str] = Field(description="Input kinds: tabular, image, recommender.")
    requires: list[Requirement] = Field(default_factory=list)
    black_box: bool = Field(description="True when it only uses predict_proba (query-charged).")
    cost: int = Field(ge=1, le=5, description="1 cheap .. 5 expensive: the runner's order.")
    queries: int | None = Field(
        None,
        ge=0,
        description="Queries it needs at its default parameters: under a global "
        "budget the runner gives it at least this much when it can.",
    )
    entry: str = Field(pattern=r"^[\w.]+:\w+$", description="module:function running it.")
    validates: list[str] = Field(
        description="Threat-model rule ids (MLH-ML-...) this attack proves or refutes."
    )
    atlas: list[str]
    owasp_ml: list[str]
    params: dict[str, Any] = Field(default_factory=dict, description="Default parameters.")
    severity: SeverityRule
    mitigations: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class CatalogAttack:
    spec: AttackSpec
    path: str

    @property
    def id(self) -> str:
        return self.spec.id

    def load(self) -> AttackFn:
        module, fn = self.spec.entry.split(":")
        return getattr(importlib.import_module(module), fn)  # type: ignore[no-any-return]


def _attacks_dir() -> Path:
    return Path(str(resources.files("mlhunt.assess") / "attacks"))


def _check(spec: AttackSpec, taxonomy: dict[str, dict[str, Any]]) -> None:
    for key, values in (("atlas", spec.atlas), ("owasp_ml", spec.owasp_ml)):
        for v in values:
            if v not in taxonomy.get(key, {}):
                raise CatalogError(f"{key}: unknown id {v!r}")
    for kind in spec.applies_to:
        if kind not in ("tabular", "image", "recommender"):
            raise CatalogError(
                f"applies_to: unknown input kind {kind!r} (tabular, image, recommender)"
            )
    for rule_id in spec.validates:
        if not rule_id.startswith("MLH-ML-"):
            raise CatalogError(f"validates: {rule_id!r} is not an ML threat rule id")


def load_attacks(directory: Path | None = None) -> tuple[CatalogAttack, ...]:
    """Every attack YAML under ``directory`` (default: the built-in ones), validated."""
    taxonomy = load_taxonomy()
    units = load_units(
        directory or _attacks_dir(), AttackSpec, lambda spec: _check(spec, taxonomy), "attack"
    )
    return tuple(CatalogAttack(spec, path) for spec, path in units)


@functools.cache
def default_attacks() -> tuple[CatalogAttack, ...]:
    return load_attacks()
