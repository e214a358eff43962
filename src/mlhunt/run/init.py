"""``mlhunt init``: a commented starter project file, its comments taken from the field
descriptions of :mod:`mlhunt.run.project` (one source of truth for docs and starter), and the
files it names (a system description, and with a scenario its deployment manifests), so that
the project runs as written."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from mlhunt.run.project import LogConfig, Project, ScanConfig, TargetConfig


def _comment(model: type[BaseModel], name: str) -> str:
    desc = model.model_fields[name].description or ""
    return " ".join(desc.split())


def _block(model: type[BaseModel], values: dict[str, Any], indent: str, first: str) -> list[str]:
    lines: list[str] = []
    values = {k: v for k, v in values.items() if v is not None}  # None: the field's default
    for i, (key, value) in enumerate(values.items()):
        lead = first if i == 0 else indent
        dumped = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
        dumped = dumped.removesuffix("\n...").removesuffix("...").strip()
        lines.append(f"{lead}{key}: {dumped}  # {_comment(model, key)}")
    return lines


# The element each built-in scenario's model is (its threats get the verdicts); None: every ML
# threat of the system. Matches the scenario's system template under scenarios/templates/.
SCENARIO_ELEMENT: dict[str, str | None] = {
    "loan-approval": "prediction-api",
    "image-moderation": "moderation-inference",
    "fraud-detection": None,
    "clickstream-recommender": None,
}

# Which element each built-in scenario's manifest deploys (scan[].owners), as in its example's
# mlhunt.yaml: the manifests' findings become that element's evidence.
SCENARIO_OWNERS: dict[str, dict[str, str]] = {
    "loan-approval": {
        "prediction-api.yaml": "prediction-api",
        "dashboard.yaml": "dashboard",
        "analyst-notebook.yaml": "analyst-notebook",
    },
    "image-moderation": {
        "moderation-inference.yaml": "moderation-inference",
        "training.yaml": "training-pipeline",
    },
    "fraud-detection": {"scoring.yaml": "scoring-api", "feature-job.yaml": "feature-job"},
}

# The system description `init` writes without a scenario: one model API behind an API key,
# enough for `mlhunt run` to threat-model; replace it with your system (`mlhunt schema`).
STARTER_SYSTEM = """\
# mlhunt system description (starter): replace with your own system. Reference: `mlhunt schema`.
name: My ML system
elements:
  - id: client
    name: API client
    kind: external_entity
  - id: prediction-api
    name: Prediction API
    kind: inference_api
    authentication: api_key
    data: [score-request]
    model:
      task: classification
      input_type: tabular
      output: scores
data_assets:
  - id: score-request
    name: Scoring request
    classification: personal
flows:
  - id: predict
    source: client
    target: prediction-api
    name: POST /predict
    protocol: https
    encrypted: true
    authenticated: true
    data: [score-request]
"""


def template_files(scenario: str) -> dict[str, str]:
    """A built-in scenario's project files besides mlhunt.yaml (relative path -> text): its
    system description and deployment manifests, the same as ``examples/<scenario>/``."""
    root = resources.files("mlhunt.scenarios") / "templates" / scenario
    out = {"system.yaml": (root / "system.yaml").read_text(encoding="utf-8")}
    deploy = root / "deploy"
    for item in sorted(deploy.iterdir(), key=lambda t: t.name):
        if item.name.endswith(".yaml"):
            out[f"deploy/{item.name}"] = item.read_text(encoding="utf-8")
    return out


def project_files(
    output: Path, system: str = "system.yaml", scenario: str | None = None
) -> dict[Path, str]:
    """Every file ``init`` writes (path -> text): the project file at ``output`` and, next to
    it, the system description (and a scenario's manifests under ``deploy/``)."""
    base = output.parent
    files: dict[Path, str] = {output: starter(system=system, scenario=scenario)}
    if scenario is None:
        files[base / system] = STARTER_SYSTEM
        return files
    for rel, text in template_files(scenario).items():
        files[base / (system if rel == "system.yaml" else rel)] = text
    return files


def starter(system: str = "system.yaml", scenario: str | None = None) -> str:
    """The starter text. With ``scenario``, a project that runs as written on that built-in
    scenario; otherwise placeholders for a real deployment (commented out where they would
    fail)."""
    out = [
        "# mlhunt project file: `mlhunt run mlhunt.yaml` threat-models the system, attacks its",
        "# models, hunts its logs and scans its artifacts, then links the evidence to each threat.",
        "# Paths are relative to this file. Field reference: docs/run.md.",
        "",
    ]
    out += _block(Project, {"system": system, "output": "mlhunt-report", "seed": 0}, "", "")
    out += ["", f"# {_comment(Project, 'models')}", "models:"]
    if scenario:
        target = {
            "scenario": scenario,
            "element": SCENARIO_ELEMENT.get(scenario, "prediction-api"),
            "live": True,
            "max_queries": 20000,
            "max_seconds": 600,
        }
    else:
        target = {
            "kind": "http",
            "element": "prediction-api",
            "url": "http://127.0.0.1:8000/predict",
            "http_config": "http.yaml",
            "api_key_env": "MODEL_API_KEY",
            "spec": "spec.yaml",
            "data": "eval.npz",
            "max_queries": 20000,
            "max_seconds": 600,
        }
    out += _block(TargetConfig, target, "    ", "  - ")
    out += ["", f"# {_comment(Project, 'logs')}", "logs:"]
    logs: dict[str, Any] = {"path": "logs/*.jsonl", "element": "prediction-api", "engine": "duckdb"}
    if scenario:
        logs = {**logs, "path": "traffic/logs.jsonl", "simulate": scenario}
        logs["element"] = SCENARIO_ELEMENT.get(scenario, "prediction-api")
    out += _block(LogConfig, logs, "    ", "  - ")
    out += ["", f"# {_comment(Project, 'scan')}", "scan:"]
    scan = {"path": "deploy", "owners": SCENARIO_OWNERS.get(scenario or "")}
    out += _block(ScanConfig, scan, "    ", "  - ")
    out += [
        "",
        f"# {_comment(Project, 'thresholds')}",
        "thresholds: {}",
        f"# fail_on: high  # {_comment(Project, 'fail_on')}",
        "",
    ]
    return "\n".join(out)
