"""Image-moderation scenario: generator, CNN build (cached), weights format, and the live API."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mlhunt.logschema import InferenceRecord  # noqa: E402
from mlhunt.scenarios import ensure_built, get, imagegen  # noqa: E402
from mlhunt.scenarios.image import LOG_SIZE, ImageModeration  # noqa: E402
from mlhunt.scenarios.server import KeyStore, create_app, running  # noqa: E402


@pytest.fixture(scope="module")
def built():
    return ensure_built("image-moderation", seed=0)


def _b64png(image: np.ndarray) -> str:
    return base64.b64encode(imagegen.encode_png(image)).decode("ascii")


def test_registry_and_spec(built):
    assert isinstance(get("image-moderation"), ImageModeration)
    _, loaded = built
    assert loaded.spec.kind == "image"
    assert loaded.spec.shape == (3, 32, 32)
    assert loaded.spec.size == 3 * 32 * 32
    assert loaded.classes == ("allowed", "prohibited")


def test_clean_accuracy(built):
    info, loaded = built
    assert info.metrics["accuracy"] >= 0.95
    assert info.metrics["train_seconds"] > 0
    proba = loaded.predict_proba(loaded.x_holdout)
    assert proba.dtype == np.float64
    assert proba.shape == (len(loaded.x_holdout), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    accuracy = float((proba.argmax(axis=1) == loaded.y_holdout).mean())
    assert accuracy >= 0.95
    assert accuracy == pytest.approx(info.metrics["accuracy"], abs=1e-6)


def test_split_arrays(built):
    _, loaded = built
    for x, y in ((loaded.x_train, loaded.y_train), (loaded.x_holdout, loaded.y_holdout)):
        assert x.dtype == np.float32 and x.shape[1:] == (3, 32, 32)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert len(x) == len(y)
        assert abs(float(y.mean()) - 0.5) < 0.01  # balanced by construction
    assert len(loaded.x_train) == 12_000 and len(loaded.x_holdout) == 3_000


def test_generator_deterministic_and_balanced():
    a = imagegen.generate(300, np.random.default_rng(7))
    b = imagegen.generate(300, np.random.default_rng(7))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    c = imagegen.generate(300, np.random.default_rng(8))
    assert not np.array_equal(a.images, c.images)
    assert 0.4 < a.labels.mean() < 0.6
    assert a.images.dtype == np.float32 and a.images.shape == (300, 3, 32, 32)
    assert a.images.min() >= 0 and a.images.max() <= 1
    np.testing.assert_array_equal(np.round(a.images * 255) / 255, a.images)  # 8-bit pixels
    assert np.isnan(a.boxes[a.labels == 0]).all()
    boxes = a.boxes[a.labels == 1]
    assert np.isfinite(boxes).all() and (boxes[:, 2] > boxes[:, 0]).all()
    mask = imagegen.object_mask(a.boxes)
    assert mask[a.labels == 1].any(axis=(1, 2)).all() and not mask[a.labels == 0].any()
    labels = imagegen.balanced_labels(101, np.random.default_rng(0))
    assert labels.sum() == 50
    forced = imagegen.generate(10, np.random.default_rng(0), labels=np.ones(10, dtype=int))
    assert forced.labels.all()


def test_png_round_trip_is_lossless():
    img = imagegen.generate(1, np.random.default_rng(3)).images[0]
    from mlhunt.scenarios.server import _decode_png

    np.testing.assert_array_equal(_decode_png(_b64png(img), (3, 32, 32)), img)


def test_build_is_deterministic(tmp_path):
    scenario = ImageModeration()
    opts = {"n_train": 256, "n_holdout": 64, "epochs": 1}
    runs = [scenario.build(tmp_path / name, seed=3, **opts) for name in ("a", "b")]
    for name in ("train.npz", "holdout.npz"):
        with (
            np.load(tmp_path / "a" / name, allow_pickle=False) as a,
            np.load(tmp_path / "b" / name, allow_pickle=False) as b,
        ):
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    wa = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # bit-identical on CPU, 2 threads
    assert runs[0].metrics["accuracy"] == runs[1].metrics["accuracy"]
    with pytest.raises(TypeError):
        scenario.build(tmp_path / "c", seed=0, bogus=1)


def test_weights_load_safely(built):
    info, loaded = built
    state = torch.load(info.directory / info.files["model"], weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    arch = json.loads((info.directory / info.files["architecture"]).read_text())
    assert arch["classes"] == ["allowed", "prohibited"] and arch["input_shape"] == [3, 32, 32]
    with np.load(info.directory / info.files["holdout"], allow_pickle=False) as data:
        assert data["images"].dtype == np.uint8
        np.testing.assert_array_equal(data["labels"], loaded.y_holdout)
        np.testing.assert_array_equal(data["images"].astype(np.float32) / 255, loaded.x_holdout)
    model = loaded.torch_model()
    assert not model.training
    with torch.no_grad():
        logits = model(torch.from_numpy(loaded.x_holdout[:8])).double().numpy()
    np.testing.assert_allclose(
        torch.softmax(torch.from_numpy(logits), 1).numpy(),
        loaded.predict_proba(loaded.x_holdout[:8]),
        atol=1e-6,
    )


def test_log_vector_and_benign_samples(built):
    _, loaded = built
    vec = loaded.log_vector(loaded.x_holdout[0])
    assert len(vec) == LOG_SIZE == 64
    assert all(isinstance(v, float) and round(v, 4) == v for v in vec)
    assert vec == loaded.log_vector(loaded.x_holdout[:1])
    np.testing.assert_allclose(loaded.log_vectors(loaded.x_holdout[:3])[0], vec)
    benign = loaded.sample_benign(50, np.random.default_rng(123))
    assert benign.shape == (50, 3, 32, 32) and benign.dtype == np.float32
    again = loaded.sample_benign(50, np.random.default_rng(123))
    np.testing.assert_array_equal(benign, again)
    assert not np.array_equal(benign, loaded.x_train[:50])


def test_api(built, tmp_path):
    _, loaded = built
    log = tmp_path / "inference.jsonl"
    app = create_app(loaded, keys=KeyStore({"k": "uploader-1"}), log_path=log)
    rng = np.random.default_rng(2024)
    images = imagegen.generate(24, rng, labels=np.ones(24, dtype=np.int64)).images
    ok = 0
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        key = {"X-API-Key": "k"}
        r = client.post("/predict", json={"image": _b64png(images[0])}, headers=key)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["label"] in loaded.classes and body["classes"] == list(loaded.classes)
        assert len(body["scores"]) == 2 and sum(body["scores"]) == pytest.approx(1, abs=1e-5)
        r2 = client.post("/predict", json={"array": images[0].tolist()}, headers=key)
        assert r2.status_code == 200 and r2.json()["scores"] == body["scores"]
        ok += 2

        bad_key = client.post(
            "/predict", json={"image": _b64png(images[0])}, headers={"X-API-Key": "nope"}
        )
        assert bad_key.status_code == 401
        assert client.post("/predict", json={"array": images[0].tolist()}).status_code == 401
        bodies = [
            {"image": "!!! not base64 !!!"},
            {"image": base64.b64encode(b"definitely not a png").decode()},
            {"array": images[0][:, :16].tolist()},
            {"array": [["a", "b"]]},
            {"image": _b64png(images[0]), "extra": 1},
            {},
        ]
        for bad in bodies:
            r = client.post("/predict", json=bad, headers=key)
            assert r.status_code == 422, (bad if "array" not in bad else "array", r.text)
        r = client.post("/predict", content=b"{not json", headers=key)
        assert r.status_code == 422

        # The prohibited object is caught through the API (the scenario's whole point).
        flagged = 0
        for img in images[1:]:
            r = client.post("/predict", json={"image": _b64png(img)}, headers=key)
            assert r.status_code == 200
            flagged += r.json()["label"] == "prohibited"
            ok += 1
        assert flagged >= 0.8 * (len(images) - 1)
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2)

    lines = log.read_text().splitlines()
    assert len(lines) == ok
    for line in lines:
        rec = InferenceRecord.model_validate_json(line)
        assert rec.client_id == "uploader-1"
        assert rec.input is not None and len(rec.input) == LOG_SIZE
        assert rec.output.label in loaded.classes and len(rec.output.scores) == 2
        assert rec.model == loaded.model_name
    first = json.loads(lines[0])
    assert first["input"] == loaded.log_vector(images[0])
