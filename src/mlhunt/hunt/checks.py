"""The record checks of the hunt, stated once and derived from :mod:`mlhunt.logschema`.

:func:`field_checks` turns the pydantic models of the log schema into a declarative list of
:class:`FieldCheck` (column, path in the record, kind, required, bounds). Three things are
generated from that list and nothing else states the rules again:

- :func:`check_record`: the Python verdict on one parsed record (a normalised row, or
  :class:`Malformed` with the reason), used for every line DuckDB cannot vouch for;
- :func:`duckdb_select`: the DuckDB SQL over JSON-typed columns that computes the normalised
  columns and an ``ok`` verdict. It is *sound, not complete*: ``ok`` is true only where the
  Python verdict would accept the record with exactly these values; every other row goes back
  to :func:`check_record`, which keeps it or names the reason;
- and the Spark engine's SQL (``engines/spark_sql.py``), from the same list.

Kinds: ``time`` (RFC 3339 with a zone, or epoch seconds), ``text``, ``number`` (finite),
``integer`` (finite, within int64), ``vector`` (non-empty array of finite numbers) and
``object``. An empty string counts as absent.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import BaseModel

from mlhunt.logschema import InferenceRecord

INT64 = 2.0**63


@dataclass(frozen=True)
class FieldCheck:
    """One checked field: its normalised column, where it sits in a record, what it must be."""

    column: str
    path: tuple[str, ...]
    kind: str
    required: bool
    low: float | None = None
    high: float | None = None  # exclusive

    @property
    def name(self) -> str:
        return ".".join(self.path)


def _kind(annotation: Any) -> tuple[str, Any]:
    """The check kind of a pydantic annotation, and the nested model of an ``object``."""
    args = set(typing.get_args(annotation)) - {type(None)}
    if not args:
        args = {annotation}
    origins = {typing.get_origin(a) for a in args}
    if list in origins:
        return "vector", None
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    if models:
        return "object", models[0]
    if {str, float} <= args:  # text or a number: a time written either way
        return "time", None
    if str in args:
        return "text", None
    if int in args:
        return "integer", None
    if float in args:
        return "number", None
    raise TypeError(f"log schema: no check kind for {annotation!r}")


@cache
def field_checks() -> tuple[FieldCheck, ...]:
    """The checks of :class:`~mlhunt.logschema.InferenceRecord`, nested models flattened."""
    out: list[FieldCheck] = []

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, info in model.model_fields.items():
            kind, sub = _kind(info.annotation)
            path = (*prefix, name)
            column = name if kind != "object" else ".".join(path)
            bounds = (-INT64, INT64) if kind == "integer" else (None, None)
            out.append(FieldCheck(column, path, kind, info.is_required(), *bounds))
            if sub is not None:
                walk(sub, path)

    walk(InferenceRecord, ())
    return tuple(out)


# --- the Python verdict --------------------------------------------------------------------------


class Malformed(Exception):
    """A record the log schema rejects; the message is the reason reported."""


def _absent(value: Any) -> bool:
    return value is None or value == ""


def _text(value: Any, name: str) -> str:
    if isinstance(value, dict | list):
        raise Malformed(f"{name}: expected text")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a label written 1.0 is the label "1"
    s = str(value)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON \u escape
        raise Malformed(f"{name}: not valid Unicode text") from None
    return s


def _number(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise Malformed(f"{name}: expected a number") from None
    except OverflowError:  # an integer past the float range
        raise Malformed(f"{name}: not a finite number") from None
    if not math.isfinite(v):
        raise Malformed(f"{name}: not a finite number")
    return v


def _time(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise Malformed(f"{name}: not RFC 3339 or epoch seconds")
    if isinstance(value, int | float):
        return _number(value, name)
    s = str(value).strip()
    try:
        v = float(s)
    except ValueError:
        try:
            v = datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise Malformed(f"{name}: not RFC 3339 or epoch seconds: {s[:40]!r}") from None
    if not math.isfinite(v):
        raise Malformed(f"{name}: not a finite number")
    return v


def _vector(value: Any, name: str) -> list[float]:
    value = maybe_json(value)
    if not isinstance(value, list | tuple) or not value:
        raise Malformed(f"{name}: expected a non-empty array of numbers")
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        raise Malformed(f"{name}: expected an array of numbers") from None
    except OverflowError:
        raise Malformed(f"{name}: holds NaN or infinity") from None
    if not all(math.isfinite(v) for v in out):
        raise Malformed(f"{name}: holds NaN or infinity")
    return out


def maybe_json(value: Any) -> Any:
    """CSV cells hold arrays and objects as JSON text."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise Malformed(f"not JSON: {value[:40]!r}") from None
    return value


def _value(check: FieldCheck, value: Any) -> Any:
    """The checked value of one field (None when absent and optional)."""
    if _absent(value):
        if check.required:
            what = " (expected an object with label)" if check.kind == "object" else ""
            raise Malformed(f"{check.name}: missing{what}")
        return None
    name = check.name
    if check.kind == "object":
        value = maybe_json(value)
        if not isinstance(value, dict):
            raise Malformed(f"{name}: missing (expected an object with label)")
        return value
    if check.kind == "text":
        return _text(value, name)
    if check.kind == "time":
        return _time(value, name)
    if check.kind == "vector":
        return _vector(value, name)
    v = _number(value, name)
    if check.low is not None and check.high is not None and not check.low <= v < check.high:
        raise Malformed(f"{name}: out of range")
    return int(v) if check.kind == "integer" else v


def margin_of(scores: list[float] | None, score: float | None) -> tuple[float | None, float | None]:
    """(top-class score, top-1 minus top-2 margin); a binary single score: ``|2 s - 1|``."""
    if scores is not None:
        top = sorted(scores, reverse=True)
        return top[0], (top[0] - top[1] if len(top) > 1 else abs(2 * top[0] - 1))
    if score is not None and 0.0 <= score <= 1.0:
        return score, abs(2 * score - 1)
    return score, None


def check_record(rec: Any) -> dict[str, Any]:
    """The checked values of a parsed record by column (plus ``margin``), or :class:`Malformed`.

    A record without ``output`` may carry it flattened (CSV: ``output.label`` or ``label``
    columns); a record without ``input`` may carry a ``features`` object (its values in the
    record's key order)."""
    if not isinstance(rec, dict):
        raise Malformed("record is not an object")
    out: dict[str, Any] = {}
    for check in field_checks():
        if len(check.path) == 1:
            raw = rec.get(check.path[0])
            if check.path == ("output",) and raw is None:
                raw = flat_output(rec)
            if check.path == ("input",) and _absent(raw) and isinstance(rec.get("features"), dict):
                raw = list(rec["features"].values())
        else:
            parent = out.get(".".join(check.path[:-1])) or {}
            raw = parent.get(check.path[-1])
        out[check.column] = _value(check, raw)
    out["score"], out["margin"] = margin_of(out.get("scores"), out.get("score"))
    return out


def flat_output(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The ``output`` object of a flattened record (CSV), or None."""
    flat = {
        k.split(".", 1)[1]: v
        for k, v in rec.items()
        if isinstance(k, str) and k.startswith("output.")
    }
    if not flat and "label" in rec:
        flat = {k: rec.get(k) for k in ("label", "scores", "score")}
    return flat or None


# --- the DuckDB SQL ------------------------------------------------------------------------------

# RFC 3339 with a zone and at most microseconds: DuckDB's cast and Python's fromisoformat agree.
RFC3339 = (
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,6})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_NUMERIC = "('BIGINT', 'UBIGINT', 'DOUBLE')"
#: The typed value a field of a typed object is given as, by kind (see :func:`duckdb_select`).
TYPED_AS = {"text": "VARCHAR", "number": "DOUBLE", "integer": "DOUBLE", "vector": "ARRAY"}
# a \u escape of a surrogate: Python decides whether the text is valid Unicode
_SURROGATE = r"\\[uU][dD][89a-fA-F]"


def _j(check: FieldCheck) -> str:
    """Column names of a field's JSON value and its JSON type (fixed schema names only)."""
    return f'"j:{check.column}"'


def _ref(check: FieldCheck, typed: bool) -> str:
    if len(check.path) == 1:
        return f'"{check.path[0]}"'
    if typed:  # a field of a typed STRUCT
        return ".".join(f'"{p}"' for p in check.path)
    return f"json_extract(\"{check.path[0]}\", '$.{'.'.join(check.path[1:])}')"


def json_type_sql(j: str) -> str:
    """``json_type(j)`` for the types the checks tell apart, from the first character of the
    (minified) JSON text: no second parse. An integer of up to 18 characters is ``BIGINT``,
    any other number ``DOUBLE`` (the checks treat every number alike, text takes integers
    only: a longer one is left to Python)."""
    x = f"CAST({j} AS VARCHAR)"
    num = f"(strpos({x}, '.') + strpos({x}, 'e') + strpos({x}, 'E') = 0 AND length({x}) <= 18)"
    return (
        f"CASE substr({x}, 1, 1) WHEN '\"' THEN 'VARCHAR' WHEN '[' THEN 'ARRAY' "
        f"WHEN '{{' THEN 'OBJECT' WHEN 'n' THEN 'NULL' WHEN 't' THEN 'BOOLEAN' "
        f"WHEN 'f' THEN 'BOOLEAN' WHEN '' THEN NULL "
        f"ELSE CASE WHEN {num} THEN 'BIGINT' ELSE 'DOUBLE' END END"
    )


def _sql(check: FieldCheck, typed: bool = False) -> tuple[str, str]:
    """(value, ok) SQL of one field: the value over its JSON value ``j:<column>`` and JSON type
    ``t:<column>``; ok over those and the value (computed once, as column ``<column>``).

    ``typed``: ``j:<column>`` is a typed value instead (Parquet), already of the type its
    ``t:<column>`` names: VARCHAR, DOUBLE, DOUBLE[] (``ARRAY``) or a STRUCT (``OBJECT``)."""
    j, t, col = _j(check), f'"t:{check.column}"', f'"{check.column}"'
    empty = f"{j} = ''" if typed else f"{j} = '\"\"'"
    absent = f"({j} IS NULL OR {t} = 'NULL' OR ({t} = 'VARCHAR' AND {empty}))"
    text = j if typed else f"({j} ->> '$')"
    if check.kind == "object":
        v, ok = "NULL", f"{t} = 'OBJECT'"
    elif check.kind == "text":
        plain = f"(strpos({j}, '\\u') = 0 OR NOT regexp_matches({j}, '{_SURROGATE}'))"
        v = (
            f"CASE WHEN {t} IN ('VARCHAR', 'BIGINT', 'UBIGINT') AND {plain} "
            f"THEN nullif({text}, '') END"
        )
        ok = f"{col} IS NOT NULL"
    elif check.kind == "vector":
        v = f"CASE WHEN {t} = 'ARRAY' THEN TRY_CAST({j} AS DOUBLE[]) END"
        ok = (
            f"(len({col}) > 0 AND list_count({col}) = len({col}) "
            f"AND coalesce(isfinite(list_sum({col})), false))"
        )
    elif check.kind == "time":
        v = (
            f"CASE WHEN {t} IN {_NUMERIC} THEN CAST({j} AS DOUBLE) "
            f"WHEN {t} = 'VARCHAR' AND regexp_full_match({text}, '{RFC3339}') "
            f"THEN epoch_us(TRY_CAST({text} AS TIMESTAMPTZ)) / 1e6 END"
        )
        ok = f"coalesce(isfinite({col}), false)"
    else:
        v = f"CASE WHEN {t} IN {_NUMERIC} THEN CAST({j} AS DOUBLE) END"
        ok = f"coalesce(isfinite({col}), false)"
        if check.low is not None and check.high is not None:
            ok += f" AND {col} >= {check.low!r} AND {col} < {check.high!r}"
        if check.kind == "integer":  # the bounds hold the DOUBLE, the column the BIGINT
            ok = ok.replace(col, f'"d:{check.column}"')
    if check.kind == "object" or check.required:
        # (a missing output may be flattened, as in CSV: Python decides)
        return v, f"coalesce({ok}, false)"
    return v, f"({absent} OR coalesce({ok}, false))"


def duckdb_select(source: str, features: bool = False, typed: dict[str, str] | None = None) -> str:
    """One query over ``source`` (a FROM item whose columns are the record's top-level fields
    and ``features`` as JSON, in reading order) giving the normalised columns, ``ok`` and
    ``in_len``. Each field's JSON is parsed for its type once and for its value once.

    ``features``: a record without ``input`` takes the values of ``features`` when its keys are
    those of parameter ``$keys`` in that order (else, and always without ``features``, Python
    decides).

    ``typed``: top-level fields that ``source`` gives as typed values (Parquet columns), by the
    type :func:`_sql` expects (``VARCHAR``, ``DOUBLE``, ``ARRAY``, ``OBJECT``); the fields of a
    typed ``OBJECT`` are typed too, of their kind's type."""
    checks = field_checks()
    typed = typed or {}
    is_typed = {c.column: c.path[0] in typed for c in checks}
    refs = [f"{_ref(c, is_typed[c.column])} AS {_j(c)}" for c in checks]
    types = [
        f"CASE WHEN {_j(c)} IS NULL THEN 'NULL' ELSE "
        f"'{typed.get(c.path[0]) if len(c.path) == 1 else TYPED_AS[c.kind]}' END"
        if is_typed[c.column]
        else json_type_sql(_j(c))
        for c in checks
    ]
    types = [f'{t} AS "t:{c.column}"' for t, c in zip(types, checks, strict=True)]
    values, oks = [], []
    for check in checks:
        v, ok = _sql(check, is_typed[check.column])
        if check.kind == "integer":
            values.append(f'{v} AS "d:{check.column}"')
            v = f'TRY_CAST(trunc("d:{check.column}") AS BIGINT)'
        if check.path == ("input",) and features:
            fx = "TRY_CAST(features AS MAP(VARCHAR, DOUBLE))"
            v = (
                f"CASE WHEN \"j:input\" IS NULL AND json_type(features) = 'OBJECT' "
                f"AND json_keys(features) = $keys THEN map_values({fx}) ELSE {v} END"
            )
            ok = (
                f'CASE WHEN "j:input" IS NULL AND features IS NOT NULL THEN '
                f"coalesce(len(input) > 0 AND list_count(input) = len(input) "
                f"AND isfinite(list_sum(input)), false) ELSE {ok} END"
            )
        if check.kind != "object":
            values.append(f'{v} AS "{check.column}"')
        oks.append(ok)
    if not features:  # a record with features in place of input: Python reads them
        oks.append('("j:input" IS NOT NULL OR features IS NULL)')
    # the query is assembled from fixed fragments only
    return f"""
    WITH j AS (SELECT {", ".join(refs)}, features FROM {source}),
    t AS (SELECT *, {", ".join(types)} FROM j),
    v AS (SELECT *, {", ".join(values)} FROM t),
    a AS (SELECT *, {" AND ".join(oks)} AS ok FROM v),
    b AS (SELECT *, CASE WHEN len(scores) > 1 THEN list_sort(scores, 'DESC') END AS top FROM a)
    SELECT ts, client_id, source_ip, input, label,
      CASE WHEN top IS NOT NULL THEN top[1] WHEN len(scores) = 1 THEN scores[1]
           ELSE score END AS score,
      CASE WHEN top IS NOT NULL THEN top[1] - top[2]
           WHEN len(scores) = 1 THEN abs(2 * scores[1] - 1)
           WHEN score BETWEEN 0 AND 1 THEN abs(2 * score - 1) END AS margin,
      scores, status, latency_ms, model, coalesce(ok, false) AS ok,
      coalesce(len(input), 0)::INTEGER AS in_len
    FROM b
    """  # noqa: S608


__all__ = [
    "TYPED_AS",
    "FieldCheck",
    "Malformed",
    "check_record",
    "duckdb_select",
    "field_checks",
    "margin_of",
    "maybe_json",
]
