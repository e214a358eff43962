"""Link the threat model to the evidence: each ML threat becomes validated, refuted, observed or
untested, and the evidence moves its risk.

Evidence findings come from ``assess`` (``evidence.verdict`` + ``evidence.validates``: the
threat rule ids an attack proves or refutes), ``hunt`` (``evidence.validates`` of the detector
that fired: the threat is *observed* in production) and ``scan`` (``scan_links.yaml``: a poisoned
artifact proves the serialization threat of the element whose artifact it is, and of no other:
see :func:`scan_evidence`; the format of a scenario's model artifact validates the
unsafe-serialization threat when loading it can run code and refutes it when it is data only;
its bytes at rest validate model theft from storage when they are a model format in the clear
and refute it when they are an encryption envelope)
and ``harden`` (``evidence.addresses``; a proven
mitigation marks the threat *mitigated*, a failed one is listed beside it). An evidence set
may be tied to model elements (the project names which element a target or a log belongs
to); untied evidence applies to every finding of the rule.

A verdict has two independent halves: what the attacks showed (validated, or refuted when every
attack failed) and what production shows (observed). ``statuses`` lists both when both hold, e.g.
``["refuted", "observed"]``: someone tries it, and it does not work.

Risk moves by whole likelihood points (PASTA: evidence replaces the analyst's estimate of how
likely the attack is): validated +1, refuted -1, observed in production +1 more (it is being
tried), never outside 1..5; the finding's severity follows the new risk.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mlhunt.findings import Severity, summarize
from mlhunt.threatmodel.risk import severity_for

#: The scan finding that states a model artifact's format (mlhunt.scan.model_format.RULE).
FORMAT_RULE = "MLH-SCAN-MODEL-FORMAT"
#: The scan finding that states whether the artifact's weights are in the clear at rest
#: (mlhunt.scan.at_rest.RULE).
AT_REST_RULE = "MLH-SCAN-MODEL-AT-REST"
#: Scan findings that decide their threats both ways: rule id -> the evidence key whose
#: True validates and False refutes (None: the check could not tell, no claim).
VERDICT_KEYS = {FORMAT_RULE: "code_on_load", AT_REST_RULE: "weights_in_clear"}
STATUSES = ("validated", "observed", "refuted", "untested", "mitigated")
# "mitigated": a harden finding proved a mitigation (attack measurably weaker after it, utility
# within tolerance): the residual risk is one likelihood point lower.
# The run's own finding for manifests checked clean (mlhunt.run.deploy_links): the only scan
# finding whose ``evidence.refutes`` is read (a policy's result cannot refute anything).
CLEAN_RULE = "MLH-SCAN-DEPLOY-CLEAN"
_LIKELIHOOD_MOVE = {"validated": 1.0, "observed": 1.0, "refuted": -1.0, "mitigated": -1.0}


@dataclass(frozen=True)
class EvidenceSet:
    """The findings of one part run (one assess target, one hunt, one scan)."""

    source: str  # assess | hunt | scan | harden
    findings: Sequence[dict[str, Any]]
    # Empty: applies everywhere (assess/hunt evidence the project ties to no element). Scan
    # evidence is always tied (scan_evidence): a file proves something only about its owner.
    elements: frozenset[str] = field(default_factory=frozenset)


def scan_evidence(
    findings: Sequence[dict[str, Any]],
    element: str | None,
    artifacts: dict[str, Sequence[str]] | None = None,
) -> tuple[list[EvidenceSet], list[dict[str, Any]]]:
    """Scan findings as evidence, each tied to the element whose artifact its file is: the
    project's ``scan[].element`` for everything under that path, else the elements whose
    declared artifact paths (``artifacts``: element id -> paths or globs) hold the file.

    Returns (evidence sets, findings tied to no element): those prove nothing about any threat
    (an unrelated file's pickle says nothing about the API's own model), and the run says so.
    """
    if element is not None:
        return [EvidenceSet("scan", list(findings), frozenset({element}))], []
    by_owner: dict[frozenset[str], list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    for f in findings:
        target = str(f.get("target", ""))
        owners = frozenset(
            eid
            for eid, paths in (artifacts or {}).items()
            if any(_holds(str(p), target) for p in paths)
        )
        if owners:
            by_owner.setdefault(owners, []).append(f)
        else:
            loose.append(f)
    return [EvidenceSet("scan", fs, owners) for owners, fs in by_owner.items()], loose


def _holds(declared: str, target: str) -> bool:
    """Whether a scanned file (``target``, maybe ``file#member``) is at or under a declared
    path or glob."""
    path = target.split("#", 1)[0].split("!", 1)[0]
    declared = declared.rstrip("/")
    return (
        path == declared
        or path.startswith(declared + "/")
        or fnmatch.fnmatchcase(path, declared)
        or Path(path).name == declared
    )


@functools.cache
def scan_links() -> tuple[tuple[str, tuple[str, ...]], ...]:
    path = Path(str(resources.files("mlhunt.run") / "scan_links.yaml"))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple((k, tuple(v)) for k, v in data.items())


def _scan_threats(rule_id: str) -> tuple[str, ...]:
    out: list[str] = []
    for key, threats in scan_links():
        if rule_id == key or (key.endswith("*") and rule_id.startswith(key[:-1])):
            out.extend(t for t in threats if t not in out)
    return tuple(out)


def _claims(ev: EvidenceSet) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(threat rule id, status, evidence finding) for every claim an evidence set makes."""
    for f in ev.findings:
        evidence = f.get("evidence") or {}
        if ev.source == "assess":
            verdict = evidence.get("verdict")
            if verdict not in ("validated", "refuted", "inconclusive"):
                continue  # skipped and failed attacks prove nothing either way
            # An inconclusive attack is listed beside the threat but moves nothing (_verdict).
            for rule in evidence.get("validates") or ():
                yield rule, verdict, f
        elif ev.source == "hunt":
            if f.get("status", "open") == "false-positive":
                continue
            for rule in evidence.get("validates") or ():
                yield rule, "observed", f
        elif ev.source == "harden":
            # Every check is linked (the report shows failed ones too); only a proven one counts.
            status = "mitigated" if evidence.get("proven") else "mitigation-tested"
            for rule in evidence.get("addresses") or ():
                yield rule, status, f
        elif ev.source == "scan":
            if f.get("status", "open") == "false-positive":
                continue
            key = VERDICT_KEYS.get(str(f.get("rule_id")))
            if key is not None:
                # The artifact's format (code on load proves unsafe serialization, data only
                # refutes it) or its bytes at rest (weights in the clear prove theft from
                # storage, an encryption envelope refutes it).
                proves = evidence.get(key)
                if isinstance(proves, bool):
                    for rule in _scan_threats(str(f["rule_id"])):
                        yield rule, "validated" if proves else "refuted", f
                continue
            if f.get("rule_id") == CLEAN_RULE:  # manifests checked clean (run.deploy_links)
                for rule in evidence.get("refutes") or ():
                    yield rule, "refuted", f
            if f.get("severity") == "info":
                continue
            for rule in _scan_threats(str(f.get("rule_id", ""))):
                yield rule, "validated", f


def link(model_doc: dict[str, Any], evidence: Sequence[EvidenceSet]) -> dict[str, Any]:
    """Add ``validation`` to every ML finding of ``model_doc`` (in place; also returned) and
    move its risk. Non-ML findings are left alone."""
    by_rule: dict[str, list[tuple[str, dict[str, Any], EvidenceSet]]] = {}
    for ev in evidence:
        for rule, status, f in _claims(ev):
            by_rule.setdefault(rule, []).append((status, f, ev))
    for finding in model_doc["findings"]:
        rules = (finding.get("evidence") or {}).get("rules") or [finding["rule_id"]]
        if finding.get("framework") != "ML" and not any(r in by_rule for r in rules):
            continue  # a non-ML threat no evidence speaks to (a group may hold an ML rule)
        # A grouped finding (one cause, several elements) is validated where any of them is;
        # ``by_target`` keeps the verdict of each affected element.
        affected = finding.get("affected") or [finding["target"]]
        tied = [(status, f, ev) for rule in rules for status, f, ev in by_rule.get(rule, ())]
        claims = [(s, f, ev.source) for s, f, ev in tied if _applies(ev, set(affected))]
        by_target = {
            t: _verdict({}, [(s, f, ev.source) for s, f, ev in tied if _applies(ev, {t})])["status"]
            for t in affected
        }
        finding["validation"] = _verdict(finding, claims)
        if len(affected) > 1:
            finding["validation"]["by_target"] = by_target
    model_doc["summary"] = _summary(model_doc["findings"])
    return model_doc


def _applies(ev: EvidenceSet, targets: set[str]) -> bool:
    """Whether an evidence set speaks to any of ``targets``: one tied to no element speaks to
    every element, except a scan's (a file proves nothing about an element that does not own
    it)."""
    return (not ev.elements and ev.source != "scan") or bool(ev.elements & targets)


# How the reason line names each kind of claim: (status, source) -> words.
_NAMES = {
    ("validated", "assess"): "an attack succeeded",
    ("validated", "scan"): "a scan found it in this element's own artifacts or manifests",
    ("refuted", "scan"): "a scan checked this element's manifests or artifact clean of it",
    ("observed", "hunt"): "seen in production logs",
    ("refuted", "assess"): "the attacks failed",
    ("mitigated", "harden"): "a mitigation was proven by harden",
}


def _verdict(
    finding: dict[str, Any], claims: list[tuple[str, dict[str, Any], str]]
) -> dict[str, Any]:
    present = {s for s, _, _ in claims}
    statuses: list[str] = []
    # A success anywhere beats a failure elsewhere: one working attack proves the threat.
    if "validated" in present:
        statuses.append("validated")
    elif "refuted" in present:
        statuses.append("refuted")
    if "observed" in present:
        statuses.append("observed")
    if "mitigated" in present:
        statuses.append("mitigated")
    if not statuses:
        statuses = ["untested"]
    kept = [f for s, f, _ in claims if s in statuses]
    checks = [f for s, f, _ in claims if s in ("mitigated", "mitigation-tested")]
    out: dict[str, Any] = {
        "status": statuses[0],
        "statuses": statuses,
        "evidence": sorted({f["id"] for f in kept}),
    }
    if checks:  # harden findings beside the threat, proven or not
        out["mitigations"] = [
            {
                "id": f["id"],
                "mitigation": f.get("rule_id"),
                "proven": bool((f.get("evidence") or {}).get("proven")),
                "summary": (f.get("evidence") or {}).get("summary"),
            }
            for f in checks
        ]
        out["evidence"] = sorted(set(out["evidence"]) | {f["id"] for f in checks})
    unsure = [f for s, f, _ in claims if s == "inconclusive"]
    if unsure:
        out["inconclusive"] = sorted({f["id"] for f in unsure})
    if statuses == ["untested"]:
        out["reason"] = (
            f"the attacks that test it could not decide ({len(unsure)} inconclusive "
            f"finding{'s' if len(unsure) != 1 else ''}): the risk is unchanged"
            if unsure
            else "no attack, hunt detector or scan in this run tests this threat"
        )
        return out
    move = sum(_LIKELIHOOD_MOVE[s] for s in statuses)
    old = finding.get("likelihood")
    if isinstance(old, int | float) and isinstance(finding.get("impact"), int | float):
        new = max(1.0, min(5.0, old + move))
        risk = round(new * float(finding["impact"]), 2)
        out["risk_before"] = finding.get("risk")
        out["severity_before"] = finding["severity"]
        finding["likelihood"] = new
        finding["risk"] = risk
        finding["severity"] = severity_for(risk).value
    counts: dict[tuple[str, str], int] = {}
    for s, _, source in claims:
        if s in statuses:
            counts[(s, source)] = counts.get((s, source), 0) + 1
    out["reason"] = "; ".join(
        f"{_NAMES.get(key, f'{key[0]} by {key[1]}')} ({n} finding{'s' if n != 1 else ''})"
        for key, n in counts.items()
    )
    return out


def _summary(findings: list[dict[str, Any]]) -> dict[str, Any]:
    counts = summarize([])
    for f in findings:
        counts["by_severity"][Severity(f["severity"]).value] += 1
    counts["total"] = len(findings)
    by_status = {s: 0 for s in STATUSES}
    for f in findings:
        v = f.get("validation")
        if v:
            for s in v["statuses"]:
                by_status[s] += 1
    counts["by_validation"] = by_status
    return counts
