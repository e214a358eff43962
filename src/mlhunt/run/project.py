"""The project file (``mlhunt.yaml``): one system, where its model, logs, artifacts and manifests
are, the attack plan and budgets, thresholds and the output folder.

Every field is described (the descriptions drive ``mlhunt init``'s comments and the docs); paths
are relative to the project file. Loading reports the first problem as one line with file, line
and field, like the system description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlhunt.errors import InputError
from mlhunt.findings import Severity
from mlhunt.system.loader import parse_yaml, pydantic_error, read_text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoadTestConfig(_Strict):
    """The bounded load test of a scenario's live API on 127.0.0.1 (denial-of-service evidence).

    The defaults are a rate far below what the practice-range APIs serve on two busy cores (a
    few hundred requests per second) and a generous SLO (docs/run.md states the margin): the
    verdict does not depend on how busy the machine is. Declare your own service's peak rate
    and SLO here."""

    enabled: bool = Field(
        True,
        description="Run it when the threat model finds denial of AI service on the "
        "target's element (scenario targets only: never load-tests a remote URL).",
    )
    rate: float = Field(20.0, gt=0, le=1000, description="Declared arrival rate, requests/s.")
    requests: int = Field(200, ge=1, le=10_000, description="Requests to send in all.")
    concurrency: int = Field(4, ge=1, le=64, description="Concurrent connections.")
    slo_p99_ms: float = Field(
        2000.0, gt=0, description="SLO: 99th-percentile latency (ms) from each request's due time."
    )
    slo_error_rate: float = Field(
        0.01, ge=0, le=1, description="SLO: share of requests allowed to fail."
    )


class TargetConfig(_Strict):
    """How ``assess`` reaches one model: a built-in scenario, a file, a callable or an API."""

    element: str | None = Field(
        None,
        description="Element id in the system description that this model is (its "
        "threats get the verdicts). Default: every ML threat of the system.",
    )
    scenario: str | None = Field(
        None,
        description="Built-in scenario to use as the target (loan-approval, "
        "image-moderation, fraud-detection, clickstream-recommender).",
    )
    kind: Literal["sklearn", "torch", "callable", "http"] | None = Field(
        None, description="Target kind when not a scenario."
    )
    path: str | None = Field(
        None, description="sklearn model file (skops preferred) or torch state dict."
    )
    factory: str | None = Field(
        None,
        description="torch: 'module:function' building the module; callable: "
        "'module:predict_fn' returning class probabilities.",
    )
    url: str | None = Field(None, description="http: the prediction endpoint.")
    http_config: str | None = Field(
        None,
        description="http: YAML file mapping vectors to requests and responses to probabilities.",
    )
    api_key_env: str | None = Field(
        None, description="http: environment variable holding the API key (never the key)."
    )
    trust: bool = Field(
        False, description="Load a model file the scanner flags as unsafe (it may run code)."
    )
    spec: str | None = Field(None, description="Input spec YAML (features, ranges, mutable).")
    data: str | None = Field(None, description="Evaluation data .npz (x, y; members optional).")
    live: bool = Field(
        True,
        description="scenario: send black-box queries through the real HTTP API on "
        "127.0.0.1 (false: in-process).",
    )
    attacks: list[str] = Field(
        default_factory=list,
        description="Attack ids or kinds to run (default: every attack "
        "the threat model says applies).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Attack parameter overrides, 'ATTACK-ID.key': value."
    )
    max_queries: int | None = Field(
        None, ge=1, description="Query budget for all attacks on this model together."
    )
    max_seconds: float | None = Field(
        None, gt=0, description="Time budget for all attacks on this model together."
    )
    load_test: LoadTestConfig = Field(
        default_factory=LoadTestConfig,
        description="scenario: a bounded load test of its live API against a declared SLO.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> TargetConfig:
        if (self.scenario is None) == (self.kind is None):
            raise ValueError("give exactly one of 'scenario' or 'kind'")
        return self


class LogConfig(_Strict):
    """Inference logs for ``hunt`` (DESIGN.md log schema)."""

    path: str = Field(
        description="File, folder or glob (JSONL, CSV, Parquet; .gz allowed). With 'simulate', "
        "the file to write, relative to the output folder."
    )
    element: str | None = Field(
        None,
        description="Element id of the API that wrote these logs (its threats get "
        "'observed'). Default: every ML threat of the system.",
    )
    engine: Literal["duckdb", "spark"] = Field("duckdb", description="Hunt engine.")
    reference: str | None = Field(
        None, description="Training or known-good inputs that sharpen distribution checks."
    )
    simulate: str | None = Field(
        None,
        description="Instead of real logs: simulate this built-in scenario's traffic "
        "into 'path' first (the demo uses this; llm-helpdesk: the LLM range's gateway log).",
    )
    scale: float = Field(
        1.0, gt=0, le=10, description="simulate: multiply the simulated traffic volumes."
    )
    canaries: list[str] = Field(
        default_factory=list,
        description="LLM logs: strings planted in the system prompt (a completion holding one "
        "is a leak). The llm-helpdesk simulation adds its own.",
    )
    tool_limits: str | None = Field(
        None,
        description="LLM logs: YAML/JSON file of tool name -> JSON Schema of its arguments.",
    )


class ScanConfig(_Strict):
    """Artifacts and manifests for ``scan``."""

    path: str | None = Field(None, description="File or folder to scan.")
    scenario: str | None = Field(
        None,
        description="Instead of a path: the model artifact a built-in scenario's build "
        "publishes, in the format its system description declares (scanned, never loaded).",
    )
    element: str | None = Field(
        None, description="Element id the scanned files belong to (e.g. the model artifact)."
    )
    owners: dict[str, str] = Field(
        default_factory=dict,
        description="Manifest (path or glob under 'path') -> the element it deploys: its "
        "policy and secrets findings validate that element's deployment threats, and "
        "manifests checked clean refute them.",
    )

    @model_validator(mode="after")
    def _one_owner(self) -> ScanConfig:
        if self.element is not None and self.owners:
            raise ValueError("give 'element' (one owner for everything) or 'owners', not both")
        return self

    @model_validator(mode="after")
    def _one_source(self) -> ScanConfig:
        if (self.path is None) == (self.scenario is None):
            raise ValueError("give exactly one of 'path' or 'scenario'")
        if self.scenario is not None and self.owners:
            raise ValueError(
                "'owners' maps files under 'path'; a scenario's artifact takes 'element'"
            )
        return self


class HardenConfig(_Strict):
    """A mitigation check for ``harden`` (``mlhunt harden mlhunt.yaml``, and ``run``)."""

    scenario: str = Field(description="Built-in scenario whose model is hardened.")
    element: str | None = Field(
        None,
        description="Element id of that model (its threats show the result). Default: "
        "the element of the project's model with the same scenario, else every ML "
        "threat.",
    )
    mitigations: list[str] = Field(
        default_factory=list,
        description="Mitigation ids or short names (dp-logreg, "
        "adv-training ...). Default: every mitigation that applies to the scenario.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Mitigation parameter overrides, 'ID.key': value."
    )


class Project(_Strict):
    """An mlhunt project: everything ``mlhunt run`` needs for one system."""

    name: str | None = Field(None, description="Display name (default: the system's name).")
    system: str = Field(description="System description YAML (see `mlhunt schema`).")
    models: list[TargetConfig] = Field(default_factory=list, description="Models to attack.")
    logs: list[LogConfig] = Field(default_factory=list, description="Logs to hunt.")
    scan: list[ScanConfig] = Field(default_factory=list, description="Paths to scan.")
    harden: list[HardenConfig] = Field(
        default_factory=list, description="Mitigations to prove (mlhunt harden) per model."
    )
    thresholds: dict[str, dict[Severity, float]] = Field(
        default_factory=dict,
        description="Severity thresholds per attack (id, short name or kind): {severity: value "
        "of its impact metric}, e.g. extraction: {critical: 0.99}.",
    )
    fail_on: Severity | None = Field(
        None, description="Exit 1 when an open finding reaches this severity."
    )
    output: str = Field("mlhunt-report", description="Report folder.")
    seed: int = Field(
        0, ge=0, lt=2**32, description="Seed for attacks and simulations (deterministic runs)."
    )

    # Set by load_project: the folder relative paths are resolved against.
    base: Path = Field(Path("."), exclude=True)
    file: str = Field("mlhunt.yaml", exclude=True)

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.base / p


def load_project(path: str | Path) -> Project:
    """Read and validate a project file; problems are one-line :class:`InputError`s."""
    text = read_text(path)
    data = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise InputError("expected a mapping at the top level", file=str(path), line=1)
    for internal in ("base", "file"):
        if internal in data:
            raise InputError(f"unknown field {internal!r}", file=str(path), field=internal)
    try:
        project = Project.model_validate(data)
    except ValidationError as exc:
        raise pydantic_error(exc, Project, text, str(path)) from None
    project.base = Path(path).resolve().parent
    project.file = str(path)
    system = project.resolve(project.system)
    if not system.is_file():
        raise InputError(f"system description not found: {system}", file=str(path), field="system")
    return project
