"""Sessionisation and user/item features of the clickstream, computed by Spark (local mode).

The seed system's feature job: a session ends after 30 minutes without an event (per user),
interactions weigh view 1, cart 3, purchase 5, and per-user and per-item aggregates feed the
recommender. Each output is written by Spark (one partition) and moved to a single Parquet file
``out/<role>.parquet``, so pyarrow, pandas and DuckDB read it as one file.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mlhunt.errors import InputError
from mlhunt.scenarios.clickgen import SCHEMA

#: Inactivity that ends a session.
SESSION_GAP_S = 30 * 60
#: Interaction weight of each event type.
EVENT_WEIGHTS = {"view": 1.0, "cart": 3.0, "purchase": 5.0}
ROLES = ("interactions", "sessions", "user_features", "item_features")
#: Counts of the run (events read, rejected, seconds), written next to the Parquet files.
SUMMARY = "features.json"
#: Spark settings for this small job: bounded driver memory, few shuffle partitions, and a JVM
#: for a job of seconds: the quick JIT tier only and one GC thread (half the JVM's CPU, the
#: same features; docs/testing.md has the numbers).
SPARK_CONF = {
    "spark.driver.memory": "1g",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


def spark_session(master: str) -> tuple[Any, bool]:
    """(a Spark session on ``master`` with mlhunt's settings, whether it was started
    here): UI and console progress off, 2 shuffle partitions, UTC, bounded driver memory."""
    from mlhunt.sparkkit import session

    return session(master, shuffle_partitions=2, conf=SPARK_CONF)


def build_features(events: Path, out: Path, *, master: str = "local[1]") -> dict[str, Path]:
    """Run the feature job on ``events`` (``.parquet`` or ``.jsonl``) into ``out``; returns
    role -> Parquet file for :data:`ROLES`. Starts (and stops) a Spark session unless one is
    active, which is reused and left running."""
    events, out = Path(events), Path(out)
    if events.suffix not in (".parquet", ".jsonl"):
        raise InputError(f"{events}: clickstream events are read from .parquet or .jsonl")
    out.mkdir(parents=True, exist_ok=True)
    spark, owned = spark_session(master)
    try:
        t0 = time.perf_counter()
        # Parquet timestamps as int64 microseconds (UTC), not Spark's legacy INT96
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        flagged, counts = _read(spark, events)
        frames = features(flagged.where("ok").drop("ok"))
        paths: dict[str, Path] = {}
        with tempfile.TemporaryDirectory(prefix="mlhunt-clickfeat-", dir=out) as tmp:
            for role in ROLES:
                paths[role] = _write_one(frames[role], Path(tmp) / role, out / f"{role}.parquet")
        flagged.unpersist()
        summary = {**counts, "master": master, "seconds": round(time.perf_counter() - t0, 3)}
        (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return paths
    finally:
        if owned:
            spark.stop()


def _read(spark: Any, events: Path) -> tuple[Any, dict[str, int]]:
    """(the events with an ``ok`` column, cached; counts of valid and rejected records). A
    record without a timestamp, user or item, or with an unknown event type, is rejected."""
    from pyspark.sql import functions as F

    cols = [c for c in SCHEMA.names if c != "label"]  # ground truth stays with the simulator
    if events.suffix == ".parquet":
        frame = spark.read.parquet(str(events)).select(*cols)
    else:
        ddl = "ts timestamp, user string, item string, event string, source_ip string"
        frame = spark.read.schema(ddl + ", referrer string").json(str(events), mode="PERMISSIVE")
    ok = (
        F.col("ts").isNotNull()
        & F.col("user").isNotNull()
        & F.col("item").isNotNull()
        & F.col("event").isin(*EVENT_WEIGHTS)
    )
    flagged = frame.withColumn("ok", F.coalesce(ok, F.lit(False))).cache()
    tally = {r["ok"]: r["n"] for r in flagged.groupBy("ok").agg(F.count("*").alias("n")).collect()}
    counts = {"events": int(tally.get(True, 0)), "rejected": int(tally.get(False, 0))}
    return flagged, counts


def features(ev: Any) -> dict[str, Any]:
    """The four output frames (role -> Spark DataFrame) of an events frame."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_user = Window.partitionBy("user").orderBy("ts", "item", "event")
    secs = F.col("ts").cast("double")
    gap = secs - F.lag(secs).over(by_user)
    starts = F.when(gap.isNull() | (gap > SESSION_GAP_S), 1).otherwise(0)
    ev = ev.withColumn("new_session", starts)
    ev = ev.withColumn("session_no", F.sum("new_session").over(by_user))
    ev = ev.withColumn("session", F.concat_ws("-", "user", F.format_string("%04d", "session_no")))
    weight = F.lit(0.0)
    for name, w in EVENT_WEIGHTS.items():
        weight = F.when(F.col("event") == name, F.lit(w)).otherwise(weight)
    ev = ev.withColumn("weight", weight)

    interactions = ev.groupBy("user", "item").agg(F.sum("weight").cast("float").alias("weight"))
    is_ = {name: F.when(F.col("event") == name, 1).otherwise(0) for name in EVENT_WEIGHTS}
    sessions = ev.groupBy("session", "user").agg(
        F.min("ts").alias("start"),
        F.max("ts").alias("end"),
        F.count("*").alias("events"),
        F.countDistinct("item").alias("items"),
        F.sum(is_["cart"]).alias("carts"),
        F.sum(is_["purchase"]).alias("purchases"),
        F.first("referrer", ignorenulls=True).alias("referrer"),
        F.sort_array(F.collect_set("item")).alias("item_set"),
    )
    sessions = sessions.withColumn(
        "duration_s", F.col("end").cast("double") - F.col("start").cast("double")
    )
    users = sessions.groupBy("user").agg(
        F.min("start").alias("first_seen"),
        F.max("end").alias("last_seen"),
        F.count("*").alias("sessions"),
        F.sum("events").alias("events"),
        F.sum("purchases").alias("purchases"),
        F.avg("items").alias("mean_session_items"),
    )
    items = ev.groupBy("item").agg(
        F.sum(is_["view"]).alias("views"),
        F.sum(is_["cart"]).alias("carts"),
        F.sum(is_["purchase"]).alias("purchases"),
        F.countDistinct("user").alias("users"),
    )
    items = items.withColumn(
        "conversion", F.col("purchases") / F.greatest(F.col("views"), F.lit(1))
    )
    return {
        "interactions": interactions.orderBy("user", "item"),
        "sessions": sessions.orderBy("user", "start"),
        "user_features": users.orderBy("user"),
        "item_features": items.orderBy("item"),
    }


def _write_one(frame: Any, tmp: Path, dest: Path) -> Path:
    """Write ``frame`` with Spark as one partition, then move its part file to ``dest``."""
    frame.coalesce(1).write.mode("overwrite").parquet(str(tmp))
    parts = sorted(tmp.glob("part-*.parquet"))
    if len(parts) != 1:  # an empty frame may still write one empty part; never zero or two
        raise RuntimeError(f"Spark wrote {len(parts)} part files for {dest.name}")
    dest.unlink(missing_ok=True)
    shutil.move(str(parts[0]), dest)
    return dest
