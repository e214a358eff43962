"""The numba kernels of the extraction family (extraction, sybil extraction, low confidence,
credential stuffing, request flood) and of the shared input features give the same results as
the numpy code they replaced (``tests/hunt_oracle_extraction.py``), on seeded random batches
built to hit every branch: empty, one-event and long groups, rows without an input, retries and
one-field variants (not counted by the G-test), values exactly on bin edges, inf and huge
values, unknown and boundary margins, time ties exactly one window apart.

Every event's value is compared, not only group totals, so a kernel that scored an event with
one event too few or too many in its group (an off-by-one in the running counts or the window)
fails; the batches are checked to be non-trivial (scores above 0, mixed weights) so that the
comparison cannot pass vacuously."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlhunt.hunt.detectors import _features, load_detectors
from mlhunt.hunt.detectors._kern_extraction import g_scan
from mlhunt.hunt.detectors.extraction import _distinct_clients
from mlhunt.hunt.events import GroupBatch, Population, window_count
from tests import hunt_oracle_extraction as oracle

EXTRACTION, SYBIL, LOWCONF, STUFFING, FLOOD = (
    "MLH-HUNT-EXTRACTION",
    "MLH-HUNT-SYBIL-EXTRACTION",
    "MLH-HUNT-LOW-CONFIDENCE",
    "MLH-HUNT-CREDENTIAL-STUFFING",
    "MLH-HUNT-REQUEST-FLOOD",
)
# low thresholds so that the small random batches reach non-zero scores and alerts
PARAMS: dict[str, dict[str, Any]] = {
    EXTRACTION: {"min_events": 3, "z_threshold": 2.0, "kl_threshold": 0.1},
    SYBIL: {"min_events": 3, "z_threshold": 2.0, "kl_threshold": 0.1, "min_clients": 3},
    LOWCONF: {"min_events": 3, "z_threshold": 1.0, "ratio": 1.5},
    STUFFING: {"window_s": 10.0, "min_failures": 3},
    FLOOD: {"window_s": 10.0, "max_rate_per_s": 0.5},
}
DETECTORS = {d.spec.id: d for d in load_detectors(list(PARAMS), params=PARAMS)}


def make_pop(rng: np.random.Generator, d: int) -> Population:
    """Ragged bins: 1..9 edges per feature on a coarse grid (so inputs hit them exactly)."""
    edges, probs = [], []
    for _ in range(d):
        k = int(rng.integers(1, 10))
        edges.append(np.unique(rng.choice(np.arange(-4.0, 4.5, 0.5), k)))
        p = rng.uniform(0.01, 1.0, len(edges[-1]) + 1)
        probs.append(p / p.sum())
    return Population(
        n_events=1,
        n_clients=1,
        d=d,
        classes=("a", "b"),
        lower=np.full(d, -5.0),
        upper=np.full(d, 5.0),
        mean=np.zeros(d),
        std=np.ones(d),
        edges=tuple(edges),
        bin_probs=tuple(probs),
        label_shares={},
        near_margin=0.25,
        near_share=float(rng.choice([0.0, 0.1, 0.7])),
        volume_q={},
    )


def make_batch(rng: np.random.Generator, d: int, n_groups: int, long: int = 0) -> GroupBatch:
    lengths = rng.choice([0, 1, 2, 5, 30, 80], n_groups)
    if long:
        lengths[rng.integers(n_groups)] = long
    # the oracle's seg_cumsum reads c[-1] for a leading empty group and its window count
    # ts[n] for a trailing one (engines never make empty groups): keep both ends non-empty
    lengths[0] = max(lengths[0], 1)
    lengths[-1] = max(lengths[-1], 1)
    n = int(lengths.sum())
    grid = np.arange(-5.0, 5.5, 0.5)
    x = np.empty((n, d))
    for i in range(n):
        r = rng.random()
        if i == 0 or r < 0.5:  # fresh: on the grid (edge ties) or continuous
            x[i] = rng.choice(grid, d) if rng.random() < 0.5 else rng.normal(0, 2, d)
        elif r < 0.65:  # retry
            x[i] = x[i - 1]
        elif r < 0.8 and d:  # what-if variant: one feature changed
            x[i] = x[i - 1]
            x[i, rng.integers(d)] += 1.0
        else:  # shifted (an extractor's distribution)
            x[i] = rng.uniform(3.0, 6.0, d)
    x[rng.random(n) < 0.08] = np.nan  # no input
    if n > 3 and d:
        x[rng.integers(n), rng.integers(d)] = rng.choice([np.inf, -np.inf, 1e308, -1e300])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    # integer times with ties and gaps of exactly the window (10 s): boundary cases
    ts = (
        np.concatenate([np.cumsum(rng.choice([0.0, 1.0, 2.5, 10.0, 30.0], k)) for k in lengths])
        + 1.7e9
    )
    margin = rng.choice([np.nan, 0.0, 0.1, 0.25, 0.5, 0.9], n)
    status = rng.choice([0, 200, 200, 401, 403, 500], n).astype(np.int64)
    pool = np.array([f"acct-{i}" for i in range(8)], dtype=object)
    client = pool[rng.integers(0, rng.integers(1, 9), n)]
    return GroupBatch(
        scope="client_id",
        keys=[f"g{g}" for g in range(n_groups)],
        offsets=offsets,
        ts=ts,
        x=x,
        label=np.zeros(n, np.int64),
        margin=margin,
        status=status,
        client=client,
        file=np.full(n, "f", dtype=object),
        line=np.arange(n, dtype=np.int64),
    )


def oracle_score(
    did: str, batch: GroupBatch, pop: Population
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    p = {k: float(v) for k, v in DETECTORS[did].spec.params.items()}
    if did == EXTRACTION:
        return oracle.extraction(batch, pop, p)
    if did == SYBIL:
        return oracle.sybil(batch, pop, p)
    if did == LOWCONF:
        return oracle.low_confidence(batch, pop, p)
    if did == STUFFING:
        return oracle.credential_stuffing(batch, p)
    return oracle.request_flood(batch, p)


def check_batch(batch: GroupBatch, pop: Population) -> dict[str, float]:
    """Every detector and shared feature against the oracle; returns the largest scores."""
    top = {}
    for did, det in DETECTORS.items():
        got = det.score(batch, pop)
        want_online, want_cols = oracle_score(did, batch, pop)
        np.testing.assert_allclose(got.online, want_online, rtol=1e-9, atol=1e-9, err_msg=did)
        assert list(got.columns) == list(want_cols), did
        for name, want in want_cols.items():
            col = got.columns[name]
            assert col.dtype == want.dtype and col.shape == want.shape, (did, name)
            if col.dtype.kind in "biu":
                np.testing.assert_array_equal(col, want, err_msg=f"{did} {name}")
            else:  # G is a running sum: compare with the size of that sum
                np.testing.assert_allclose(col, want, rtol=1e-9, atol=1e-7, err_msg=f"{did} {name}")
        # the same alerts: the same events at or above the threshold
        at = det.spec.alert_at
        np.testing.assert_array_equal(got.online >= at, want_online >= at, err_msg=did)
        top[did] = float(want_online.max(initial=0.0))
    cache: dict[Any, Any] = {}
    fresh = GroupBatch(**{k: v for k, v in vars(batch).items() if k != "cache"})
    np.testing.assert_array_equal(_features.has_input(fresh), oracle.has_input(batch, cache))
    for got_a, want_a in zip(
        _features.changed_vs_prev(fresh), oracle.changed_vs_prev(batch, cache), strict=True
    ):
        assert got_a.dtype == want_a.dtype
        np.testing.assert_array_equal(got_a, want_a)
    with np.errstate(over="ignore"):  # 1e308 / a width below 1: inf in both
        want_z = oracle.robust_inputs(batch, pop, cache)
    np.testing.assert_array_equal(_features.robust_inputs(fresh, pop), want_z)
    weight = rng_weights(batch)  # NaN rows included: both read them as 0 (nan_to_num)
    g, n_eff, _s, _z, _kl, df = g_scan(
        fresh.x, fresh.offsets, weight, pop.edges, pop.bin_probs, want_g=True
    )
    wg, wn, wdf = oracle.g_statistic(batch, pop, weight)
    assert df == wdf
    np.testing.assert_array_equal(n_eff, wn)
    np.testing.assert_allclose(g, wg, rtol=1e-9, atol=1e-7)
    return top


def rng_weights(batch: GroupBatch) -> np.ndarray:
    """Arbitrary 0/1/2 weights (the G-test counts weight > 0)."""
    return np.random.default_rng(batch.n).integers(0, 3, batch.n).astype(np.float64)


@pytest.mark.parametrize("seed", range(12))
def test_kernels_match_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = int(rng.choice([1, 3, 9]))
    batch = make_batch(rng, d, int(rng.integers(1, 25)), long=2000 if seed % 4 == 0 else 0)
    top = check_batch(batch, make_pop(rng, d))
    if seed == 0:  # the comparison is not vacuous: scores reach alerts
        assert all(top[k] >= DETECTORS[k].spec.alert_at for k in (EXTRACTION, STUFFING, FLOOD))


def test_random_batches_are_not_trivial() -> None:
    """Across seeds every detector scores above 0 somewhere and alerts somewhere, and the
    G-test weights are mixed: the oracle comparisons above exercise the live paths."""
    seen: dict[str, float] = {}
    for seed in range(12):
        rng = np.random.default_rng(seed)
        d = int(rng.choice([1, 3, 9]))
        batch = make_batch(rng, d, int(rng.integers(1, 25)))
        pop = make_pop(rng, d)
        for did, det in DETECTORS.items():
            seen[did] = max(seen.get(did, 0.0), float(det.score(batch, pop).online.max()))
        w = DETECTORS[EXTRACTION].score(batch, pop).columns["weight"]
        assert 0 < w.sum() < batch.n
    assert all(seen[k] >= DETECTORS[k].spec.alert_at for k in DETECTORS), seen


def test_empty_groups_and_no_bins() -> None:
    """Empty groups in the middle, a population without bins (no sample), d = 0."""
    rng = np.random.default_rng(5)
    batch = make_batch(rng, 3, 6)
    lengths = np.diff(batch.offsets)
    batch.offsets = np.concatenate([[0], np.cumsum(np.insert(lengths, 2, [0, 0]))])
    batch.keys = [f"g{g}" for g in range(len(batch.offsets) - 1)]
    check_batch(batch, make_pop(rng, 3))
    bare = make_pop(rng, 0)
    batch0 = make_batch(rng, 0, 4)
    check_batch(batch0, bare)


def test_window_count_ties_and_integer_clients() -> None:
    ts = np.array([0.0, 0, 10, 10, 20, 20.5, 30, 5, 15, 15, 25], dtype=np.float64) + 1.7e9
    offsets = np.array([0, 7, 7, 11])
    flags = np.array([1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1], dtype=bool)
    got = window_count(ts, offsets, flags, 10.0)
    np.testing.assert_array_equal(got, oracle.window_count(ts, offsets, flags, 10.0))
    # (ts - 10, ts]: the events exactly 10 s earlier are out
    assert got.tolist() == [1, 1, 1, 2, 0, 1, 2, 1, 1, 1, 1]
    assert window_count(ts[:0], np.array([0]), flags[:0], 10.0).shape == (0,)
    # client ids as integer codes (an engine may pass codes) or strings: the same counts
    rng = np.random.default_rng(1)
    batch = make_batch(rng, 2, 10)
    codes = rng.integers(0, 5, batch.n)
    as_str = np.array([f"c{c}" for c in codes], dtype=object)
    batch.client = codes
    by_code = _distinct_clients(batch)
    batch.client = as_str
    np.testing.assert_array_equal(by_code, _distinct_clients(batch))
    np.testing.assert_array_equal(by_code, oracle.distinct_clients(batch))


@pytest.mark.fuzz
@given(seed=st.integers(0, 2**32 - 1), d=st.sampled_from([1, 2, 5, 9]), groups=st.integers(1, 30))
@settings(max_examples=max(10, settings().max_examples // 3))
def test_fuzz_kernels_match_numpy(seed: int, d: int, groups: int) -> None:
    rng = np.random.default_rng(seed)
    check_batch(make_batch(rng, d, groups), make_pop(rng, d))
