"""Decimal to float64, correctly rounded, for the compiled JSON parser (:mod:`._kern_json`).

:func:`decimal` gives ``float(f"{w}e{q}")`` for an integer mantissa ``w < 2**64`` (up to 19
digits) and a decimal exponent ``q``, exactly as Python's ``float`` (correctly rounded, ties to
even), or says it cannot:

- Clinger's fast path: ``w <= 2**53`` and ``|q| <= 22`` take one IEEE multiplication or
  division of two exact doubles, which rounds correctly;
- otherwise the Eisel-Lemire algorithm (D. Lemire, "Number parsing at a gigabyte per second",
  Software: Practice and Experience 51(8), 2021): ``w`` normalised times a 128-bit truncation
  of ``5**q`` gives the 53 leading bits and a rounding decision that is provably right for an
  exact ``w``; the table is computed here, at import, with Python's exact integers.

Results that would be subnormal, zero or infinite are declined (the caller hands the record to
the Python path), and so is a mantissa of more than 19 digits.
"""

from __future__ import annotations

import math

import numpy as np

from mlhunt.hunt._jit import njit

_Q_MIN, _Q_MAX = -342, 308  # beyond: zero or infinity for any 19-digit mantissa
_EXACT = 2**53
_POW10 = np.array([10.0**k for k in range(23)])  # exact doubles


def _table() -> tuple[np.ndarray, np.ndarray]:
    """(high, low) 64-bit halves of ``5**q`` scaled to exactly 128 bits (``2**127 <= v <
    2**128``), truncated for ``q >= 0`` and one above the truncation for ``q < 0`` (so the
    product over-estimates, never under-estimates, the exact value: the paper's condition)."""
    hi, lo = [], []
    for q in range(_Q_MIN, _Q_MAX + 1):
        if q >= 0:
            v = 5**q
            bits = v.bit_length()
            v = v << (128 - bits) if bits < 128 else v >> (bits - 128)
        else:
            p = 5**-q
            z = p.bit_length()  # 2**(z-1) <= p < 2**z
            v = (1 << (z + 127)) // p + 1  # in (2**127, 2**128]
            while v >= 1 << 128:
                v >>= 1
        hi.append(v >> 64)
        lo.append(v & (2**64 - 1))
    return np.array(hi, np.uint64), np.array(lo, np.uint64)


_HI, _LO = _table()
_M32 = np.uint64(0xFFFFFFFF)


@njit
def _mul128(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:
    """(high, low) 64-bit halves of the 128-bit product ``a * b``."""
    s32 = np.uint64(32)
    a0, a1 = a & _M32, a >> s32
    b0, b1 = b & _M32, b >> s32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> s32) + (p01 & _M32) + (p10 & _M32)
    lo = (mid << s32) | (p00 & _M32)
    hi = p11 + (p01 >> s32) + (p10 >> s32) + (mid >> s32)
    return hi, lo


@njit
def _clz(w: np.uint64) -> int:
    """Leading zero bits of a non-zero ``w``."""
    n = 0
    for s in (32, 16, 8, 4, 2, 1):
        if w >> np.uint64(64 - s) == np.uint64(0):
            w = w << np.uint64(s)
            n += s
    return n


@njit
def decimal(w: np.uint64, q: int) -> tuple[bool, float]:
    """(ok, ``w * 10**q`` correctly rounded) for ``w > 0``; ok False where this module
    declines (see its docstring). The sign is the caller's."""
    if w <= np.uint64(_EXACT) and -22 <= q <= 22:
        if q >= 0:
            return True, np.float64(w) * _POW10[q]
        return True, np.float64(w) / _POW10[-q]
    if q < _Q_MIN or q > _Q_MAX:
        return False, 0.0
    lz = _clz(w)
    w = w << np.uint64(lz)
    idx = q - _Q_MIN
    hi, lo = _mul128(w, _HI[idx])
    mask = np.uint64(0x1FF)  # the bits below the 53 + 2 kept ones
    if hi & mask == mask:  # the truncated table could matter: add the next 64 bits
        hi2, _ = _mul128(w, _LO[idx])
        lo2 = lo + hi2
        if hi2 > lo2:
            hi += np.uint64(1)
        lo = lo2
    upper = int(hi >> np.uint64(63))
    shift = np.uint64(upper + 9)
    mant = hi >> shift
    power2 = ((217706 * q) >> 16) + 63 + upper - lz + 1023
    if power2 <= 0:
        return False, 0.0
    one = np.uint64(1)
    if lo <= one and -4 <= q <= 23 and mant & np.uint64(3) == one and (mant << shift) == hi:
        mant &= ~one  # exactly half way: round to even (down)
    mant += mant & one
    mant >>= one
    if mant >= np.uint64(2**53):
        mant = np.uint64(2**52)
        power2 += 1
    if power2 >= 2047:
        return False, 0.0
    return True, math.ldexp(np.float64(mant), power2 - 1075)
