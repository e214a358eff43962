"""The Spark engine's record checks, generated from :func:`mlhunt.hunt.checks.field_checks`.

Each record is parsed once into a Spark ``VARIANT`` (``try_parse_json``). From the declared
checks (column, path, kind, required, bounds) :func:`vouch_sql` writes the Spark SQL that
computes the normalised columns and an ``ok`` verdict, the way :func:`~.checks.duckdb_select`
does for DuckDB: *sound, not complete*. ``ok`` is true only where the Python verdict would
accept the record with exactly these values; every other record (not JSON, a repeated key, a
number written as text, a lone surrogate ...) goes to :func:`python_verdicts`, which runs
:func:`~.checks.check_record` on the executors and keeps the record or names the reason. So
one definition of a valid record serves all three engines, and their verdicts agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlhunt.hunt.checks import RFC3339, FieldCheck, Malformed, check_record, field_checks
from mlhunt.hunt.readers import COLUMNS, ReadReport, parse_line, read_batches

#: What both paths give: the record's place, the normalised columns, and the reason (or NULL).
CHECKED = (
    "file string, file_idx int, line long, ts double, client_id string, source_ip string, "
    "input array<double>, label string, score double, margin double, scores array<double>, "
    "status long, latency_ms double, model string, reason string"
)
OUT = [c.split()[0] for c in CHECKED.split(", ")]
#: The columns :func:`vouch_sql` computes (one per declared check but the object ones).
VALUE_COLUMNS = [c.column for c in field_checks() if c.kind != "object"]
_NUM = "({t} IN ('BIGINT', 'DOUBLE') OR {t} LIKE 'DECIMAL(%')"
_VEC = "({t} IN ('ARRAY<BIGINT>', 'ARRAY<DOUBLE>') OR {t} LIKE 'ARRAY<DECIMAL(%')"


def _finite(x: str) -> str:
    return f"(abs({x}) <= 1.7976931348623157E308D)"  # false for NaN and infinities


def _field_sql(c: FieldCheck) -> tuple[str, str]:
    """(value, ok) Spark SQL of one declared check over ``x:<column>`` (the field as a
    variant) and ``t:<column>`` (its type, from ``schema_of_variant``)."""
    x, t, col = f"`x:{c.column}`", f"`t:{c.column}`", f"`{c.column}`"
    get = f"try_variant_get({x}, '$', '{{}}')"
    absent = f"({x} IS NULL OR {t} = 'VOID' OR ({t} = 'STRING' AND {get.format('string')} = ''))"
    num = f"CASE WHEN {_NUM.format(t=t)} THEN {get.format('double')} END"
    kind = c.kind
    if kind == "object":
        value, ok = "NULL", f"startswith({t}, 'OBJECT<')"
    elif kind == "text":
        value = f"CASE WHEN {t} IN ('STRING', 'BIGINT') THEN nullif({get.format('string')}, '') END"
        ok = f"{col} IS NOT NULL"
    elif kind == "vector":
        value = f"CASE WHEN {_VEC.format(t=t)} THEN {get.format('array<double>')} END"
        ok = f"size({col}) > 0 AND NOT exists({col}, e -> e IS NULL OR NOT {_finite('e')})"
    elif kind == "time":
        s = get.format("string")
        value = (
            f"CASE WHEN {_NUM.format(t=t)} THEN {get.format('double')} "
            f"WHEN {t} = 'STRING' AND {s} RLIKE '^({RFC3339})$' "
            f"THEN unix_micros(try_cast({s} AS TIMESTAMP)) / 1e6 END"
        )
        ok = _finite(col)
    else:  # number, integer (bounds on the double, the column is its truncation)
        value, ok = num, _finite(num)
        if c.low is not None and c.high is not None:
            ok = f"{ok} AND {num} >= {c.low!r}D AND {num} < {c.high!r}D"
        if kind == "integer":
            value = f"try_cast({num} AS BIGINT)"
    ok = f"coalesce({ok}, false)"
    return value, ok if c.required else f"({absent} OR {ok})"


def vouch_sql() -> tuple[list[str], list[str], list[str], str]:
    """Four projections over ``v`` (the record as a variant): the fields, their types, the
    normalised values (columns named as in :data:`CHECKED`, the raw ``score`` among them), and
    the ``ok`` verdict (a record with ``features`` in place of ``input`` is left to Python,
    which reads them)."""
    checks = field_checks()
    fields = [f"variant_get(v, '$.{'.'.join(c.path)}') AS `x:{c.column}`" for c in checks]
    fields.append("variant_get(v, '$.features') AS `x:features`")
    types = [f"schema_of_variant(`x:{c.column}`) AS `t:{c.column}`" for c in checks]
    values, oks = [], ["(`x:input` IS NOT NULL OR `x:features` IS NULL)"]
    for c in checks:
        value, ok = _field_sql(c)
        if c.kind != "object":
            values.append(f"{value} AS `{c.column}`")
        oks.append(ok)
    return fields, types, values, " AND ".join(oks)


#: Score and margin from the checked ``scores`` or ``score`` (as :func:`~.checks.margin_of`).
_TOP = "reverse(array_sort(scores))"
MARGIN_SQL = (
    f"CASE WHEN scores IS NOT NULL THEN try_element_at({_TOP}, 1) ELSE score END AS score",
    f"CASE WHEN size(scores) > 1 THEN try_element_at({_TOP}, 1) - try_element_at({_TOP}, 2) "
    "WHEN size(scores) = 1 THEN abs(2 * scores[0] - 1) "
    "WHEN score BETWEEN 0 AND 1 THEN abs(2 * score - 1) END AS margin",
)


def python_verdicts(batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInPandas`` over (file, file_idx, line, value) rows the SQL did not vouch for: the
    Python verdict of each, as the columns of :data:`CHECKED`."""
    import pandas as pd

    for pdf in batches:
        rows = []
        for file, idx, line, text in zip(
            pdf["file"], pdf["file_idx"], pdf["line"], pdf["value"], strict=True
        ):
            try:
                got, reason = check_record(parse_line(text, int(line) == 1)), None
            except Malformed as exc:
                got, reason = {}, str(exc)
            got.update(file=file, file_idx=int(idx), line=int(line), reason=reason)
            rows.append([got.get(c) for c in OUT])
        yield pd.DataFrame(rows, columns=OUT, dtype=object)


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
        keep = [c for c in COLUMNS[1:] if c not in ("label", "scores", "score", "margin")]
        rec = pa.table({**{c: t.column(c) for c in keep}, "output": output})
        if writer is None:
            writer = pq.ParquetWriter(out, rec.schema)
        writer.write_table(rec)
    if writer is None:
        pq.write_table(
            pa.table({"line": pa.array([], pa.int64()), "value": pa.array([], pa.string())}), out
        )
    else:
        writer.close()
