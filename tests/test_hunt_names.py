"""String coding of the in-memory hunt path (``engines/_names.py``): codes in order of first
appearance, null -1 and empty -2, equal strings one code, and different strings never one code
even when their hashes collide (client ids are chosen by whoever sends the queries)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlhunt.hunt.engines._names import Names


def _codes(names: Names, values: list[str | None], hashes: list[int]) -> list[int]:
    arr = pa.array(values, pa.string())
    return names.encode(arr, pa.array(hashes, pa.uint64())).tolist()


def test_codes_nulls_empty_and_first_appearance() -> None:
    names = Names()
    got = _codes(names, ["b", None, "a", "", "b", "a"], [7, 0, 9, 3, 7, 9])
    assert got == [0, -1, 1, -2, 0, 1]
    assert names.names == ["b", "a"]


def test_colliding_hashes_keep_strings_apart() -> None:
    names = Names()
    # every string gets the same hash: only the bytes can tell them apart
    vals = ["victim", "attacker", "victim", "victin", "attacker", "v"]
    got = _codes(names, vals, [42] * len(vals))
    assert got == [0, 1, 0, 2, 1, 3]
    assert names.names == ["victim", "attacker", "victin", "v"]


def test_growth_keeps_codes() -> None:
    names = Names()
    words = [f"client-{i:06d}-" + "x" * (i % 300) for i in range(5_000)]  # > table, pool
    arr = pa.array(words + words[::-1], pa.string())
    hashes = pa.array([hash(w) & (2**64 - 1) for w in words + words[::-1]], pa.uint64())
    got = names.encode(arr, hashes)
    assert got[:5_000].tolist() == list(range(5_000))
    assert got[5_000:].tolist() == list(range(5_000))[::-1]
    assert names.names == words


def test_sliced_array_and_python_rows() -> None:
    names = Names()
    arr = pa.array(["p", "q", "r", "s"], pa.string()).slice(1, 2)
    assert names.codes_of(["q", "r"]).tolist() == [0, 1]
    assert names.column(arr).tolist() == [0, 1]  # the table's own hash, either way in
    assert names.encode(arr).tolist() == [0, 1]
    assert names.codes_of([]).tolist() == []


def test_dictionary_columns() -> None:
    names = Names()
    arr = pa.array(["b", None, "a", "", "b", "a", None], pa.string()).dictionary_encode()
    assert arr.null_count == 2
    assert names.column(arr).tolist() == [0, -1, 1, -2, 0, 1, -1]
    # slices share the dictionary (kept codes); a sliced dictionary with nulls among its values
    assert names.column(arr.slice(2, 3)).tolist() == [1, -2, 0]
    vals = pa.array(["z", None, "a"], pa.string())
    odd = pa.DictionaryArray.from_arrays(pa.array([2, 1, 0, None], pa.int8()), vals)
    assert names.column(odd).tolist() == [1, -1, 2, -1]
    chunked = pa.chunked_array([pa.array(["z", "q"]), pa.array([None, "b"])])
    assert names.column(chunked).tolist() == [2, 3, -1, 0]
    # a null row whose index slot holds garbage (Arrow leaves null slots undefined)
    junk = pa.Array.from_buffers(
        pa.int32(), 3, [pa.py_buffer(bytes([0b101])), pa.py_buffer(np.array([0, 99, 1], np.int32))]
    )
    assert junk.null_count == 1
    garbage = pa.DictionaryArray.from_arrays(junk, pa.array(["z", "q"]))
    assert names.column(garbage).tolist() == [2, -1, 3]
    empty = pa.DictionaryArray.from_arrays(
        pa.array([None, None], pa.int32()), pa.array([], pa.string())
    )
    assert names.column(empty).tolist() == [-1, -1]
    assert names.names == ["b", "a", "z", "q"]


def test_dictionary_codes_follow_content_not_position() -> None:
    # two dictionaries of one length in turn: the kept codes are the last dictionary's only
    names = Names()
    one = pa.array(["x", "y"]).dictionary_encode()
    two = pa.array(["y", "x"]).dictionary_encode()
    assert names.column(one).tolist() == [0, 1]
    assert names.column(two).tolist() == [1, 0]
    assert names.column(one).tolist() == [0, 1]


def test_bytes_that_are_not_utf8_are_refused() -> None:
    raw = pa.array([b"ok", b"\xff\xfe"], pa.binary())
    bad = raw.view(pa.string()).dictionary_encode()
    with pytest.raises(ValueError, match="not UTF-8"):
        Names().column(bad)


@pytest.mark.fuzz
@given(st.lists(st.one_of(st.none(), st.text(max_size=6)), max_size=60), st.integers(1, 4))
def test_codes_match_a_dict(values: list[str | None], buckets: int) -> None:
    names = Names()
    # few distinct hashes: collisions everywhere
    hashes = [0 if v is None else len(v.encode()) % buckets for v in values]
    got = _codes(names, values, hashes)
    seen: dict[str, int] = {}
    want = []
    for v in values:
        if v is None:
            want.append(-1)
        elif v == "":
            want.append(-2)
        else:
            want.append(seen.setdefault(v, len(seen)))
    assert got == want
    assert names.names == list(seen)
