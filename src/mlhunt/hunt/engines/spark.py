"""The Spark hunt engine (``mlhunt hunt --engine spark [--spark-master URL]``).

Spark reads the logs itself, so the work scales with the cluster: JSON Lines (``.gz`` too) as
text lines, Parquet natively (each row re-encoded as JSON, float32 widened), CSV through
mlhunt's own reader into a temporary Parquet file (CSV cells hold JSON arrays, which Spark's
CSV reader cannot type). Every record gets its file and line (Parquet: row number) and is
checked by the Spark SQL that :mod:`.spark_sql` generates from the declared record checks
(:mod:`mlhunt.hunt.checks`), Python deciding what the SQL cannot vouch for: a malformed record
is counted, with file, line and reason, exactly where the DuckDB engine counts it.

The population uses the same :class:`PopulationBuilder` fed with exact Spark aggregates and the
same per-client sample rule; the detectors run in ``groupBy(bucket).applyInPandas`` calls, each
holding whole groups (a hash bucket of targets), through the same
:func:`~mlhunt.hunt.detectors.base.run_detectors` as DuckDB, so both engines raise the same
alerts.

On a cluster master the driver's mlhunt package is shipped to the executors and their Python is
checked before any log is read (:mod:`.spark_ship`); logs may be named by URL (``s3a://``,
``abfss://``: :mod:`.spark_urls`). Commands for real clusters: docs/spark.md.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.errors import InputError
from mlhunt.hunt.detectors.base import Alert, Detector, run_detectors
from mlhunt.hunt.engines import EngineResult, Progress
from mlhunt.hunt.engines.spark_ship import check_executors, executor_cause, missing_module, ship
from mlhunt.hunt.engines.spark_sql import (
    CHECKED,
    MARGIN_SQL,
    OUT,
    VALUE_COLUMNS,
    csv_to_parquet,
    no_floats,
    python_verdicts,
    vouch_sql,
)
from mlhunt.hunt.engines.spark_urls import expand, split_urls, url_name
from mlhunt.hunt.events import (
    GroupBatch,
    Population,
    PopulationBuilder,
    sample_per_client,
)
from mlhunt.hunt.margins import margin_bucket_sql
from mlhunt.hunt.readers import ReadReport, kind_of, resolve
from mlhunt.sparkkit import is_local, session, stop

DEFAULT_MASTER = "local[2]"


#: Events per applyInPandas call (whole groups, so a hash bucket may hold more).
BUCKET_EVENTS = 200_000
#: Spark never splits a file smaller than its open cost (spark.sql.files.openCostInBytes, 4 MiB).
ONE_SPLIT_BYTES = 4 * 1024 * 1024
_DETECT_COLS = (
    "file",
    "line",
    "ts",
    "client_id",
    "source_ip",
    "input",
    "label",
    "margin",
    "status",
)
_ALERT_SCHEMA = (
    "detector string, scope string, target string, score double, severity string, "
    "detected_at_event long, first_event_ts double, detected_ts double, "
    "events long, evidence string"
)


def _quiet(_: str) -> None:
    pass


@contextlib.contextmanager
def _quiet_pandas() -> Iterator[None]:
    """PySpark 4.3 warns on every pandas conversion that pandas 3 is not fully supported; the
    conversions used here (numbers, strings, lists of doubles) are covered by the tests."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
        yield


class SparkEngine:
    name = "spark"

    def __init__(
        self,
        master: str | None = None,
        shuffle_partitions: int = 4,
        ship_code: bool | None = None,
        conf: dict[str, str] | None = None,
    ) -> None:
        """``ship_code``: send the driver's mlhunt package to the executors (default: on any
        master but ``local[...]``, whose executors share the driver's Python); ``conf``: more
        Spark settings for the session (``spark.executor.memory``, ``spark.driver.host`` ...)."""
        self.master = master or DEFAULT_MASTER
        self.shuffle_partitions = shuffle_partitions
        self.ship_code = not is_local(self.master) if ship_code is None else ship_code
        self.conf = dict(conf or {})

    def session(self) -> tuple[Any, bool]:
        """(the Spark session for ``master``, whether this call started it)."""
        return session(self.master, self.shuffle_partitions, self.conf)

    # --- engine --------------------------------------------------------------------------
    def run(
        self,
        paths: Sequence[str | Path],
        detectors: list[Detector],
        report: ReadReport,
        *,
        reference: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> EngineResult:
        say = progress or _quiet
        local, urls = split_urls(paths)
        files: list[Path | str] = [*resolve(local)] if local or not urls else []
        spark, owned = self.session()
        say(f"spark: session on {self.master}")
        executors: list[dict[str, Any]] = []
        try:
            if self.ship_code:
                archive = ship(spark, _ship_dir())
                say(f"spark: shipped {archive.name} to the executors")
                found = check_executors(spark)
                seen = sorted({(f["host"], f["python"], f["mlhunt"]) for f in found})
                executors = [{"host": h, "python": p, "mlhunt": m} for h, p, m in seen]
                say(f"spark: executors run {found[0]['python']} {found[0]['version']}")
            files += expand(spark, urls) if urls else []
            with tempfile.TemporaryDirectory(prefix="mlhunt-spark-") as tmp, _quiet_pandas():
                t0 = time.perf_counter()
                try:
                    events, cached = self.read(spark, files, report, Path(tmp), say)
                except Exception as exc:  # e.g. a truncated .gz, found while Spark reads it
                    if not type(exc).__module__.startswith(("pyspark", "py4j")):
                        raise
                    raise InputError(
                        f"--engine spark: reading the logs failed ({_first_line(exc)})"
                    ) from None
                try:
                    t_read = time.perf_counter() - t0
                    say(f"spark: {report.summary()}")
                    pop = self._population(events, report, reference)
                    say(f"spark: population of {pop.n_clients:,} clients")
                    t1 = time.perf_counter()
                    alerts = self._detect(events, detectors, pop, say)
                    t_detect = time.perf_counter() - t1
                finally:
                    cached.unpersist()
        finally:
            if owned:
                stop(spark, self.master)
        n = report.records
        stats = {
            "engine": self.name,
            "master": self.master,
            "events": n,
            "read_seconds": round(t_read, 3),
            "detect_seconds": round(t_detect, 3),
            "detect_events_per_s": round(n / t_detect) if t_detect > 0 else None,
        }
        if executors:  # where the checked executors' Python and mlhunt code came from
            stats["executors"] = executors
        return EngineResult(alerts=alerts, population=pop, stats=stats)

    # --- reading -------------------------------------------------------------------------
    def read(
        self,
        spark: Any,
        files: Sequence[Path | str],
        report: ReadReport,
        tmp: Path,
        say: Progress = _quiet,
    ) -> tuple[Any, Any]:
        """(valid events with the normalised columns, the cached frame behind them); ``tmp``
        holds CSV logs converted for Spark."""
        from pyspark.sql import functions as F

        parts = []
        earlier: list[tuple[int, dict[str, Any]]] = []  # (file index, error) found before Spark
        for idx, path in enumerate(files):
            report.files.append(str(path))
            try:
                lines = self._lines(spark, path, tmp / f"{idx}.parquet", idx, earlier, report)
            except Exception as exc:  # Spark wraps I/O and decoding errors in Java exceptions
                if not type(exc).__module__.startswith(("pyspark", "py4j")):
                    raise
                reason = f"unreadable file ({type(exc).__name__}: {_first_line(exc)})"
                earlier.append((idx, {"file": str(path), "line": 0, "reason": reason}))
                continue
            parts.append(
                lines.select(
                    F.lit(str(path)).alias("file"), F.lit(idx).alias("file_idx"), "line", "value"
                )
            )
            say(f"spark: planned {path}")
        lines = spark.createDataFrame([], "file string, file_idx int, line long, value string")
        for part in parts:
            lines = lines.unionByName(part)
        return self._normalise(lines, report, earlier)

    def _lines(
        self,
        spark: Any,
        path: Path | str,
        tmp_parquet: Path,
        idx: int,
        earlier: list[tuple[int, dict[str, Any]]],
        report: ReadReport,
    ) -> Any:
        """DataFrame(line, value): one JSON text per record, with its 1-based line number."""
        from pyspark.sql import functions as F

        name = url_name(path) if isinstance(path, str) else path.name
        kind = kind_of(Path(name))
        if kind == "csv":
            if isinstance(path, str):  # mlhunt's CSV reader reads local files only
                raise InputError(
                    "CSV by URL: the Spark engine reads CSV logs from local paths only "
                    "(JSON Lines and Parquet by any URL)",
                    file=path,
                )  # mlhunt's reader -> Parquet of records -> the same JSON checks
            sub = ReadReport()
            csv_to_parquet(path, tmp_parquet, sub)
            earlier.extend((idx, e) for e in sub.errors)
            report.malformed += sub.malformed - len(sub.errors)  # beyond the listed ones
            df = spark.read.parquet(str(tmp_parquet))
            cols = [F.col(c) for c in df.columns if c != "line"]
            return df.select("line", F.to_json(F.struct(*cols)).alias("value"))
        if kind == "parquet":
            df = spark.read.parquet(str(path))
            # float32 columns are widened first, so values match what pyarrow hands Python
            cols = [
                F.col(f"`{f.name}`").cast(no_floats(f.dataType)).alias(f.name)
                for f in df.schema.fields
            ]
            out = df.select(
                (F.col("_metadata.row_index") + 1).alias("line"),
                F.to_json(F.struct(*cols)).alias("value"),
            )
            out.limit(1).count()  # fail here, per file, if the file cannot be read
            return out
        text = spark.read.text(str(path)).select(
            "value",
            F.col("_metadata.file_block_start").alias("block"),
            F.monotonically_increasing_id().alias("mid"),
        )
        if name.lower().endswith(".gz") or (
            isinstance(path, Path) and path.stat().st_size <= ONE_SPLIT_BYTES
        ):
            # one split, so one partition: the ids count the lines (gzip is never split)
            return text.select((F.col("mid") + 1).alias("line"), "value").where(
                F.trim("value") != ""
            )
        # Line numbers: the rows of one split are consecutive ids in one partition, and a
        # split's first line follows every line of the splits that start before it.
        blocks = sorted(
            text.groupBy("block")
            .agg(F.count("*").alias("n"), F.min("mid").alias("first"))
            .collect()
        )
        before, rows = 0, []
        for b in blocks:
            rows.append((int(b["block"]), int(b["first"]), before))
            before += int(b["n"])
        offsets = spark.createDataFrame(rows, "block long, first long, before long")
        joined = text.join(F.broadcast(offsets), "block")
        return joined.select(
            (F.col("mid") - F.col("first") + F.col("before") + 1).alias("line"), "value"
        ).where(F.trim("value") != "")

    def _normalise(
        self, lines: Any, report: ReadReport, earlier: list[tuple[int, dict[str, Any]]]
    ) -> tuple[Any, Any]:
        """The checked events, and the cached frame behind them: the SQL generated from the
        declared checks vouches for most records, Python decides the rest (as DuckDB's)."""
        from pyspark.sql import functions as F

        fields, types, values, ok = vouch_sql()
        place = ["file", "file_idx", "line"]
        base = (
            lines.selectExpr(*place, "value", "try_parse_json(value) AS v")
            .selectExpr(*place, "value", *fields)
            .selectExpr("*", *types)
            .selectExpr("*", *values)
            .withColumn("ok", F.expr(ok))
            .selectExpr(
                *place,
                *VALUE_COLUMNS,
                "ok",
                "CASE WHEN ok THEN NULL ELSE value END AS value",
            )
            .persist()
        )
        vouched = base.where("ok").selectExpr(
            *(c for c in OUT[:-1] if c not in ("score", "margin")),
            *MARGIN_SQL,
            "CAST(NULL AS string) AS reason",
        )
        rest = base.where("NOT ok").select(*place, "value").mapInPandas(python_verdicts, CHECKED)
        cached = vouched.unionByName(rest).persist()
        # The input length is fixed by the first record (file, line) that has a good input.
        first = (
            cached.where("reason IS NULL AND input IS NOT NULL")
            .agg(F.min_by(F.size("input"), F.struct("file_idx", "line")).alias("d"))
            .first()
        )
        base.unpersist()
        d = int(first["d"]) if first and first["d"] is not None else 0
        p = cached.withColumn(
            "reason",
            F.expr(
                f"coalesce(reason, CASE WHEN input IS NOT NULL AND size(input) != {d} "
                f"THEN concat('input: ', size(input), ' values, expected {d}') END)"
            ),
        )
        counts = p.agg(F.count("*").alias("n"), F.count("reason").alias("bad")).first()
        report.records += int(counts["n"]) - int(counts["bad"])
        report.input_dim = d or None
        bad = [
            (int(e["file_idx"]), {"file": e["file"], "line": int(e["line"]), "reason": e["reason"]})
            for e in p.where("reason IS NOT NULL")
            .orderBy("file_idx", "line")
            .limit(report.max_errors)
            .select("file_idx", "file", "line", "reason")
            .collect()
        ]
        # the report's total counts every malformed record; its list keeps the first ones
        for _, e in sorted(bad + earlier, key=lambda t: (t[0], t[1]["line"])):
            report.error(e["file"], e["line"], e["reason"])
        report.malformed += int(counts["bad"]) - len(bad)
        return p.where("reason IS NULL").drop("reason"), cached

    # --- population ----------------------------------------------------------------------
    def _population(
        self, events: Any, report: ReadReport, reference: np.ndarray | None
    ) -> Population:
        """Exact aggregates and the per-client sample, fed to the shared PopulationBuilder."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        b = PopulationBuilder()
        d = report.input_dim or 0
        aggs = [
            F.count("*").alias("n"),
            F.count("input").alias("n_input"),
            F.count("margin").alias("n_margin"),
            F.count(F.when(F.col("margin") < b.near_margin, 1)).alias("near"),
        ]
        for i in range(d):
            v = F.col("input")[i]
            aggs += [
                F.min(v).alias(f"min{i}"),
                F.max(v).alias(f"max{i}"),
                F.sum(v).alias(f"sum{i}"),
                F.sum(v * v).alias(f"sq{i}"),
            ]
        row = events.agg(*aggs).first()
        b.n, b.n_input = int(row["n"]), int(row["n_input"])
        b.n_margin, b.near = int(row["n_margin"]), int(row["near"])
        bucket = F.expr(margin_bucket_sql())  # the DuckDB engine's very comparisons
        per_bucket = events.groupBy("client_id", "label", bucket.alias("bucket")).agg(
            F.count("*").alias("n"), F.count("margin").alias("nm")
        )
        counts = per_bucket.groupBy("client_id", "label").agg(
            F.sum("n"), F.collect_list(F.struct("bucket", "nm"))
        )
        rows = counts.collect()  # one job for the volumes, labels and margin buckets
        who, bk, bn = [], [], []
        for r in rows:
            b.per_client[r[0]] = b.per_client.get(r[0], 0) + int(r[2])
            b.labels[r[1]] = b.labels.get(r[1], 0) + int(r[2])
            for cell in r[3]:
                if cell["nm"]:  # a NULL margin's group has no bucket and no known margin
                    who.append(r[0])
                    bk.append(int(cell["bucket"]))
                    bn.append(int(cell["nm"]))
        if who:
            b.add_margin_buckets(np.array(who, dtype=object), np.array(bk), np.array(bn))
        if d and b.n_input:
            b.d = d
            b.mins = np.array([row[f"min{i}"] for i in range(d)], dtype=np.float64)
            b.maxs = np.array([row[f"max{i}"] for i in range(d)], dtype=np.float64)
            b.sums = np.array([row[f"sum{i}"] for i in range(d)], dtype=np.float64)
            b.sumsq = np.array([row[f"sq{i}"] for i in range(d)], dtype=np.float64)
            per = sample_per_client(len(b.per_client))
            w = Window.partitionBy("client_id").orderBy("ts", "file", "line")
            sample = (
                events.where("input IS NOT NULL")
                .withColumn("rn", F.row_number().over(w))
                .where(F.col("rn") <= per)
                .select("input")
                .toPandas()
            )
            if len(sample):
                b.add_sample(np.array([np.asarray(v, dtype=np.float64) for v in sample["input"]]))
        return b.build(reference)

    # --- detection -----------------------------------------------------------------------
    def _detect(
        self, events: Any, detectors: list[Detector], pop: Population, say: Progress
    ) -> list[Alert]:
        from pyspark.sql import functions as F

        alerts: list[Alert] = []
        buckets = max(self.shuffle_partitions, math.ceil(pop.n_events / BUCKET_EVENTS))
        for scope in ("client_id", "source_ip"):
            dets = [d for d in detectors if d.spec.scope == scope and d.applies(pop)]
            if not dets or pop.n_events == 0:
                continue
            fn = _group_function(scope, dets, pop)
            try:
                rows = (
                    events.where(F.col(scope).isNotNull())
                    .select(*_DETECT_COLS)
                    .withColumn("_bucket", F.pmod(F.xxhash64(scope), F.lit(buckets)))
                    .groupBy("_bucket")
                    .applyInPandas(fn, _ALERT_SCHEMA)
                    .collect()
                )
            except Exception as exc:  # an executor without a module: one line, not a stack
                module = missing_module(exc)
                if module is None or not type(exc).__module__.startswith(("pyspark", "py4j")):
                    raise
                raise InputError(
                    f"--engine spark: the executors cannot import {module!r} "
                    f"({executor_cause(exc)}); install it in the executors' Python "
                    "or set PYSPARK_PYTHON (docs/spark.md)"
                ) from None
            alerts += [Alert.from_row(r.asDict()) for r in rows]
            say(f"spark: {scope}: {len(alerts)} alerts so far")
        alerts.sort(key=lambda a: (a.scope, a.target, a.detector))
        return alerts


def _group_function(scope: str, dets: list[Detector], pop: Population) -> Any:
    """The applyInPandas function: whole groups of one hash bucket -> alert rows."""

    def run(pdf: Any) -> Any:
        import pandas as pd

        pdf = pdf.astype({"status": "float64", "margin": "float64", "ts": "float64"})
        batch = GroupBatch.from_pandas(scope, pdf, pop.classes, pop.d)
        rows = [a.to_row() for a in run_detectors(batch, pop, dets)]
        return pd.DataFrame(rows, columns=[c.split()[0] for c in _ALERT_SCHEMA.split(", ")])

    return run


def _ship_dir() -> Path:
    """Where archives of mlhunt are kept while Spark serves them (named by content, so reused)."""
    out = Path(tempfile.gettempdir()) / f"mlhunt-spark-ship-{os.getuid()}"
    out.mkdir(mode=0o700, exist_ok=True)
    if out.stat().st_uid != os.getuid():  # another user's folder: never write code there
        raise InputError(f"--engine spark: {out} belongs to another user; remove it")
    return out


def _first_line(exc: BaseException) -> str:
    """The informative line of a (Java) error: its root cause when Spark wraps one."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    causes = [ln.removeprefix("Caused by:").strip() for ln in lines if ln.startswith("Caused by:")]
    return (causes[-1] if causes else lines[0] if lines else type(exc).__name__)[:160]
