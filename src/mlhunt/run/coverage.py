"""How much of the ML threat model a run backed with evidence, and what would test the rest.

:func:`ml_evidence` counts, over a linked threat model, the ML threats with evidence
(validated, refuted, observed or mitigated) against all ML threats: the number the run summary
and the reports show (``mlhunt.report.run_view.evidence_line``). :func:`suggest_checks` tells
an untested ML threat which check would test it, derived from the registries by their
mappings (an attack's ``validates``, a hunt detector's ``validates``, a scan rule's threats in
``scan_links.yaml``, the load test's ``VALIDATES``, a mitigation's ``addresses``): never a
sentence written per threat.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

EVIDENCE_STATUSES = ("validated", "refuted", "observed", "mitigated")


def is_ml_threat(finding: dict[str, Any]) -> bool:
    """An ML threat of the threat model (not an evidence finding of a part)."""
    return finding.get("framework") == "ML" and finding.get("source", "model") == "model"


def ml_evidence(findings: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"threats": n, "with_evidence": k, "share": k / n, "untested": [rule ids]}`` over the
    ML threats of a linked threat model (a grouped threat counts once)."""
    threats = [f for f in findings if is_ml_threat(f)]
    untested = [
        str(f["rule_id"])
        for f in threats
        if not set((f.get("validation") or {}).get("statuses") or ()) & set(EVIDENCE_STATUSES)
    ]
    n, k = len(threats), len(threats) - len(untested)
    return {
        "threats": n,
        "with_evidence": k,
        "share": round(k / n, 3) if n else None,
        "untested": sorted(untested),
    }


@dataclass(frozen=True)
class Check:
    """One registered check that tests a threat: its kind, id, what it is and for which input
    kinds (empty: any)."""

    kind: str  # attack | load-test | scan | hunt | harden
    id: str
    title: str
    threats: tuple[str, ...]
    inputs: tuple[str, ...] = ()


@functools.cache
def registry() -> tuple[Check, ...]:
    """Every check mlhunt has, from the attack, load-test, scan, detector and mitigation
    registries."""
    from mlhunt.assess.catalog import default_attacks
    from mlhunt.harden.catalog import default_mitigations
    from mlhunt.hunt.detectors import load_detectors
    from mlhunt.run import loadtest
    from mlhunt.run.validation import scan_links

    out = [
        Check("attack", a.id, a.spec.title, tuple(a.spec.validates), tuple(a.spec.applies_to))
        for a in default_attacks()
    ]
    out.append(
        Check("load-test", loadtest.RULE_ID, "Load test of the live API", loadtest.VALIDATES)
    )
    out += [Check("scan", rule, rule, threats) for rule, threats in scan_links()]
    out += [
        Check("hunt", d.spec.id, d.spec.title, tuple(d.spec.validates)) for d in load_detectors()
    ]
    out += [
        Check("harden", m.id, m.spec.title, tuple(m.spec.addresses), tuple(m.spec.applies_to))
        for m in default_mitigations()
    ]
    return tuple(out)


def _elements(model_doc: dict[str, Any], affected: Sequence[str]) -> list[str]:
    """The elements a threat is about: an affected flow stands for the element it feeds (the
    training job a poisoned flow trains), an element for itself; in order, once each."""
    flows = {str(f["id"]): str(f["target"]) for f in model_doc.get("flows", [])}
    return list(dict.fromkeys(flows.get(a, a) for a in affected))


def _inputs(model_doc: dict[str, Any], elements: Sequence[str]) -> set[str]:
    """The input kinds (tabular, image ...) of the models on ``elements`` (the document leaves
    out the default, tabular)."""
    from mlhunt.system.model import ModelProperties

    default = str(ModelProperties.model_fields["input_type"].default)
    kinds = set()
    for e in model_doc.get("elements", []):
        model = e.get("model") if isinstance(e.get("model"), dict) else None
        if e.get("id") in elements and model is not None:
            kinds.add(str(model.get("input_type") or default))
    return kinds


def _action(kind: str, ids: list[str], title: str, where: str) -> str:
    if kind == "attack":
        return f"run assess attack {ids[0]} ({title}) on the model of {where}"
    if kind == "load-test":
        return f"load-test the live API of {where} (models[].load_test, a scenario target)"
    if kind == "scan-manifest":
        return f"scan the deployment manifests of {where} (scan[].owners) for {', '.join(ids)}"
    if kind == "scan":
        return f"scan the model artifact of {where} (scan[].element) for {', '.join(ids)}"
    if kind == "hunt":
        return f"hunt the inference logs of {where} with detector {ids[0]} ({title})"
    return f"prove mitigation {ids[0]} ({title}) with harden"


def suggest_checks(
    threat: dict[str, Any], model_doc: dict[str, Any], scenarios: Iterable[str] = ()
) -> list[dict[str, str]]:
    """The registered checks that would test ``threat``: ``[{kind, id, action}]`` in registry
    order, the scan rules of one kind (artifact, manifest) as one check. Attacks for another
    input kind than the model's are left out; harden checks are listed for the project's
    scenarios only."""
    rule = str(threat.get("rule_id"))
    elements = _elements(model_doc, [str(a) for a in threat.get("affected") or [threat["target"]]])
    inputs = _inputs(model_doc, elements)
    where = elements[0] + (f" (or {', '.join(elements[1:])})" if len(elements) > 1 else "")
    wanted = set(scenarios)
    grouped: dict[tuple[str, str], tuple[list[str], str]] = {}
    for check in registry():
        if rule not in check.threats:
            continue
        if check.kind == "attack" and inputs and not inputs & set(check.inputs):
            continue  # an image attack says nothing about a tabular model
        if check.kind == "harden" and not wanted & set(check.inputs):
            continue
        kind = check.kind
        if kind == "scan" and check.id.startswith(("MLH-K8S-", "MLH-SECRET-")):
            kind = "scan-manifest"
        key = (kind, kind if kind.startswith("scan") else check.id)
        grouped.setdefault(key, ([], check.title))[0].append(check.id)
    return [
        {"kind": kind, "id": ", ".join(ids), "action": _action(kind, ids, title, where)}
        for (kind, _), (ids, title) in grouped.items()
    ]


def annotate_untested(model_doc: dict[str, Any], scenarios: Iterable[str] = ()) -> dict[str, Any]:
    """Give every untested ML threat of a linked model ``validation.checks`` (what would test
    it) and say so in its reason; count the coverage into ``summary.ml_evidence``."""
    scenarios = tuple(scenarios)
    for f in model_doc["findings"]:
        v = f.get("validation")
        if not is_ml_threat(f) or not isinstance(v, dict) or v.get("status") != "untested":
            continue
        checks = suggest_checks(f, model_doc, scenarios)
        v["checks"] = checks
        if checks:
            v["reason"] = f"{v.get('reason', '')}; to test it: {checks[0]['action']}" + (
                f" (or {len(checks) - 1} more check{'s' if len(checks) > 2 else ''})"
                if len(checks) > 1
                else ""
            )
        else:
            v["reason"] = f"{v.get('reason', '')}; no check in mlhunt tests it yet: review by hand"
    model_doc.setdefault("summary", {})["ml_evidence"] = ml_evidence(model_doc["findings"])
    return model_doc
