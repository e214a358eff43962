"""SARIF 2.1.0 output, shaped for GitHub code scanning.

One rule per ``rule_id`` (its ``security-severity`` is the worst severity seen for it), one result
per finding. Findings the team has accepted, mitigated or marked false positive stay in the log
as results with an external suppression, so code scanning shows them as dismissed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any

from mlhunt import __version__
from mlhunt.report._common import (
    RESOLVED_STATUSES,
    SEVERITY_RANK,
    labels,
    mappings,
    references,
    risk_text,
    severity_of,
    split_mitigation,
    text,
)
from mlhunt.report.model_view import affected_ids

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/mlhunt/mlhunt"
FINGERPRINT_KEY = "mlhuntFindingId/v1"

SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "1.0"}
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}


def _rule_name(rule_id: str) -> str:
    """'MLH-ML-EXTRACTION-API' -> 'MlExtractionApi' (SARIF names are identifier-like)."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", rule_id) if w]
    if words and words[0].upper() == "MLH" and len(words) > 1:
        words = words[1:]
    return "".join(w[:1].upper() + w[1:].lower() for w in words) or "Finding"


def _generic_title(finding: dict[str, Any], label: str) -> str:
    title = text(finding.get("title"))
    if label and label in title:
        title = title.replace(label, "the target")
    return title


def _tags(finding: dict[str, Any]) -> list[str]:
    tags = ["security"]
    if finding.get("framework"):
        tags.append(text(finding["framework"]))
    for label, values in mappings(finding):
        for v in values:
            if label == "STRIDE":
                tags.append(f"STRIDE-{v}")
            elif label == "LINDDUN":
                tags.append(f"LINDDUN-{v}")
            elif label == "CWE":
                tags.append(v)
                num = v.split("-", 1)[-1]
                tags.append(f"external/cwe/cwe-{num.lower()}")
            else:
                tags.append(v)
    for label, values in references(finding):
        tags.extend(f"{label} {v}" for v in values)
    return list(dict.fromkeys(tags))


def _help(finding: dict[str, Any]) -> tuple[str, str]:
    """Help as plain text and Markdown: description, mitigations, mappings, references."""
    desc = text(finding.get("description")) or text(finding.get("title"))
    mits = [split_mitigation(m).action for m in finding.get("mitigations") or []]
    plain = [desc]
    md = [desc]
    if mits:
        plain += ["", "Mitigations:"] + [f"- {m}" for m in mits]
        md += ["", "**Mitigations**", ""] + [f"- {m}" for m in mits]
    maps = mappings(finding) + references(finding)
    if maps:
        plain += ["", "Mappings: " + "; ".join(f"{k} {', '.join(v)}" for k, v in maps)]
        md += ["", "**Mappings**: " + "; ".join(f"{k} {', '.join(v)}" for k, v in maps)]
    return "\n".join(plain), "\n".join(md)


def _uri(path: str) -> str:
    """A repository-relative URI where possible (what GitHub code scanning matches on): absolute
    paths under the working directory become relative, other absolute paths ``file://`` URIs."""
    if "\\" in path and PureWindowsPath(path).drive:
        return PureWindowsPath(path).as_uri()
    p = PurePath(path.replace("\\", "/"))
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return p.as_uri()


def _locations(
    finding: dict[str, Any],
    names: dict[str, str],
    source_path: str | None,
    lines: dict[str, int] | None,
) -> list[dict[str, Any]]:
    """One location per element or flow a (grouped) finding affects, worst first."""
    return [
        _location(finding, names, source_path, lines, target)
        for target in affected_ids(finding) or [""]
    ]


def _location(
    finding: dict[str, Any],
    names: dict[str, str],
    source_path: str | None,
    lines: dict[str, int] | None,
    target: str,
) -> dict[str, Any]:
    loc: dict[str, Any] = {}
    uri: str | None = None
    line = 1
    if source_path:
        uri = _uri(source_path)
        if lines and target in lines:
            line = max(1, int(lines[target]))
    elif finding.get("source") == "scan" and target:
        # Scan findings target a file; its line, when known, is in the evidence.
        uri = _uri(target)
        ev = finding.get("evidence") if isinstance(finding.get("evidence"), dict) else {}
        if isinstance(ev.get("line"), int) and ev["line"] > 0:
            line = ev["line"]
    if uri is not None:
        loc["physicalLocation"] = {
            "artifactLocation": {"uri": uri},
            "region": {"startLine": line},
        }
    logical: dict[str, Any] = {"name": names.get(target, target), "kind": "resource"}
    if target:
        logical["fullyQualifiedName"] = target
    loc["logicalLocations"] = [logical]
    return loc


def to_sarif(
    doc: dict[str, Any],
    *,
    source_path: str | None = None,
    lines: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The SARIF log (a dict) for any mlhunt document."""
    names = labels(doc)
    findings = [f for f in doc.get("findings") or [] if isinstance(f, dict)]
    rules: list[dict[str, Any]] = []
    rule_index: dict[str, int] = {}
    worst: dict[str, str] = {}
    for f in findings:
        rid = text(f.get("rule_id") or f.get("id") or "mlhunt")
        sev = severity_of(f)
        if rid not in rule_index:
            rule_index[rid] = len(rules)
            help_text, help_md = _help(f)
            short = _generic_title(f, names.get(text(f.get("target")), ""))
            rules.append(
                {
                    "id": rid,
                    "name": _rule_name(rid),
                    "shortDescription": {"text": short or rid},
                    "fullDescription": {"text": text(f.get("description")) or short or rid},
                    "help": {"text": help_text, "markdown": help_md},
                    "defaultConfiguration": {"level": LEVEL[sev]},
                    "properties": {"tags": _tags(f)},
                }
            )
            worst[rid] = sev
        elif SEVERITY_RANK[sev] > SEVERITY_RANK[worst[rid]]:
            worst[rid] = sev
    for rid, idx in rule_index.items():
        rules[idx]["defaultConfiguration"]["level"] = LEVEL[worst[rid]]
        rules[idx]["properties"]["security-severity"] = SECURITY_SEVERITY[worst[rid]]
        rules[idx]["properties"]["precision"] = "high"

    results = []
    for f in findings:
        rid = text(f.get("rule_id") or f.get("id") or "mlhunt")
        sev = severity_of(f)
        target = text(f.get("target"))
        message = text(f.get("title")) or rid
        risk = risk_text(f)
        if risk:
            message += f" (risk {risk}, {sev})"
        result: dict[str, Any] = {
            "ruleId": rid,
            "ruleIndex": rule_index[rid],
            "level": LEVEL[sev],
            "message": {"text": message},
            "locations": _locations(f, names, source_path, lines),
            "partialFingerprints": {FINGERPRINT_KEY: text(f.get("id"))},
            "properties": {
                "mlhuntFindingId": text(f.get("id")),
                "severity": sev,
                "security-severity": SECURITY_SEVERITY[sev],
                "source": text(f.get("source")),
                "target": target,
                "status": text(f.get("status") or "open"),
            },
        }
        props = result["properties"]
        for key in ("framework", "risk", "likelihood", "impact"):
            if f.get(key) is not None:
                props[key] = f[key]
        if isinstance(f.get("affected"), list):
            props["affected"] = affected_ids(f)
        status = text(f.get("status") or "open")
        if status in RESOLVED_STATUSES:
            tracking = f.get("tracking") if isinstance(f.get("tracking"), dict) else {}
            justification = text(tracking.get("justification")) or f"Marked {status}."
            extras = [
                f"{k}: {text(tracking[k])}"
                for k in ("ticket", "checked_by", "date")
                if tracking.get(k)
            ]
            if extras:
                justification += f" ({'; '.join(extras)})"
            result["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": justification,
                    "properties": {"mlhuntStatus": status},
                }
            ]
        results.append(result)

    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "mlhunt",
                "version": text(doc.get("version") or __version__),
                "semanticVersion": text(doc.get("version") or __version__),
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {"command": text(doc.get("command"))},
    }
    system = doc.get("system")
    if isinstance(system, dict) and system.get("name"):
        run["properties"]["system"] = text(system["name"])
    if doc.get("warnings"):
        run["invocations"] = [
            {
                "executionSuccessful": True,
                "toolExecutionNotifications": [
                    {"level": "warning", "message": {"text": text(w)}} for w in doc["warnings"]
                ],
            }
        ]
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render(
    doc: dict[str, Any],
    *,
    source_path: str | None = None,
    lines: dict[str, int] | None = None,
) -> str:
    return json.dumps(to_sarif(doc, source_path=source_path, lines=lines), indent=2) + "\n"
