"""The loan-approval scenario, end to end on real components: SQL database (SQLite, and
PostgreSQL when one can be started), SQL preprocessing, sklearn training, array artifact, and the
live REST API with its inference log."""

from __future__ import annotations

import json
import socket
import threading
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from mlhunt.logschema import InferenceRecord
from mlhunt.scenarios import ensure_built
from mlhunt.scenarios.loan import (
    CLASSES,
    FEATURE_NAMES,
    LoadedLoan,
    LoanApproval,
    generate_applicants,
)
from mlhunt.scenarios.server import KeyStore, create_app, running
from tests.pg import postgres_url  # noqa: F401  (fixture)

SMALL = 1500


@pytest.fixture(scope="module")
def cached():
    """The default build (10,000 applicants, seed 0), built once into the cache."""
    return ensure_built("loan-approval", seed=0)


@pytest.fixture(scope="module")
def small_sqlite(tmp_path_factory):
    """Two independent small SQLite builds with the same seed, and one with another seed."""
    out = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        d = tmp_path_factory.mktemp(f"loan-{name}")
        built = LoanApproval().build(d, seed=seed, n_applicants=SMALL)
        out.append(built)
    return out


def _dataset(built) -> dict:
    return json.loads((built.directory / "dataset.json").read_text())


def test_default_build_meets_acceptance(cached):
    built, loaded = cached
    assert built.name == "loan-approval" and built.seed == 0
    assert 0.75 <= built.metrics["roc_auc"] < 0.97, built.metrics
    assert 0.7 <= built.metrics["accuracy"] < 0.97
    assert built.metrics["n_train"] + built.metrics["n_holdout"] == 10_000
    assert isinstance(loaded, LoadedLoan)
    assert loaded.classes == CLASSES
    assert loaded.x_train.shape == (7500, len(FEATURE_NAMES))
    assert loaded.x_holdout.shape == (2500, len(FEATURE_NAMES))
    assert set(np.unique(loaded.y_train)) == {0, 1}
    # Metrics recomputed from the loaded artifact agree with the recorded ones.
    from sklearn.metrics import roc_auc_score

    p = loaded.predict_proba(loaded.x_holdout)
    assert p.shape == (2500, 2) and np.allclose(p.sum(axis=1), 1.0)
    assert roc_auc_score(loaded.y_holdout, p[:, 1]) == pytest.approx(built.metrics["roc_auc"])


def test_model_artifact_is_not_a_pickle(cached):
    built, loaded = cached
    d = built.directory
    # The one pickle is the joblib file the system description declares, published for `scan`
    # (never loaded); what the API loads is the arrays.
    pickles = [p for p in d.rglob("*") if p.suffix in {".pkl", ".pickle", ".joblib", ".pt"}]
    assert [p.name for p in pickles] == [built.files["artifact"]] == ["model.joblib"]
    model = d / built.files["model"]
    assert zipfile.is_zipfile(model)
    with np.load(model, allow_pickle=False) as npz:
        for key in npz.files:
            assert npz[key].dtype == np.float64, key
    meta = json.loads((d / built.files["model_meta"]).read_text())
    assert meta["feature_names"] == list(FEATURE_NAMES)
    assert meta["classes"] == list(CLASSES)
    # The arrays rebuild an sklearn pipeline giving identical probabilities, and refitting on the
    # recorded training split reproduces the saved weights.
    x = np.vstack([loaded.x_holdout[:200], loaded.sample_benign(200, np.random.default_rng(5))])
    assert np.allclose(loaded.pipeline().predict_proba(x), loaded.predict_proba(x), atol=1e-12)
    from mlhunt.scenarios.loan import new_pipeline

    refit = new_pipeline().fit(loaded.x_train, loaded.y_train)
    assert np.allclose(refit.predict_proba(x), loaded.predict_proba(x), atol=1e-12)


def test_database_holds_the_applications_and_split(cached):
    built, loaded = cached
    assert loaded.database_url.endswith(built.files["database"])
    engine = create_engine(loaded.database_url)
    try:
        with engine.connect() as conn:
            n = conn.execute(text("SELECT COUNT(*) FROM applications")).scalar_one()
            splits = dict(
                conn.execute(
                    text("SELECT split, COUNT(*) FROM training_split GROUP BY split")
                ).all()
            )
            holdout_ids = conn.execute(
                text("SELECT application_id FROM training_split WHERE split = 'holdout' ORDER BY 1")
            ).scalars()
            holdout_ids = np.fromiter(holdout_ids, dtype=np.int64)
            row = conn.execute(
                text(
                    "SELECT applicant_name, national_id, postcode, annual_income, approved "
                    "FROM applications WHERE id = :id"
                ),
                {"id": int(loaded.ids_train[0])},
            ).one()
    finally:
        engine.dispose()
    assert n == 10_000
    assert splits == {"train": 7500, "holdout": 2500}
    assert np.array_equal(holdout_ids, loaded.ids_holdout)
    # Identifiers live in the database (clearly fake), not in the model's features.
    assert row.national_id.startswith("QQ") and " " in row.applicant_name
    assert row.postcode.startswith("QX")
    assert {"applicant_name", "national_id"}.isdisjoint(FEATURE_NAMES)
    assert row.annual_income == loaded.x_train[0, FEATURE_NAMES.index("annual_income")]
    assert row.approved == loaded.y_train[0]


def test_input_spec_and_benign_samples(cached):
    _, loaded = cached
    spec = loaded.spec
    assert spec.kind == "tabular" and spec.names == FEATURE_NAMES
    lower, upper = np.array(spec.lower), np.array(spec.upper)
    mutable = dict(zip(spec.names, spec.mutable, strict=True))
    assert not mutable["age"] and not mutable["postcode_district"]
    assert mutable["annual_income"] and mutable["debt_to_income"] and mutable["loan_amount"]
    benign = loaded.sample_benign(2000, np.random.default_rng(123))
    assert benign.shape == (2000, spec.size)
    for x in (loaded.x_train, benign):
        assert np.all(x >= lower) and np.all(x <= upper)
        ints = x[:, np.array(spec.integer)]
        assert np.array_equal(ints, np.round(ints))
    # Fresh applicants, not training rows.
    train_rows = {tuple(r) for r in loaded.x_train}
    assert sum(tuple(r) in train_rows for r in benign) <= 2
    # Realistic marginals and correlations.
    col = {n: benign[:, i] for i, n in enumerate(FEATURE_NAMES)}
    assert 30_000 < np.median(col["annual_income"]) < 70_000
    assert np.corrcoef(col["age"], col["credit_history_years"])[0, 1] > 0.5
    assert np.corrcoef(col["debt_to_income"], col["delinquencies"])[0, 1] > 0.15
    assert np.corrcoef(col["annual_income"], col["loan_amount"])[0, 1] > 0.3
    vec = loaded.log_vector(benign[0])
    assert len(vec) == spec.size and all(type(v) is float for v in vec)


def test_generator_round_trips_age_and_district():
    from mlhunt.scenarios.loan import age_on, district_of

    people = generate_applicants(3000, np.random.default_rng(0))
    ages = [age_on(b, a) for b, a in zip(people.birth_date, people.applied_on, strict=True)]
    assert ages == people.features["age"].astype(int).tolist()
    districts = [district_of(p) for p in people.postcode]
    assert districts == people.features["postcode_district"].astype(int).tolist()
    assert len(set(people.national_id)) == len(people)


def test_build_is_deterministic(small_sqlite):
    a, b, c = small_sqlite
    assert _dataset(a)["data_sha256"] == _dataset(b)["data_sha256"]
    assert a.metrics == b.metrics
    for key in ("scaler_mean", "scaler_scale", "coef", "intercept"):
        with np.load(a.directory / "model.npz") as za, np.load(b.directory / "model.npz") as zb:
            assert np.array_equal(za[key], zb[key])
    assert _dataset(a)["data_sha256"] != _dataset(c)["data_sha256"]
    assert a.metrics["roc_auc"] >= 0.75 and a.seconds < 60


def test_build_against_postgresql(small_sqlite, postgres_url, tmp_path):  # noqa: F811
    sqlite_build = small_sqlite[0]
    built = LoanApproval().build(
        tmp_path / "pg", seed=sqlite_build.seed, n_applicants=SMALL, db_url=postgres_url
    )
    assert "database" not in built.files  # nothing local: the data is in PostgreSQL
    assert _dataset(built)["database"].startswith("postgresql+psycopg://")
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            n = conn.execute(text("SELECT COUNT(*) FROM applications")).scalar_one()
            n_holdout = conn.execute(
                text("SELECT COUNT(*) FROM training_split WHERE split = 'holdout'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert n == SMALL and n_holdout == built.metrics["n_holdout"]
    # Same seed, same data and the same model, whichever database held it.
    assert _dataset(built)["data_sha256"] == _dataset(sqlite_build)["data_sha256"]
    assert built.metrics == sqlite_build.metrics
    loaded = LoanApproval().load(built.directory)
    assert loaded.x_train.shape[0] == built.metrics["n_train"]


def test_rest_api(cached, tmp_path):
    _, loaded = cached
    log = tmp_path / "log.jsonl"
    app = create_app(loaded, keys=KeyStore({"k-officer": "officer-1"}), log_path=log)
    good = {n: float(v) for n, v in zip(FEATURE_NAMES, loaded.x_holdout[0], strict=True)}
    ok_key = {"X-API-Key": "k-officer"}
    with running(app, host="127.0.0.1", port=0) as base:
        port = int(base.rsplit(":", 1)[1])
        with httpx.Client(base_url=base, timeout=10) as client:
            r = client.post("/predict", json={"features": good}, headers=ok_key)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["classes"] == list(CLASSES) and body["label"] in CLASSES
            assert len(body["scores"]) == 2 and sum(body["scores"]) == pytest.approx(1, abs=1e-5)
            expected = loaded.predict_proba(loaded.x_holdout[:1])[0]
            assert body["scores"] == pytest.approx(expected.tolist(), abs=1e-6)
            r = client.post("/predict", json={"vector": list(good.values())}, headers=ok_key)
            assert r.status_code == 200

            for headers in ({"X-API-Key": "wrong"}, {}):
                r = client.post("/predict", json={"features": good}, headers=headers)
                assert r.status_code == 401

            missing = {k: v for k, v in good.items() if k != "age"}
            bad_bodies = [
                {"features": good, "extra": 1},  # unknown top-level field
                {"features": {**good, "favourite_colour": 3.0}},  # unknown feature
                {"features": missing},  # missing feature
                {"features": {**good, "annual_income": "lots"}},  # not a number
                {"features": {**good, "annual_income": "nan"}},  # not finite
                {"vector": [1.0, 2.0]},  # wrong length
                {},
            ]
            for bad in bad_bodies:
                r = client.post("/predict", json=bad, headers=ok_key)
                assert r.status_code == 422, (bad, r.status_code, r.text)
            r = client.post(
                "/predict",
                content=b"{not json",
                headers={**ok_key, "Content-Type": "application/json"},
            )
            assert r.status_code == 422
    # Stopped cleanly: the server thread is gone and the port no longer accepts connections.
    assert not [t for t in threading.enumerate() if t.name == "mlhunt-api" and t.is_alive()]
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass

    lines = log.read_text().splitlines()
    assert len(lines) == 2  # only the successful predictions are logged
    for line in lines:
        rec = InferenceRecord.model_validate(json.loads(line))
        assert rec.client_id == "officer-1"
        assert rec.input is not None and len(rec.input) == len(FEATURE_NAMES)
        assert rec.output.label in CLASSES and rec.output.scores is not None
    assert InferenceRecord.model_validate(json.loads(lines[0])).input == pytest.approx(
        list(good.values())
    )


def test_build_rejects_unknown_options(tmp_path: Path):
    with pytest.raises(TypeError, match="unknown build options"):
        LoanApproval().build(tmp_path, n_rows=5)


def test_cli_build_with_db(postgres_url, tmp_path):  # noqa: F811
    """`mlhunt build loan-approval --db URL` as a user runs it, against real PostgreSQL."""
    import subprocess
    import sys

    out = tmp_path / "built"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlhunt",
            "build",
            "loan-approval",
            "--db",
            postgres_url,
            "--seed",
            "3",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "built loan-approval (seed 3)" in r.stderr and "roc_auc" in r.stderr
    assert (out / "scenario.json").is_file()
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            n = conn.execute(text("SELECT COUNT(*) FROM applications")).scalar_one()
    finally:
        engine.dispose()
    assert n == json.loads((out / "dataset.json").read_text())["rows"] == 10_000
