"""The Spark engine's record checks and schemas as Spark SQL: the Python reader's checks
(:mod:`mlhunt.hunt.readers`) restated so a malformed record is counted, with file, line and
reason, where the DuckDB engine counts it; and the conversions that feed them (float32 widened,
CSV through mlhunt's reader into Parquet)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlhunt.hunt.readers import ReadReport, read_batches

RAW_SCHEMA = (
    "ts string, client_id string, source_ip string, input array<double>, "
    "output struct<label: string, scores: array<double>, score: string>, "
    "model string, status string, latency_ms string, _corrupt string"
)


def _finite(expr: str) -> str:
    return f"(NOT isnan({expr}) AND abs({expr}) != double('inf'))"


def _all_finite(arr: str) -> str:
    return f"NOT exists({arr}, v -> v IS NULL OR isnan(v) OR abs(v) = double('inf'))"


def _bad_number(field: str) -> str:
    """A number-or-empty field (kept as text, like the Python reader) that is not a number."""
    num = f"try_cast({field} AS double)"
    return f"{field} IS NOT NULL AND {field} != '' AND ({num} IS NULL OR NOT {_finite(num)})"


# Record checks in the Python reader's order (first failing check is the reason); `d` is added
# once the input length is known. Columns: r (parsed struct), tsd (epoch seconds or NULL).
CHECKS = (
    ("r._corrupt IS NOT NULL OR r IS NULL", "'not a JSON object'"),
    ("r.ts IS NULL OR r.ts = ''", "'ts: missing'"),
    ("tsd IS NULL", "concat('ts: not RFC 3339 or epoch seconds: ', substr(r.ts, 1, 40))"),
    (f"NOT {_finite('tsd')}", "'ts: not a finite number'"),
    ("r.client_id IS NULL OR r.client_id = ''", "'client_id: missing'"),
    ("r.output IS NULL", "'output: missing (expected an object with label)'"),
    ("r.output.label IS NULL OR r.output.label = ''", "'output.label: missing'"),
    (
        "r.output.scores IS NOT NULL AND size(r.output.scores) = 0",
        "'output.scores: expected a non-empty array of numbers'",
    ),
    (
        f"r.output.scores IS NOT NULL AND NOT {_all_finite('r.output.scores')}",
        "'output.scores: holds NaN or infinity'",
    ),
    (_bad_number("r.output.score"), "'output.score: expected a number'"),
    ("r.input IS NOT NULL AND size(r.input) = 0", "'input: expected a non-empty array of numbers'"),
    (f"r.input IS NOT NULL AND NOT {_all_finite('r.input')}", "'input: holds NaN or infinity'"),
)
LATE_CHECKS = (
    (
        "r.input IS NOT NULL AND size(r.input) != {d}",
        "concat('input: ', size(r.input), ' values, expected {d}')",
    ),
    (_bad_number("r.status"), "'status: expected a number'"),
    (_bad_number("r.latency_ms"), "'latency_ms: expected a number'"),
)


def case_sql(checks: Sequence[tuple[str, str]]) -> str:
    return "CASE " + " ".join(f"WHEN {c} THEN {r}" for c, r in checks) + " END"


def num_sql(field: str) -> str:
    return f"CASE WHEN {field} = '' THEN NULL ELSE try_cast({field} AS double) END"


def no_floats(t: Any) -> Any:
    """The type with every float32 widened to double (nested in arrays and structs too)."""
    from pyspark.sql import types as T

    if isinstance(t, T.FloatType):
        return T.DoubleType()
    if isinstance(t, T.ArrayType):
        return T.ArrayType(no_floats(t.elementType), t.containsNull)
    if isinstance(t, T.StructType):
        return T.StructType(
            [T.StructField(f.name, no_floats(f.dataType), f.nullable) for f in t.fields]
        )
    return t


def csv_to_parquet(path: Path, out: Path, sub: ReadReport) -> None:
    """The CSV's records (checked by mlhunt's reader) as raw log records in Parquet, with lines."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for t in read_batches(path, sub):
        output = pa.StructArray.from_arrays(
            [t.column(c).combine_chunks() for c in ("label", "scores", "score")],
            ["label", "scores", "score"],
        )
        names = ("line", "ts", "client_id", "source_ip", "input", "output", "model", "status")
        cols = {c: output if c == "output" else t.column(c) for c in (*names, "latency_ms")}
        rec = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(out, rec.schema)
        writer.write_table(rec)
    if writer is None:
        pq.write_table(
            pa.table({"line": pa.array([], pa.int64()), "value": pa.array([], pa.string())}), out
        )
    else:
        writer.close()
