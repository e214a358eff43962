"""`mlhunt serve` as a user runs it: a real process on a loopback port, real HTTP, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from mlhunt.logschema import InferenceRecord
from mlhunt.scenarios import ensure_built


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_loan_api(tmp_path: Path) -> None:
    ensure_built("loan-approval")  # built (or waited for) here, not inside the timed start-up
    port = _free_port()
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlhunt",
            "serve",
            "loan-approval",
            "--port",
            str(port),
            "--api-key",
            "k-1=officer-1",
            "--log",
            str(log),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        loaded = ensure_built("loan-approval")[1]
        x = loaded.sample_benign(1, np.random.default_rng(0))[0]
        body = {"vector": [float(v) for v in x]}
        assert httpx.post(f"{base}/predict", json=body, timeout=10).status_code == 401
        ok = httpx.post(f"{base}/predict", json=body, headers={"X-API-Key": "k-1"}, timeout=10)
        assert ok.status_code == 200 and ok.json()["label"] in loaded.classes
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    (line,) = log.read_text().splitlines()
    record = InferenceRecord.model_validate(json.loads(line))
    assert record.client_id == "officer-1"


def test_serve_refuses_bad_key_spec() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mlhunt", "serve", "loan-approval", "--api-key", "nokey"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2 and "--api-key: expected KEY=CLIENT_ID" in r.stderr
