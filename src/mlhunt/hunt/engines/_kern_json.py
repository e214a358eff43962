"""A compiled JSON Lines parser for the in-memory path (:mod:`._mem_json`): one pass over a
block of lines gives each line's event fields, as the reader's Python path would read them.

Sound, not complete, like every fast path of the hunt: a line is ``OK`` only when the kernel can
show that ``json.loads`` and ``readers._Normaliser`` accept it with the same values. Anything
else is ``SLOW`` (the Python path keeps or reports it): a key or a used string with an escape,
a number with more than 19 significant digits or whose value would be subnormal or infinite,
an integer of more than 640 digits
(the others are converted correctly rounded, as Python does: :mod:`._kern_float`), a value
of another JSON type than the usual one (a numeric client id, a string score), a repeated key,
nesting deeper than 60, bytes that are not UTF-8. Values of keys the hunt does not use are
validated against the JSON grammar as Python's ``json`` reads it (``NaN``/``Infinity`` included,
control characters in strings refused) and skipped.

Lines end at ``\\n`` only; the caller hands blocks that hold a lone ``\\r`` to the Python path
(Python's line iteration ends lines there too). Every scanner stops at ``\\n`` (it is neither
JSON whitespace inside a line, nor a string byte, a digit or a UTF-8 continuation byte), so a
line never runs into the next one.
"""

from __future__ import annotations

import numpy as np

from mlhunt.hunt._jit import njit
from mlhunt.hunt.engines._kern_float import decimal
from mlhunt.hunt.engines._kern_ts import _parse_one
from mlhunt.hunt.engines._names import _hash1

OK, BLANK, SLOW = 0, 1, 2
_MAX_DEPTH = 60  # containers in a skipped value (a bit mask holds their kinds)
# json's int() of a longer digit string may raise: Python's limit (sys.int_max_str_digits,
# 4300 by default) can be set as low as 640, so longer integers are Python's to judge
_INT_DIGITS = 640
# top-level and output keys the hunt reads (bytes), by id
_TS = np.frombuffer(b"ts", np.uint8)
_CLIENT = np.frombuffer(b"client_id", np.uint8)
_SOURCE = np.frombuffer(b"source_ip", np.uint8)
_INPUT = np.frombuffer(b"input", np.uint8)
_OUTPUT = np.frombuffer(b"output", np.uint8)
_STATUS = np.frombuffer(b"status", np.uint8)
_LATENCY = np.frombuffer(b"latency_ms", np.uint8)
_MODEL = np.frombuffer(b"model", np.uint8)
_LABEL = np.frombuffer(b"label", np.uint8)
_SCORES = np.frombuffer(b"scores", np.uint8)
_SCORE = np.frombuffer(b"score", np.uint8)


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
            elif e == 34 or e == 92 or e == 47 or e == 98 or e == 102 or e == 110 \
                    or e == 114 or e == 116:  # fmt: skip
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
def _key(buf: np.ndarray, a: int, b: int) -> int:
    """The id of a top-level key (bytes ``a:b``): 1..8, 0 for a key the hunt does not read."""
    k = b - a
    if k == 2 and _is(buf, a, b, _TS):
        return 1
    if k == 9:
        if _is(buf, a, b, _CLIENT):
            return 2
        if _is(buf, a, b, _SOURCE):
            return 3
    if k == 5:
        if _is(buf, a, b, _INPUT):
            return 4
        if _is(buf, a, b, _MODEL):
            return 8
    if k == 6:
        if _is(buf, a, b, _OUTPUT):
            return 5
        if _is(buf, a, b, _STATUS):
            return 6
    if k == 10 and _is(buf, a, b, _LATENCY):
        return 7
    return 0


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


@njit
def _numbers(buf: np.ndarray, p: int, n: int, x: np.ndarray,
             i: int) -> tuple[int, int, float, float]:  # fmt: skip
    """(end, count, top-1, top-2) of a non-empty array of exactly converted numbers at ``p``
    (its first ``x.shape[1]`` values into row ``i`` of ``x``; top-2 counts a repeated top-1
    twice, as a descending sort does); end -1 for anything else."""
    w = x.shape[1]
    p = _ws(buf, p + 1, n)
    if _at(buf, p, n) == 93:  # [] is not a vector
        return -1, 0, 0.0, 0.0
    k = 0
    top0 = -np.inf
    top1 = -np.inf
    while True:
        q, v, exact = _number(buf, p, n)
        if q < 0 or not exact:
            return -1, 0, 0.0, 0.0
        if k < w:
            x[i, k] = v
        k += 1
        if v > top0:
            top1 = top0
            top0 = v
        elif v > top1:
            top1 = v
        p = _ws(buf, q, n)
        c = _at(buf, p, n)
        if c == 44:
            p = _ws(buf, p + 1, n)
        elif c == 93:
            return p + 1, k, top0, top1
        else:
            return -1, 0, 0.0, 0.0


@njit
def _output(buf: np.ndarray, p: int, n: int, no_x: np.ndarray) -> tuple[int, int, int, float]:
    """(end, label start, label stop, margin) of the ``output`` object at ``p``; end -1 when
    the Python path must read it. Margin as the reader's ``_output``: top-1 minus top-2 of
    ``scores``, ``|2 p - 1|`` for one score or a ``score`` in [0, 1], else NaN."""
    if _at(buf, p, n) != 123:
        return -1, 0, 0, 0.0
    p = _ws(buf, p + 1, n)
    if _at(buf, p, n) == 125:
        return -1, 0, 0, 0.0
    seen = 0
    la = lb = 0
    k_scores = 0
    top0 = top1 = score = 0.0
    has_score = False
    while True:
        q, ka, kb = _text(buf, p, n)
        if q < 0:
            return -1, 0, 0, 0.0
        q = _ws(buf, q, n)
        if _at(buf, q, n) != 58:
            return -1, 0, 0, 0.0
        p = _ws(buf, q + 1, n)
        key = 0
        if _is(buf, ka, kb, _LABEL):
            key = 1
        elif _is(buf, ka, kb, _SCORES):
            key = 2
        elif _is(buf, ka, kb, _SCORE):
            key = 3
        if key:
            if seen & (1 << key):
                return -1, 0, 0, 0.0
            seen |= 1 << key
        c = _at(buf, p, n)
        if key == 0:
            p = _skip(buf, p, n)
        elif key == 1:
            p, la, lb = _text(buf, p, n)
            if lb == la:  # an empty label is not one
                return -1, 0, 0, 0.0
        elif c == 110:  # scores / score: null
            p = _word(buf, p, n, _NULL)
        elif key == 2:
            if c != 91:
                return -1, 0, 0, 0.0
            p, k_scores, top0, top1 = _numbers(buf, p, n, no_x, 0)
        else:
            p, score, has_score = _number(buf, p, n)
            if not has_score:
                return -1, 0, 0, 0.0
        if p < 0:
            return -1, 0, 0, 0.0
        p = _ws(buf, p, n)
        c = _at(buf, p, n)
        if c == 44:
            p = _ws(buf, p + 1, n)
        elif c == 125:
            break
        else:
            return -1, 0, 0, 0.0
    if not seen & 2:
        return -1, 0, 0, 0.0
    margin = np.nan
    if k_scores > 1:
        margin = top0 - top1
    elif k_scores == 1:
        margin = abs(2 * top0 - 1)
    elif has_score and 0.0 <= score <= 1.0:
        margin = abs(2 * score - 1)
    return p + 1, la, lb, margin


@njit
def _eol(buf: np.ndarray, p: int, n: int) -> int:
    """Past the ``\\n`` that ends the line holding ``p`` (``n`` for the block's last line)."""
    while p < n:
        if buf[p] == 10:
            return p + 1
        p += 1
    return n


@njit
def count_lines(buf: np.ndarray, n: int) -> tuple[int, bool]:
    """(lines, lone CR) of ``buf[:n]``: lines as the block reader counts them (``\\n`` ends
    one; a last line without it counts), and whether a ``\\r`` not followed by ``\\n`` is there
    (Python's line iteration would end a line at it: the caller gives such a block to Python)."""
    nl = 0
    cr = 0
    for i in range(n):  # vectorised counts: memory speed
        nl += buf[i] == 10
        cr += buf[i] == 13
    lone = False
    if cr:
        crlf = 0
        for i in range(n - 1):
            if buf[i] == 13 and buf[i + 1] == 10:
                crlf += 1
        lone = crlf != cr
    return nl + (1 if n > 0 and buf[n - 1] != 10 else 0), lone


@njit
def _record(buf: np.ndarray, a: int, n: int, i: int, seeds: np.ndarray, ts: np.ndarray,
            span: np.ndarray, hashes: np.ndarray, margin: np.ndarray, status: np.ndarray,
            length: np.ndarray, x: np.ndarray, no_x: np.ndarray) -> tuple[int, int]:  # fmt: skip
    """(kind, end of line) of the line starting at ``a``, its fields written at row ``i``
    (``span`` rows: client, source, label starts and stops; a source stop of -1: none)."""
    p = _ws(buf, a, n)
    c = _at(buf, p, n)
    if p >= n or c == 10:
        return BLANK, min(p + 1, n)
    if c != 123:
        return SLOW, 0
    p = _ws(buf, p + 1, n)
    seen = 0
    span[3, i] = -1
    while True:
        q, ka, kb = _text(buf, p, n)
        if q < 0:  # also {} (Python reports the missing fields)
            return SLOW, 0
        q = _ws(buf, q, n)
        if _at(buf, q, n) != 58:
            return SLOW, 0
        p = _ws(buf, q + 1, n)
        key = _key(buf, ka, kb)
        if key:
            if seen & (1 << key):  # Python keeps the last of repeated keys
                return SLOW, 0
            seen |= 1 << key
        c = _at(buf, p, n)
        if key == 0:
            p = _skip(buf, p, n)
        elif key == 1:  # ts: RFC 3339 text or epoch seconds
            if c == 34:
                p, ta, tb = _text(buf, p, n)
                good, ts[i] = _parse_one(buf, ta, tb)
                if not good:
                    return SLOW, 0
            else:
                p, ts[i], good = _number(buf, p, n)
                if not good:
                    return SLOW, 0
        elif key == 2 or key == 3 or key == 8:  # client_id, source_ip, model: plain text
            if key != 2 and c == 110:
                p = _word(buf, p, n, _NULL)
            else:
                p, sa, sb = _text(buf, p, n)
                if key == 2:
                    if sb == sa:
                        return SLOW, 0
                    span[0, i], span[1, i] = sa, sb
                    hashes[0, i] = _hash1(buf, sa, sb, seeds[0])
                elif key == 3 and sb > sa:  # "" is no address
                    span[2, i], span[3, i] = sa, sb
                    hashes[1, i] = _hash1(buf, sa, sb, seeds[1])
        elif key == 4:  # input: null or an array of numbers
            if c == 110:
                p = _word(buf, p, n, _NULL)
            elif c == 91:
                p, length[i], _, _ = _numbers(buf, p, n, x, i)
            else:
                return SLOW, 0
        elif key == 5:
            p, la, lb, margin[i] = _output(buf, p, n, no_x)
            span[4, i], span[5, i] = la, lb
            hashes[2, i] = _hash1(buf, la, lb, seeds[2])
        elif c == 110:  # status, latency_ms: null
            p = _word(buf, p, n, _NULL)
        else:
            p, v, good = _number(buf, p, n)
            if not good:  # also an infinite or long one: the Python path decides
                return SLOW, 0
            if key == 6:
                if not (-(2.0**63) <= v < 2.0**63):
                    return SLOW, 0
                status[i] = np.int64(v)
        if p < 0:
            return SLOW, 0
        p = _ws(buf, p, n)
        c = _at(buf, p, n)
        if c == 44:
            p = _ws(buf, p + 1, n)
        elif c == 125:
            break
        else:
            return SLOW, 0
    p = _ws(buf, p + 1, n)
    if p < n and buf[p] != 10:
        return SLOW, 0
    if seen & 0b100110 != 0b100110:  # ts, client_id and output are required
        return SLOW, 0
    return OK, min(p + 1, n)


@njit
def parse_block(buf: np.ndarray, n: int, m: int, d: int,
                seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                            np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                            np.ndarray, np.ndarray]:  # fmt: skip
    """The ``m`` lines of ``buf[:n]`` (:func:`count_lines`): (kind, bounds (line ``i`` is
    ``buf[bounds[i]:bounds[i + 1]]``), ts, span (6 x ``m``: client, source, label starts and
    stops in ``text``; a source stop of -1: no address), hashes (3 x ``m``: the three
    strings', each with its table's seed from ``seeds``), text (the ``OK`` lines' three
    strings, one after the other), margin, status, input length, inputs (``m`` x ``d``: a row
    is only written when its length is ``d``)). Only ``OK`` rows hold values.

    The strings are copied into ``text`` while the line is in the cache: the thread that
    codes them then reads memory in order (reading them from the block cost it a cache miss
    per string, more than a third of its time)."""
    kind = np.empty(m, np.int8)
    bounds = np.empty(m + 1, np.int64)
    ts = np.empty(m)
    span = np.empty((6, m), np.int64)
    hashes = np.empty((3, m), np.uint64)
    margin = np.empty(m)
    status = np.zeros(m, np.int64)
    length = np.zeros(m, np.int32)
    x = np.empty((m, d))
    no_x = np.empty((1, 0))
    text = np.empty(n, np.uint8)
    t = 0
    a = 0
    for i in range(m):
        bounds[i] = a
        k, end = _record(buf, a, n, i, seeds, ts, span, hashes, margin, status, length, x,
                         no_x)  # fmt: skip
        if k == SLOW:
            end = _eol(buf, a, n)
        elif k == OK:
            for f in range(0, 6, 2):
                sa, sb = span[f, i], span[f + 1, i]
                if sb < 0:  # no address
                    continue
                span[f, i] = t
                for j in range(sa, sb):
                    text[t] = buf[j]
                    t += 1
                span[f + 1, i] = t
        kind[i] = k
        a = end
    bounds[m] = n
    return kind, bounds, ts, span, hashes, text[:t], margin, status, length, x


@njit
def put_rows(x: np.ndarray, length: np.ndarray, keep: np.ndarray, out: np.ndarray,
             start: int) -> None:  # fmt: skip
    """Rows ``keep`` of ``x`` into ``out[start:]`` in order (NaN for a row without input)."""
    d = out.shape[1]
    r = start
    for i in range(len(keep)):
        if not keep[i]:
            continue
        if length[i] == 0:
            for k in range(d):
                out[r, k] = np.nan
        else:
            for k in range(d):
                out[r, k] = x[i, k]
        r += 1
