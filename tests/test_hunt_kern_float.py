"""Decimal to float64 in the compiled JSON parser (:mod:`mlhunt.hunt.engines._kern_float`):
bit for bit Python's ``float`` (correctly rounded, ties to even), declining only results that
are zero, subnormal or infinite (and one boundary case rounding up to the smallest normal)."""

from __future__ import annotations

import math
import random
import struct
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlhunt.hunt.engines._kern_float import decimal

MIN_NORMAL = 2.2250738585072014e-308


def bits(v: float) -> bytes:
    return struct.pack("<d", v)


def check_decimal(w: int, q: int) -> bool:
    want = float(f"{w}e{q}")
    ok, got = decimal(np.uint64(w), q)
    if ok:
        assert bits(got) == bits(want), (w, q, got, want)
    elif not (want == 0 or math.isinf(want) or abs(want) < MIN_NORMAL):
        # only an exact value below the smallest normal that rounds up to it may be declined
        assert want == MIN_NORMAL and Fraction(w) * Fraction(10) ** q < Fraction(2) ** -1022, (
            w,
            q,
            want,
        )
    return bool(ok)


def _ties() -> list[tuple[int, int]]:
    """Decimals exactly half way between two doubles (round to even decides), q in [-4, 23]."""
    rnd = random.Random(5)
    out = []
    for _ in range(300):
        odd = 2**53 + 2 * rnd.randrange(2**52) + 1  # 54 bits, odd: a half-way mantissa
        k = rnd.randrange(0, 11)
        if odd << k < 2**64:
            out.append((odd << k, 0))
        k = rnd.randrange(1, 5)  # odd * 2**-k = odd * 5**k / 10**k
        if odd * 5**k < 2**64:
            out.append((odd * 5**k, -k))
    for q in range(1, 24):  # odd = 5**q * t: odd * 2**s = t * 2**(s - q) * 10**q
        for _ in range(10):
            lo, hi = -(-(2**53) // 5**q), (2**54 - 1) // 5**q
            if lo > hi:
                break
            t = rnd.randrange(lo, hi + 1) | 1
            if not 2**53 <= t * 5**q < 2**54:
                continue
            s = q + rnd.randrange(0, 8)
            if t << (s - q) < 2**64:
                out.append((t << (s - q), q))
    return out


def test_decimal_hard_cases() -> None:
    cases = [
        (1, 23),
        (1, 22),
        (9007199254740993, 0),
        (9007199254740995, 0),
        (2**64 - 1, 0),
        (2**64 - 1, -342),
        (2**64 - 1, 308),
        (17976931348623157, 292),
        (17976931348623158, 292),
        (17976931348623159, 292),
        (22250738585072014, -324),
        (22250738585072011, -324),
        (22250738585072013, -324),
        (49406564584124654, -340),
        (1, -308),
        (1, 308),
        (1, 309),
        (1, -343),
        (72057594037927933, 0),
        (25836111702179772, -11),
        (7, -1),
        (1, -1),
        (3, -1),
        (123456789012345678, -20),
        (9999999999999999999, 289),
        (9999999999999999999, -327),
        (1, -325),
    ]
    ties = _ties()
    assert len(ties) > 300
    for w, q in cases + ties:
        check_decimal(w, q)
    for w, q in ties:  # in range: never declined
        assert check_decimal(w, q), (w, q)


def _random_w(rnd: random.Random) -> int:
    pick = rnd.randrange(5)
    if pick == 0:
        return rnd.randrange(1, 2**64)
    if pick == 1:
        return rnd.randrange(1, 2**53 + 1)
    if pick == 2:  # 17 significant digits, as repr writes them
        return rnd.randrange(10**16, 10**17)
    if pick == 3:
        k = rnd.randrange(1, 21)
        return min(rnd.randrange(10 ** (k - 1), 10**k), 2**64 - 1)
    return rnd.randrange(1, 2**11) << rnd.randrange(0, 53)  # few bits


@pytest.mark.fuzz
@given(st.integers(1, 2**64 - 1), st.integers(-350, 320), st.randoms(use_true_random=False))
def test_fuzz_decimal(w: int, q: int, rnd: random.Random) -> None:
    check_decimal(w, q)
    for _ in range(100):
        check_decimal(_random_w(rnd), rnd.randrange(-350, 321))


def test_decimal_round_trips_reprs() -> None:
    """repr of a normal double read back: the digits and exponent json hands over."""
    rnd = random.Random(11)
    for _ in range(20_000):
        v = struct.unpack("<d", struct.pack("<Q", rnd.randrange(1 << 52, 0x7FF << 52)))[0]
        mant, _, exp = repr(v).partition("e")
        whole, _, frac = mant.partition(".")
        w = int(whole + frac)
        q = (int(exp) if exp else 0) - len(frac)
        ok, got = decimal(np.uint64(w), q)
        assert ok and got == v, (v, w, q, got)
