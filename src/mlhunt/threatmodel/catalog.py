"""The threat catalog: one YAML file per rule, validated when it loads.

A rule names what it applies to (element kinds or flows), a condition over the typed model,
likelihood and impact factors, the controls that mitigate it, concrete mitigations and its
mappings (STRIDE, LINDDUN, MITRE ATLAS, OWASP ML / LLM Top 10, CWE, PCI DSS, GDPR). Every id it
maps to is checked against ``taxonomy.yaml``; every condition is compiled against the model. Any
mistake is a :class:`CatalogError` naming the file.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlhunt.errors import CatalogError
from mlhunt.pycache import cached_json
from mlhunt.system.model import ControlType, Element, ElementKind, Flow, SystemDescription
from mlhunt.threatmodel.conditions import compile_condition
from mlhunt.threatmodel.guards import compile_guarded

_YamlLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available

ELEMENT_SCOPE: dict[str, type] = {"element": Element, "system": SystemDescription}
FLOW_SCOPE: dict[str, type] = {
    "flow": Flow,
    "source": Element,
    "target": Element,
    "system": SystemDescription,
}

#: Groups usable in ``kinds`` besides the element kinds themselves.
KIND_GROUPS: dict[str, frozenset[ElementKind]] = {
    "any": frozenset(ElementKind),
    "external": frozenset(
        {ElementKind.EXTERNAL_ENTITY, ElementKind.ACTOR, ElementKind.DATA_SOURCE}
    ),
    "store": frozenset(
        {
            ElementKind.DATA_STORE,
            ElementKind.MODEL_REGISTRY,
            ElementKind.MODEL_ARTIFACT,
            ElementKind.VECTOR_STORE,
            ElementKind.MESSAGE_BUS,
        }
    ),
    "ml": frozenset(
        {
            ElementKind.TRAINING_JOB,
            ElementKind.MODEL_REGISTRY,
            ElementKind.MODEL_ARTIFACT,
            ElementKind.INFERENCE_API,
            ElementKind.LLM,
            ElementKind.FEATURE_PIPELINE,
        }
    ),
}
KIND_GROUPS["process"] = frozenset(ElementKind) - KIND_GROUPS["external"] - KIND_GROUPS["store"]


class Framework(enum.StrEnum):
    STRIDE = "STRIDE"
    LINDDUN = "LINDDUN"
    ML = "ML"


class LikelihoodFactor(enum.StrEnum):
    """Exposure that makes a threat more likely; each one present adds one point."""

    INTERNET_FACING = "internet_facing"
    CROSSES_BOUNDARY = "crosses_boundary"
    NO_AUTH = "no_auth"
    NO_RATE_LIMIT = "no_rate_limit"
    SCORES_EXPOSED = "scores_exposed"
    UNTRUSTED_DATA = "untrusted_data"
    FEEDBACK_LOOP = "feedback_loop"
    SHARED_TENANCY = "shared_tenancy"
    PRIVILEGED = "privileged"
    PHYSICAL_INPUTS = "physical_inputs"
    THIRD_PARTY_WEIGHTS = "third_party_weights"


class ImpactFactor(enum.StrEnum):
    """Business consequence drivers; each adjusts impact up or down."""

    SENSITIVITY = "sensitivity"
    CRITICALITY = "criticality"
    IP_VALUE = "ip_value"
    #: What the element can do (element.agency): a payment +1, a write or message 0, a read -1.
    AGENCY = "agency"
    #: The element's data concern children (element.concerns_children): +1.
    CHILDREN = "children"


class Capability(enum.StrEnum):
    """Attacker capability the threat needs (PASTA attack simulation): more skill, less likely."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Likelihood(_Strict):
    base: int = Field(3, ge=1, le=5, description="Likelihood before exposure, 1..5.")
    factors: list[LikelihoodFactor] = Field(default_factory=list)
    capability: Capability = Field(Capability.MEDIUM, description="Attacker capability needed.")


class Impact(_Strict):
    base: int = Field(3, ge=1, le=5, description="Impact before business factors, 1..5.")
    factors: list[ImpactFactor] = Field(default_factory=list)
    bounded_by: list[ControlType] = Field(
        default_factory=list,
        description="Controls that bound the loss without making the threat less likely (a "
        "cap on a tool, a log to reverse from): any of them in place takes 1 off impact, and "
        "they do not lower likelihood.",
    )


class Mitigation(_Strict):
    control: ControlType = Field(description="Control type that implements it.")
    action: str = Field(min_length=10, description="What to do, concretely.")


class Compliance(_Strict):
    when: str = Field("True", description="Condition (same scope as the rule's) for these refs.")
    pci_dss: list[str] = Field(default_factory=list)
    gdpr: list[str] = Field(default_factory=list)


class Rule(_Strict):
    id: str = Field(pattern=r"^MLH-[A-Z0-9]+(-[A-Z0-9]+)+$")
    title: str = Field(description="May contain {name}: the target's name.")
    description: str = Field(min_length=20)
    framework: Framework
    scope: Literal["element", "flow"]
    kinds: list[str] = Field(
        default_factory=lambda: ["any"],
        description="Element kinds or groups (any, external, process, store, ml); for flows, "
        "the kinds of either end.",
    )
    condition: str = Field("True", description="Expression over the typed model.")
    stride: list[str] = Field(default_factory=list)
    linddun: list[str] = Field(default_factory=list)
    atlas: list[str] = Field(default_factory=list)
    owasp_ml: list[str] = Field(default_factory=list)
    owasp_llm: list[str] = Field(default_factory=list)
    cwe: list[str] = Field(default_factory=list)
    likelihood: Likelihood = Field(default_factory=Likelihood)
    impact: Impact = Field(default_factory=Impact)
    mitigated_by: list[ControlType] = Field(
        default_factory=list, description="Controls that lower likelihood when in place."
    )
    mitigations: list[Mitigation] = Field(min_length=1)
    compliance: list[Compliance] = Field(default_factory=list)
    cause: str = Field(
        "",
        description="Shared cause: rules with the same cause (one threat seen on flows and on "
        "stores) are reported as one finding. Empty: the rule id.",
    )
    internals: bool = Field(
        False,
        description="About how a component is run (privileges, tenancy, logging): not applied "
        "to vendor-operated elements, whose internals the system owner neither sees nor fixes.",
    )
    false_positives: str = Field("", description="When this fires but is not a real threat.")
    detection: str = Field("", description="How the threat shows itself in operation.")

    @model_validator(mode="after")
    def _kinds_known(self) -> Rule:
        for k in self.kinds:
            if k not in KIND_GROUPS and k not in ElementKind._value2member_map_:
                raise ValueError(f"unknown kind {k!r}")
        if not (self.stride or self.linddun or self.atlas or self.owasp_ml or self.owasp_llm):
            raise ValueError("a rule must map to at least one framework category")
        return self


# Bit sets: the engine's inner loop compares masks instead of hashing enum members.
FACTOR_BIT: dict[LikelihoodFactor, int] = {f: 1 << i for i, f in enumerate(LikelihoodFactor)}
CONTROL_BIT: dict[ControlType, int] = {c: 1 << i for i, c in enumerate(ControlType)}


def mask(items: Iterable[Any], bits: dict[Any, int]) -> int:
    out = 0
    for item in items:
        out |= bits[item]
    return out


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A validated rule with its conditions compiled and its kinds expanded."""

    rule: Rule
    path: str
    kinds: frozenset[ElementKind]
    condition: Callable[..., bool]
    compliance: tuple[tuple[Callable[..., bool], Compliance], ...]
    # Precomputed for the engine's inner loop.
    factor_mask: int = 0
    mitigated_mask: int = 0
    mitigation_mask: int = 0
    description: str = ""
    framework: str = ""
    #: Boolean attributes of the element (or flow) the condition requires: (name, value).
    guards: tuple[tuple[str, bool], ...] = ()
    #: Kinds that ``element`` (or ``source`` / ``target``) must have: (name, kind values).
    kind_guards: tuple[tuple[str, frozenset[str]], ...] = ()
    #: The condition less its guards: what the engine checks on the objects where all hold.
    residual: Callable[..., bool] | None = None

    @property
    def id(self) -> str:
        return self.rule.id


@dataclass(frozen=True)
class Catalog:
    rules: tuple[CompiledRule, ...]
    taxonomy: dict[str, dict[str, Any]]

    def by_id(self, rule_id: str) -> CompiledRule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def _rules_dir() -> Path:
    return Path(str(resources.files("mlhunt.threatmodel") / "rules"))


@functools.cache
def load_taxonomy() -> dict[str, dict[str, Any]]:
    path = Path(str(resources.files("mlhunt.threatmodel") / "taxonomy.yaml"))
    return read_yaml(path, SHIPPED_CACHE)  # type: ignore[no-any-return]


#: Where the shipped rules' parsed form is kept: beside this package's bytecode.
SHIPPED_CACHE = Path(__file__).with_name("__pycache__")


def read_yaml(path: Path, cache: Path | None = None) -> Any:
    """A YAML file's data. With ``cache`` (only for files mlhunt ships: see
    :mod:`mlhunt.pycache`), the data is parsed once and kept there as JSON (PyYAML is ~0.02 s
    of every catalog load, JSON ~1 ms), named by the text's size and CRC-32, which tell an
    edited file from the one parsed."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    if cache is None:
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 (a safe loader)
    return cached_json(
        cache,
        "rules",
        raw,
        lambda: yaml.load(text, Loader=_YamlLoader),  # noqa: S506 (a safe loader)
    )


def _check_ids(rule: Rule, taxonomy: dict[str, dict[str, Any]]) -> None:
    checks = {
        "stride": rule.stride,
        "linddun": rule.linddun,
        "atlas": rule.atlas,
        "owasp_ml": rule.owasp_ml,
        "owasp_llm": rule.owasp_llm,
    }
    for key, values in checks.items():
        known = taxonomy.get(key, {})
        for v in values:
            if v not in known:
                raise CatalogError(f"{key}: unknown id {v!r}")
    for c in rule.cwe:
        if not c.startswith("CWE-") or not c[4:].isdigit():
            raise CatalogError(f"cwe: {c!r} is not of the form CWE-<number>")


def compile_rule(data: Any, path: str, taxonomy: dict[str, dict[str, Any]]) -> CompiledRule:
    """Validate one rule document; any problem is a CatalogError naming ``path``."""
    try:
        rule = Rule.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise CatalogError(f"{path}: {where}: {err['msg']}") from None
    scope = ELEMENT_SCOPE if rule.scope == "element" else FLOW_SCOPE
    try:
        _check_ids(rule, taxonomy)
        owner = Element if rule.scope == "element" else Flow
        condition, residual, guards, kind_guards = compile_guarded(
            rule.condition, scope, rule.scope, owner
        )
        compliance = tuple((compile_condition(c.when, scope), c) for c in rule.compliance)
    except CatalogError as exc:
        raise CatalogError(f"{path}: {rule.id}: {exc}") from None
    kinds: set[ElementKind] = set()
    for k in rule.kinds:
        kinds |= KIND_GROUPS.get(k) or {ElementKind(k)}
    return CompiledRule(
        rule,
        path,
        frozenset(kinds),
        condition,
        compliance,
        factor_mask=mask(rule.likelihood.factors, FACTOR_BIT),
        mitigated_mask=mask(
            {*rule.mitigated_by, *(m.control for m in rule.mitigations)}, CONTROL_BIT
        ),
        mitigation_mask=mask((m.control for m in rule.mitigations), CONTROL_BIT),
        description=" ".join(rule.description.split()),
        framework=rule.framework.value,
        guards=guards,
        kind_guards=kind_guards,
        residual=residual,
    )


def load_catalog(extra_dirs: Iterable[str | Path] = ()) -> Catalog:
    """The built-in rules plus any in ``extra_dirs`` (a project's own rules)."""
    taxonomy = load_taxonomy()
    rules: list[CompiledRule] = []
    seen: dict[str, str] = {}
    shipped = _rules_dir()
    for directory in (shipped, *map(Path, extra_dirs)):
        if not directory.is_dir():
            raise CatalogError(f"{directory}: rules directory not found")
        for path in sorted(directory.rglob("*.yaml")):
            try:
                data = read_yaml(path, SHIPPED_CACHE if directory == shipped else None)
            except yaml.YAMLError as exc:
                raise CatalogError(f"{path}: invalid YAML: {exc}") from None
            except UnicodeDecodeError as exc:
                raise CatalogError(f"{path}: not UTF-8 text ({exc.reason})") from None
            except Exception as exc:  # a value PyYAML cannot build (`2001-13-45`, a huge int)
                reason = f"{type(exc).__name__}: {exc}"[:200]
                raise CatalogError(f"{path}: invalid YAML: {reason}") from None
            compiled = compile_rule(data, str(path), taxonomy)
            if compiled.id in seen:
                raise CatalogError(
                    f"{path}: duplicate rule id {compiled.id} (also in {seen[compiled.id]})"
                )
            seen[compiled.id] = str(path)
            rules.append(compiled)
    if not rules:
        raise CatalogError("the threat catalog is empty")
    return Catalog(tuple(rules), taxonomy)


@functools.cache
def default_catalog() -> Catalog:
    return load_catalog()


def applies_to_flow(rule: CompiledRule, flow: Flow) -> bool:
    return flow.source_element.kind in rule.kinds or flow.target_element.kind in rule.kinds
