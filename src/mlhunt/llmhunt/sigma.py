"""Sigma rules for the LLM detectors (pySigma imported only inside the functions).

Per detector: one rule over mlhunt's alert stream (the hunt's findings, ``source: hunt``,
``rule_id``), and, where a SIEM query can express part of it, one rule over the gateway log
indexed as flat events with the fields of :data:`GATEWAY_FIELDS` (plus a correlation rule where
the detector counts events). Consumption needs population statistics and has no raw-log rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlhunt.llmhunt.detectors import LlmDetector, registry
from mlhunt.sigmakit import BACKENDS, convert, safe_name, top_level, write_rules

RULES_DATE = "2026-12-07"
AUTHOR = "mlhunt"
#: The flat gateway event a SIEM indexes (map them to yours with ``field_map``).
GATEWAY_FIELDS = (
    "ts",
    "client_id",
    "session_id",
    "model",
    "user_message",
    "completion",
    "tool_name",
    "tool_arguments",
    "prompt_tokens",
    "completion_tokens",
    "status",
)
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/mlhunt/mlhunt/sigma/llm")


def _common(det: LlmDetector, key: str) -> dict[str, Any]:
    spec = det.spec
    return {
        "id": str(uuid.uuid5(_NAMESPACE, f"{key}:{spec.id}")),
        "status": "experimental",
        "description": " ".join(spec.description.split()),
        "references": ["docs/llmhunt.md"],
        "author": AUTHOR,
        "date": RULES_DATE,
        "tags": [f"atlas.{a.lower()}" for a in spec.atlas]
        + [f"owasp-llm.{o.lower()}" for o in spec.owasp_llm],
        "falsepositives": [" ".join(spec.false_positive_notes.split())],
        "level": top_level(spec.severity),
    }


def detector_rules(det: LlmDetector) -> list[dict[str, Any]]:
    """The alert-stream rule of a detector, then its gateway-log rules (if any)."""
    spec = det.spec
    out = [
        {
            "title": f"mlhunt LLM hunt alert: {spec.title}",
            "name": "mlhunt_alert_" + safe_name(spec.id),
            **_common(det, "alert"),
            "logsource": {"product": "mlhunt", "service": "hunt"},
            "detection": {
                "selection": {"source": "hunt", "rule_id": spec.id},
                "condition": "selection",
            },
        }
    ]
    hint = spec.sigma
    if not hint:
        return out
    base_name = "mlhunt_llm_" + safe_name(spec.id.removeprefix("MLH-HUNT-LLM-"))
    values = list(hint.values)
    out.append(
        {
            "title": f"LLM gateway: {spec.title}",
            "name": base_name,
            **_common(det, "gateway"),
            "logsource": {"product": "mlhunt", "category": "llm_gateway"},
            "detection": {
                "selection": {f"{hint.field}|{hint.modifier}": values},
                "condition": "selection",
            },
        }
    )
    corr = hint.correlation
    if corr:
        out[-1]["level"] = "informational"  # input to the correlation, not an alert alone
        out.append(
            {
                "title": f"LLM gateway (correlation): {spec.title}",
                "name": base_name + "_count",
                **_common(det, "correlation"),
                "correlation": {
                    "type": corr.type,
                    "rules": [base_name],
                    "group-by": list(corr.group_by),
                    "timespan": corr.timespan,
                    "condition": {"gte": corr.gte},
                },
            }
        )
    return out


def build_rules(detectors: Iterable[LlmDetector] | None = None) -> list[dict[str, Any]]:
    return [r for d in (registry() if detectors is None else detectors) for r in detector_rules(d)]


def export_sigma(out_dir: str | Path, *, backend: str | None = None) -> list[Path]:
    """Write every rule (``<name>.yml``) and, with ``backend``, its queries; return the paths."""
    return write_rules(build_rules(), out_dir, backend=backend)


__all__ = ["BACKENDS", "GATEWAY_FIELDS", "build_rules", "convert", "detector_rules", "export_sigma"]
