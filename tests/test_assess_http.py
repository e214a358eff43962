"""The HTTP target against real local servers: a flaky one (timeouts, 5xx, 429 with
Retry-After, garbage JSON on a schedule), a label-only one, and a scenario's own API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlhunt.assess.api import TargetOptions, assess, open_target
from mlhunt.assess.catalog import load_attacks
from mlhunt.assess.http import HttpConfig, HttpTarget, TokenBucket
from mlhunt.errors import InputError
from mlhunt.scenarios.base import InputSpec
from tests.assess_fakes import write_catalog

RNG = np.random.default_rng(0)
X = RNG.normal(size=(300, 3))
Y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)
MODEL = LogisticRegression().fit(X, Y)
SPEC = InputSpec(
    "tabular",
    names=("a", "b", "c"),
    lower=(-4,) * 3,
    upper=(4,) * 3,
    integer=(False,) * 3,
    mutable=(True,) * 3,
)


class Flaky(BaseHTTPRequestHandler):
    """Request n (per server) fails by ``schedule[n % len(schedule)]``."""

    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        srv = self.server
        with srv.lock:
            n = srv.count
            srv.count += 1
            srv.keys.append(self.headers.get("Authorization"))
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = srv.schedule[n % len(srv.schedule)]
        if mode == "timeout":
            time.sleep(2.0)  # past the client's timeout
        if mode == "500":
            return self._send(500, b"oops")
        if mode == "429":
            return self._send(429, b"slow down", {"Retry-After": "0"})
        if mode == "garbage":
            return self._send(200, b"{not json")
        if mode == "401":
            return self._send(401, b"{}")
        probs = MODEL.predict_proba(np.asarray(body["input"]["x"], dtype=float)[None])[0]
        doc: dict[str, Any] = {"result": {"label": int(np.argmax(probs))}}
        if not srv.label_only:
            doc["result"]["probs"] = probs.tolist()
        self._send(200, json.dumps(doc).encode())

    def _send(self, code: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout)


def _server(schedule: list[str], label_only: bool = False) -> Iterator[tuple[str, Any]]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    srv.daemon_threads = True
    srv.count, srv.schedule, srv.label_only = 0, schedule, label_only
    srv.lock, srv.keys = threading.Lock(), []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1/score", srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def flaky() -> Iterator[tuple[str, Any]]:
    yield from _server(["ok", "timeout", "ok", "500", "429", "ok", "garbage", "ok"])


CONFIG = {
    "body": {"input": {"x": "{vector}"}},
    "scores": "result.probs",
    "label": "result.label",
    "classes": ["neg", "pos"],
    "timeout": 1.0,
    "backoff": 0.01,
    "concurrency": 3,
}


def test_flaky_api_is_retried_within_budget(tmp_path: Path, flaky: tuple[str, Any]) -> None:
    url, srv = flaky
    cat = load_attacks(
        write_catalog(
            tmp_path / "cat",
            {"A": {"entry": "probe", "params": {"n": 12}}, "B": {"entry": "greedy", "cost": 2}},
        )
    )
    # One request at a time: the server's fault schedule is by request count and never has two
    # faults in a row, so every retry meets an answer (in parallel, a row's retries could keep
    # landing on fault slots, and the test would be a coin toss).
    config = HttpConfig.model_validate({**CONFIG, "concurrency": 1})
    with HttpTarget(url, SPEC, config) as target:
        report = assess(target, _data(), catalog=cat, max_queries=60, state_dir=tmp_path / "s")
        stats = target.stats
    doc = report.document()
    assert report.budget["queries_this_run"] <= 60  # the budget counts rows, retries aside
    assert stats.failures == 0 and stats.retries >= 4
    assert stats.errors.keys() >= {"timeout", "500", "429", "bad json"}
    assert stats.throttled >= 1
    assert srv.count == stats.requests  # every request the server saw was counted
    ev = {f["rule_id"]: f["evidence"] for f in doc["findings"]}
    assert ev["MLH-ASSESS-A"]["verdict"] in ("validated", "refuted")
    assert ev["MLH-ASSESS-A"]["http"]["retries"] >= 1
    assert ev["MLH-ASSESS-A"]["failed_queries"] == 0
    # The answers are the model's: the retried rows were not replaced by anything else.
    direct = np.argmax(MODEL.predict_proba(_data().x_eval[:12]), axis=1)
    rate = float(np.mean(direct != _data().y_eval[:12]))
    assert ev["MLH-ASSESS-A"]["success_rate"] == pytest.approx(rate)


def test_failures_after_retries_are_counted_and_the_run_completes(tmp_path: Path) -> None:
    cat = load_attacks(write_catalog(tmp_path / "cat", {"A": {"entry": "probe"}}))
    for url, _srv in _server(["500", "500", "ok"]):
        config = HttpConfig.model_validate({**CONFIG, "retries": 1})
        with HttpTarget(url, SPEC, config) as target:
            report = assess(target, _data(), catalog=cat, state_dir=tmp_path / "s")
    (finding,) = report.document()["findings"]
    assert finding["evidence"]["failed_queries"] >= 1
    assert finding["evidence"]["queries"] == 10  # each row charged once
    # Rows answered with noise are not the model's answers: no verdict is drawn from them.
    assert finding["evidence"]["verdict"] == "error"
    assert finding["evidence"]["http"]["faults"]["500"] >= 2


def test_label_only_api_gives_one_hot_and_says_so(tmp_path: Path) -> None:
    for url, _srv in _server(["ok"], label_only=True):
        with HttpTarget(url, SPEC, HttpConfig.model_validate(CONFIG)) as target:
            probs = target.predict_proba(X[:20])
            assert target.stats.label_only
    assert set(np.unique(probs)) == {0.0, 1.0}
    assert np.array_equal(np.argmax(probs, axis=1), MODEL.predict(X[:20]))


def test_api_key_from_env_and_401_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = HttpConfig.model_validate(
        {**CONFIG, "api_key_env": "T_KEY", "api_key_header": "Authorization"}
    )
    for url, srv in _server(["ok"]):
        with pytest.raises(InputError, match="T_KEY"):
            HttpTarget(url, SPEC, config)
        monkeypatch.setenv("T_KEY", "Bearer s3cret")
        with HttpTarget(url, SPEC, config) as target:
            target.predict_proba(X[:2])
        assert srv.keys == ["Bearer s3cret"] * 2
    for url, _srv in _server(["401"]):
        with HttpTarget(url, SPEC, config) as target, pytest.raises(InputError, match="401"):
            target.predict_proba(X[:1])


def test_token_bucket_limits_the_rate() -> None:
    bucket = TokenBucket(rate=40.0, burst=1)
    start = time.monotonic()
    for _ in range(9):
        bucket.take()
    assert time.monotonic() - start >= 8 / 40 * 0.9


def test_http_target_from_options_and_yaml(
    tmp_path: Path, flaky: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _srv = flaky
    np.savez(tmp_path / "d.npz", x=X[:30], y=Y[:30])
    (tmp_path / "http.yaml").write_text(json.dumps({**CONFIG, "rate_limit": 200}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("timeout: -1\n")
    opts = TargetOptions(target=url, data=tmp_path / "d.npz", http_config=tmp_path / "http.yaml")
    with open_target(opts) as (target, data):
        assert target.name == url and target.spec.names == ("x0", "x1", "x2")
        assert target.predict_proba(data.x_eval[:3]).shape == (3, 2)
    with pytest.raises(InputError, match="timeout"):
        _enter(TargetOptions(target=url, data=tmp_path / "d.npz", http_config=bad))


def test_scenario_through_its_live_api(tmp_path: Path) -> None:
    cat = load_attacks(
        write_catalog(tmp_path / "cat", {"A": {"entry": "probe", "params": {"n": 25}}})
    )
    opts = TargetOptions(scenario="loan-approval", log_dir=tmp_path / "s")
    with open_target(opts) as (target, data):
        assert target.sklearn_estimator() is not None  # white box from the loaded model
        report = assess(target, data, catalog=cat, state_dir=tmp_path / "s")
        direct = target.local.loaded.predict_proba(data.x_eval[:5])
        assert np.allclose(target.predict_proba(data.x_eval[:5]), direct, atol=1e-5)
    (finding,) = report.document()["findings"]
    assert finding["target"] == "loan-approval-logreg-v1"
    assert finding["evidence"]["http"]["requests"] == 25
    log = (tmp_path / "s" / "api-log.jsonl").read_text().splitlines()
    assert len(log) == len(data.x_eval) + 25 + 5  # baseline + attack + the check above
    assert json.loads(log[-1])["client_id"] == "mlhunt-assess"


def _enter(opts: TargetOptions) -> None:
    with open_target(opts):
        pass


def _data() -> Any:
    from mlhunt.assess.base import AssessData

    return AssessData(x_eval=X[200:], y_eval=Y[200:])
