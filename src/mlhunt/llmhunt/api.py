"""``hunt(paths)``: read LLM logs, run every detector, return findings and what was read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlhunt.errors import InputError
from mlhunt.findings import Finding, Severity
from mlhunt.hunt.alerts import finding_id, rfc3339
from mlhunt.llmhunt.detectors import Alert, Context, LlmDetector, LlmDetectorSpec, alerts, registry
from mlhunt.llmhunt.readers import read
from mlhunt.llmhunt.records import Call, ReadResult


@dataclass
class HuntResult:
    """Findings (worst first), what was read, and per-detector errors (contained, reported)."""

    findings: list[Finding]
    read: ReadResult
    detectors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def read_summary(self) -> dict[str, Any]:
        """What was read: files and their kinds, records, calls, malformed (first 100)."""
        r = self.read
        return {
            "files": dict(r.kinds),
            "records": r.records,
            "calls": len(r.calls),
            "agent_runs": len(r.runs),
            "malformed": r.malformed_total,
            "errors": [{"file": m.file, "line": m.line, "reason": m.reason} for m in r.malformed],
        }

    def document(self) -> dict[str, Any]:
        """The JSON document of ``mlhunt hunt`` (DESIGN.md's shape, ``command`` "hunt")."""
        from mlhunt.findings import document

        return document(
            "hunt",
            self.findings,
            read=self.read_summary(),
            detectors=list(self.detectors),
            detector_errors=list(self.errors),
            log_kind="llm",
        )


def to_finding(alert: Alert, spec: LlmDetectorSpec) -> Finding:
    evidence: dict[str, Any] = {
        "detector": alert.detector,
        "first_event_ts": rfc3339(alert.first_event_ts),
        "detected_ts": rfc3339(alert.detected_ts),
        "detected_at_event": alert.detected_at_event,
        "events": alert.events,
        "score": alert.score,
        "owasp_llm": list(spec.owasp_llm),
        "validates": list(spec.validates),
        **{k: v for k, v in alert.evidence.items() if k != "detector"},
    }
    who = "client" if spec.scope == "client_id" else spec.scope
    summary = (
        f"{spec.title} by {who} {alert.target}: score {alert.score:g} after {alert.events:,} "
        f"calls, first over the threshold at call {alert.detected_at_event:,}."
    )
    return Finding(
        id=finding_id(alert.detector, spec.scope, alert.target),
        rule_id=alert.detector,
        title=f"{spec.title}: {alert.target}",
        severity=Severity(alert.severity),
        source="hunt",
        target=alert.target,
        description=f"{summary} {' '.join(spec.description.split())} False positives: "
        f"{' '.join(spec.false_positive_notes.split())}",
        atlas=list(spec.atlas),
        evidence=evidence,
        mitigations=list(spec.mitigations),
        references={"owasp_llm": list(spec.owasp_llm), "validates": list(spec.validates)},
    )


def tool_limits_of(value: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for name, schema in (value or {}).items():
        if not isinstance(schema, Mapping):
            raise InputError(
                "expected a JSON Schema (an object) for the tool's arguments",
                field=f"tool_limits.{name}",
            )
        out[str(name)] = schema
    return out


def load_tool_limits(path: Path | None) -> dict[str, Any] | None:
    """A YAML or JSON file mapping tool name -> JSON Schema of its arguments (``--tool-limits``;
    loaded safely, bounded by the project's YAML loader)."""
    if path is None:
        return None
    from mlhunt.system.loader import load_yaml_file

    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise InputError("expected a mapping of tool name -> JSON Schema", file=str(path))
    return data


def hunt_calls(
    result: ReadResult,
    *,
    canaries: Iterable[str] = (),
    tool_limits: Mapping[str, Any] | None = None,
    detectors: Iterable[LlmDetector] | None = None,
) -> HuntResult:
    """Run the detectors over calls already read (``readers.read``)."""
    ctx = Context(tuple(c for c in canaries if c), tool_limits_of(tool_limits))
    by_client: dict[str, list[Call]] = defaultdict(list)
    for c in result.calls:
        by_client[c.client].append(c)
    dets = list(detectors) if detectors is not None else registry()
    found: list[Finding] = []
    errors: list[str] = []
    for det in dets:
        try:
            found += [to_finding(a, det.spec) for a in alerts(det, by_client, ctx)]
        except Exception as exc:  # one detector's bug must not hide the others' findings
            errors.append(f"{det.spec.id}: {type(exc).__name__}: {exc}")
    found.sort(key=lambda f: (-f.severity.rank, f.rule_id, f.target))
    return HuntResult(found, result, [d.spec.id for d in dets], errors)


def hunt(
    paths: Iterable[str | Path] | str | Path,
    *,
    canaries: Iterable[str] = (),
    tool_limits: Mapping[str, Any] | None = None,
) -> HuntResult:
    """Hunt gateway logs and/or OpenTelemetry GenAI traces (files, folders or globs).

    ``canaries``: strings planted in system prompts (a completion containing one is a leak).
    ``tool_limits``: tool name -> JSON Schema of its arguments, checked instead of the schema
    the request declared.
    """
    canaries = tuple(c for c in canaries if c)
    # only the texts a detector's prefilter marks are kept: the findings are the same
    got = read(paths, prefilter_for=Context(canaries))
    return hunt_calls(got, canaries=canaries, tool_limits=tool_limits)
