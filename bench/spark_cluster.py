"""A real Spark standalone cluster on 127.0.0.1: a master and N workers, each its own JVM started
with PySpark's ``spark-class``, as ``start-master.sh``/``start-worker.sh`` would on machines.

It is what the cluster tests and ``python -m bench spark`` hunt through, and a way to try
``--spark-master spark://...`` on one machine from a source checkout (docs/spark.md); no
``mlhunt`` command needs it, so it lives beside its users, not in the library.
:func:`standalone_cluster` waits on the master's JSON status until every worker is ALIVE (no
sleeps) and always stops every JVM it started, executors included (each daemon leads its own
process group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: How long the JVMs get to start (generous: two cores shared with other work).
START_TIMEOUT_S = 240.0
_STOP_WAIT_S = 30.0


@dataclass
class Cluster:
    """A running loopback cluster: its master URL (``spark://127.0.0.1:PORT``) and status page."""

    url: str
    status_url: str
    work: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        """The master's JSON status (workers, their state, cores, running applications)."""
        import httpx

        resp = httpx.get(self.status_url, timeout=10.0)  # loopback only
        resp.raise_for_status()
        out: dict[str, Any] = resp.json()
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = path.read_text("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each daemon's process group (workers stop their executors), then SIGKILL what is
    left; every group is signalled even if one fails."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)
        deadline = time.monotonic() + _STOP_WAIT_S
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
        if all(p.poll() is not None for p in procs) and sig == signal.SIGKILL:
            break
    for p in procs:  # a group member that outlived its leader (an executor): gone now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)


@contextlib.contextmanager
def standalone_cluster(
    work: Path,
    workers: int = 2,
    cores: int = 1,
    memory: str = "1g",
    timeout: float = START_TIMEOUT_S,
    daemon_memory: str = "256m",
) -> Iterator[Cluster]:
    """Start a master and ``workers`` workers (``cores`` cores, ``memory`` for executors each)
    on 127.0.0.1 with logs and work folders under ``work``; stop them all on exit."""
    home = spark_home()
    spark_class = str(home / "bin" / "spark-class")
    work.mkdir(parents=True, exist_ok=True)
    # PYTHONPATH stays with the driver: executors import only what their Python has and what
    # the job ships (a worker machine does not see the driver's source tree either)
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work / "logs"),
        "SPARK_DAEMON_MEMORY": daemon_memory,
    }
    port, web = free_port(), free_port()
    cluster = Cluster(
        url=f"spark://127.0.0.1:{port}", status_url=f"http://127.0.0.1:{web}/json/", work=work
    )
    logs = [work / "master.log"] + [work / f"worker{i}.log" for i in range(workers)]
    try:
        cmd = [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--webui-port", str(web)]
        cluster.procs.append(_start(cmd, env, logs[0]))
        for i in range(workers):
            cmd = [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1"]
            cmd += ["--cores", str(cores), "--memory", memory, "--webui-port", "0"]
            cmd += ["--work-dir", str(work / f"worker{i}"), cluster.url]
            cluster.procs.append(_start(cmd, env, logs[i + 1]))
        _wait_alive(cluster, workers, timeout, logs)
        yield cluster
    finally:
        _stop(cluster.procs)


def _wait_alive(cluster: Cluster, workers: int, timeout: float, logs: list[Path]) -> None:
    """Poll the master's JSON status until ``workers`` workers are ALIVE; a daemon that exits,
    or the deadline, raises with the end of its log."""
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        for p, log in zip(cluster.procs, logs, strict=False):
            if p.poll() is not None:
                raise RuntimeError(f"spark daemon exited ({p.returncode}): {_tail(log)}")
        try:
            st = cluster.status()
            alive = [w for w in st.get("workers", []) if w.get("state") == "ALIVE"]
            if st.get("status") == "ALIVE" and len(alive) >= workers:
                return
            last = f"master {st.get('status')}, {len(alive)} of {workers} workers ALIVE"
        except (OSError, httpx.HTTPError, ValueError) as exc:  # not listening yet
            last = str(exc)
        time.sleep(0.25)
    raise TimeoutError(f"spark cluster not up after {timeout:.0f}s ({last})")
