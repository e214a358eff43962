"""A realistic run document for the report tests: the real loan-approval threat model, a real scan
of its deploy folder plus an unsafe pickle, attack findings with real PNG plots, and hunt alerts,
linked with :func:`mlhunt.run.validation.link` exactly as ``mlhunt run`` links them.

The attack and hunt numbers are fixed values in the shape ``assess`` and ``hunt`` emit (those
parts are tested on their own); what the report tests check is how a run is told, not whether an
attack works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mlhunt.findings import Finding, Severity, document
from mlhunt.run.validation import EvidenceSet, link
from mlhunt.scan import scan_path
from mlhunt.system.loader import parse_system, read_text
from mlhunt.threatmodel import build_threat_model, default_catalog
from tests.conftest import EXAMPLES

EVIL = "<script>alert(1)</script>"
EVIL_FILE = "<script>alert(1)"  # a file name cannot hold the '/' of the closing tag
EXTRACTION_CLIENT = "key-7f3a"


def _model_doc(evil: bool) -> dict[str, Any]:
    path = EXAMPLES / "loan-approval" / "system.yaml"
    text = read_text(path)
    if evil:  # an element name that is markup
        data = yaml.safe_load(text)
        data["elements"][0]["name"] = EVIL
        text = yaml.safe_dump(data, sort_keys=False)
    tm = build_threat_model(parse_system(text, str(path)), default_catalog())
    return tm.to_document()


def _plots(assets: Path, evil: bool) -> dict[str, str]:
    from mlhunt.assess import plots

    q = [100, 250, 500, 1000, 2000]
    eps = [0.0, 0.02, 0.05, 0.1, 0.2]
    fpr = np.logspace(-4, 0, 40)
    rng = np.random.default_rng(0)
    return {
        "agreement": plots.curve(
            assets,
            "extraction-agreement.png",
            q,
            {"agreement": [0.71, 0.84, 0.91, 0.95, 0.97]},
            xlabel="queries",
            ylabel="agreement",
            title="Extraction",
            logx=True,
        ),
        "robustness": plots.curve(
            assets,
            "robustness.png",
            eps,
            {"accuracy": [0.86, 0.71, 0.48, 0.21, 0.05]},
            xlabel="epsilon",
            ylabel="accuracy",
            title="Robustness",
        ),
        "roc": plots.roc(
            assets,
            "membership-roc.png",
            {"LiRA": (fpr, np.minimum(1, fpr * 1.1))},
            title="Membership inference",
        ),
        "patch": plots.image_grid(
            assets,
            f"patch{EVIL_FILE if evil else ''}.png",
            rng.random((4, 3, 16, 16)),
            ["hidden", "hidden", "kept", "hidden"],
            title="Adversarial patch",
        ),
    }


def _assess(target: str, plots: dict[str, str]) -> list[Finding]:
    def f(rule: str, title: str, sev: Severity, ev: dict[str, Any], mit: list[str]) -> Finding:
        return Finding(
            id=f"{rule}@{target}",
            rule_id=rule,
            title=title,
            severity=sev,
            source="assess",
            target=target,
            description=ev["summary"],
            atlas=ev.pop("atlas"),
            evidence=ev,
            mitigations=mit,
        )

    return [
        f(
            "MLH-ASSESS-EXTRACTION-COPYCAT",
            "Model extraction: validated",
            Severity.HIGH,
            {
                "verdict": "validated",
                "validates": ["MLH-ML-EXTRACTION-API"],
                "agreement": 0.97,
                "queries": 2000,
                "seconds": 41.2,
                "atlas": ["AML.T0024.002"],
                "summary": "A copy trained on 2,000 API answers agrees with the model on 97% of "
                "held-out applicants.",
                "curves": {"queries": [100, 2000], "agreement": [0.71, 0.97]},
                "plots": [plots["agreement"]],
            },
            ["Return labels or coarse scores instead of full probabilities."],
        ),
        f(
            "MLH-ASSESS-EVASION-HSJ",
            "Evasion (HopSkipJump): validated",
            Severity.HIGH,
            {
                "verdict": "validated",
                "validates": ["MLH-ML-EVASION-API"],
                "clean_accuracy": 0.86,
                "adversarial_accuracy": 0.21,
                "epsilon": 0.1,
                "success_rate": 0.76,
                "queries": 9000,
                "atlas": ["AML.T0043.001"],
                "summary": "76% of decisions flip within epsilon 0.1.",
                "plots": [plots["robustness"], "robustness-per-feature.png"],
            },  # 2nd: missing file
            ["Adversarially train the model and cap per-feature input ranges."],
        ),
        f(
            "MLH-ASSESS-MEMBERSHIP-LIRA",
            "Membership inference (LiRA): refuted",
            Severity.INFO,
            {
                "verdict": "refuted",
                "validates": ["MLH-ML-MEMBERSHIP-INFERENCE"],
                "auc": 0.52,
                "tpr_at_fpr": {"0.001": 0.0011, "0.01": 0.011},
                "advantage": 0.03,
                "queries": 4000,
                "atlas": ["AML.T0024.000"],
                "summary": "Members are not told apart from non-members.",
                "plots": [plots["roc"]],
            },
            [],
        ),
        f(
            "MLH-ASSESS-PATCH",
            "Adversarial patch: validated",
            Severity.MEDIUM,
            {
                "verdict": "validated",
                "validates": ["MLH-ML-ADVERSARIAL-PATCH"],
                "hide_rate": 0.62,
                "patch_area": 0.04,
                "queries": 0,
                "atlas": ["AML.T0043.003"],
                "summary": "Patch examples (no image model in this system: linked to no threat).",
                "plots": [plots["patch"]],
            },
            [],
        ),
    ]


def _hunt(evil: bool) -> list[Finding]:
    def alert(client: str, detector: str, rules: list[str], ev: dict[str, Any]) -> Finding:
        return Finding(
            id=f"MLH-HUNT-{detector.upper()}@{client}",
            title=f"{detector} by {client}",
            rule_id=f"MLH-HUNT-{detector.upper()}",
            severity=Severity.HIGH,
            source="hunt",
            target=client,
            atlas=["AML.T0024.002"],
            evidence={"detector": detector, "validates": rules, **ev},
            mitigations=["Throttle and review the API key."],
        )

    series = [round(0.05 + 0.9 * min(1.0, i / 400) + 0.03 * (i % 7) / 7, 3) for i in range(600)]
    other = EVIL if evil else "10.0.3.17"
    return [
        alert(
            EXTRACTION_CLIENT,
            "extraction",
            ["MLH-ML-EXTRACTION-API"],
            {
                "first_event_ts": "2025-03-02T10:00:04Z",
                "detected_at_event": 412,
                "score": 0.93,
                "threshold": 0.8,
                "series": series,
                "counts": {"events": 2000, "distinct": 1996},
                "sample_queries": [[52000, 0.31, 14], [51999, 0.31, 14]],
            },
        ),
        alert(
            "key-19bd",
            "extraction",
            ["MLH-ML-EXTRACTION-API"],
            {"first_event_ts": "2025-03-02T11:30:00Z", "detected_at_event": 1250, "score": 0.84},
        ),
        alert(
            other,
            "adversarial_probing",
            ["MLH-ML-EVASION-API"],
            {"first_event_ts": "2025-03-02T12:00:00Z", "detected_at_event": 88, "score": 0.77},
        ),
    ]


def build_run_doc(tmp: Path, *, evil: bool = False, baseline: bool = True) -> dict[str, Any]:
    """The run document of a loan-approval run, plots written under ``tmp / 'assets'``.
    ``evil`` puts markup into an element name, a client id and file names."""
    assets = tmp / "assets"
    model = _model_doc(evil)
    plots = _plots(assets, evil)
    assess = _assess("loan-approval", plots)
    hunt = _hunt(evil)
    artifacts = tmp / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    # A pickle that would run a shell command when loaded: the scanner flags it, never runs it.
    (artifacts / (f"{EVIL_FILE}.pkl" if evil else "model.pkl")).write_bytes(
        b"cos\nsystem\n(S'echo pwned'\ntR."
    )
    deploy = scan_path(EXAMPLES / "loan-approval" / "deploy")
    art = scan_path(artifacts)
    link(
        model,
        [
            EvidenceSet("assess", [f.to_dict() for f in assess], frozenset({"prediction-api"})),
            EvidenceSet("hunt", [f.to_dict() for f in hunt], frozenset({"prediction-api"})),
            EvidenceSet("scan", [f.to_dict() for f in deploy.findings]),
            EvidenceSet("scan", [f.to_dict() for f in art.findings], frozenset({"model-artifact"})),
        ],
    )
    evidence = [*assess, *hunt, *deploy.findings, *art.findings]
    doc = document(
        "run", [], **{k: model[k] for k in ("system", "elements", "flows", "trust_boundaries")}
    )
    doc["findings"] = model["findings"] + [f.to_dict() for f in evidence]
    doc["summary"] = {**model["summary"], "total": len(doc["findings"])}
    doc["parts"] = {
        "assess": [
            {
                "target": "loan-approval",
                "element": "prediction-api",
                "queries": 15000,
                "seconds": 93.4,
                "attacks": [f.rule_id for f in assess],
            }
        ],
        "hunt": [
            {
                "logs": "traffic/logs.jsonl",
                "engine": "duckdb",
                "read": {"records": 48213, "malformed": 3, "errors": []},
                "events_per_second": 412000,
            }
        ],
        "scan": [
            {"path": "deploy", "files_scanned": deploy.files},
            {"path": str(artifacts), "files_scanned": art.files},
        ],
    }
    doc["assets_dir"] = str(assets)
    if baseline:
        ids = [f["id"] for f in doc["findings"]]
        doc["baseline"] = {"new": ids[:2], "unchanged": ids[2:], "fixed": ["MLH-OLD@gone"]}
    return doc
