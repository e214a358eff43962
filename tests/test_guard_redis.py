"""Guard state in Redis (issue #10): two replicas share one client's state, so spreading queries
over replicas does not help an attacker; killing a guard under load and restarting it loses no
client state. A private redis-server on a free loopback port per module (skipped only when the
binary is missing: scripts/system-deps.sh installs it)."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlhunt.guard import GuardConfig
from tests.test_guard import ask, guarded, loan, reference, thief_queries, upstream, warm

__all__ = ["loan", "reference", "upstream"]  # module fixtures shared with test_guard

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server not installed")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import redis

    d = tmp_path_factory.mktemp("redis")
    port = _port()
    proc = subprocess.Popen(  # a fixed binary
        [
            str(REDIS),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(d),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                if redis.Redis.from_url(url).ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_two_replicas_share_client_state(
    redis_url: str, upstream: str, reference: Path, loan: Any, tmp_path: Path
) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(
        "detectors: {MLH-HUNT-EXTRACTION: {medium: block, high: block, critical: block}}\n"
    )
    cfg = {
        "upstream": upstream,
        "reference": reference,
        "warmup": 10,
        "policy": pol,
        "redis_url": redis_url,
        "key_prefix": "t2:",
        "strip_prefix": "sim-",
    }
    with guarded(GuardConfig(**cfg)) as (a, ga), guarded(GuardConfig(**cfg)) as (b, gb):
        warm(a, ga, loan)
        warm(b, gb, loan)
        codes = []
        # 15 queries per replica: neither alone reaches the detector's 20 counted queries
        for i, x in enumerate(thief_queries(loan, 30)):
            c, g = (a, ga) if i % 2 == 0 else (b, gb)
            codes.append(ask(c, "thief", x).status_code)
            g.worker.wait_idle()
        assert 403 in codes[20:] and all(s == 200 for s in codes[:20]), codes
        # both replicas now refuse the thief, whichever scored it
        x = thief_queries(loan, 1, seed=5)[0]
        assert ask(a, "thief", x).status_code == 403
        assert ask(b, "thief", x).status_code == 403
        assert ask(a, "b1", loan.x_holdout[7]).status_code == 200


def _guard_cli(
    port: int, upstream: str, redis_url: str, reference: Path, policy: Path
) -> subprocess.Popen[bytes]:
    # stderr to a file, not a pipe nobody reads while the guard runs (a full pipe blocks it)
    err = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the child)
    proc = subprocess.Popen(  # our own CLI
        [
            sys.executable,
            "-m",
            "mlhunt",
            "guard",
            "--upstream",
            upstream,
            "--listen",
            f"127.0.0.1:{port}",
            "--redis",
            redis_url,
            "--reference",
            str(reference),
            "--warmup",
            "10",
            "--policy",
            str(policy),
        ],
        stdout=subprocess.DEVNULL,
        stderr=err,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    _ERR[proc.pid] = err
    return proc


_ERR: dict[int, Any] = {}  # guard pid -> its stderr file


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    f = _ERR.get(proc.pid)
    if f is None:
        return ""
    f.seek(0)
    return str(f.read().decode(errors="replace"))


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300  # a generous bound: start-up on a busy machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"guard exited: {_stderr(proc)}")
        try:
            if httpx.get(f"{url}/guard/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail("guard did not start")


def test_restart_under_load_keeps_state(
    redis_url: str, upstream: str, reference: Path, loan: Any, tmp_path: Path
) -> None:
    import redis

    pol = tmp_path / "p.yaml"
    pol.write_text(
        "detectors: {MLH-HUNT-EXTRACTION: {medium: block, high: block, critical: block}}\n"
    )
    port = _port()
    url = f"http://127.0.0.1:{port}"
    proc = _guard_cli(port, upstream, redis_url, reference, pol)
    stop = threading.Event()
    try:
        _wait_up(url, proc)
        with httpx.Client(base_url=url, timeout=5) as c:
            for i in range(20):  # warm-up
                assert ask(c, f"b{i % 5}", loan.x_holdout[i]).status_code == 200
            for x in thief_queries(loan, 40):
                ask(c, "thief", x)
                time.sleep(0.02)
            deadline = time.monotonic() + 120
            while ask(c, "thief", thief_queries(loan, 1, 9)[0]).status_code != 403:
                assert time.monotonic() < deadline, "thief never blocked"
                time.sleep(0.05)

        r = redis.Redis.from_url(redis_url)
        # client ids are hashed with the key the replicas share in Redis (so a restarted
        # guard hashes them alike, and key names never hold an API key)
        key = bytes.fromhex(r.get("mlhunt:guard:idkey").decode())

        def n(api_key: str) -> int:
            hid = "h-" + hmac.new(key, api_key.encode(), hashlib.sha256).hexdigest()[:24]
            assert not r.keys(f"mlhunt:guard:*{api_key}*")
            return int(r.get(f"mlhunt:guard:n:client_id:{hid}") or 0)

        before = n("sim-thief")
        assert before >= 20

        def load() -> None:  # benign traffic that keeps running through the crash
            with httpx.Client(base_url=url, timeout=2) as c:
                i = 0
                while not stop.is_set():
                    try:
                        ask(c, f"b{i % 5}", loan.x_holdout[i % 100])
                    except httpx.HTTPError:
                        time.sleep(0.02)
                    i += 1

        t = threading.Thread(target=load, daemon=True)
        t.start()
        time.sleep(0.5)
        proc.kill()  # no shutdown: state is whatever reached Redis
        proc.wait(timeout=10)
        proc = _guard_cli(port, upstream, redis_url, reference, pol)
        _wait_up(url, proc)
        with httpx.Client(base_url=url, timeout=5) as c:
            # the restarted guard still knows the thief: its first query is refused
            assert ask(c, "thief", thief_queries(loan, 1, 11)[0]).status_code == 403
            assert ask(c, "b2", loan.x_holdout[3]).status_code == 200
        stop.set()
        t.join(timeout=5)
        assert n("sim-thief") >= before
        assert n("sim-b1") > 4
    finally:
        stop.set()
        proc.kill()
        proc.wait(timeout=10)


def test_state_keys_expire_so_rotating_ids_cannot_fill_redis(redis_url: str) -> None:
    import redis

    from mlhunt.guard.state import RedisStore

    store = RedisStore(redis_url, prefix="ttl:", ttl_s=60)
    store.append(
        "client_id", "rotating-1", [[1.0, "rotating-1", "10.0.0.1", "a", 0.5, 200, None]], window=8
    )
    store.set_levels("client_id", "rotating-1", {"x": 1}, ["alert"], until=2.0)
    r = redis.Redis.from_url(redis_url)
    keys = r.keys("ttl:*")
    assert len(keys) == 4
    assert all(0 < r.ttl(k) <= 60 for k in keys)
    store.close()
