"""The compiled JSON Lines parser (:mod:`mlhunt.hunt.engines._kern_json`) against the reader's
Python path (``json.loads`` then
``readers._Normaliser``): sound (an ``OK`` line is one Python accepts with the very same values,
``BLANK`` only for space/tab/CR lines), and complete on the common forms (plain records, unknown
keys, 17-digit floats must not fall back to Python)."""

from __future__ import annotations

import json
import math
import random
import re
import struct
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlhunt.hunt.engines._kern_json import BLANK, OK, SLOW, count_lines, parse_block
from mlhunt.hunt.engines._names import _hash1
from mlhunt.hunt.readers import ReadReport, _Normaliser, json_row

SEEDS = np.array([0x9E3779B97F4A7C15, 12345, 2**63 + 7], np.uint64)
MIN_NORMAL = 2.2250738585072014e-308
D = 3  # the input length the fuzz blocks use


def bits(v: float) -> bytes:
    return struct.pack("<d", v)


def python(raw: bytes) -> tuple[str, Any]:
    """The Python path's verdict on one line ("ok" with its row, "blank" or "bad"), decoded as
    the reader decodes (errors replaced), with a report of its own (no input length fixed)."""
    report = ReadReport()
    row = json_row(_Normaliser(report), "f", 1, raw.decode("utf-8", "replace"))
    if row is not None:
        return "ok", row
    return ("bad" if report.malformed else "blank"), None


def parse(buf: np.ndarray, d: int) -> tuple[Any, ...]:
    """``parse_block`` of the whole buffer: (kind, bounds, ts, span, hashes, text, margin,
    status, length, x)."""
    m, _ = count_lines(buf, len(buf))
    return tuple(parse_block(buf, len(buf), m, d, SEEDS))


def check(block: bytes, d: int = D) -> list[int]:
    """The kernel's kinds for the lines of ``block``, each checked against the Python path
    (empty when the block holds a lone CR: the caller gives such a block to Python)."""
    buf = np.frombuffer(block, np.uint8).copy()
    n = len(buf)
    m, lone = count_lines(buf, n)
    parts = block.split(b"\n") if block else []
    if block.endswith(b"\n"):
        parts.pop()
    assert m == len(parts)
    assert lone == (re.search(rb"\r(?!\n)", block) is not None)
    if lone:
        return []
    kind, bounds, ts, span, hashes, strings, margin, status, length, x = parse(buf, d)
    assert bounds[0] == 0 and bounds[m] == n
    out = []
    for i in range(m):
        raw = block[bounds[i] : bounds[i + 1]]
        assert raw == parts[i] + (b"\n" if i < m - 1 or block.endswith(b"\n") else b"")
        k = int(kind[i])
        out.append(k)
        verdict, row = python(raw)
        where = f"line {i}: {raw!r}"
        if k == BLANK:
            assert raw.strip(b" \t\r\n") == b"", where
            assert verdict == "blank", where
            continue
        if k == SLOW:
            continue
        assert k == OK, where
        assert verdict == "ok", where
        raw.decode("utf-8")  # an OK line is UTF-8 (the kernel refuses other bytes)
        _, _, p_ts, p_cid, p_src, p_x, p_label, _, p_margin, _, p_status, _, _ = row

        def text(a: int, b: int) -> str:  # the OK lines' strings are copied into `strings`
            assert 0 <= a <= b <= len(strings)
            return strings[a:b].tobytes().decode("utf-8")

        assert bits(ts[i]) == bits(p_ts), (where, ts[i], p_ts)
        assert text(span[0, i], span[1, i]) == p_cid, where
        assert hashes[0, i] == _hash1(strings, span[0, i], span[1, i], SEEDS[0]), where
        if span[3, i] == -1:
            assert p_src is None, where
        else:
            assert text(span[2, i], span[3, i]) == p_src, where
            assert hashes[1, i] == _hash1(strings, span[2, i], span[3, i], SEEDS[1]), where
        assert text(span[4, i], span[5, i]) == p_label, where
        assert hashes[2, i] == _hash1(strings, span[4, i], span[5, i], SEEDS[2]), where
        if p_margin is None:
            assert math.isnan(margin[i]), (where, margin[i])
        else:
            assert margin[i] == p_margin, (where, margin[i], p_margin)
        assert int(status[i]) == (0 if p_status is None else p_status), where
        assert int(length[i]) == (0 if p_x is None else len(p_x)), where
        if d and length[i] == d:
            got = x[i, :d].view(np.uint64).tolist()
            assert got == np.array(p_x).view(np.uint64).tolist(), (where, x[i, :d], p_x)
    return out


def kinds(*lines: bytes, d: int = D) -> list[int]:
    return check(b"\n".join(lines) + b"\n", d)


# --- 1. hand-written lines ----------------------------------------------------------------------

TS, CL, OUT = '"ts":1700000000.25', '"client_id":"c1"', '"output":{"label":"cat"}'


def rec(*members: str, ts: str = TS, cl: str = CL, out: str = OUT) -> bytes:
    """A record line: the required members (a keyword set to "" drops one), then ``members``."""
    body = ",".join(m for m in (ts, cl, out, *members) if m)
    return ("{" + body + "}").encode("utf-8", "surrogateescape")  # U+DCxx: the raw byte xx


ALL = (
    '"source_ip":"10.0.0.1"',
    '"input":[1,2.5,-3e2]',
    '"status":200',
    '"latency_ms":12.5',
    '"model":"m1"',
)


def out(*members: str) -> str:
    return '"output":{' + ",".join(('"label":"cat"', *members)) + "}"


# (name, line, expected kind, Python's verdict or None when not asserted)
CASES: list[tuple[str, bytes, int, str | None]] = [
    ("plain", rec(), OK, "ok"),
    ("all fields", rec(*ALL, out=out('"scores":[0.1,0.7,0.2]', '"score":0.7')), OK, "ok"),
    ("unknown keys", rec('"a":1', '"b":{"c":[1,{"d":null}],"e":true}', '"f":false'), OK, "ok"),
    ("unknown key first", b'{"zz":[1,2],' + rec()[1:], OK, "ok"),
    # escapes
    ("escapes in unknown value", rec(r'"x":"a\"b\\c\/\b\f\n\r\t\u00e9\ud800"'), OK, "ok"),
    ("escaped unknown key", rec(r'"x\u0041":1'), SLOW, "ok"),
    ("escaped used key", rec(ts=r'"t\u0073":1'), SLOW, "ok"),
    ("escape in client_id", rec(cl=r'"client_id":"a\u0041"'), SLOW, "ok"),
    ("escape in label", rec(out=r'"output":{"label":"c\"t"}'), SLOW, "ok"),
    ("escape in source_ip", rec(r'"source_ip":"1\/2"'), SLOW, "ok"),
    ("escape in model", rec(r'"model":"m\n"'), SLOW, "ok"),
    ("lone surrogate client", rec(cl=r'"client_id":"\ud800"'), SLOW, "bad"),
    ("bad escape", rec(r'"x":"\x41"'), SLOW, "bad"),
    ("short unicode escape", rec(r'"x":"\u12"'), SLOW, "bad"),
    ("non-hex unicode escape", rec(r'"x":"\u12g4"'), SLOW, "bad"),
    # duplicate keys
    ("duplicate ts", rec('"ts":5'), SLOW, "ok"),
    ("duplicate client", rec('"client_id":"c2"'), SLOW, "ok"),
    ("duplicate output", rec('"output":{"label":"dog"}'), SLOW, "ok"),
    ("duplicate label", rec(out='"output":{"label":"a","label":"b"}'), SLOW, "ok"),
    ("duplicate score", rec(out=out('"score":0.1', '"score":0.2')), SLOW, "ok"),
    ("duplicate unknown", rec('"x":1', '"x":2'), OK, "ok"),
    # NaN and infinities
    ("NaN unused", rec('"x":NaN', '"y":Infinity', '"z":-Infinity', '"w":[NaN,{"v":1}]'), OK, "ok"),
    ("-Infinity nested", rec('"w":[NaN,{"v":-Infinity}]'), OK, "ok"),
    ("NaN unused in output", rec(out=out('"x":NaN')), OK, "ok"),
    ("-NaN unused", rec('"x":-NaN'), SLOW, "bad"),
    ("NaN ts", rec(ts='"ts":NaN'), SLOW, "bad"),
    ("Infinity ts", rec(ts='"ts":Infinity'), SLOW, "bad"),
    ("-Infinity status", rec('"status":-Infinity'), SLOW, "bad"),
    ("NaN score", rec(out=out('"score":NaN')), SLOW, "bad"),
    ("NaN scores", rec(out=out('"scores":[0.5,NaN]')), SLOW, "bad"),
    ("NaN input", rec('"input":[1,NaN,2]'), SLOW, "bad"),
    ("Infinity latency", rec('"latency_ms":Infinity'), SLOW, "bad"),
    # numbers
    ("ts -0", rec(ts='"ts":-0'), OK, "ok"),
    ("ts -0.0", rec(ts='"ts":-0.0'), OK, "ok"),
    ("ts 0e5", rec(ts='"ts":-0e5'), OK, "ok"),
    ("ts 1E5", rec(ts='"ts":1E5'), OK, "ok"),
    ("ts 1e+5", rec(ts='"ts":1e+05'), OK, "ok"),
    ("ts 1e-5", rec(ts='"ts":1e-5'), OK, "ok"),
    ("ts 0.1", rec(ts='"ts":0.1'), OK, "ok"),
    ("ts 17 digits", rec(ts='"ts":258361.11702179772'), OK, "ok"),
    ("ts 17 digits exp", rec(ts='"ts":1.7976931348623157e308'), OK, "ok"),
    ("ts small normal", rec(ts='"ts":2.2250738585072014e-308'), OK, "ok"),
    ("ts 19 digits", rec(ts='"ts":1234567890.123456789'), OK, "ok"),
    ("ts 19-digit int", rec(ts='"ts":9223372036854775808'), OK, "ok"),  # 2**63
    ("ts 20 digits", rec(ts='"ts":12345678901.234567891'), SLOW, "ok"),
    ("ts 2**64", rec(ts='"ts":18446744073709551616'), SLOW, "ok"),
    ("ts many zeros", rec(ts='"ts":0.' + "0" * 400 + "1e400"), OK, "ok"),
    ("ts 1e400", rec(ts='"ts":1e400'), SLOW, "bad"),
    ("ts 1e-400", rec(ts='"ts":1e-400'), SLOW, "ok"),
    ("ts subnormal", rec(ts='"ts":5e-324'), SLOW, "ok"),
    ("ts huge exponent", rec(ts='"ts":1e99999999999'), SLOW, "bad"),
    ("ts leading zero", rec(ts='"ts":01'), SLOW, "bad"),
    ("ts 1.", rec(ts='"ts":1.'), SLOW, "bad"),
    ("ts .5", rec(ts='"ts":.5'), SLOW, "bad"),
    ("ts 1e", rec(ts='"ts":1e'), SLOW, "bad"),
    ("ts +1", rec(ts='"ts":+1'), SLOW, "bad"),
    ("ts -", rec(ts='"ts":-'), SLOW, "bad"),
    ("ts epoch int", rec(ts='"ts":1700000000'), OK, "ok"),
    ("ts RFC 3339", rec(ts='"ts":"2024-03-05T10:20:30.5+01:00"'), OK, "ok"),
    ("ts epoch string", rec(ts='"ts":"1700000000"'), SLOW, "ok"),
    ("ts bool", rec(ts='"ts":true'), SLOW, "bad"),
    ("ts null", rec(ts='"ts":null'), SLOW, "bad"),
    ("ts empty", rec(ts='"ts":""'), SLOW, "bad"),
    ("ts object", rec(ts='"ts":{}'), SLOW, "bad"),
    ("big int unused", rec('"x":' + "9" * 30, '"y":-' + str(2**64)), OK, "ok"),
    ("leading zero unused", rec('"x":012'), SLOW, "bad"),
    ("leading zero in array", rec('"x":[01]'), SLOW, "bad"),
    # status
    ("status int", rec('"status":404'), OK, "ok"),
    ("status float", rec('"status":200.7'), OK, "ok"),
    ("status negative float", rec('"status":-1.5'), OK, "ok"),
    ("status null", rec('"status":null'), OK, "ok"),
    ("status int64 min", rec('"status":-9223372036854775808'), OK, "ok"),
    ("status int64 max", rec('"status":9223372036854775807'), SLOW, "bad"),  # float: 2**63
    ("status 1e19", rec('"status":1e19'), SLOW, "bad"),
    ("status -1e19", rec('"status":-1e19'), SLOW, "bad"),
    ("status bool", rec('"status":true'), SLOW, "ok"),
    ("status string", rec('"status":"200"'), SLOW, "ok"),
    ("latency string", rec('"latency_ms":"12"'), SLOW, "ok"),
    ("latency null", rec('"latency_ms":null'), OK, "ok"),
    # input
    ("input", rec('"input":[1,2,3]'), OK, "ok"),
    ("input -0", rec('"input":[-0,-0.0,0]'), OK, "ok"),
    ("input other length", rec('"input":[1.5,2]'), OK, "ok"),
    ("input null", rec('"input":null'), OK, "ok"),
    ("input empty", rec('"input":[]'), SLOW, "bad"),
    ("input string item", rec('"input":[1,"2",3]'), SLOW, "ok"),
    ("input bool item", rec('"input":[1,true,3]'), SLOW, "ok"),
    ("input text", rec('"input":"[1,2,3]"'), SLOW, "ok"),
    ("input 1e400", rec('"input":[1,1e400,3]'), SLOW, "bad"),
    ("input nested", rec('"input":[[1],2,3]'), SLOW, "bad"),
    ("input trailing comma", rec('"input":[1,2,]'), SLOW, "bad"),
    # output, score, scores
    ("score", rec(out=out('"score":0.9')), OK, "ok"),
    ("score 0", rec(out=out('"score":0')), OK, "ok"),
    ("score -0.0", rec(out=out('"score":-0.0')), OK, "ok"),
    ("score 1", rec(out=out('"score":1')), OK, "ok"),
    ("score over 1", rec(out=out('"score":1.5')), OK, "ok"),
    ("score negative", rec(out=out('"score":-0.25')), OK, "ok"),
    ("score null", rec(out=out('"score":null')), OK, "ok"),
    ("score string", rec(out=out('"score":"0.9"')), SLOW, "ok"),
    ("score bool", rec(out=out('"score":false')), SLOW, "ok"),
    ("scores", rec(out=out('"scores":[0.2,0.7,0.1]')), OK, "ok"),
    ("scores one", rec(out=out('"scores":[0.3]')), OK, "ok"),
    ("scores tie", rec(out=out('"scores":[0.5,0.5]')), OK, "ok"),
    ("scores signed zeros", rec(out=out('"scores":[-0.0,0,-0.0]')), OK, "ok"),
    ("scores negative", rec(out=out('"scores":[-3,-1,-2]')), OK, "ok"),
    ("scores and score", rec(out=out('"score":0.1', '"scores":[0.4,0.6]')), OK, "ok"),
    ("scores null score", rec(out=out('"scores":null', '"score":0.8')), OK, "ok"),
    ("scores empty", rec(out=out('"scores":[]')), SLOW, "bad"),
    ("scores text", rec(out=out('"scores":"[0.1,0.9]"')), SLOW, "ok"),
    # Python refuses "" here: readers._maybe_json("") tries json.loads("") ("" in "[{")
    ("scores empty text", rec(out=out('"scores":""')), SLOW, "bad"),
    ("scores bool", rec(out=out('"scores":[true,0.5]')), SLOW, "ok"),
    ("scores with bad score", rec(out=out('"scores":[0.5]', '"score":"x"')), SLOW, "bad"),
    ("output unknown keys", rec(out=out('"probs":{"a":[1,2]}', '"x":"\\u0041"')), OK, "ok"),
    ("output escaped unknown key", rec(out=out('"\\u0041":1')), SLOW, "ok"),
    ("output label last", rec(out='"output":{"score":0.2,"label":"dog"}'), OK, "ok"),
    ("output text", rec(out='"output":"cat"'), SLOW, "bad"),
    ("output json text", rec(out='"output":"{\\"label\\":\\"a\\"}"'), SLOW, "ok"),
    ("output array", rec(out='"output":[1]'), SLOW, "bad"),
    ("output null", rec(out='"output":null'), SLOW, "bad"),
    ("output empty", rec(out='"output":{}'), SLOW, "bad"),
    ("output trailing comma", rec(out='"output":{"label":"a",}'), SLOW, "bad"),
    ("label numeric", rec(out='"output":{"label":5}'), SLOW, "ok"),
    ("label float", rec(out='"output":{"label":5.0}'), SLOW, "ok"),
    ("label empty", rec(out='"output":{"label":""}'), SLOW, "bad"),
    ("label null", rec(out='"output":{"label":null}'), SLOW, "bad"),
    ("label missing", rec(out='"output":{"score":0.5}'), SLOW, "bad"),
    # source, model, client
    ("source empty", rec('"source_ip":""'), OK, "ok"),
    ("source null", rec('"source_ip":null'), OK, "ok"),
    ("source number", rec('"source_ip":5'), SLOW, "ok"),
    ("model null", rec('"model":null'), OK, "ok"),
    ("model empty", rec('"model":""'), OK, "ok"),
    ("model number", rec('"model":5'), SLOW, "ok"),
    ("client number", rec(cl='"client_id":5'), SLOW, "ok"),
    ("client empty", rec(cl='"client_id":""'), SLOW, "bad"),
    ("client null", rec(cl='"client_id":null'), SLOW, "bad"),
    ("client array", rec(cl='"client_id":["a"]'), SLOW, "bad"),
    ("missing ts", rec(ts=""), SLOW, "bad"),
    ("missing client", rec(cl=""), SLOW, "bad"),
    ("missing output", rec(out=""), SLOW, "bad"),
    ("flat output", rec('"label":"cat"', out=""), SLOW, "ok"),
    # containers
    ("empty object", b"{}", SLOW, "bad"),
    ("empty unknowns", rec('"x":{}', '"y":[]', '"z":[{},[[]]]'), OK, "ok"),
    ("top-level array", b"[1]", SLOW, "bad"),
    ("top-level number", b"1", SLOW, "bad"),
    ("top-level null", b"null", SLOW, "bad"),
    ("nested 59", rec('"x":' + "[" * 59 + "]" * 59), OK, "ok"),
    ("nested 60 objects", rec('"x":' + '{"a":' * 60 + "1" + "}" * 60), OK, "ok"),
    ("nested 61", rec('"x":' + "[" * 61 + "]" * 61), SLOW, "ok"),
    ("nested 100000", rec('"x":' + "[" * 100_000 + "]" * 100_000), SLOW, "bad"),
    ("unclosed nesting", rec('"x":' + "[" * 30), SLOW, "bad"),
    ("mismatched brackets", rec('"x":[1}'), SLOW, "bad"),
    # strings: control characters and UTF-8
    ("tab in unknown string", rec('"x":"a\tb"'), SLOW, "bad"),
    ("NUL in client", rec(cl='"client_id":"a\x00"'), SLOW, "bad"),
    ("DEL in client", rec(cl='"client_id":"a\x7f"'), OK, "ok"),
    ("multibyte UTF-8", rec(cl='"client_id":"é€😀"', out='"output":{"label":"猫"}'), OK, "ok"),
    ("multibyte source", rec('"source_ip":"fe80::1%ü"', '"x":"ﬁ😀"'), OK, "ok"),
    ("overlong", rec(cl='"client_id":"\udcc0\udcaf"'), SLOW, "ok"),
    ("overlong 3 bytes", rec(cl='"client_id":"\udce0\udc80\udcaf"'), SLOW, "ok"),
    ("raw surrogate", b'{"client_id":"\xed\xa0\x80",' + rec(cl="")[1:], SLOW, "ok"),
    ("F5 lead", b'{"client_id":"\xf5\x80\x80\x80",' + rec(cl="")[1:], SLOW, "ok"),
    ("past U+10FFFF", b'{"x":"\xf4\x90\x80\x80",' + rec()[1:], SLOW, "ok"),
    ("truncated sequence", b'{"client_id":"\xe2\x82",' + rec(cl="")[1:], SLOW, "ok"),
    ("truncated at end", rec()[:-1] + b',"x":"\xe2\x82', SLOW, "bad"),
    ("lone continuation", b'{"x":"\x80",' + rec()[1:], SLOW, "ok"),
    ("invalid in label", rec(out='"output":{"label":"\udcff"}'), SLOW, "ok"),
    ("BOM mid-file", b"\xef\xbb\xbf" + rec(), SLOW, "bad"),
    # around the object
    ("trailing garbage", rec() + b"x", SLOW, "bad"),
    ("trailing object", rec() + b"{}", SLOW, "bad"),
    ("trailing comma", rec()[:-1] + b",}", SLOW, "bad"),
    ("object closed by ]", rec()[:-1] + b"]", SLOW, "bad"),
    ("input closed by }", rec('"input":[1,2,3}'), SLOW, "bad"),
    ("output closed by ]", rec(out='"output":{"label":"a"]'), SLOW, "bad"),
    ("missing colon", b'{"ts" 1,' + rec(ts="")[1:], SLOW, "bad"),
    ("unquoted key", b"{ts:1," + rec(ts="")[1:], SLOW, "bad"),
    ("whitespace", b' \t{ "ts" : 1 ,\t"client_id" :"c" , "output" : { "label" : "a" } }', OK, "ok"),
    ("CR before LF", rec() + b"\r", OK, "ok"),
    ("spaces and CR before LF", rec() + b" \t\r", OK, "ok"),
    ("form feed", b"\x0c" + rec(), SLOW, "bad"),
    ("blank", b"", BLANK, "blank"),
    ("spaces", b"  \t \r", BLANK, "blank"),
    ("unicode blank", b"\x0c\x0b", SLOW, "blank"),
]


def _name(case: tuple[str, bytes, int, str | None]) -> str:
    return case[0]


# Found by these tests and fixed: an integer json's int() may refuse (sys.int_max_str_digits),
# and one past the float range (the Python path raised OverflowError).
FIXED = [
    ("int past 4300 digits unused", rec('"x":' + "1" * 4301), SLOW, "bad"),
    ("int of 641 digits unused", rec('"x":' + "1" * 641), SLOW, "ok"),
    ("int of 640 digits unused", rec('"x":' + "1" * 640), OK, "ok"),
    ("int ts past float range", rec(ts='"ts":1' + "0" * 400), SLOW, "bad"),
    ("int input past float range", rec('"input":[1' + "0" * 400 + ",2,3]"), SLOW, "bad"),
    ("int status past float range", rec('"status":-1' + "0" * 400), SLOW, "bad"),
]


@pytest.mark.parametrize("case", [*CASES, *FIXED], ids=_name)
def test_line(case: tuple[str, bytes, int, str | None]) -> None:
    _, line, want, verdict = case
    if verdict is not None:
        assert python(line + b"\n")[0] == verdict, "the case does not test what it says"
    assert kinds(line) == [want]
    assert kinds(line, d=0) == [want]
    if line and not line.endswith(b"\r"):
        assert check(line) == [want]  # the last line without its newline


def test_values_spot_checks() -> None:
    """A few values spelled out (the checker compares the rest against Python)."""
    line = rec(
        '"source_ip":""',
        '"input":[-0.0,0.1,1e-5]',
        '"status":-1.5',
        out='"output":{"label":"cat","scores":[0.2,0.7,0.1]}',
        ts='"ts":-0.0',
    )
    buf = np.frombuffer(line, np.uint8).copy()
    kind, _, ts, span, _, _, margin, status, length, x = parse(buf, 3)
    assert kind.tolist() == [OK] and bits(ts[0]) == bits(-0.0)
    assert span[3, 0] == -1 and status[0] == -1 and length[0] == 3
    assert margin[0] == 0.7 - 0.2 and bits(x[0, 0]) == bits(-0.0) and x[0, 2] == 1e-5


def test_block_mixed_lines() -> None:
    """Several lines in one block: bounds, blank lines, a SLOW line between OK ones, inputs of
    another length than ``d``, and a last line without its newline."""
    lines = [
        rec('"input":[1,2,3]'),
        b"",
        rec(ts="'bad'"),
        b"  \r",
        rec('"input":[1,2]'),
        rec(cl='"client_id":"c1"', out='"output":{"label":"dog","score":0.25}'),
        rec('"source_ip":"::1"'),
    ]
    block = b"\n".join(lines)
    assert check(block) == [OK, BLANK, SLOW, BLANK, OK, OK, OK]
    assert check(block + b"\n\n") == [OK, BLANK, SLOW, BLANK, OK, OK, OK, BLANK]
    assert check(b"") == []
    assert check(b"\n") == [BLANK]
    # equal strings, equal hashes (the interning relies on it)
    hashes = parse(np.frombuffer(block, np.uint8).copy(), 3)[4]
    assert hashes[0, 0] == hashes[0, 5] == hashes[0, 6]
    assert hashes[2, 0] != hashes[2, 5]


def test_lone_cr_is_flagged() -> None:
    assert check(rec() + b"\r" + rec() + b"\n") == []  # count_lines says: the Python path's
    assert check(rec() + b"\r\n" + rec() + b"\r\n") == [OK, OK]
    assert check(rec() + b"\r") == []


# --- 2. fuzz: whole records, serialised in random styles and sometimes damaged ------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)
INTS = st.integers(-1000, 1000) | st.integers(-(2**70), 2**70)
TEXT = st.text(max_size=6) | st.sampled_from(["\ud800", "a\udfff", "\x00", "é😀", '"\\'])
SCALAR = st.none() | st.booleans() | INTS | st.floats() | TEXT
ANY = st.recursive(
    SCALAR, lambda c: st.lists(c, max_size=3) | st.dictionaries(TEXT, c, max_size=3), max_leaves=6
)
RFC = st.datetimes(timezones=st.timezones() | st.none()).map(lambda t: t.isoformat())


def rarely(k: int) -> st.SearchStrategy[bool]:
    """True about once in ``2**k`` (hypothesis draws small integers' bounds too often)."""
    return st.lists(st.booleans(), min_size=k, max_size=k).map(all)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` seven times in eight, anything else otherwise."""
    return rarely(3).flatmap(lambda odd: ANY if odd else valid)


VECTOR = st.lists(FINITE, min_size=D, max_size=D) | st.none() | st.lists(FINITE, max_size=5)
OUTPUT = st.fixed_dictionaries(
    {"label": mostly(st.text(min_size=1, max_size=5))},
    optional={
        "score": mostly(st.floats(0, 1) | FINITE | st.none()),
        "scores": mostly(st.lists(st.floats(0, 1), min_size=1, max_size=4) | st.none()),
        "probs": ANY,
    },
)
RECORD = st.fixed_dictionaries(
    {
        "ts": mostly(FINITE | st.integers(0, 2**40) | RFC),
        "client_id": mostly(st.text(min_size=1, max_size=8)),
        "output": mostly(OUTPUT),
    },
    optional={
        "source_ip": mostly(st.sampled_from(["", None, "10.0.0.1", "::1"]) | TEXT),
        "input": mostly(VECTOR),
        "status": mostly(st.integers(100, 599) | INTS | st.none() | FINITE),
        "latency_ms": mostly(FINITE | st.none()),
        "model": mostly(st.sampled_from([None, "", "m1"]) | TEXT),
        "extra": ANY,
        "ts2": ANY,
    },
)
NOISE = b'"\\{}[],:0-.eE \t\r\n\x00\x7f\x80\xbf\xc0\xc3\xed\xef\xf4\xf5\xffNIt'


@st.composite
def line(draw: st.DrawFn) -> bytes:
    rec = draw(RECORD)
    for key in list(rec):
        if draw(rarely(4)):
            del rec[key]  # a required key goes missing now and then
    rec = {k: rec[k] for k in draw(st.permutations(list(rec)))}
    seps = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\t", " : "), (",", ":\t")]))
    text = json.dumps(rec, ensure_ascii=draw(st.booleans()), separators=seps, allow_nan=True)
    if draw(rarely(3)) and len(text) > 2:  # a repeated key
        key = draw(st.sampled_from(["ts", "client_id", "output", "status", "input", "zz"]))
        value = draw(st.sampled_from(["1", "null", '"x"', "{}"]))
        text = "{" + f'"{key}":{value},' + text[1:]
    pre = draw(st.sampled_from(["", " ", "\t", " \t "]))
    post = draw(st.sampled_from(["", " ", "\t", " \t ", "\r"]))  # \r: CR LF
    data = (pre + text + post).encode("utf-8", "surrogatepass")
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # damage: delete/insert/replace
        at = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 2))
        byte = bytes([draw(st.sampled_from(NOISE) | st.integers(0, 255))])
        data = data[:at] + (b"" if op == 0 else byte) + data[at + (op != 1) :]
    return data


@pytest.mark.fuzz
@settings(max_examples=max(settings().max_examples // 2, 10))  # the slowest generator
@given(
    st.lists(line() | st.sampled_from([b"", b" \t", b"\r"]), min_size=1, max_size=6), st.booleans()
)
def test_fuzz_records(lines: list[bytes], last_newline: bool) -> None:
    check(b"\n".join(lines) + (b"\n" if last_newline else b""))


NORMAL = FINITE.filter(lambda v: v == 0 or abs(v) >= MIN_NORMAL)
PLAIN = st.text(
    st.characters(exclude_categories=["Cc", "Cs"], exclude_characters='"\\'), min_size=1, max_size=8
)
OFFSET = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
CLEAN = st.fixed_dictionaries(
    {
        "ts": NORMAL
        | st.integers(-(2**62), 2**62)
        | st.datetimes(datetime(1900, 1, 1), datetime(2100, 1, 1), timezones=OFFSET).map(
            lambda t: t.isoformat().replace("+00:00", "Z")
        ),
        "client_id": PLAIN,
        "output": st.fixed_dictionaries(
            {"label": PLAIN},
            optional={
                "score": NORMAL | st.none(),
                "probs": ANY,
                "scores": st.lists(NORMAL, min_size=1, max_size=5) | st.none(),
            },
        ),
    },
    optional={
        "source_ip": PLAIN | st.sampled_from(["", None]),
        "input": st.lists(NORMAL, min_size=1, max_size=5) | st.none(),
        "status": st.integers(-(2**62), 2**62) | st.none(),
        "latency_ms": NORMAL | st.none(),
        "model": PLAIN | st.sampled_from(["", None]),
        "extra": ANY,
    },
)


@pytest.mark.fuzz
@given(st.lists(CLEAN, min_size=1, max_size=4), st.booleans())
def test_fuzz_plain_records_are_fast(recs: list[dict[str, Any]], spaced: bool) -> None:
    """Records of the usual types, written by json.dumps, never fall back to Python (unknown
    keys hold anything, escapes and NaN included)."""
    seps = (", ", ": ") if spaced else (",", ":")
    lines = [
        json.dumps(r, ensure_ascii=False, separators=seps).encode("utf-8", "surrogatepass")
        for r in recs
    ]
    got = check(b"\n".join(lines))
    for raw, k in zip(lines, got, strict=True):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:  # a lone surrogate in an unknown value, written raw
            continue
        assert k == OK, raw


# --- number texts through whole lines -----------------------------------------------------------

DIGITS = st.text("0123456789", min_size=1, max_size=22)


@st.composite
def number(draw: st.DrawFn) -> str:
    whole = draw(DIGITS)
    if not draw(rarely(3)):
        whole = whole.lstrip("0") or "0"  # mostly JSON's grammar; sometimes 01
    out = draw(st.sampled_from(["", "-"])) + whole
    if draw(st.booleans()):
        out += "." + draw(DIGITS | st.sampled_from(["", "0" * 30 + "1"]))
    if draw(st.booleans()):
        out += draw(st.sampled_from("eE")) + draw(st.sampled_from(["", "+", "-"]))
        out += draw(
            st.text("0123456789", min_size=1, max_size=4)
            | st.sampled_from(["", "0400", "308", "324"])
        )
    return out


JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE][-+]?[0-9]+)?")


def simple(t: str) -> bool:
    """A JSON number of at most 19 significant digits with a zero or normal value: the kernel
    must convert it (no fallback)."""
    m = JSON_NUMBER.fullmatch(t)
    if not m:
        return False
    v = float(t)
    digits = (m.group(1) + (m.group(2) or "")).lstrip("0")
    return len(digits) <= 19 and (not digits or MIN_NORMAL < abs(v) < 1.7976931348623157e308)


@pytest.mark.fuzz
@given(st.lists(number(), min_size=6, max_size=6))
def test_fuzz_number_texts(texts: list[str]) -> None:
    ts, a, b, c, score, unused = texts
    line = rec(
        f'"input":[{a},{b}, {c}]',
        f'"u":{{"v":[{unused}]}}',
        ts=f'"ts":{ts}',
        out=f'"output":{{"label":"x","score":{score}}}',
    )
    got = kinds(line)
    if all(simple(t) for t in texts[:5]) and JSON_NUMBER.fullmatch(unused):
        assert got == [OK], line  # an unused number needs the grammar only


def test_buffer_end_is_n() -> None:
    """Nothing past ``n`` is read: a line cut by ``n`` is not completed by the bytes after it,
    and garbage after ``n`` does not spoil the line before it."""
    line = rec('"input":[1,2,3]')
    buf = np.frombuffer(line + b"x\n" + line, np.uint8).copy()
    assert count_lines(buf, len(line)) == (1, False)
    assert parse_block(buf, len(line), 1, 3, SEEDS)[0].tolist() == [OK]
    for cut in (len(line) - 1, len(line) // 2, 5, 1):
        buf = np.frombuffer(line + line, np.uint8).copy()
        kind, bounds = parse_block(buf, cut, 1, 3, SEEDS)[:2]
        assert kind.tolist() == [SLOW] and bounds.tolist() == [0, cut]


def test_number_texts_canonical() -> None:
    """Texts json itself writes (repr of random doubles and ints) are always converted."""
    rnd = random.Random(3)
    for _ in range(300):
        vals = [struct.unpack("<d", rnd.randbytes(8))[0] for _ in range(3)]
        vals = [v if math.isfinite(v) and (v == 0 or abs(v) >= MIN_NORMAL) else 1.5 for v in vals]
        t = rnd.randrange(-(2**63), 2**63)
        line = rec(
            f'"input":[{vals[0]!r},{vals[1]!r},{vals[2]!r}]',
            f'"status":{t}',
            ts=f'"ts":{vals[0]!r}',
        )
        want = OK if -(2.0**63) <= float(t) < 2.0**63 else SLOW
        assert kinds(line) == [want], line
