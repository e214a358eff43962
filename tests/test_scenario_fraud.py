"""The fraud-detection scenario for real: generated transactions, the trained model, its skops
artifact (never a pickle) and the live prediction API on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlhunt.logschema import InferenceRecord
from mlhunt.scenarios import ensure_built
from mlhunt.scenarios.fraud import (
    FEATURE_NAMES,
    MODEL_FILE,
    SPEC,
    TRUSTED_TYPES,
    generate_transactions,
    load_model,
)
from mlhunt.scenarios.server import KeyStore, create_app, running


@pytest.fixture(scope="module")
def fraud():
    return ensure_built("fraud-detection", seed=0)


def test_data_and_model_quality(fraud) -> None:
    built, loaded = fraud
    m = built.metrics
    assert 0.005 <= m["fraud_rate"] <= 0.02
    assert 0.005 <= m["base_rate"] <= 0.02
    assert m["pr_auc"] > 5 * m["base_rate"], m
    assert m["pr_auc"] < 0.99, "fraud must not be trivially separable"
    assert m["roc_auc"] > 0.9
    assert len(loaded.y_holdout) == m["n_holdout"] and len(loaded.y_train) == m["n_train"]
    assert len(loaded.y_train) + len(loaded.y_holdout) >= 150_000
    # The loaded artifact reproduces the recorded holdout PR-AUC.
    from sklearn.metrics import average_precision_score

    p = loaded.predict_proba(loaded.x_holdout)
    assert p.shape == (len(loaded.y_holdout), 2)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert average_precision_score(loaded.y_holdout, p[:, 1]) == pytest.approx(m["pr_auc"], 1e-5)
    # Single rows (the low-latency path) score the same as the batch.
    one = np.vstack([loaded.predict_proba(row) for row in loaded.x_holdout[:20]])
    assert np.allclose(one, p[:20])


def test_generator_is_deterministic_realistic_and_in_bounds(fraud) -> None:
    _built, loaded = fraud
    a = generate_transactions(20_000, np.random.default_rng(7))
    b = generate_transactions(20_000, np.random.default_rng(7))
    c = generate_transactions(20_000, np.random.default_rng(8))
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    x, y, is_fraud = a
    assert x.shape == (20_000, len(FEATURE_NAMES))
    lo, hi = np.array(SPEC.lower), np.array(SPEC.upper)
    assert np.all((x >= lo) & (x <= hi))
    ints = np.array(SPEC.integer)
    assert np.array_equal(x[:, ints], np.round(x[:, ints]))
    # Label noise: some frauds unreported, some legit disputed, most labels agree.
    assert 0.95 < np.mean(y == is_fraud) < 1.0
    # Fraud looks different on average: far from home, at night, new devices.
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    fr, lg = x[is_fraud == 1], x[is_fraud == 0]
    assert np.median(fr[:, col["amount"]]) > np.median(lg[:, col["amount"]])
    assert fr[:, col["device_new"]].mean() > 5 * lg[:, col["device_new"]].mean()
    assert np.mean(fr[:, col["hour"]] <= 5) > 2 * np.mean(lg[:, col["hour"]] <= 5)
    # Fresh benign samples: valid, legitimate-looking, a separate stream (not training rows).
    benign = loaded.sample_benign(2_000, np.random.default_rng(123))
    assert benign.shape == (2_000, len(FEATURE_NAMES))
    assert np.all((benign >= lo) & (benign <= hi))
    assert loaded.predict_proba(benign)[:, 1].mean() < 0.02
    assert np.mean(loaded.predict_proba(loaded.x_holdout[loaded.y_holdout == 1])[:, 1]) > 0.3
    assert not (benign[:, None, :] == loaded.x_train[:500][None, :, :]).all(axis=2).any()
    # The spec: a fraudster controls amount, merchant, hour, channel and pace; not the rest.
    mutable = {n for n, m in zip(SPEC.names, SPEC.mutable, strict=True) if m}
    assert {"amount", "hour", "channel", "merchant_category", "txn_count_1h"} <= mutable
    assert not mutable & {"country_mismatch", "distance_from_home_km", "card_avg_amount_30d"}
    assert loaded.classes == ("legit", "fraud")
    assert loaded.log_vector(benign[0]) == [float(v) for v in benign[0]]


def test_model_file_is_skops_not_pickle(fraud) -> None:
    import skops.io as sio

    built, _loaded = fraud
    path = built.directory / MODEL_FILE
    head = path.read_bytes()[:4]
    assert head == b"PK\x03\x04"  # a zip (skops), not a pickle stream (b"\x80\x04...")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert "schema.json" in names
        assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)
    meta = json.loads((built.directory / "model.json").read_text())
    assert meta["trusted_types"] == list(TRUSTED_TYPES)
    assert meta["feature_names"] == list(FEATURE_NAMES)


def test_loading_refuses_untrusted_types_and_tampering(fraud, tmp_path: Path) -> None:
    import hashlib

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer
    from skops.io.exceptions import UntrustedTypesFoundException

    built, _loaded = fraud
    copy = tmp_path / "model"
    shutil.copytree(built.directory, copy)
    assert load_model(copy)[0] is not None  # the genuine artifact loads

    # A tampered file (digest mismatch) is refused before it is parsed.
    with (copy / MODEL_FILE).open("ab") as fh:
        fh.write(b"x")
    with pytest.raises(ValueError, match="digest"):
        load_model(copy)

    # A file whose digest was updated too, but which holds a type nobody trusted (a callable
    # that would run on use): skops refuses it; nothing is trusted just because it is there.
    sio.dump(FunctionTransformer(func=eval), copy / MODEL_FILE)
    meta = json.loads((copy / "model.json").read_text())
    meta["sha256"] = hashlib.sha256((copy / MODEL_FILE).read_bytes()).hexdigest()
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(UntrustedTypesFoundException):
        load_model(copy)


def _free_port_closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) != 0


def test_api_predicts_authenticates_validates_and_logs(fraud, tmp_path: Path) -> None:
    _built, loaded = fraud
    log = tmp_path / "logs" / "inference.jsonl"
    app = create_app(loaded, keys=KeyStore({"k": "merchant-1"}), log_path=log)
    benign = loaded.sample_benign(3, np.random.default_rng(5))
    fraudy = loaded.x_holdout[loaded.y_holdout == 1][:2]
    ok = 0
    with running(app) as url:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/health").json()["status"] == "ok"
            hdr = {"X-API-Key": "k"}
            for row in [*benign, *fraudy]:
                r = client.post("/predict", json={"features": loaded.features(row)}, headers=hdr)
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["classes"] == ["legit", "fraud"]
                assert len(body["scores"]) == 2 and sum(body["scores"]) == pytest.approx(1, 1e-4)
                assert body["label"] in ("legit", "fraud")
                assert body["scores"][1] == pytest.approx(loaded.predict_proba(row)[0, 1], abs=1e-6)
                ok += 1
            r = client.post("/predict", json={"vector": benign[0].tolist()}, headers=hdr)
            assert r.status_code == 200
            ok += 1
            # An out-of-range merchant code is still answered (clipped), not a 500.
            odd = loaded.features(benign[1]) | {"merchant_category": 999.0}
            r = client.post("/predict", json={"features": odd}, headers=hdr)
            assert r.status_code == 200
            ok += 1

            good = {"features": loaded.features(benign[0])}
            assert client.post("/predict", json=good).status_code == 401
            r = client.post("/predict", json=good, headers={"X-API-Key": "wrong"})
            assert r.status_code == 401

            malformed = [
                {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
                {"json": {}},
                {"json": {"vector": [1.0, 2.0]}},
                {"json": {"vector": ["a"] * len(FEATURE_NAMES)}},
                {"json": {"features": {"amount": 10.0}}},
                {"json": good | {"extra": 1}},
                {"json": {"features": loaded.features(benign[0]) | {"pan": 4111.0}}},
                {"json": [1, 2, 3]},
                {
                    "content": json.dumps({"vector": [float("nan")] * len(FEATURE_NAMES)}),
                    "headers": {"Content-Type": "application/json"},
                },
            ]
            for case in malformed:
                headers = {"X-API-Key": "k", **case.pop("headers", {})}
                r = client.post("/predict", headers=headers, **case)
                assert r.status_code == 422, (case, r.status_code, r.text)
    assert _free_port_closed(url), "server still accepting connections after running() exited"

    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == ok
    for line in lines:
        rec = InferenceRecord.model_validate_json(line)
        assert rec.client_id == "merchant-1"
        assert rec.status == 200 and rec.model == loaded.model_name
        assert rec.input is not None and len(rec.input) == len(FEATURE_NAMES)
        assert rec.output.scores is not None and len(rec.output.scores) == 2
        assert rec.latency_ms is not None and rec.latency_ms >= 0


def test_bench_serving_smoke(fraud) -> None:
    """``python -m bench serving`` end to end at a tiny rate (no timing assertions)."""
    from bench import serving

    result = serving.run(quick=True, rate=20, seconds=1.0)
    ml, peer = result["mlhunt"], result["peer"]
    assert ml["route"] == "POST /predict" and peer["route"] == "GET /health"
    for rep in (ml, peer):
        assert rep["requests"] == 20 and rep["errors"] == 0
        assert 0 < rep["p50_ms"] <= rep["p99_ms"]
    assert ml["logged"] == 20 and ml["handler_p50_ms"] > 0
    assert result["ratio"] > 0


def test_build_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    """Same seed, same data and same model answers (the skops file's bytes may differ: its
    array members are named after object ids and stamped with the time)."""
    from mlhunt.scenarios.fraud import FraudDetection

    scenario = FraudDetection()
    a = scenario.build(tmp_path / "a", seed=3, n_transactions=20_000)
    b = scenario.build(tmp_path / "b", seed=3, n_transactions=20_000)
    assert a.metrics == b.metrics
    la, lb = scenario.load(a.directory), scenario.load(b.directory)
    assert np.array_equal(la.x_train, lb.x_train) and np.array_equal(la.y_holdout, lb.y_holdout)
    assert np.array_equal(la.predict_proba(la.x_holdout), lb.predict_proba(lb.x_holdout))
    with pytest.raises(TypeError, match="unknown build options"):
        scenario.build(tmp_path / "c", seed=3, bogus=1)
