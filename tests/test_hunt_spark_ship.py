"""What the Spark engine ships to executors, and how it names logs by URL (no Spark started:
the cluster itself is tests/test_hunt_spark_cluster.py)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import mlhunt
from mlhunt.hunt.engines import spark_ship
from mlhunt.hunt.engines.spark_ship import executor_cause, missing_module, package_archive
from mlhunt.hunt.engines.spark_urls import is_log_name, is_url, split_urls, url_name
from mlhunt.sparkkit import is_local


def test_archive_holds_the_package_and_its_compiled_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stand-in package tree: sources, package data, bytecode and numba's cache files
    pkg = tmp_path / "pkg" / "mlhunt"
    (pkg / "hunt" / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("", "utf-8")
    (pkg / "hunt" / "kern.py").write_text("x = 1\n", "utf-8")
    (pkg / "hunt" / "rule.yaml").write_text("id: x\n", "utf-8")
    (pkg / "hunt" / "__pycache__" / "kern.cpython-311.pyc").write_bytes(b"bytecode")
    (pkg / "hunt" / "__pycache__" / "kern.f-12.py311.nbi").write_bytes(b"index")
    (pkg / "hunt" / "__pycache__" / "kern.f-12.py311.1.nbc").write_bytes(b"code")
    monkeypatch.setattr(mlhunt, "__file__", str(pkg / "__init__.py"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    out = package_archive(tmp_path)
    names = sorted(zipfile.ZipFile(out).namelist())
    assert names == [
        "__init__.py",  # the package's contents at the top: unpacked as the mlhunt folder
        "hunt/__pycache__/kern.f-12.py311.1.nbc",
        "hunt/__pycache__/kern.f-12.py311.nbi",
        "hunt/kern.py",
        "hunt/rule.yaml",
    ]
    # named by content: the same tree gives the same archive, a change a new one
    assert package_archive(tmp_path) == out
    (pkg / "hunt" / "kern.py").write_text("x = 2\n", "utf-8")
    assert package_archive(tmp_path) != out


def test_archive_of_the_real_package(tmp_path: Path) -> None:
    names = set(zipfile.ZipFile(package_archive(tmp_path)).namelist())
    assert {"__init__.py", "hunt/detectors/base.py", "hunt/_jit.py", "hunt/events.py"} <= names
    assert not any(n.endswith(".pyc") for n in names)


def test_executor_failures_become_their_cause() -> None:
    java = (
        "An error occurred while calling o12.collectToPython.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "/x/pyspark.zip/pyspark/worker.py", line 1, in main\n'
        "ModuleNotFoundError: No module named 'numba'\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException\n"
    )
    exc = RuntimeError(java)
    assert missing_module(exc) == "numba"
    assert executor_cause(exc) == "ModuleNotFoundError: No module named 'numba'"
    other = RuntimeError('Cannot run program "/nope/python": error=2, No such file\n\tat x')
    assert missing_module(other) is None
    assert executor_cause(other).startswith('Cannot run program "/nope/python"')


def test_masters_and_urls() -> None:
    assert is_local("local") and is_local("local[2]") and is_local("local[*]")
    assert not is_local("spark://127.0.0.1:7077") and not is_local("yarn")
    assert is_url("s3a://bucket/logs/") and is_url("abfss://c@a.dfs.core.windows.net/x")
    assert not is_url("logs/day.jsonl") and not is_url(Path("s3a:/x"))
    local, urls = split_urls(["a.jsonl", "s3a://b/day/", Path("c.parquet")])
    assert local == ["a.jsonl", Path("c.parquet")] and urls == ["s3a://b/day/"]
    assert url_name("s3a://b/day/x.jsonl.gz") == "x.jsonl.gz"
    assert is_log_name("x.jsonl.gz") and is_log_name("p.parquet") and not is_log_name("_SUCCESS")


def test_needs_name_the_packages_to_install() -> None:
    packages = [p for _, p in spark_ship.EXECUTOR_NEEDS]
    assert packages == ["numpy", "pandas", "pyarrow", "numba", "pydantic", "PyYAML"]
