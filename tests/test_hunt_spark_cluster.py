"""`mlhunt hunt --engine spark` on a real Spark standalone cluster whose executors lack mlhunt.

A master and two workers (one core each) run as separate JVMs on 127.0.0.1, started with
PySpark's ``spark-class`` and stopped at the end whatever happens. The executors run a second
Python environment that has only :data:`~mlhunt.hunt.engines.spark_ship.EXECUTOR_NEEDS` (built
once under the temp folder, at the driver's versions, and reused by later sessions), so the
detector code can only come from the archive the hunt ships. The hunt runs as the CLI in its own
process (its own driver JVM bound to 127.0.0.1), given the log by ``file://`` URL as object
storage would be, and must give the DuckDB engine's findings, alert for alert. The data is one
simulated loan-approval day (scale 0.3, ~12k events).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from mlhunt.hunt import hunt
from mlhunt.hunt.engines.spark_ship import EXECUTOR_NEEDS

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java (scripts/system-deps.sh installs it)", allow_module_level=True)

#: Generous: two cores shared with the rest of the suite.
HUNT_TIMEOUT_S = 900


def _build_venv(root: Path, pins: list[str]) -> Path:
    """A venv at ``root`` with only ``pins`` installed (nothing when empty); built beside it and
    renamed into place when complete, so a half-built one is never used and parallel sessions
    cannot collide."""
    py = root / "bin" / "python"
    if (root / ".complete").exists():
        return py
    build = Path(tempfile.mkdtemp(prefix=f"{root.name}-build-", dir=root.parent))
    venv.EnvBuilder(with_pip=False, clear=True).create(build)
    if pins:
        cmd = [sys.executable, "-m", "pip", "--python", str(build / "bin" / "python"), "install"]
        cmd += ["--quiet", "--disable-pip-version-check", *pins]
        subprocess.run(cmd, check=True, timeout=HUNT_TIMEOUT_S)
    (build / ".complete").write_text("\n".join(pins) + "\n", "utf-8")
    try:
        build.rename(root)
    except OSError:  # another session finished first: use its copy
        shutil.rmtree(build, ignore_errors=True)
    return py


@pytest.fixture(scope="session")
def executor_python() -> Path:
    """The executors' Python: the packages of EXECUTOR_NEEDS at the driver's versions, no mlhunt."""
    pins = [f"{package}=={version(package)}" for _, package in EXECUTOR_NEEDS]
    key = hashlib.sha256(("|".join(pins) + sys.version).encode()).hexdigest()[:12]
    py = _build_venv(Path(tempfile.gettempdir()) / f"mlhunt-test-executor-venv-{key}", pins)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([str(py), "-c", "import mlhunt"], env=env, capture_output=True)
    assert probe.returncode != 0, "the executors' venv must not have mlhunt"
    return py


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from bench.spark_cluster import standalone_cluster

    with standalone_cluster(tmp_path_factory.mktemp("cluster"), workers=2, cores=1) as c:
        procs = c.procs
        yield c
    # the context manager stopped every daemon, and each took its executors with it
    assert all(p.poll() is not None for p in procs)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlhunt.scenarios import ensure_built
    from mlhunt.scenarios.traffic import simulate

    _, loaded = ensure_built("loan-approval")
    return simulate(loaded, tmp_path_factory.mktemp("sim"), scale=0.3).logs_path


def _cli_hunt(
    logs: Path | str, master: str, python: Path, out: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYSPARK_PYTHON": str(python),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_SUBMIT_ARGS": "--driver-memory 512m --conf spark.executor.memory=512m "
        "pyspark-shell",
    }
    cmd = [sys.executable, "-m", "mlhunt", "hunt", str(logs), "--engine", "spark"]
    cmd += ["--spark-master", master, "--format", "json", "--output", str(out)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=HUNT_TIMEOUT_S)


#: Each alert's identity and numbers. The detectors' extra evidence (sample queries, sweep
#: details) may differ where a value lands exactly on a threshold: the population's float sums
#: are added in another order on a cluster (last-bit differences).
_ALERT_FIELDS = (
    "detector",
    "first_event_ts",
    "detected_ts",
    "detected_at_event",
    "events",
    "score",
)


def _comparable(findings: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            f["id"],
            f["rule_id"],
            f["severity"],
            f["target"],
            *[f["evidence"][k] for k in _ALERT_FIELDS],
        )
        for f in findings
    )


def test_cluster_hunt(cluster: Any, day: Path, executor_python: Path, tmp_path: Path) -> None:
    """One test, so that pytest-xdist never starts the cluster twice: first executors with no
    packages (one line naming them), then the bare venv (the DuckDB engine's alerts)."""
    _executor_without_packages_is_one_line(cluster, day, tmp_path)
    _cluster_hunt_matches_duckdb(cluster, day, executor_python, tmp_path)


def _cluster_hunt_matches_duckdb(
    cluster: Any, day: Path, executor_python: Path, tmp_path: Path
) -> None:
    out = tmp_path / "spark.json"
    # by URL, as logs in object storage are named: listed and read by Spark's own filesystems
    run = _cli_hunt(day.as_uri(), cluster.url, executor_python, out)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(out.read_text("utf-8"))
    duck = hunt(day).document()
    assert _comparable(doc["findings"]) == _comparable(duck["findings"])
    assert len(doc["findings"]) >= 10  # a meaningful fixture: many attacks are found
    assert doc["read"]["records"] == duck["read"]["records"] > 10_000
    assert [f.removeprefix("file:") for f in doc["read"]["files"]] == [str(day)]
    stats = doc["stats"]
    assert stats["engine"] == "spark" and stats["master"] == cluster.url
    # the executors ran the bare venv and mlhunt from the shipped archive, unpacked in a
    # worker's work folder (not the driver's installation)
    assert {e["python"] for e in stats["executors"]} == {str(executor_python)}
    for e in stats["executors"]:
        assert Path(e["mlhunt"]).is_relative_to(cluster.work), e
    # both workers ran executors for the hunt's application
    apps = cluster.status()["completedapps"] + cluster.status()["activeapps"]
    assert any(a["name"] == "mlhunt-hunt" and a["cores"] >= 2 for a in apps), apps


def _executor_without_packages_is_one_line(cluster: Any, day: Path, tmp_path: Path) -> None:
    bare = _build_venv(tmp_path / "bare-venv", [])
    out = tmp_path / "bare.json"
    run = _cli_hunt(day, cluster.url, bare, out)
    assert run.returncode == 2, run.stderr[-2000:]
    assert not out.exists()
    errors = [ln for ln in run.stderr.splitlines() if "--engine spark" in ln]
    assert len(errors) == 1, run.stderr[-2000:]
    line = errors[0]
    assert "cannot import numpy" in line and str(bare) in line
    assert f"pip install {' '.join(p for _, p in EXECUTOR_NEEDS)}" in line
    assert "Traceback" not in run.stderr and "\tat org.apache" not in run.stderr
