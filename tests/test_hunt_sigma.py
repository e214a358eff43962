"""Sigma export of the hunt: valid rules, stable ids, every rule converts with pySigma's Splunk and
Elasticsearch (ES|QL) backends, field mapping, thresholds from the detectors' hints."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import yaml

from mlhunt import sigmakit
from mlhunt.errors import InputError
from mlhunt.hunt import sigma
from mlhunt.hunt.detectors import load_detectors

# The correlations over raw logs and what each converted query must aggregate.
CORRELATIONS = {
    "mlhunt_distinct_inputs_per_client": ("input", "client_id"),
    "mlhunt_client_ids_per_source": ("client_id", "source_ip"),
    "mlhunt_unauthorized_burst_per_source": ("status", "source_ip"),
    "mlhunt_request_flood_per_client": ("client_id", "client_id"),
}


@pytest.fixture(scope="module")
def detectors() -> list:
    return load_detectors()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, detectors: list) -> Path:
    out = tmp_path_factory.mktemp("sigma")
    sigma.export_sigma(detectors, out)
    return out


def _rules(folder: Path) -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text("utf-8")) for p in sorted(folder.glob("*.yml"))}


def test_one_alert_rule_per_detector_and_the_correlations(exported: Path, detectors: list) -> None:
    rules = _rules(exported)
    alert_rules = {n: r for n, r in rules.items() if n.startswith("mlhunt_alert_")}
    assert len(alert_rules) == len(detectors)
    by_id = {r["detection"]["selection"]["rule_id"]: r for r in alert_rules.values()}
    assert set(by_id) == {d.spec.id for d in detectors}
    for det in detectors:
        rule = by_id[det.spec.id]
        assert rule["id"] == str(uuid.uuid5(sigma._NAMESPACE, f"alert:{det.spec.id}"))
        assert rule["logsource"] == {"product": "mlhunt", "service": "hunt"}
        assert rule["fields"] == ["rule_id", "detector", "severity", "target"]
        for atlas_id in det.spec.atlas:
            assert f"atlas.{atlas_id.lower()}" in rule["tags"]
        levels = [sigmakit.SEVERITY_TO_LEVEL[s] for s in det.spec.severity]
        assert rule["level"] == max(levels, key=sigmakit.LEVELS.index)
        assert det.spec.false_positive_notes.strip()[:30] in rule["falsepositives"][0]
    assert set(CORRELATIONS) <= set(rules)
    for name in CORRELATIONS:
        assert rules[name]["correlation"]["type"] in ("event_count", "value_count")


def test_rules_are_valid_sigma(exported: Path) -> None:
    """pySigma parses every file without errors, and its validators (those that need no
    network; the namespace check is left out: it does not know the atlas/owasp-ml tags) find
    nothing."""
    from sigma.collection import SigmaCollection
    from sigma.validation import SigmaValidator
    from sigma.validators.core import validators

    skip = {"attacktag", "d3_fendtag", "namespace_tag"}
    chosen = [v for k, v in validators.items() if k not in skip]
    collection = SigmaCollection.load_ruleset([str(exported)], collect_errors=True)
    assert len(collection.rules) == len(list(exported.glob("*.yml")))
    assert all(not r.errors for r in collection.rules), [r.errors for r in collection.rules]
    issues = SigmaValidator(chosen).validate_rules(iter(collection.rules))
    assert issues == [], issues
    assert all(str(r.date) == sigma.RULES_DATE for r in collection.rules)


def test_export_is_stable(tmp_path: Path, exported: Path, detectors: list) -> None:
    sigma.export_sigma(detectors, tmp_path)
    for path in exported.glob("*.yml"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("backend", sigma.BACKENDS)
def test_every_rule_converts(backend: str, exported: Path, detectors: list) -> None:
    queries = sigma.convert(exported, backend)
    for det in detectors:
        name = "mlhunt_alert_" + sigmakit.safe_name(det.spec.id)
        (query,) = queries[name]
        assert det.spec.id in query and "rule_id" in query
    rules = _rules(exported)
    for name, (field, group) in CORRELATIONS.items():
        (query,) = queries[name]
        gte = rules[name]["correlation"]["condition"]["gte"]
        span = rules[name]["correlation"]["timespan"]
        assert field in query and group in query
        assert f">= {gte}" in query
        if backend == "splunk":
            assert f"span={span}" in query and ("dc(" in query or "count" in query)
        else:
            assert query.startswith("from ") and "stats" in query and "date_trunc" in query
    assert "status" in queries["mlhunt_unauthorized_burst_per_source"][0]
    assert "401" in queries["mlhunt_unauthorized_burst_per_source"][0]
    # base rules are folded into their correlations, never converted alone
    assert "mlhunt_inference_request" not in queries


def test_detector_hints_set_the_thresholds(detectors: list) -> None:
    rules = {r["name"]: r for r in sigma.build_rules(detectors)}
    for det in detectors:
        for name, hint in det.spec.sigma.items():
            corr = rules[name]["correlation"]
            if hint.gte is not None:
                assert corr["condition"]["gte"] == hint.gte
            if hint.timespan is not None:
                assert corr["timespan"] == hint.timespan
    # the same from plain dicts (what the CLI hands over: spec.model_dump())
    dumped = sigma.build_rules([d.spec.model_dump() for d in detectors])
    assert dumped == list(rules.values())
    tuned = {
        r["name"]: r
        for r in sigma.build_rules(detectors, thresholds={"mlhunt_request_flood_per_client": 1234})
    }
    assert tuned["mlhunt_request_flood_per_client"]["correlation"]["condition"]["gte"] == 1234
    with pytest.raises(InputError, match="unknown Sigma correlation"):
        sigma.build_rules(detectors, thresholds={"no_such_rule": 3})


@pytest.mark.parametrize("backend", sigma.BACKENDS)
def test_field_mapping_renames_fields(backend: str, detectors: list) -> None:
    mapping = {"client_id": "user.name", "source_ip": "source.ip", "status": "http.status"}
    queries = sigma.convert(
        sigma.build_rules(detectors), backend, field_map=mapping, es_index="mlhunt-logs-*"
    )
    burst = queries["mlhunt_unauthorized_burst_per_source"][0]
    assert "http.status" in burst and "source.ip" in burst
    assert not re.search(r"(?<![.\w])status\b", burst) and "source_ip" not in burst
    flood = queries["mlhunt_request_flood_per_client"][0]
    assert "user.name" in flood and "client_id" not in flood
    if backend == "elasticsearch":
        assert flood.startswith("from mlhunt-logs-*")


def test_export_writes_converted_queries(tmp_path: Path, detectors: list) -> None:
    paths = sigma.export_sigma(detectors, tmp_path, backend="splunk")
    spl = sorted(p.name for p in paths if p.suffix == ".spl")
    assert len(spl) == len(detectors) + len(CORRELATIONS)
    text = (tmp_path / "mlhunt_unauthorized_burst_per_source.spl").read_text()
    assert "stats count as event_count" in text
    paths = sigma.export_sigma(detectors, tmp_path, backend="elasticsearch")
    assert len([p for p in paths if p.suffix == ".esql"]) == len(spl)
    with pytest.raises(InputError, match="unknown Sigma backend"):
        sigma.export_sigma(detectors, tmp_path, backend="qradar")


def test_cli_exports_and_converts(tmp_path: Path) -> None:
    """`mlhunt hunt LOGS --export-sigma DIR --sigma-backend elasticsearch`, as a user runs it."""
    import json
    import subprocess
    import sys

    logs = tmp_path / "logs.jsonl"
    rows = [
        {
            "ts": 1709596800 + i,
            "client_id": f"c{i % 3}",
            "source_ip": "10.0.0.1",
            "input": [i % 7, i % 5],
            "output": {"label": "a", "scores": [0.6, 0.4]},
            "status": 200,
        }
        for i in range(60)
    ]
    logs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "sigma"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlhunt",
            "hunt",
            str(logs),
            "--format",
            "json",
            "--export-sigma",
            str(out),
            "--sigma-backend",
            "elasticsearch",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    files = {Path(p).name for p in doc["sigma"]["files"]}
    assert "mlhunt_request_flood_per_client.yml" in files
    assert "mlhunt_request_flood_per_client.esql" in files
    assert (out / "mlhunt_unauthorized_burst_per_source.esql").read_text().startswith("from ")
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlhunt",
            "hunt",
            str(logs),
            "--export-sigma",
            str(out),
            "--sigma-backend",
            "qradar",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "unknown Sigma backend" in bad.stderr
    assert "Traceback" not in bad.stderr
