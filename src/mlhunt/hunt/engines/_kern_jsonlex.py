"""The JSON grammar as Python's ``json`` reads it, compiled, for the JSON Lines parser
(:mod:`._kern_json`): whitespace, strings (escapes checked, control characters refused, UTF-8
validated), numbers (converted exactly, :mod:`._kern_float`, or declined), literals
(``NaN``/``Infinity`` included) and any value skipped whole (:func:`_skip`, iterative, nesting
bounded).

Every scanner stops at ``\\n`` (it is neither JSON whitespace inside a line, nor a string
byte, a digit or a UTF-8 continuation byte), so a line never runs into the next one; ``n``
bounds every read.
"""

from __future__ import annotations

import numpy as np

from mlhunt.hunt._jit import njit
from mlhunt.hunt.engines._kern_float import decimal

_MAX_DEPTH = 60  # containers in a skipped value (a bit mask holds their kinds)
# json's int() of a longer digit string may raise: Python's limit (sys.int_max_str_digits,
# 4300 by default) can be set as low as 640, so longer integers are Python's to judge
_INT_DIGITS = 640
# top-level and output keys the hunt reads (bytes), by id


@njit
def _at(buf: np.ndarray, p: int, n: int) -> int:
    """The byte at ``p``, 0 past the end (0 is never valid where it is compared)."""
    return np.int64(buf[p]) if p < n else 0


@njit
def _ws(buf: np.ndarray, p: int, n: int) -> int:
    """Past JSON whitespace, except ``\\n`` (the line's end)."""
    while p < n:
        c = buf[p]
        if c == 32 or c == 9 or c == 13:
            p += 1
        else:
            break
    return p


@njit
def _utf8(buf: np.ndarray, p: int, n: int) -> int:
    """Bytes of the well-formed UTF-8 sequence at ``p`` (a byte >= 0x80), 0 if ill-formed
    (overlong forms, surrogates and code points past U+10FFFF included, as Python decodes)."""
    c = np.int64(buf[p])
    if 0xC2 <= c <= 0xDF:
        k, lo, hi = 2, 0x80, 0xBF
    elif c == 0xE0:
        k, lo, hi = 3, 0xA0, 0xBF
    elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
        k, lo, hi = 3, 0x80, 0xBF
    elif c == 0xED:
        k, lo, hi = 3, 0x80, 0x9F
    elif c == 0xF0:
        k, lo, hi = 4, 0x90, 0xBF
    elif 0xF1 <= c <= 0xF3:
        k, lo, hi = 4, 0x80, 0xBF
    elif c == 0xF4:
        k, lo, hi = 4, 0x80, 0x8F
    else:
        return 0
    if p + k > n:
        return 0
    c1 = buf[p + 1]
    if c1 < lo or c1 > hi:
        return 0
    for j in range(2, k):
        if buf[p + j] < 0x80 or buf[p + j] > 0xBF:
            return 0
    return k


@njit
def _hex(c: int) -> bool:
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


@njit
def _string(buf: np.ndarray, p: int, n: int) -> tuple[int, bool]:
    """(end past the closing quote, escaped) of the string opening at ``p``; end -1 when it
    is not a string Python's ``json`` reads (control character, bad escape, not UTF-8)."""
    p += 1
    esc = False
    while p < n:
        c = buf[p]
        if c == 34:
            return p + 1, esc
        if c == 92:
            esc = True
            e = _at(buf, p + 1, n)
            if e == 117:  # \uXXXX
                if p + 6 > n:
                    return -1, esc
                for j in range(2, 6):
                    if not _hex(buf[p + j]):
                        return -1, esc
                p += 6
            elif (
                e == 34
                or e == 92
                or e == 47
                or e == 98
                or e == 102
                or e == 110
                or e == 114
                or e == 116
            ):
                p += 2
            else:
                return -1, esc
        elif c < 32:
            return -1, esc
        elif c < 128:
            p += 1
        else:
            k = _utf8(buf, p, n)
            if k == 0:
                return -1, esc
            p += k
    return -1, esc


@njit
def _number(buf: np.ndarray, p: int, n: int) -> tuple[int, float, bool]:
    """(end, value, exact) of the JSON number at ``p`` (end -1: not the JSON number grammar).
    ``exact`` when the value is Python's (``float`` of the int or float ``json`` gives): at
    most 19 significant digits and a normal float64 result (:func:`._kern_float.decimal`)."""
    neg = False
    long_int = False
    if _at(buf, p, n) == 45:
        neg = True
        p += 1
    c = _at(buf, p, n)
    w = np.uint64(0)
    nd = 0  # significant digits in w
    many = False  # a digit did not fit in w
    ten = np.uint64(10)
    if c == 48:
        p += 1
    elif 49 <= c <= 57:
        start = p
        while p < n and 48 <= buf[p] <= 57:
            if nd < 19:
                w = w * ten + np.uint64(buf[p] - 48)
                nd += 1
            else:
                many = True
            p += 1
        if p - start > _INT_DIGITS:
            long_int = True
    else:
        return -1, 0.0, False
    e10 = 0
    is_int = True
    if _at(buf, p, n) == 46:  # fraction: at least one digit
        is_int = False
        p += 1
        if not (48 <= _at(buf, p, n) <= 57):
            return -1, 0.0, False
        while p < n and 48 <= buf[p] <= 57:
            dig = buf[p] - 48
            if nd == 0 and dig == 0:  # a leading zero: only the scale changes
                e10 -= 1
            elif nd < 19:
                w = w * ten + np.uint64(dig)
                nd += 1
                e10 -= 1
            else:
                many = True
            p += 1
    c = _at(buf, p, n)
    if c == 101 or c == 69:  # exponent
        is_int = False
        p += 1
        c = _at(buf, p, n)
        eneg = False
        if c == 43 or c == 45:
            eneg = c == 45
            p += 1
        if not (48 <= _at(buf, p, n) <= 57):
            return -1, 0.0, False
        e = 0
        while p < n and 48 <= buf[p] <= 57:
            if e < 100_000:
                e = e * 10 + (np.int64(buf[p]) - 48)
            p += 1
        e10 += -e if eneg else e
    if long_int and is_int:  # Python's int() may refuse it (sys.int_max_str_digits)
        return -1, 0.0, False
    if many:
        return p, 0.0, False
    if nd == 0:  # json's int 0 is float 0.0; a float zero keeps its sign
        return p, -0.0 if neg and not is_int else 0.0, True
    good, v = decimal(w, e10)
    return p, -v if neg else v, good


@njit
def _word(buf: np.ndarray, p: int, n: int, w: np.ndarray) -> int:
    """End of the literal ``w`` at ``p``, -1 if it is not there."""
    if p + len(w) > n:
        return -1
    for j in range(len(w)):
        if buf[p + j] != w[j]:
            return -1
    return p + len(w)


_TRUE = np.frombuffer(b"true", np.uint8)
_FALSE = np.frombuffer(b"false", np.uint8)
_NULL = np.frombuffer(b"null", np.uint8)
_NAN = np.frombuffer(b"NaN", np.uint8)
_INF = np.frombuffer(b"Infinity", np.uint8)


@njit
def _scalar(buf: np.ndarray, p: int, n: int) -> int:
    """End of the JSON scalar at ``p`` (string, number, literal), -1 if there is none."""
    c = _at(buf, p, n)
    if c == 34:
        return _string(buf, p, n)[0]
    if c == 116:
        return _word(buf, p, n, _TRUE)
    if c == 102:
        return _word(buf, p, n, _FALSE)
    if c == 110:
        return _word(buf, p, n, _NULL)
    if c == 78:
        return _word(buf, p, n, _NAN)
    if c == 73:
        return _word(buf, p, n, _INF)
    if c == 45 and _at(buf, p + 1, n) == 73:
        return _word(buf, p + 1, n, _INF)
    return _number(buf, p, n)[0]


@njit
def _skip(buf: np.ndarray, p: int, n: int) -> int:
    """End of the JSON value at ``p``, any type and nesting, -1 if Python's ``json`` would not
    read it (or it nests deeper than ``_MAX_DEPTH``). Iterative: a bit per open container."""
    depth = 0
    objects = np.uint64(0)  # bit k: the container at depth k + 1 is an object
    while True:
        # a value at p
        c = _at(buf, p, n)
        if c == 91 or c == 123:
            if depth >= _MAX_DEPTH:
                return -1
            is_obj = c == 123
            if is_obj:
                objects |= np.uint64(1) << np.uint64(depth)
            else:
                objects &= ~(np.uint64(1) << np.uint64(depth))
            depth += 1
            p = _ws(buf, p + 1, n)
            if _at(buf, p, n) == (125 if is_obj else 93):
                p += 1
                depth -= 1
            elif is_obj:
                p = _member_key(buf, p, n)
                if p < 0:
                    return -1
                continue
            else:
                continue
        else:
            p = _scalar(buf, p, n)
            if p < 0:
                return -1
        # after a value: close containers or move to the next element
        while True:
            if depth == 0:
                return p
            p = _ws(buf, p, n)
            c = _at(buf, p, n)
            is_obj = (objects >> np.uint64(depth - 1)) & np.uint64(1) == np.uint64(1)
            if c == 44:
                p = _ws(buf, p + 1, n)
                if is_obj:
                    p = _member_key(buf, p, n)
                    if p < 0:
                        return -1
                break
            if c == (125 if is_obj else 93):
                p += 1
                depth -= 1
                continue
            return -1


@njit
def _member_key(buf: np.ndarray, p: int, n: int) -> int:
    """Past ``"key" :`` and the whitespace after it (at the member's value), -1 if absent."""
    if _at(buf, p, n) != 34:
        return -1
    q = _string(buf, p, n)[0]
    if q < 0:
        return -1
    q = _ws(buf, q, n)
    if _at(buf, q, n) != 58:
        return -1
    return _ws(buf, q + 1, n)


@njit
def _is(buf: np.ndarray, a: int, b: int, w: np.ndarray) -> bool:
    return b - a == len(w) and _word(buf, a, b, w) == b


@njit
def _text(buf: np.ndarray, p: int, n: int) -> tuple[int, int, int]:
    """(end, start, stop) of a string value without escapes (its bytes ``start:stop``); end
    -1 for anything else (an escaped string is the Python path's: its text is not its bytes)."""
    if _at(buf, p, n) != 34:
        return -1, 0, 0
    q, esc = _string(buf, p, n)
    if q < 0 or esc:
        return -1, 0, 0
    return q, p + 1, q - 1
