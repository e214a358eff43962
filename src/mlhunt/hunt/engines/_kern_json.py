"""A compiled JSON Lines parser for the in-memory path (:mod:`._mem_json`): one pass over a
block of lines gives each line's event fields, as the reader's Python path would read them.

Sound, not complete, like every fast path of the hunt: a line is ``OK`` only when the kernel can
show that ``json.loads`` and ``readers._Normaliser`` accept it with the same values. Anything
else is ``SLOW`` (the Python path keeps or reports it): a key or a used string with an escape,
a number with more than 19 significant digits, one whose value would be subnormal or infinite
or an integer of more than 640 digits (the others are converted correctly rounded, as Python
does: :mod:`._kern_float`), a value of another JSON type than the usual one (a numeric client
id, a string score), a repeated key, nesting deeper than 60, bytes that are not UTF-8. Values of
keys the hunt does not use are validated against the JSON grammar as Python's ``json`` reads
it and skipped (:mod:`._kern_jsonlex`).

Lines end at ``\\n`` only; the caller hands blocks that hold a lone ``\\r`` to the Python path
(Python's line iteration ends lines there too).
"""

from __future__ import annotations

import numpy as np

from mlhunt.hunt._jit import njit
from mlhunt.hunt.engines._kern_jsonlex import _NULL, _at, _is, _number, _skip, _text, _word, _ws
from mlhunt.hunt.engines._kern_ts import _parse_one
from mlhunt.hunt.engines._names import _hash1

OK, BLANK, SLOW = 0, 1, 2

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
def _numbers(
    buf: np.ndarray, p: int, n: int, x: np.ndarray, i: int
) -> tuple[int, int, float, float]:
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
def _record(
    buf: np.ndarray,
    a: int,
    n: int,
    i: int,
    seeds: np.ndarray,
    ts: np.ndarray,
    span: np.ndarray,
    hashes: np.ndarray,
    margin: np.ndarray,
    status: np.ndarray,
    length: np.ndarray,
    x: np.ndarray,
    no_x: np.ndarray,
) -> tuple[int, int]:
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
    # The member steps (key, colon; comma or close) are written out here and in _output and
    # _numbers: shared helpers measured 10-20 % slower parsing in alternating runs.
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
def parse_block(
    buf: np.ndarray, n: int, m: int, d: int, seeds: np.ndarray
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]:
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
        k, end = _record(buf, a, n, i, seeds, ts, span, hashes, margin, status, length, x, no_x)
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
def put_rows(
    x: np.ndarray, length: np.ndarray, keep: np.ndarray, out: np.ndarray, start: int
) -> None:
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
