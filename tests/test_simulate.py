"""The traffic simulator on the real scenarios: labelled, deterministic, computed against the
model's own answers, the same in-process and through the live API."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from mlhunt.errors import InputError
from mlhunt.logschema import InferenceRecord
from mlhunt.scenarios import ensure_built
from mlhunt.scenarios.server import KeyStore, create_app, running
from mlhunt.scenarios.traffic import IMAGE_STYLES, TABULAR_STYLES, simulate

ROOT = Path(__file__).resolve().parent.parent
SCALE = 0.1


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def loan():
    return ensure_built("loan-approval")[1]


@pytest.fixture(scope="module")
def loan_run(loan, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    result = simulate(loan, out, seed=7, scale=SCALE)
    labels = json.loads(result.labels_path.read_text(encoding="utf-8"))
    return result, labels, _records(result.logs_path)


def test_labels_cover_benign_population_and_every_attack_style(loan_run):
    result, labels, records = loan_run
    assert labels["scenario"] == "loan-approval" and labels["seed"] == 7
    counts = Counter(labels["clients"].values())
    assert counts["benign"] >= 200
    assert set(TABULAR_STYLES) <= set(counts)
    assert set(counts) == {"benign", *TABULAR_STYLES}
    # every labelled client sent traffic, and every client in the log is labelled
    assert {r["client_id"] for r in records} == set(labels["clients"])
    assert result.records == len(records) == sum(labels["queries"].values())
    # benign traps are present: batch jobs, retries, what-if variants, shared NAT addresses
    traps = labels["traps"]
    assert traps["batch_rescoring"] and traps["retry"] and traps["what_if"]
    assert all(len(ids) >= 5 for ids in traps["nat"].values()) and traps["nat"]
    assert all(labels["sources"][ip] == "benign" for ip in traps["nat"])
    # the sybil operator: many client ids, one source address labelled as the attack
    sybil = labels["attacks"]["sybil-extraction"]
    assert len(sybil["clients"]) >= 5 and len(sybil["source_ips"]) == 1
    assert labels["sources"][sybil["source_ips"][0]] == "sybil-extraction"
    # volumes are skewed: the heaviest benign clients send far more than the median one
    vol = Counter(r["client_id"] for r in records)
    benign = sorted(vol[c] for c, lab in labels["clients"].items() if lab == "benign")
    assert benign[-1] > 20 * np.median(benign)


def test_every_record_validates_and_time_is_a_fixed_simulated_day(loan_run):
    _result, labels, records = loan_run
    for r in records:
        rec = InferenceRecord.model_validate(r)
        assert rec.status == 200 and rec.model == "loan-approval-logreg-v1"
        assert rec.output.label in ("rejected", "approved") and len(rec.output.scores) == 2
        assert len(rec.input) == 9
    ts = [r["ts"] for r in records]
    assert ts == sorted(ts)
    assert all(t.startswith(labels["day"] + "T") and t.endswith("Z") for t in ts)
    hours = Counter(int(t[11:13]) for t in ts)
    assert hours[10] + hours[11] > 4 * (hours[4] + hours[5])  # daily rhythm


def test_deterministic_for_a_seed(loan, loan_run, tmp_path):
    result, _labels, _ = loan_run
    again = simulate(loan, tmp_path, seed=7, scale=SCALE)
    assert again.logs_path.read_bytes() == result.logs_path.read_bytes()
    assert again.labels_path.read_bytes() == result.labels_path.read_bytes()
    other = simulate(loan, tmp_path / "other", seed=8, scale=SCALE)
    assert other.logs_path.read_bytes() != result.logs_path.read_bytes()


def test_outputs_are_the_models_answers(loan, loan_run):
    _result, labels, records = loan_run
    attackers = [r for r in records if labels["clients"][r["client_id"]] != "benign"]
    rng = np.random.default_rng(0)
    sample = [records[i] for i in rng.choice(len(records), 300, replace=False)] + attackers
    x = np.array([r["input"] for r in sample])
    probs = loan.predict_proba(x)
    got = np.array([r["output"]["scores"] for r in sample])
    np.testing.assert_allclose(got, probs, atol=1e-6, rtol=0)
    assert [r["output"]["label"] for r in sample] == [loan.classes[i] for i in probs.argmax(axis=1)]
    # attacker inputs respect the deployment's bounds and integer fields
    spec = loan.spec
    xa = np.array([r["input"] for r in attackers])
    assert np.all(xa >= np.array(spec.lower)) and np.all(xa <= np.array(spec.upper))
    ints = np.array(spec.integer)
    assert np.all(xa[:, ints] == np.round(xa[:, ints]))


def test_evasion_reaches_the_boundary_and_keeps_immutable_fields(loan, loan_run):
    _result, labels, records = loan_run
    info = labels["attacks"]["evasion-probing"]
    (client,) = info["clients"]
    queries = [r for r in records if r["client_id"] == client]
    assert len(queries) == info["queries"] >= 100
    outputs = [r["output"]["label"] for r in queries]
    assert {"approved", "rejected"} <= set(outputs)
    flips = sum(a != b for a, b in itertools.pairwise(outputs))
    assert flips >= 10  # it walks along the decision boundary, crossing it again and again
    p = np.array([r["output"]["scores"][1] for r in queries])
    assert np.min(np.abs(p - 0.5)) < 0.01
    assert any(t["reached"] for t in info["targets"])
    immutable = ~np.array(loan.spec.mutable)
    targets = {tuple(np.array(t["target"])[immutable]) for t in info["targets"]}
    for r in queries:
        assert tuple(np.array(r["input"])[immutable]) in targets


def test_membership_and_inversion_use_training_records(loan, loan_run):
    _result, labels, records = loan_run
    by_client = defaultdict(list)
    for r in records:
        by_client[r["client_id"]].append(r["input"])
    train = {tuple(row) for row in loan.x_train.tolist()}
    (member,) = labels["attacks"]["membership-probing"]["clients"]
    exact = [tuple(x) in train for x in by_client[member]]
    assert sum(exact) >= labels["attacks"]["membership-probing"]["records"]
    (inverter,) = labels["attacks"]["inversion-sweep"]["clients"]
    x = np.array(by_client[inverter])
    # sweeps: consecutive queries differ in exactly one field
    changed = (np.diff(x, axis=0) != 0).sum(axis=1)
    assert np.mean(changed == 1) > 0.8


def test_live_mode_matches_the_servers_log(loan, tmp_path):
    server_log = tmp_path / "server.jsonl"
    app = create_app(loan, keys=KeyStore(prefix="sim-"), log_path=server_log, trust_forwarded=True)
    with running(app) as url:
        result = simulate(loan, tmp_path / "out", seed=3, live_url=url, scale=0.02)
    ours = _records(result.logs_path)
    theirs = _records(server_log)
    assert result.mode == "live" and len(ours) == len(theirs) == result.records

    def key(r: dict) -> tuple:
        return (
            r["client_id"],
            r["source_ip"],
            tuple(r["input"]),
            r["output"]["label"],
            tuple(r["output"]["scores"]),
        )

    assert sorted(map(key, ours)) == sorted(map(key, theirs))
    labels = json.loads(result.labels_path.read_text(encoding="utf-8"))
    assert set(TABULAR_STYLES) <= set(labels["clients"].values())
    # the same simulation in-process yields the same records (latency aside)
    local = _records(simulate(loan, tmp_path / "local", seed=3, scale=0.02).logs_path)
    strip = [{k: v for k, v in r.items() if k != "latency_ms"} for r in local]
    assert strip == [{k: v for k, v in r.items() if k != "latency_ms"} for r in ours]


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:8000", "https://example.com/", "ftp://127.0.0.1/", "127.0.0.1:80"]
)
def test_non_loopback_urls_are_refused(loan, tmp_path, url):
    with pytest.raises(InputError, match="--live"):
        simulate(loan, tmp_path, live_url=url, scale=0.02)
    assert not (tmp_path / "logs.jsonl").exists()


def test_image_moderation_traffic(tmp_path):
    # Built once per cache (about a minute on 2 cores), shared with test_scenario_image.
    loaded = ensure_built("image-moderation")[1]
    result = simulate(loaded, tmp_path, seed=1, scale=0.1)
    labels = json.loads(result.labels_path.read_text(encoding="utf-8"))
    counts = Counter(labels["clients"].values())
    assert counts["benign"] >= 200 and set(IMAGE_STYLES) <= set(counts)
    records = _records(result.logs_path)
    for r in records[:500]:
        InferenceRecord.model_validate(r)
    (prober,) = labels["attacks"]["patch-probing"]["clients"]
    probes = [r for r in records if r["client_id"] == prober]
    scores = [r["output"]["scores"][0] for r in probes]
    assert len(probes) >= 40 and max(scores) >= scores[0]
    # logged inputs are the deployment's 8x8 proxy
    assert {len(r["input"]) for r in records} == {64}


def test_cli(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = tmp_path / "sim"
    cmd = [sys.executable, "-m", "mlhunt", "simulate", "loan-approval", "--out", str(out)]
    proc = subprocess.run([*cmd, "--scale", "0.1"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "records" in proc.stderr.splitlines()[-1] and "benign clients" in proc.stderr
    assert (out / "logs.jsonl").stat().st_size > 0 and (out / "labels.json").is_file()
    for bad, needle in (
        (["simulate", "no-such-scenario", "--out", str(out)], "unknown scenario"),
        ([*cmd[3:], "--live", "http://192.0.2.10:8000"], "loopback"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "mlhunt", *bad], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 2 and needle in proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_fraud_detection_traffic(tmp_path):
    loaded = ensure_built("fraud-detection")[1]
    result = simulate(loaded, tmp_path, seed=2, scale=0.1)
    labels = json.loads(result.labels_path.read_text(encoding="utf-8"))
    counts = Counter(labels["clients"].values())
    assert counts["benign"] >= 200 and set(TABULAR_STYLES) <= set(counts)
    records = _records(result.logs_path)
    for r in records[::50]:
        InferenceRecord.model_validate(r)
    # Answers are the model's own: recompute a sample.
    sample = records[::97]
    x = np.array([r["input"] for r in sample])
    probs = loaded.predict_proba(x)
    assert np.allclose(probs, [r["output"]["scores"] for r in sample], atol=1e-5)
