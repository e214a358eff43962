"""Spark sessions for the parts of mlhunt that run Spark jobs (the hunt's Spark engine, the
clickstream feature job): one way to start them, quiet and in UTC, and to stop them.

``local[...]`` masters run the Python workers on this interpreter; on a cluster the workers'
Python is the user's ``PYSPARK_PYTHON`` (docs/spark.md)."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from mlhunt.errors import InputError


def is_local(master: str) -> bool:
    """Local mode: the executors are threads of the driver's JVM and use the driver's Python."""
    return master == "local" or master.startswith("local[")


@contextlib.contextmanager
def worker_python(master: str) -> Iterator[None]:
    """In local mode the Python workers run this interpreter (with mlhunt importable): PySpark
    reads only the PYSPARK_PYTHON variable when the context starts, so it is set for that moment,
    unless the user chose one. On a cluster this interpreter's path means nothing on the worker
    machines: the user's PYSPARK_PYTHON (or PySpark's default, ``python3``) stands."""
    if "PYSPARK_PYTHON" in os.environ or not is_local(master):
        yield
        return
    os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        yield
    finally:
        os.environ.pop("PYSPARK_PYTHON", None)


def session(
    master: str, shuffle_partitions: int = 4, conf: dict[str, str] | None = None
) -> tuple[Any, bool]:
    """(the Spark session for ``master``, whether this call started it): an active session is
    reused (and left running by its caller). UI, console progress and Java logs off, UTC,
    Arrow conversions; ``conf``: more settings (``spark.executor.memory`` ...)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise InputError(
            f"--engine spark: pyspark is not installed ({exc}); pip install 'mlhunt[spark]'"
        ) from None
    existing = SparkSession.getActiveSession()
    with warnings.catch_warnings(), worker_python(master):
        warnings.simplefilter("ignore")  # pyspark warns about the pandas major version
        try:
            builder = (
                SparkSession.builder.master(master)
                .appName("mlhunt-hunt")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.log.level", "FATAL")
                .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            )
            for key, value in (conf or {}).items():
                builder = builder.config(key, value)
            spark = builder.getOrCreate()
        except Exception as exc:  # Java missing, bad master URL ...
            raise InputError(
                f"--engine spark: cannot start Spark at {master} "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
    # task failures come back as exceptions (one line to the user); no Java logs on stderr
    spark.sparkContext.setLogLevel("FATAL")
    return spark, existing is None


def stop(spark: Any, master: str) -> None:
    """Stop the session. On a cluster, Spark's standalone client races its own shutdown and
    prints a RejectedExecutionException's stack on the driver JVM's stderr after a good run;
    that stream is closed first (the JVM's logs are already off: errors reach the user as
    exceptions, in one line)."""
    if not is_local(master):
        with contextlib.suppress(Exception):
            io = spark.sparkContext._jvm.java.io
            spark.sparkContext._jvm.java.lang.System.setErr(
                io.PrintStream(io.OutputStream.nullOutputStream())
            )
    spark.stop()
