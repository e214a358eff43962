"""The record checks of :mod:`mlhunt.hunt.readers` as DuckDB SQL, for Parquet read natively.

:func:`parquet_query` builds one query over ``read_parquet`` that yields, for every row, its
1-based row number, the normalised columns the engine keeps and two verdicts: ``ok`` (the
Python path would accept the record with exactly these values) and ``in_len`` (input length,
0 without an input). The SQL is deliberately *sound, not complete*: a value whose Python
reading it cannot vouch for (an unusual column type, a number spelt in text, a timestamp
without a zone ...) makes ``ok`` false, and the engine hands that row to the Python path,
which keeps it or reports it with its reason. So the malformed-record report is the Python
path's, row for row, and only odd rows pay for Python.

Column types come from the file's Arrow schema (what ``to_pylist`` hands the Python path):
strings and integers are read as text (``str(int)`` equals DuckDB's cast), integers and floats
as numbers (float32 widens exactly), lists of numbers as vectors, and JSON text arrays only in
their plain form. Only fixed fragments of this module enter the SQL; the path is a parameter.
"""

from __future__ import annotations

from typing import Any

from mlhunt.hunt._fastjson import _RFC3339

_EPOCH = r"-?[0-9]+([.][0-9]+)?"
# A number as text that Python's float() and DuckDB's cast read the same way.
_NUM_TEXT = r"-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?"
# A plain JSON array of numbers (no big integers: json.loads keeps those exact, then rounds).
_JNUM = r"-?(0|[1-9][0-9]{0,14})([.][0-9]+)?([eE][-+]?[0-9]+)?"
_JSON_VEC = rf"\[[ \t\n\r]*{_JNUM}([ \t\n\r]*,[ \t\n\r]*{_JNUM})*[ \t\n\r]*\]"

UNSUPPORTED = "unsupported"


def _kind(t: Any) -> str:
    """The reading a column of Arrow type ``t`` gets: text, int, float, vector, vector_text,
    struct, null or unsupported (only NULLs of it can be vouched for)."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_float32(t) or pa.types.is_float64(t):
        return "float"
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        v = t.value_type
        if pa.types.is_integer(v) or pa.types.is_float32(v) or pa.types.is_float64(v):
            return "vector"
        return UNSUPPORTED
    if pa.types.is_struct(t):
        return "struct"
    return UNSUPPORTED


class _Field:
    """One (possibly nested) field: its SQL reference and Arrow type (None: absent)."""

    def __init__(self, ref: str, t: Any) -> None:
        self.ref = ref
        self.kind = "null" if t is None else _kind(t)
        self.t = t

    def sub(self, name: str) -> _Field:
        if self.kind != "struct" or self.t.get_field_index(name) < 0:
            return _Field("NULL", None)
        return _Field(f"struct_extract({self.ref}, '{name}')", self.t.field(name).type)


def _text(f: _Field) -> tuple[str, str]:
    """(VARCHAR value, ok-if-not-null) of a field Python reads with ``str()``."""
    if f.kind == "text":
        return f.ref, "true"
    if f.kind == "int":
        return f"CAST({f.ref} AS VARCHAR)", "true"
    return "NULL::VARCHAR", "false"


def _required_text(f: _Field) -> tuple[str, str]:
    v, ok = _text(f)
    return v, f"({ok} AND {v} IS NOT NULL AND {v} <> '')"


def _optional_text(f: _Field) -> tuple[str, str]:
    v, ok = _text(f)
    return f"nullif({v}, '')", f"({f.ref} IS NULL OR {ok})"


def _number(f: _Field) -> tuple[str, str]:
    """(DOUBLE value, ok) of an optional number (Python: ``_float``)."""
    if f.kind in ("int", "float"):
        v = f"CAST({f.ref} AS DOUBLE)"
        return v, f"({f.ref} IS NULL OR coalesce(isfinite({v}), false))"
    if f.kind == "text":
        v = (
            f"CASE WHEN regexp_full_match({f.ref}, '{_NUM_TEXT}') "
            f"THEN TRY_CAST({f.ref} AS DOUBLE) END"
        )
        return v, (f"({f.ref} IS NULL OR {f.ref} = '' OR coalesce(isfinite({v}), false))")
    return "NULL::DOUBLE", f"({f.ref} IS NULL)"


def _vector(f: _Field) -> tuple[str, str]:
    """(DOUBLE[] value, ok) of an optional array of finite numbers (Python: ``_vector``)."""
    if f.kind == "vector":
        v = f"CAST({f.ref} AS DOUBLE[])"
    elif f.kind == "text":
        v = (
            f"CASE WHEN regexp_full_match({f.ref}, '{_JSON_VEC}') "
            f"THEN TRY(json_transform({f.ref}, '[\"DOUBLE\"]')) END"
        )
    else:
        return "NULL::DOUBLE[]", f"({f.ref} IS NULL)"
    empty = f" OR {f.ref} = ''" if f.kind == "text" else ""
    # a sum that overflows is not proof of a non-finite value: Python decides those
    return v, (
        f"({f.ref} IS NULL{empty} OR ({v} IS NOT NULL AND len({v}) > 0 "
        f"AND list_count({v}) = len({v}) AND coalesce(isfinite(list_sum({v})), false)))"
    )


def _ts(f: _Field) -> tuple[str, str]:
    if f.kind in ("int", "float"):
        v = f"CAST({f.ref} AS DOUBLE)"
    elif f.kind == "text":
        v = (
            f"CASE WHEN regexp_full_match({f.ref}, '{_RFC3339}') "
            f"THEN epoch_us(TRY_CAST({f.ref} AS TIMESTAMPTZ)) / 1e6 "
            f"WHEN regexp_full_match({f.ref}, '{_EPOCH}') THEN TRY_CAST({f.ref} AS DOUBLE) END"
        )
    else:
        return "NULL::DOUBLE", "false"
    return v, f"coalesce(isfinite({v}), false)"


def parquet_query(schema: Any) -> str | None:
    """The checking query over ``read_parquet($1, file_row_number=true)`` for a file with Arrow
    schema ``schema``; None when the Python path must read the whole file (duplicate names)."""
    names = list(schema.names)
    if len(set(names)) != len(names):
        return None

    def col(name: str) -> _Field:
        i = schema.get_field_index(name)
        return _Field(f'"{name}"', None if i < 0 else schema.field(i).type)

    out = col("output")
    ts, ts_ok = _ts(col("ts"))
    cid, cid_ok = _required_text(col("client_id"))
    src, src_ok = _optional_text(col("source_ip"))
    model_ok = _optional_text(col("model"))[1]
    x, x_ok = _vector(col("input"))
    label, label_ok = _required_text(out.sub("label"))
    scores, scores_ok = _vector(out.sub("scores"))
    score, score_ok = _number(out.sub("score"))
    status_d, status_ok = _number(col("status"))
    lat_ok = _number(col("latency_ms"))[1]
    # A missing output makes Python look for flattened columns: left to Python.
    out_ok = f"{out.ref} IS NOT NULL" if out.kind == "struct" else "false"
    # fmt: off
    return f"""
    WITH a AS (
      SELECT file_row_number + 1 AS line, {ts} AS ts, {cid} AS client_id, {src} AS source_ip,
        {x} AS input, {label} AS label, {scores} AS scores, {score} AS score0,
        {status_d} AS status_d,
        {ts_ok} AND {cid_ok} AND {src_ok} AND {model_ok} AND {out_ok} AND {label_ok}
          AND {scores_ok} AND {score_ok} AND {status_ok} AND {lat_ok} AND {x_ok} AS ok0
      FROM read_parquet($1, file_row_number = true)
    ), b AS (
      SELECT *, CASE WHEN len(scores) <> 2 THEN list_sort(scores, 'DESC') END AS top,
        TRY_CAST(trunc(status_d) AS BIGINT) AS status
      FROM a
    )
    SELECT line, ts, client_id, source_ip, input, label,
      CASE WHEN len(scores) = 2 THEN abs(scores[1] - scores[2])
           WHEN len(top) > 1 THEN top[1] - top[2]
           WHEN scores IS NOT NULL THEN abs(2 * top[1] - 1)
           WHEN score0 BETWEEN 0 AND 1 THEN abs(2 * score0 - 1) END AS margin,
      status, coalesce(ok0 AND (status_d IS NULL OR status IS NOT NULL), false) AS ok,
      coalesce(len(input), 0)::INTEGER AS in_len
    FROM b
    """  # noqa: S608
    # fmt: on
