"""Kernels of the DuckDB engine's in-memory path (:mod:`mlhunt.hunt.engines._kern_mem`,
:mod:`._kern_records`) against plain numpy references and the readers' own checks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlhunt.hunt import readers
from mlhunt.hunt.engines import _mem, _mem_read

# --- 4. kernels against numpy references --------------------------------------------------------


def _store(**cols: Any) -> Any:
    """A Store holding the given columns (the others zero)."""
    n = len(next(iter(cols.values())))
    store = _mem.Store(n)
    full = {
        c: np.asarray(cols.get(c, np.zeros(n)))
        for c in ("ts", "line", "client", "source", "label", "margin", "status")
    }
    store.append(full, 0)
    if "file" in cols:
        store.file[:n] = cols["file"]
    return store


def _sort(
    store: Any, col: int, rank: np.ndarray, order: np.ndarray | None, n: int, n_keys: int
) -> tuple[np.ndarray, np.ndarray]:
    from mlhunt.hunt.engines._kern_records import counting_sort

    seq = np.empty(0, np.int64) if order is None else order
    return counting_sort(store.rec_i4, col, rank, seq, n, n_keys)


def _grouped(keys: list[int]) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """A store whose client codes are ``keys`` (0..5), grouped by code in row order."""
    from mlhunt.hunt.engines._kern_records import _CLIENT

    k = np.array(keys, np.int32)
    store = _store(client=k)
    rows, off = _sort(store, _CLIENT, np.arange(6, dtype=np.int32), None, len(k), 6)
    return store, k, rows, off


def test_counting_sort_example() -> None:
    from mlhunt.hunt.engines._kern_records import _CLIENT, _SOURCE

    store = _store(client=[2, 0, 1, 0, 3, 2, 0], source=[1, -1, 0, 1, 1, -1, 0])
    ident = np.arange(4, dtype=np.int32)
    rows, off = _sort(store, _CLIENT, ident, None, 7, 4)
    assert rows.tolist() == [1, 3, 6, 2, 0, 5, 4] and off.tolist() == [0, 3, 4, 6, 7]
    rows, off = _sort(store, _CLIENT, ident, np.arange(6, -1, -1), 7, 4)
    assert rows.tolist() == [6, 3, 1, 2, 5, 0, 4] and off.tolist() == [0, 3, 4, 6, 7]
    # code 3 ranks -1 (left out), the last record is past n
    rows, off = _sort(store, _CLIENT, np.array([0, 1, 2, -1], np.int32), None, 6, 3)
    assert rows.tolist() == [1, 3, 2, 0, 5] and off.tolist() == [0, 2, 3, 5]
    rows, off = _sort(store, _SOURCE, np.array([1, 0], np.int32), None, 7, 2)  # -1: no address
    assert rows.tolist() == [0, 3, 4, 2, 6] and off.tolist() == [0, 3, 5]


@pytest.mark.fuzz
@given(
    codes=st.lists(st.integers(-1, 5), max_size=60),
    rank=st.permutations(range(6)),
    hide=st.integers(-1, 5),
    perm=st.randoms(use_true_random=False),
    with_order=st.booleans(),
    cut=st.integers(0, 3),
)
def test_fuzz_counting_sort(
    codes: list[int], rank: list[int], hide: int, perm: Any, with_order: bool, cut: int
) -> None:
    from mlhunt.hunt.engines._kern_records import _SOURCE

    c = np.array(codes, np.int32)
    r = np.array(rank, np.int32)
    if hide >= 0:  # a code no kept event has: rank -1, the others 0..4
        r = np.where(r > r[hide], r - 1, r)
        r[hide] = -1
    n_keys = int(r.max()) + 1
    n = max(len(c) - cut, 0)  # records past n are not sorted
    store = _store(source=c)
    seq = np.arange(n, dtype=np.int64)
    if with_order:
        perm.shuffle(seq)
    rows, off = _sort(store, _SOURCE, r, seq if with_order else None, n, n_keys)
    keys = np.where(c[seq] >= 0, r[np.maximum(c[seq], 0)], -1)
    want = seq[keys >= 0][np.argsort(keys[keys >= 0], kind="stable")]
    assert rows.tolist() == want.tolist()
    counts = np.bincount(keys[keys >= 0], minlength=n_keys)
    assert off.tolist() == [0, *np.cumsum(counts).tolist()]


@pytest.mark.fuzz
@given(
    triples=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3)), max_size=25
    ),
    swap=st.integers(0, 30),
    data=st.data(),
)
def test_fuzz_scan_records(triples: list[tuple[int, int, int]], swap: int, data: Any) -> None:
    from mlhunt.hunt.engines._kern_records import scan_records

    n = len(triples)

    def draw(lo: int, hi: int) -> np.ndarray:
        return np.array(data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)), np.int64)

    client, source, label = draw(0, 3), draw(-1, 2), draw(0, 1)
    margin = np.where(draw(0, 1) == 1, np.nan, draw(0, 10) / 10)
    status = np.array([200, 401, 403, 500])[draw(0, 3)]

    def kernel(t: list[tuple[int, int, int]], n_rows: int) -> Any:
        a = np.array(t, dtype=np.int64).reshape(-1, 3)
        st_ = _store(
            ts=a[:, 0].astype(float),
            file=a[:, 1],
            line=a[:, 2],
            client=client,
            source=source,
            label=label,
            margin=margin,
            status=status,
        )
        return scan_records(st_.rec, st_.rec_f, st_.rec_i4, n_rows, 4, 3, 2, 0.3)

    m = data.draw(st.integers(0, n))  # the first m records only
    ordered, c_count, s_count, l_count, known, below, s_denied, s_runs = kernel(triples, m)
    assert ordered == all(triples[i - 1] <= triples[i] for i in range(1, m))
    assert c_count.tolist() == np.bincount(client[:m], minlength=4).tolist()
    assert s_count.tolist() == np.bincount(source[:m][source[:m] >= 0], minlength=3).tolist()
    assert l_count.tolist() == np.bincount(label[:m], minlength=2).tolist()
    mm = margin[:m]
    assert known == int((~np.isnan(mm)).sum()) and below == int((mm[~np.isnan(mm)] < 0.3).sum())
    # per source: denied answers, and client-id runs (>= distinct ids: the pre-filter's bound)
    runs, last, denied = [0, 0, 0], [-1, -1, -1], [0, 0, 0]
    for i in range(m):
        if source[i] >= 0:
            denied[source[i]] += int(status[i] in (401, 403))
            runs[source[i]] += int(last[source[i]] != client[i])
            last[source[i]] = client[i]
    assert s_denied.tolist() == denied and s_runs.tolist() == runs
    for s_ in range(3):
        assert runs[s_] >= len(set(client[:m][source[:m] == s_].tolist()))
    srt = sorted(triples)
    assert kernel(srt, n)[0]
    i = swap % max(n - 1, 1)
    if n > 1 and srt[i] != srt[i + 1]:  # one step back in ts, file or line
        srt[i], srt[i + 1] = srt[i + 1], srt[i]
        assert not kernel(srt, n)[0]


def _peaks_ref(
    rows: np.ndarray,
    off: np.ndarray,
    ts: np.ndarray,
    flag: np.ndarray,
    w: float,
    groups: np.ndarray,
) -> list[int]:
    out = []
    for g in range(len(off) - 1):
        b = np.floor(ts[[i for i in rows[off[g] : off[g + 1]] if flag[i]]] / w)
        best = max((int(((b >= b0) & (b <= b0 + 3)).sum()) for b0 in b), default=0)
        out.append(best if groups[g] else 0)
    return out


def test_bucket_peaks_example() -> None:
    from mlhunt.hunt.engines._kern_records import bucket_peaks

    # one group, buckets 0, 3, 4, 4, 8 (w = 1): buckets 0..3 hold 2, 3..6 hold 3 (peak), 8 one
    store = _store(ts=[0.5, 3.0, 4.2, 4.9, 8.0], status=[403, 200, 401, 403, 401])
    rows, off = np.arange(5, dtype=np.int64), np.array([0, 5], np.int64)
    got = bucket_peaks(rows, off, store.rec, store.rec_f, 1.0, False, np.ones(1, bool))
    assert got.tolist() == [3]
    got = bucket_peaks(rows, off, store.rec, store.rec_f, 1.0, True, np.ones(1, bool))
    assert got.tolist() == [2]  # denied in buckets 0, 4, 4, 8: 0 and 4 are not 4 buckets apart


@pytest.mark.fuzz
@given(
    keys=st.lists(st.integers(0, 3), max_size=60),
    data=st.data(),
    w=st.sampled_from([0.5, 1.0, 2.5, 7.0]),
    denied_only=st.booleans(),
)
def test_fuzz_bucket_peaks(keys: list[int], data: Any, w: float, denied_only: bool) -> None:
    from mlhunt.hunt.engines._kern_records import bucket_peaks

    n = len(keys)
    ts = np.sort(
        np.array(data.draw(st.lists(st.integers(-40, 80), min_size=n, max_size=n)), float) / 4
    )
    status = np.array(
        data.draw(st.lists(st.sampled_from([200, 401, 403, 404]), min_size=n, max_size=n)), np.int64
    )
    store = _store(ts=ts, status=status, client=np.array(keys, np.int32))
    _, _, rows, off = _grouped(keys)
    groups = np.array(data.draw(st.lists(st.booleans(), min_size=6, max_size=6)), bool)
    got = bucket_peaks(rows, off, store.rec, store.rec_f, w, denied_only, groups)
    flag = np.isin(status, (401, 403)) if denied_only else np.ones(n, bool)
    assert got.tolist() == _peaks_ref(rows, off, ts, flag, w, groups)


@pytest.mark.fuzz
@given(keys=st.lists(st.integers(0, 5), max_size=60), data=st.data())
def test_fuzz_group_counts(keys: list[int], data: Any) -> None:
    from mlhunt.hunt.engines._kern_records import _SOURCE, group_counts

    n = len(keys)
    client = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), np.int32)
    status = np.array(
        data.draw(st.lists(st.sampled_from([200, 401, 403, 500]), min_size=n, max_size=n)), np.int64
    )
    store = _store(client=client, source=np.array(keys, np.int32), status=status)
    rows, off = _sort(store, _SOURCE, np.arange(6, dtype=np.int32), None, n, 6)
    got_n, got_nc, got_nd = group_counts(rows, off, store.rec, store.rec_i4, 5)
    k = np.array(keys)
    for g in range(6):
        members = np.flatnonzero(k == g)
        assert got_n[g] == len(members)
        assert got_nc[g] == len(set(client[members].tolist()))
        assert got_nd[g] == int(np.isin(status[members], (401, 403)).sum())


@pytest.mark.fuzz
@given(keys=st.lists(st.integers(0, 5), max_size=60), data=st.data(), per=st.integers(1, 3))
def test_fuzz_first_inputs(keys: list[int], data: Any, per: int) -> None:
    from mlhunt.hunt.engines._kern_records import first_inputs

    _, k, rows, off = _grouped(keys)
    has = np.array(data.draw(st.lists(st.booleans(), min_size=len(k), max_size=len(k))), bool)
    x = np.where(has[:, None], np.arange(len(k) * 2).reshape(-1, 2), np.nan)
    want = []
    for g in range(6):
        want += [i for i in range(len(k)) if k[i] == g and has[i]][:per]
    assert first_inputs(rows, off, x, per).tolist() == want


@pytest.mark.fuzz
@given(data=st.data(), chunk=st.integers(1, 5))
def test_fuzz_feature_sums(data: Any, chunk: int) -> None:
    from mlhunt.hunt.engines._kern_records import feature_sums

    pair = st.lists(st.integers(-9, 9), min_size=2, max_size=2)
    rows = data.draw(st.lists(st.one_of(st.none(), pair), max_size=20))
    x = np.array([[np.nan, np.nan] if r is None else r for r in rows], float).reshape(-1, 2)
    n = data.draw(st.integers(0, len(x)))
    lo, hi, sums, sq, count = feature_sums(x, n, chunk)
    has = [i for i in range(n) if not np.isnan(x[i, 0])]
    assert count == len(has)
    if has:
        np.testing.assert_array_equal(lo, x[has].min(axis=0))
        np.testing.assert_array_equal(hi, x[has].max(axis=0))
    for c in range(len(sums)):
        part = [i for i in has if i // chunk == c]
        np.testing.assert_array_equal(sums[c], x[part].sum(axis=0) if part else 0)
        np.testing.assert_array_equal(sq[c], (x[part] ** 2).sum(axis=0) if part else 0)


_elem = st.one_of(
    st.none(),
    st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0, 1.5, -0.2, math.nan, math.inf, -math.inf]),
    st.floats(0, 1),
)
_vec = st.one_of(st.none(), st.lists(_elem, max_size=4))


@pytest.mark.fuzz
@given(values=st.lists(_vec, min_size=1, max_size=12), cut=st.integers(0, 2))
def test_fuzz_vec_check_is_readers_vector(values: list[Any], cut: int) -> None:
    from mlhunt.hunt.engines._kern_mem import put_x, vec_check

    arr = pa.array(values, pa.list_(pa.float64())).slice(min(cut, len(values) - 1))
    length, ok = vec_check(*_mem_read._parts(arr))
    vals = arr.to_pylist()
    d = 3
    for i, v in enumerate(vals):
        try:
            want = readers._vector(v, "input")
        except readers._Bad:
            assert not ok[i], v
            continue
        assert ok[i], v
        assert length[i] == (0 if want is None else len(want)), v
    # the vouched rows of length d (or none) into a matrix: NaN rows where there is no input
    keep = ok & ((length == 0) | (length == d))
    off, flat, _, _ = _mem_read._parts(arr)
    out = np.full((len(vals) + 2, d), -1.0)
    assert put_x(off, flat, length, keep, d, out, 1) == int(keep.sum())
    want_x = [vals[i] if length[i] else [math.nan] * d for i in np.flatnonzero(keep)]
    np.testing.assert_array_equal(out[1 : 1 + len(want_x)], np.array(want_x).reshape(-1, d))
    assert (out[0] == -1).all() and (out[1 + len(want_x) :] == -1).all()


@pytest.mark.fuzz
@given(
    scores=st.lists(_vec, min_size=1, max_size=12),
    data=st.data(),
    mode=st.sampled_from(["scores", "score", "both"]),
)
def test_fuzz_margins_are_readers_output(scores: list[Any], data: Any, mode: str) -> None:
    from mlhunt.hunt.engines._kern_mem import margins

    n = len(scores)
    score = data.draw(st.lists(_elem, min_size=n, max_size=n))
    s_arr, p_arr = pa.array(scores, pa.list_(pa.float64())), pa.array(score, pa.float64())
    # as _mem_read._File._batch calls it
    sc = _mem_read._parts(s_arr) if mode != "score" else _mem_read._NO_LIST
    if mode != "scores":
        sv, s_valid = _mem_read.floats(p_arr), _mem_read._valid(p_arr)
        s_valid = s_valid if len(s_valid) else np.ones(n, bool)
    else:
        sv, s_valid = _mem_read._NO_FLOATS, _mem_read._NONE
    margin, ok = margins(n, *sc, sv, s_valid)
    assert len(margin) == len(ok) == n
    for i in range(n):
        out: dict[str, Any] = {"label": "x"}
        if mode != "score":
            out["scores"] = scores[i]
        if mode != "scores":
            out["score"] = score[i]
        try:
            want = readers._output({"output": out})[2]
        except readers._Bad:
            assert not ok[i], out
            continue
        assert ok[i], out
        got = None if math.isnan(margin[i]) else float(margin[i])
        assert got == want, out


def test_gather_reads_the_store_records() -> None:
    from mlhunt.hunt.engines._kern_mem import gather

    store = _mem.Store(5)
    cols = {
        "ts": np.arange(5) + 0.5,
        "line": np.arange(10, 15),
        "client": np.array([3, 1, 4, 1, 5]),
        "source": np.array([-1, 0, 1, 0, -1]),
        "label": np.array([0, 1, 2, 1, 0]),
        "margin": np.array([0.1, np.nan, 0.3, 0.4, 0.5]),
        "status": np.arange(200, 205),
    }
    store.append(cols, 2)
    rows = np.array([4, 0, 2], np.int64)
    label_map = np.array([1, -1, 0], np.int64)
    ts, line, margin, status, client, label, file = gather(
        store.rec, store.rec_f, store.rec_i4, rows, label_map
    )
    for got, want in (
        (ts, cols["ts"][rows]),
        (line, cols["line"][rows]),
        (margin, cols["margin"][rows]),
        (status, cols["status"][rows]),
        (client, cols["client"][rows]),
        (label, label_map[cols["label"][rows]]),
        (file, [2, 2, 2]),
    ):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(store.source[:5], cols["source"])


def test_preload_runs() -> None:
    # the engine runs it in a thread that swallows errors (it is only a head start), so a
    # broken preload would go unnoticed there
    from mlhunt.hunt.engines._mem_warm import preload

    preload()
