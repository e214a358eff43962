"""The Arrow timestamp kernel (:mod:`mlhunt.hunt.engines._kern_ts`) against the reader's Python
path (``readers._ts``): sound (ok means the identical float) and complete on the RFC 3339 form."""

from __future__ import annotations

import math
import random
import re
from datetime import date

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlhunt.hunt._fastjson import _RFC3339
from mlhunt.hunt.engines._kern_ts import arrow_ts, parse_ts, us_to_seconds
from mlhunt.hunt.readers import _Bad, _ts

# DuckDB's RE2 `\d` is ASCII only; so is the kernel.
RFC = re.compile(_RFC3339, re.ASCII)


def py_ts(s: str) -> float | None:
    try:
        return _ts(s)
    except _Bad:
        return None


def kernel(strings: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    return arrow_ts(pa.array(strings, pa.string()))


def same(a: float, b: float) -> bool:
    return a == b and repr(a) == repr(b) and math.copysign(1, a) == math.copysign(1, b)


def check_sound_and_complete(strings: list[str]) -> np.ndarray:
    ts, ok = kernel(strings)
    for s, t, good in zip(strings, ts.tolist(), ok.tolist(), strict=True):
        want = py_ts(s)
        if good:
            assert want is not None and same(t, want), (s, t, want)
        elif RFC.fullmatch(s) and want is not None:
            pytest.fail(f"kernel refused {s!r} (Python: {want!r})")
    return ok


OK = [
    "2024-03-05T00:00:00.015Z",
    "2024-03-05T00:00:00Z",
    "2024-03-05 10:20:30Z",
    "2024-03-05T10:20:30+05:30",
    "2024-03-05T10:20:30-08:00",
    "2024-03-05T10:20:30.123456-23:59",
    "2024-03-05T10:20:30.1+23:59",
    "2024-02-29T00:00:00Z",
    "2000-02-29T12:00:00Z",
    "1969-12-31T23:59:59.5Z",
    "1900-03-01T00:00:00+00:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",  # before year 1 in UTC: Python still gives a number
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999-23:59",  # after 9999 in UTC, likewise
    "9999-12-31T00:00:00+23:59",
] + [f"2024-03-05T10:20:30.{'7' * k}Z" for k in range(1, 7)]
NOT_OK = [
    "2023-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2024-04-31T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-00-01T00:00:00Z",
    "2024-01-00T00:00:00Z",
    "2024-01-32T00:00:00Z",
    "2024-03-05T24:00:00Z",
    "2024-03-05T23:60:00Z",
    "2024-03-05T23:59:60Z",
    "2024-03-05T00:00:00.1234567Z",
    "2024-03-05T00:00:00.Z",
    "2024-03-05T00:00:00",  # no zone (Python: local time)
    "2024-03-05T00:00:00.5",
    "2024-03-05t00:00:00Z",
    "2024-03-05T00:00:00z",
    "2024-03-05T00:00:00+24:00",
    "2024-03-05T00:00:00+05:60",
    "2024-03-05T00:00:00+0530",
    "2024-03-05T00:00:00+05",
    "2024-03-05T00:00:00ZZ",
    "2024-03-05T00:00:00+05:30x",
    "2024-03-05T00:00:00.5-05:30Z",
    "2024-03-05T00:00:00.5-05:3",
    " 2024-03-05T00:00:00Z",
    "2024-03-05T00:00:00Z ",
    "2024-03-05T00:00:00Z\n",
    "",
    "0000-01-01T00:00:00Z",
    "\u0662\u0660\u0662\u0664-03-05T00:00:00Z",  # Arabic-Indic digits
    "\uff12\uff10\uff12\uff14-03-05T00:00:00Z",  # fullwidth digits
    "2024-03-05T00:00:0\u0665Z",
    "2024/03/05T00:00:00Z",
    "2024-03-05_00:00:00Z",
    "2024-03-05T00-00:00Z",
    "1709596800.015",  # epoch seconds: the Python path's job
    "2024-3-05T00:00:00Z",
]


def test_fixed_cases_ok_and_equal_to_python() -> None:
    ts, ok = kernel([*OK, *NOT_OK, None])
    assert ok.tolist() == [True] * len(OK) + [False] * (len(NOT_OK) + 1)
    for s, t in zip(OK, ts.tolist(), strict=False):
        assert same(t, _ts(s)), s
    assert np.isnan(ts[len(OK) :]).all()
    check_sound_and_complete(OK + NOT_OK)


def test_values_by_hand() -> None:
    # Independent of Python's datetime: a day off by one or a mis-padded fraction shows here.
    cases = {
        "1970-01-01T00:00:00Z": 0.0,
        "1970-01-02T00:00:00Z": 86400.0,
        "1970-01-01T01:00:00+01:00": 0.0,
        "1969-12-31T23:59:59.5Z": -0.5,
        "1969-12-31T23:59:59.000001Z": -0.999999,
        "2024-03-05T00:00:00.015Z": 1709596800.015,
        "2024-03-05T00:00:00.05Z": 1709596800.05,
        "2024-03-05 05:30:00.5+05:30": 1709596800.5,
        "2024-02-29T00:00:00Z": 1709164800.0,
        "2000-03-01T00:00:00Z": 951868800.0,
        "0001-01-01T00:00:00Z": -62135596800.0,
        "9999-12-31T23:59:59Z": 253402300799.0,
    }
    ts, ok = kernel(list(cases))
    assert ok.all()
    assert ts.tolist() == list(cases.values())


def test_every_day_of_a_400_year_cycle_and_each_years_ends() -> None:
    days = [
        date.fromordinal(o)
        for o in range(date(1900, 1, 1).toordinal(), date(2300, 1, 1).toordinal())
    ]
    days += [date(y, m, d) for y in range(1, 10000) for m, d in ((1, 1), (2, 28), (12, 31))]
    ts, ok = kernel([f"{d.isoformat()}T00:00:00Z" for d in days])
    assert ok.all()
    want = (np.array([d.toordinal() for d in days]) - date(1970, 1, 1).toordinal()) * 86400.0
    np.testing.assert_array_equal(ts, want)


def test_day_of_month_limits() -> None:
    for y in (1900, 2000, 2023, 2024):
        for m in range(1, 13):
            dim = ((date(y + m // 12, m % 12 + 1, 1)) - date(y, m, 1)).days
            _, ok = kernel([f"{y:04d}-{m:02d}-{d:02d}T00:00:00Z" for d in range(dim + 2)])
            assert ok.tolist() == [False] + [True] * dim + [False], (y, m)


def test_us_to_seconds_is_pythons_int_division() -> None:
    # Python's timestamp() divides integer microseconds by 10**6 (correctly rounded); the
    # naive float(us) / 1e6 (what DuckDB's epoch_us(..) / 1e6 does) is not, past 2**53 us.
    rng = random.Random(5)
    lo, hi = -62135596800 - 86400, 253402300800 + 86400
    secs = [rng.randint(lo, hi) for _ in range(100_000)]
    secs += [s for k in (2**53 // 10**6,) for s in range(-k - 3, -k + 3)]
    secs += [s for k in (2**53 // 10**6,) for s in range(k - 3, k + 3)] + [lo, hi, 0, -1]
    fracs = [rng.choice((0, 1, 999_999, rng.randrange(10**6))) for _ in secs]
    naive_differs = 0
    for s, f in zip(secs, fracs, strict=True):
        us = s * 10**6 + f
        got = us_to_seconds(s, f)
        assert same(got, us / 10**6), (s, f)
        naive_differs += float(us) / 1e6 != us / 10**6
    assert naive_differs > 1000  # the naive formula is wrong there: this test can tell


def test_duckdb_agrees_where_float_us_is_exact() -> None:
    import duckdb

    rng = random.Random(3)
    strings = [
        f"{rng.randint(1700, 2250):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        f"{rng.choice('T ')}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
        f"{rng.randint(0, 59):02d}{rng.choice(['', '.5', '.015', '.123456'])}"
        f"{rng.choice(['Z', '+05:30', '-23:59', '+00:00'])}"
        for _ in range(2000)
    ]
    con = duckdb.connect()
    got = con.execute(
        "SELECT epoch_us(TRY_CAST(s AS TIMESTAMPTZ)) / 1e6 FROM unnest(?) t(s)", [strings]
    ).fetchall()
    ts, ok = kernel(strings)
    assert ok.all()
    assert ts.tolist() == [r[0] for r in got]


def test_arrow_layouts() -> None:
    strings = ["2024-03-05T00:00:00.015Z", None, "bad", "2024-02-29 01:00:00-01:00", None] * 7
    want = [py_ts(s) if s is not None else None for s in strings]
    full = pa.array(strings, pa.string())
    for typ in (pa.string(), pa.large_string(), pa.string_view()):
        arr = full.cast(typ)
        for start, length in ((0, 35), (3, 20), (9, 17), (13, 0), (34, 1)):
            part = arr.slice(start, length)
            ts, ok = arrow_ts(part)
            exp = want[start : start + length]
            assert ok.tolist() == [w is not None for w in exp], (typ, start)
            assert [t for t, g in zip(ts, ok, strict=True) if g] == [w for w in exp if w]
    chunked = pa.chunked_array([full.slice(0, 5), full.slice(5, 0), full.slice(5, 30)])
    ts, ok = arrow_ts(chunked)
    assert ok.tolist() == [w is not None for w in want]
    assert arrow_ts(pa.chunked_array([], pa.string()))[0].shape == (0,)
    assert arrow_ts(pa.array(["", ""]))[1].tolist() == [False, False]  # data buffer empty
    assert arrow_ts(pa.array([None, None], pa.string()))[1].tolist() == [False, False]
    with pytest.raises(TypeError):
        arrow_ts(pa.array([1, 2]))


def test_kernel_on_raw_buffers() -> None:
    data = np.frombuffer(b"2024-03-05T00:00:00Zx1970-01-01T00:00:00Z", np.uint8)
    offsets = np.array([0, 20, 21, 41], np.int64)
    out, ok = np.empty(3), np.empty(3, np.bool_)
    parse_ts(offsets, data, np.array([True, True, False]), out, ok)
    assert ok.tolist() == [True, False, False] and out[0] == 1709596800.0
    parse_ts(offsets, data, np.zeros(0, np.bool_), out, ok)  # empty valid: no nulls
    assert ok.tolist() == [True, False, True] and out[2] == 0.0


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """Valid RFC 3339 timestamps (half of them) and near misses: out-of-range fields, other
    separators/zones, 0 or 7 fraction digits, random character edits."""
    n = st.integers
    clean = draw(st.booleans())

    def field(lo: int, hi: int, wide: int) -> str:
        return f"{draw(n(lo, hi) if clean else n(0, wide)):02d}"

    s = (
        f"{draw(n(1, 9999) if clean else n(0, 9999)):04d}-{field(1, 12, 13)}-"
        f"{field(1, 31, 32)}{draw(st.sampled_from('T ' if clean else 'T T t_'))}"
        f"{field(0, 23, 24)}:{field(0, 59, 60)}:{field(0, 59, 60)}"
    )
    k = draw(n(0, 6) if clean else n(0, 8))
    if k:
        s += "." + "".join(str(draw(n(0, 9))) for _ in range(k - (not clean)))
    zone = draw(st.sampled_from(["Z", "+", "-"] if clean else ["Z", "z", "", "+", "-", "ZZ"]))
    if zone in ("+", "-"):
        sep = ":" if clean else draw(st.sampled_from([":", ":", ""]))
        zone += f"{field(0, 23, 24)}{sep}{field(0, 59, 60)}"
    s += zone
    for _ in range(0 if clean else draw(n(0, 2))):  # a few random edits
        i = draw(n(0, len(s)))
        c = draw(st.characters(codec="utf-8"))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        s = s[:i] + c + s[i + (op != "insert") :] if op != "delete" else s[:i] + s[i + 1 :]
    return s


@pytest.mark.fuzz
@given(st.lists(st.one_of(timestamps(), timestamps(), st.text(max_size=34)), max_size=40))
def test_fuzz_sound_and_complete(strings: list[str]) -> None:
    check_sound_and_complete(strings)
