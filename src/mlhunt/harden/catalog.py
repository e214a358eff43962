"""The mitigation catalog: one YAML file per mitigation beside its code in
``mlhunt/harden/mitigations/``. The YAML says what the mitigation *is* (id, the threat and the
assess attacks it answers, the scenarios it applies to, default parameters); the module named by
``entry`` does it. Files are validated on load: an unknown key, an attack id that assess does not
know, or an entry that does not resolve is a :class:`CatalogError` naming the file.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from mlhunt._units import load_units
from mlhunt.errors import CatalogError
from mlhunt.findings import Severity
from mlhunt.harden.base import HardenContext, Outcome


class MitigationFn(Protocol):
    def __call__(self, ctx: HardenContext) -> list[Outcome]: ...


class MitigationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^MLH-HARDEN-[A-Z0-9]+(-[A-Z0-9]+)*$", description="Stable id.")
    title: str
    description: str = Field(min_length=20, description="What it does and what 'effective' means.")
    addresses: list[str] = Field(description="Threat-model rule ids (MLH-ML-...) it mitigates.")
    attacks: list[str] = Field(description="Assess attack ids re-run before and after.")
    applies_to: list[str] = Field(description="Scenario names it can be applied to.")
    entry: str = Field(pattern=r"^[\w.]+:\w+$", description="module:function applying it.")
    params: dict[str, Any] = Field(default_factory=dict, description="Default parameters.")
    severity_if_ineffective: Severity = Field(
        Severity.LOW, description="Severity of the finding when the mitigation does not hold."
    )
    atlas: list[str] = Field(default_factory=list)
    owasp_ml: list[str] = Field(default_factory=list)
    notes: str = ""


@dataclass(frozen=True)
class CatalogMitigation:
    spec: MitigationSpec
    path: str

    @property
    def id(self) -> str:
        return self.spec.id

    def load(self) -> MitigationFn:
        module, fn = self.spec.entry.split(":")
        return getattr(importlib.import_module(module), fn)  # type: ignore[no-any-return]


def _check(spec: MitigationSpec) -> None:
    from mlhunt.assess.catalog import default_attacks

    known = {a.id for a in default_attacks()}
    for attack_id in spec.attacks:
        if attack_id not in known:
            raise CatalogError(f"attacks: unknown assess attack {attack_id!r}")
    for rule_id in spec.addresses:
        if not rule_id.startswith("MLH-ML-"):
            raise CatalogError(f"addresses: {rule_id!r} is not an ML threat rule id")
    # The entry is resolved on use: importing every module here would load torch for `--help`.


def load_mitigations(directory: Path | None = None) -> tuple[CatalogMitigation, ...]:
    """Every mitigation YAML under ``directory`` (default: the built-in ones), validated."""
    folder = directory or Path(str(resources.files("mlhunt.harden") / "mitigations"))
    units = load_units(folder, MitigationSpec, _check, "mitigation")
    return tuple(CatalogMitigation(spec, path) for spec, path in units)


@functools.cache
def default_mitigations() -> tuple[CatalogMitigation, ...]:
    return load_mitigations()
