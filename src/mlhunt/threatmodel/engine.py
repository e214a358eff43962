"""Apply the threat catalog to a system description: findings per element and per flow."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from mlhunt.findings import Finding, document
from mlhunt.system.model import (
    ControlType,
    Element,
    ElementKind,
    Flow,
    RiskTracking,
    SystemDescription,
    TrackingStatus,
)
from mlhunt.threatmodel.catalog import Catalog, CompiledRule, default_catalog
from mlhunt.threatmodel.risk import Score, score_element, score_flow

_TRACKING_TO_STATUS = {
    TrackingStatus.ACCEPTED: "accepted",
    TrackingStatus.MITIGATED: "mitigated",
    TrackingStatus.FALSE_POSITIVE: "false-positive",
}


@dataclass
class ThreatModel:
    """The result of ``mlhunt model``: the system, its findings, and warnings about the input."""

    system: SystemDescription
    findings: list[Finding]
    warnings: list[str] = field(default_factory=list)
    catalog: Catalog | None = None

    def findings_for(self, target: str) -> list[Finding]:
        return [f for f in self.findings if f.target == target]

    def to_document(self) -> dict[str, Any]:
        return document(
            "model",
            self.findings,
            system={"name": self.system.name, "description": self.system.description},
            elements=[_dump(e) for e in self.system.elements],
            flows=[_dump(f) for f in self.system.flows],
            trust_boundaries=[b.model_dump(mode="json") for b in self.system.trust_boundaries],
            warnings=list(self.warnings),
        )


def _dump(obj: Element | Flow) -> dict[str, Any]:
    out = obj.model_dump(mode="json", exclude_defaults=True)
    out.setdefault("id", obj.id)
    out["controls"] = sorted(c.value for c in obj.controls)
    return out


def build_threat_model(system: SystemDescription, catalog: Catalog | None = None) -> ThreatModel:
    """Every rule of ``catalog`` (the built-in one by default) applied to ``system``."""
    catalog = catalog or default_catalog()
    by_kind: dict[ElementKind, list[Element]] = {}
    for e in system.elements:
        by_kind.setdefault(e.kind, []).append(e)

    findings: list[Finding] = []
    for rule in catalog.rules:
        if rule.rule.scope == "element":
            for kind in rule.kinds:
                for e in by_kind.get(kind, ()):
                    if rule.condition(e, system):
                        score = score_element(rule.rule, e)
                        refs = _compliance(rule, (e, system))
                        findings.append(
                            _finding(rule, e.id, e.label, e.kind.value, score, refs, e.control_refs)
                        )
        else:
            kinds = rule.kinds
            for f in system.flows:
                src, dst = f.source_element, f.target_element
                if (src.kind in kinds or dst.kind in kinds) and rule.condition(f, src, dst, system):
                    score = score_flow(rule.rule, f)
                    refs = _compliance(rule, (f, src, dst, system))
                    controls = {**dst.control_refs, **f.control_refs}
                    findings.append(_finding(rule, f.id, f.label, "flow", score, refs, controls))
    warnings = _apply_tracking(findings, system.risk_tracking)
    findings.sort(key=lambda x: (-(x.risk or 0.0), x.id))
    return ThreatModel(system, findings, warnings, catalog)


def _compliance(rule: CompiledRule, args: tuple[Any, ...]) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = {}
    if rule.rule.owasp_llm:
        refs["owasp_llm"] = list(rule.rule.owasp_llm)
    for cond, comp in rule.compliance:
        if cond(*args):
            for key in ("pci_dss", "gdpr"):
                values = getattr(comp, key)
                if values:
                    bucket = refs.setdefault(key, [])
                    bucket.extend(v for v in values if v not in bucket)
    return refs


def _finding(
    rule: CompiledRule,
    target: str,
    label: str,
    kind: str,
    score: Score,
    references: dict[str, list[str]],
    control_refs: dict[ControlType, tuple[str, ...]],
) -> Finding:
    r = rule.rule
    todo: list[str] = []
    done: list[str] = []
    for m in r.mitigations:
        if m.control in control_refs:
            done.append(f"[in place: {', '.join(control_refs[m.control])}] {m.action}")
        else:
            todo.append(m.action)
    evidence: dict[str, Any] = {
        "target_kind": kind,
        "likelihood_factors": score.factors,
        "controls_in_place": score.controls,
        "risk_explanation": score.explanation,
    }
    if r.false_positives:
        evidence["false_positives"] = r.false_positives
    if r.detection:
        evidence["detection"] = r.detection
    return Finding(
        id=f"{r.id}@{target}",
        rule_id=r.id,
        title=r.title.replace("{name}", label),
        severity=score.severity,
        source="model",
        target=target,
        description=r.description.strip(),
        atlas=list(r.atlas),
        owasp_ml=list(r.owasp_ml),
        stride=list(r.stride),
        linddun=list(r.linddun),
        cwe=list(r.cwe),
        evidence=evidence,
        mitigations=todo + done,
        framework=r.framework.value,
        likelihood=score.likelihood,
        impact=score.impact,
        risk=score.risk,
        references=references or None,
    )


def _apply_tracking(findings: list[Finding], tracking: list[RiskTracking]) -> list[str]:
    """Set each finding's status from the team's risk-tracking decisions; warn on stale ones."""
    warnings: list[str] = []
    if not tracking:
        return warnings
    by_id = {f.id: f for f in findings}
    for i, entry in enumerate(tracking):
        if any(ch in entry.threat for ch in "*?["):
            matched = [f for fid, f in by_id.items() if fnmatch.fnmatchcase(fid, entry.threat)]
        else:
            matched = [by_id[entry.threat]] if entry.threat in by_id else []
        if not matched:
            warnings.append(f"risk_tracking[{i}]: {entry.threat!r} matches no threat")
        for f in matched:
            f.status = _TRACKING_TO_STATUS.get(entry.status, "open")
            f.tracking = entry.model_dump(mode="json", exclude_defaults=True)
            f.tracking["status"] = entry.status.value
    return warnings
