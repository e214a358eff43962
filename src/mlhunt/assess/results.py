"""Attack results -> findings: one finding per attack, severity from the measured impact.

The catalog's :class:`~mlhunt.assess.catalog.SeverityRule` decides the severity of a validated
threat; users move its thresholds (``--threshold ID.SEVERITY=VALUE`` or a YAML file). A refuted,
inconclusive, failed or skipped attack is an ``info`` finding that still carries its numbers or
its reason, so a reader sees what was tried.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mlhunt.assess.base import AttackResult
from mlhunt.assess.catalog import AttackSpec, CatalogAttack, SeverityRule
from mlhunt.errors import InputError
from mlhunt.findings import Finding, Severity

Thresholds = dict[str, dict[Severity, float]]

VERDICT_TEXT = {
    "validated": "validated",
    "refuted": "refuted",
    "inconclusive": "inconclusive",
    "skipped": "skipped",
    "error": "attack failed",
}


def finding_id(rule_id: str, target: str) -> str:
    digest = hashlib.sha256(f"{rule_id}\0{target}".encode()).hexdigest()[:16]
    return f"{rule_id}@{digest}"


def _severity_key(value: str, what: str) -> Severity:
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise InputError(f"{what}: {exc}") from None


def parse_thresholds(
    items: Iterable[str], catalog: Sequence[CatalogAttack], path: Path | None = None
) -> Thresholds:
    """Threshold overrides: a YAML file ``{ID: {high: 0.9, medium: 0.5}}`` then options
    ``ID.SEVERITY=VALUE`` (ID may be a short name or kind, as for ``--attack``)."""
    from mlhunt.assess.runner import resolve

    out: Thresholds = {}

    def put(name: str, sev: str, value: Any, what: str) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1e308
            number = math.nan
        if not math.isfinite(number):
            try:
                shown = repr(value)[:60]
            except ValueError:  # an int with no decimal repr (over 4,300 digits)
                shown = "a huge integer"
            raise InputError(f"{what}: expected a finite number, got {shown}")
        for attack_id in resolve(catalog, name, what):
            out.setdefault(attack_id, {})[_severity_key(sev, what)] = number

    if path is not None:
        from mlhunt.system.loader import load_yaml_file

        raw = load_yaml_file(path) or {}
        if not isinstance(raw, dict):
            raise InputError("expected {ATTACK: {severity: value}}", file=str(path))
        for name, sevs in raw.items():
            if not isinstance(sevs, dict):
                raise InputError("expected {severity: value}", file=str(path), field=str(name))
            for sev, value in sevs.items():
                put(str(name), str(sev), value, f"{path}: {name}.{sev}")
    for item in items:
        lhs, sep, value = item.partition("=")
        name, dot, sev = lhs.rpartition(".")
        if not sep or not dot:
            raise InputError(f"--threshold: expected ID.SEVERITY=VALUE, got {item!r}")
        put(name, sev, value, "--threshold")
    return out


def severity_rule(spec: AttackSpec, thresholds: Thresholds | None) -> SeverityRule:
    override = (thresholds or {}).get(spec.id)
    if not override:
        return spec.severity
    merged = {**spec.severity.thresholds, **override}
    return spec.severity.model_copy(update={"thresholds": merged})


def to_finding(
    spec: AttackSpec,
    result: AttackResult,
    target: str,
    *,
    plot_dir: Path | None = None,
    thresholds: Thresholds | None = None,
) -> Finding:
    """The finding of one attack result (``plot_dir``: where its plots were written)."""
    rule = severity_rule(spec, thresholds)
    verdict = result.verdict
    severity = rule.severity(result.metrics) if verdict == "validated" else Severity.INFO
    evidence: dict[str, Any] = dict(result.metrics)
    evidence.update(
        verdict=verdict,
        summary=result.summary,
        validates=list(spec.validates),
        queries=result.queries,
        seconds=result.seconds,
        severity_metric=rule.metric,
        params=result.params,
    )
    if result.plots:
        base = plot_dir if plot_dir is not None else Path()
        evidence["plots"] = [str(base / p) for p in result.plots]
    if result.curves:
        evidence["curves"] = result.curves
    if verdict == "skipped":
        evidence["reason"] = result.summary
    title = f"{spec.title}: {VERDICT_TEXT.get(verdict, verdict)}"
    return Finding(
        id=finding_id(spec.id, target),
        rule_id=spec.id,
        title=title,
        severity=severity,
        source="assess",
        target=target,
        description=f"{spec.description.strip()} Result: {result.summary}".strip(),
        atlas=list(spec.atlas),
        owasp_ml=list(spec.owasp_ml),
        evidence=evidence,
        mitigations=list(spec.mitigations) if verdict == "validated" else [],
    )
