"""``mlhunt init``: a commented starter project file, its comments taken from the field
descriptions of :mod:`mlhunt.run.project` (one source of truth for docs and starter)."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from mlhunt.run.project import LogConfig, Project, ScanConfig, TargetConfig


def _comment(model: type[BaseModel], name: str) -> str:
    desc = model.model_fields[name].description or ""
    return " ".join(desc.split())


def _block(model: type[BaseModel], values: dict[str, Any], indent: str, first: str) -> list[str]:
    lines: list[str] = []
    for i, (key, value) in enumerate(values.items()):
        lead = first if i == 0 else indent
        dumped = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
        dumped = dumped.removesuffix("\n...").removesuffix("...").strip()
        lines.append(f"{lead}{key}: {dumped}  # {_comment(model, key)}")
    return lines


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
            "element": "prediction-api",
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
    out += _block(LogConfig, logs, "    ", "  - ")
    out += ["", f"# {_comment(Project, 'scan')}", "scan:"]
    out += _block(ScanConfig, {"path": "deploy"}, "    ", "  - ")
    out += [
        "",
        f"# {_comment(Project, 'thresholds')}",
        "thresholds: {}",
        f"# fail_on: high  # {_comment(Project, 'fail_on')}",
        "",
    ]
    return "\n".join(out)
