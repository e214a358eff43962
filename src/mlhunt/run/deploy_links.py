"""Deployment manifests and MCP configurations as evidence: which element owns which file, and
the threats a file checked clean refutes.

The project's ``scan[].owners`` names the element each manifest deploys. A Rego or secrets
finding on an owned file is that element's evidence (``scan_links.yaml`` says which threats a
rule proves), and also evidence for the flows that start or end at the element: no mTLS on
the prediction API's namespace is clear text on its flows. A threat that some manifest rules
test (``MLH-K8S-*``, ``MLH-SECRET-*`` keys of ``scan_links.yaml``) is *refuted* on an element
whose owned manifests were all checked and none of those rules fired: one info finding per
element (rule ``MLH-SCAN-DEPLOY-CLEAN``) names the files, the threats and the rules checked.
A threat whose rules include one that only looks at model-serving workloads (no mTLS, no
AuthorizationPolicy where a model is served) is refuted only on an element that serves one.
An agent tool's MCP client configuration is checked the same way by the ``MLH-SCAN-MCP-*``
rules (inline secrets, unpinned packages, poisoned or shadowed tools, plain HTTP).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mlhunt.errors import InputError
from mlhunt.findings import Finding, Severity
from mlhunt.run.project import Project, ScanConfig
from mlhunt.run.validation import CLEAN_RULE, EvidenceSet, scan_evidence, scan_links

MANIFEST_RULES = ("MLH-K8S-", "MLH-SECRET-")
MCP_RULES = ("MLH-SCAN-MCP-",)
# The element kinds that serve a model (what the serving-only policies look for).
SERVING_KINDS = ("inference_api", "llm")
# A file that one of these touched was not checked in full: it refutes nothing.
_UNCHECKED = ("MLH-K8S-POLICY-ERROR", "MLH-SCAN-LIMIT", "MLH-SCAN-MCP-MALFORMED")


def deploy_rules(threat: str, prefixes: tuple[str, ...] = MANIFEST_RULES) -> tuple[str, ...]:
    """The rules (ids, or prefixes ending in ``*``) starting with one of ``prefixes`` (by
    default the manifest rules) that test ``threat``."""
    return tuple(
        key
        for key, threats in scan_links()
        if threat in threats and key.startswith(prefixes) and key not in _UNCHECKED
    )


@functools.cache
def serving_rules() -> frozenset[str]:
    """The shipped policies that only look at model-serving workloads (their Rego asks
    ``is_model_server``): silent on any other manifest, so a clean result there proves nothing."""
    from mlhunt.scan.manifests import load_policies

    return frozenset(p.id for p in load_policies() if "is_model_server" in p.source)


def _matches(rule_id: str, keys: Iterable[str]) -> bool:
    return any(rule_id == k or (k.endswith("*") and rule_id.startswith(k[:-1])) for k in keys)


def owned_files(project: Project, cfg: ScanConfig) -> dict[str, list[Path]]:
    """Element id -> the files under the scan path its ``owners`` entries name (paths or globs
    relative to the scan path). A pattern matching no file is an error: a typo would otherwise
    drop the element's evidence without a word."""
    if cfg.path is None:  # a scenario's artifact: its owner is ``cfg.element``
        return {}
    root = project.resolve(cfg.path).resolve()
    out: dict[str, list[Path]] = {}
    for pattern, element in cfg.owners.items():
        base = root if root.is_dir() else root.parent
        found = sorted(p for p in base.glob(pattern) if p.is_file())
        if root.is_file():
            found = [p for p in found if p == root]
        if not found:
            raise InputError(
                f"owners: {pattern!r} matches no file under {root}",
                file=project.file,
                field="scan.owners",
            )
        out.setdefault(element, [])
        out[element] += [p for p in found if p not in out[element]]
    return out


def touching(model_doc: dict[str, Any], elements: Iterable[str]) -> frozenset[str]:
    """The flows that start or end at any of ``elements``."""
    wanted = set(elements)
    return frozenset(
        str(f["id"])
        for f in model_doc.get("flows", [])
        if f.get("source") in wanted or f.get("target") in wanted
    )


def _file_of(finding: dict[str, Any]) -> Path:
    return Path(str(finding.get("target", "")).split("#", 1)[0].split("!", 1)[0]).resolve()


def clean_checks(
    model_doc: dict[str, Any],
    owned: dict[str, list[Path]],
    findings: Sequence[dict[str, Any]],
    skipped: Sequence[str] = (),
) -> list[tuple[dict[str, Any], frozenset[str]]]:
    """(clean-check finding, elements and flows it speaks to) per owner element whose
    manifests were checked clean of some threat's rules; only threats the model found there."""
    from mlhunt.scan.manifests import is_manifest
    from mlhunt.scan.mcp import is_mcp_config

    out: list[tuple[dict[str, Any], frozenset[str]]] = []
    kinds = {str(e["id"]): str(e.get("kind")) for e in model_doc.get("elements", [])}
    for element, files in owned.items():
        manifests = [f for f in files if is_manifest(f)]
        configs = [f for f in files if f not in manifests and is_mcp_config(f)]
        # only the rules that read the kinds of file this element owns can refute anything
        prefixes = (MANIFEST_RULES if manifests else ()) + (MCP_RULES if configs else ())
        manifests += configs
        if not manifests:
            continue
        names = {p.resolve() for p in manifests}
        on_files = [f for f in findings if _file_of(f) in names]
        unchecked = any(str(f.get("rule_id", "")).startswith(_UNCHECKED) for f in on_files)
        if unchecked or any(s.split(":", 1)[0] in {str(n) for n in names} for s in skipped):
            continue
        scope = frozenset({element}) | touching(model_doc, [element])
        threats = sorted(
            {
                str(t["rule_id"])
                for t in model_doc["findings"]
                if set(t.get("affected") or [t["target"]]) & scope
            }
        )
        serving = kinds.get(element) in SERVING_KINDS
        checked: dict[str, list[str]] = {}
        for threat in threats:
            rules = deploy_rules(threat, prefixes)
            if not serving and serving_rules() & set(rules):
                continue  # its main check never runs on this element's manifests
            fired = [
                f
                for f in on_files
                if _matches(str(f.get("rule_id", "")), rules)
                and f.get("status", "open") != "false-positive"
                and f.get("severity") != "info"
            ]
            if rules and not fired:
                checked[threat] = list(rules)
        if checked:
            out.append((_clean_finding(element, manifests, checked), scope))
    return out


def _clean_finding(
    element: str, files: list[Path], checked: dict[str, list[str]]
) -> dict[str, Any]:
    digest = hashlib.sha256(
        "\0".join([element, *sorted(map(str, files))]).encode("utf-8")
    ).hexdigest()[:16]
    summary = f"{len(files)} deployment file(s) of {element} checked clean of " + "; ".join(
        f"{t} ({', '.join(r)})" for t, r in checked.items()
    )
    return Finding(
        id=f"{CLEAN_RULE}@{digest}",
        rule_id=CLEAN_RULE,
        title=f"Deployment of {element} checked clean",
        severity=Severity.INFO,
        source="scan",
        target=str(files[0]),
        description="Every policy, secrets and MCP check that tests these threats ran on the "
        "element's manifests or MCP configurations and none fired: " + summary,
        evidence={
            "summary": summary,
            "element": element,
            "files": [str(f) for f in files],
            "refutes": list(checked),
            "checked_rules": checked,
        },
    ).to_dict()


def scan_part_evidence(
    model_doc: dict[str, Any],
    element: str | None,
    doc: dict[str, Any],
    owned: dict[str, list[Path]],
    declared: dict[str, list[str]],
) -> tuple[dict[str, Any], list[EvidenceSet], list[dict[str, Any]]]:
    """A scan document as evidence: (the document with its clean-check findings added, the
    evidence sets, the findings tied to no element). ``declared``: the system's artifact
    paths per element; ``owned``: the scan entry's owners."""
    paths = {k: list(v) for k, v in declared.items()}
    for eid, files in owned.items():
        paths[eid] = [*paths.get(eid, []), *map(str, files)]
    sets, loose = scan_evidence(doc["findings"], element, paths)
    # an element's manifest speaks for the flows that start or end there too
    out = [
        EvidenceSet(s.source, s.findings, s.elements | touching(model_doc, s.elements))
        for s in sets
    ]
    clean = clean_checks(model_doc, owned, doc["findings"], doc.get("skipped") or [])
    out += [EvidenceSet("scan", [f], scope) for f, scope in clean]
    return {**doc, "findings": [*doc["findings"], *(f for f, _ in clean)]}, out, loose
