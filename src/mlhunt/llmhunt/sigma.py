"""Sigma rules for the LLM detectors (pySigma imported only inside the functions).

Per detector: one rule over mlhunt's alert stream (the hunt's findings, ``source: hunt``,
``rule_id``), and, where a SIEM query can express part of it, one rule over the gateway log
indexed as flat events with the fields of :data:`GATEWAY_FIELDS` (plus a correlation rule where
the detector counts events). Consumption needs population statistics and has no raw-log rule.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlhunt._io import write_atomic
from mlhunt.errors import InputError
from mlhunt.llmhunt.detectors import LlmDetector, registry

RULES_DATE = "2026-12-07"
AUTHOR = "mlhunt"
BACKENDS = {"splunk": ".spl", "elasticsearch": ".esql"}
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
_LEVELS = {
    "info": "informational",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}
_SAFE = re.compile(r"[^a-z0-9]+")


def _name(text: str) -> str:
    return _SAFE.sub("_", text.lower()).strip("_")


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
        "level": _LEVELS[max(spec.severity, key=spec.severity.__getitem__)],
    }


def detector_rules(det: LlmDetector) -> list[dict[str, Any]]:
    """The alert-stream rule of a detector, then its gateway-log rules (if any)."""
    spec = det.spec
    out = [
        {
            "title": f"mlhunt LLM hunt alert: {spec.title}",
            "name": "mlhunt_alert_" + _name(spec.id),
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
    base_name = "mlhunt_llm_" + _name(spec.id.removeprefix("MLH-HUNT-LLM-"))
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


def convert(
    rules: list[dict[str, Any]],
    backend: str = "splunk",
    *,
    field_map: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Rule name -> queries in the backend's language (``splunk`` SPL or ES|QL)."""
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import FieldMappingTransformation

    if backend not in BACKENDS:
        raise InputError(
            f"unknown Sigma backend {backend!r} (expected one of: {', '.join(BACKENDS)})",
            field="sigma-backend",
        )
    pipeline = ProcessingPipeline(
        name="mlhunt llm gateway fields",
        priority=20,
        items=[ProcessingItem(FieldMappingTransformation(dict(field_map or {})))],
    )
    if backend == "splunk":
        from sigma.backends.splunk import SplunkBackend

        conv: Any = SplunkBackend(pipeline)
    else:
        from sigma.backends.elasticsearch import ESQLBackend

        conv = ESQLBackend(pipeline)
    try:
        collection = SigmaCollection.from_dicts(rules)
        collection.resolve_rule_references()
        names = {str(r["id"]): str(r["name"]) for r in rules}
        out: dict[str, list[str]] = {}
        for rule in collection.rules:
            if isinstance(rule, SigmaCorrelationRule):
                queries = conv.convert_correlation_rule(rule)
            else:
                queries = conv.convert_rule(rule)
            if queries:
                out[names[str(rule.id)]] = [str(q) for q in queries]
    except SigmaError as exc:
        raise InputError(f"Sigma conversion ({backend}) failed: {exc}") from None
    return out


def export_sigma(out_dir: str | Path, *, backend: str | None = None) -> list[Path]:
    """Write every rule (``<name>.yml``) and, with ``backend``, its queries; return the paths."""
    rules = build_rules()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for rule in rules:
        path = out / f"{rule['name']}.yml"
        write_atomic(path, yaml.safe_dump(rule, sort_keys=False, allow_unicode=True))
        written.append(path)
    if backend is not None:
        for name, queries in convert(rules, backend).items():
            path = out / f"{name}{BACKENDS[backend]}"
            write_atomic(path, "\n\n".join(queries) + "\n")
            written.append(path)
    return written
