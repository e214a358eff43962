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


def _inputs(model_doc: dict[str, Any], affected: Sequence[str]) -> set[str]:
    """The input kinds (tabular, image ...) of the models on the affected elements."""
    kinds = set()
    for e in model_doc.get("elements", []):
        model = e.get("model") if isinstance(e.get("model"), dict) else None
        if e.get("id") in affected and model and model.get("input_type"):
            kinds.add(str(model["input_type"]))
    return kinds


def _action(check: Check, where: str) -> str:
    if check.kind == "attack":
        return f"run assess attack {check.id} ({check.title}) on the model of {where}"
    if check.kind == "load-test":
        return f"load-test the live API of {where} (models[].load_test, a scenario target)"
    if check.kind == "scan":
        if check.id.startswith(("MLH-K8S-", "MLH-SECRET-")):
            return f"scan the deployment manifests of {where} (scan[].owners) for {check.id}"
        return f"scan the model artifact of {where} (scan[].element) for {check.id}"
    if check.kind == "hunt":
        return f"hunt the inference logs of {where} with detector {check.id} ({check.title})"
    return f"prove mitigation {check.id} ({check.title}) with harden"


def suggest_checks(
    threat: dict[str, Any], model_doc: dict[str, Any], scenarios: Iterable[str] = ()
) -> list[dict[str, str]]:
    """The registered checks that would test ``threat``: ``[{kind, id, action}]``, attacks on
    the model's input kind first. Harden checks are listed for the project's scenarios only."""
    rule = str(threat.get("rule_id"))
    affected = [str(a) for a in threat.get("affected") or [threat.get("target")]]
    inputs = _inputs(model_doc, affected)
    where = affected[0] if len(affected) == 1 else f"{affected[0]} (or {', '.join(affected[1:])})"
    wanted = set(scenarios)
    out = []
    for check in registry():
        if rule not in check.threats:
            continue
        if check.kind == "attack" and inputs and not inputs & set(check.inputs):
            continue  # an image attack says nothing about a tabular model
        if check.kind == "harden" and not wanted & set(check.inputs):
            continue
        out.append({"kind": check.kind, "id": check.id, "action": _action(check, where)})
    return out


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
