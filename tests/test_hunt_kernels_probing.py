"""The numba kernels of the near-duplicate detectors (evasion probing, membership probing,
inversion sweeps) give the same results as the numpy code they replaced
(``tests/hunt_oracle_probing.py``), on seeded random batches built to hit every branch: empty
and one-event groups, rows without an input, exact retries, near duplicates and label flips,
noisy repeats, one-field sweeps, values on grid-cell boundaries, inf and huge values."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlhunt.hunt.detectors import load_detectors
from mlhunt.hunt.detectors.base import Scored
from mlhunt.hunt.events import GroupBatch, Population
from tests import hunt_oracle_probing as oracle

EVASION, MEMBERSHIP, INVERSION = (
    "MLH-HUNT-EVASION-PROBING",
    "MLH-HUNT-MEMBERSHIP-PROBING",
    "MLH-HUNT-INVERSION-SWEEP",
)
ORACLE = {EVASION: oracle.evasion, MEMBERSHIP: oracle.membership, INVERSION: oracle.inversion}


def near_duplicates(batch: GroupBatch, pop: Population, cell: float) -> np.ndarray:
    """The near-duplicate matches both probing detectors score (the evasion detector's)."""
    (det,) = load_detectors([EVASION], params={EVASION: {"cell": cell}})
    return det.score(batch, pop).columns["match"]


def make_pop(rng: np.random.Generator, d: int) -> Population:
    lo = rng.uniform(-5, 5, d).round(1)
    hi = lo + rng.choice([0.0, 0.5, 1.0, 10.0, 1000.0], d)  # 0: degenerate 1..99% range
    edges = tuple(np.linspace(a, b, 5) for a, b in zip(lo, hi, strict=True))
    return Population(
        n_events=1,
        n_clients=1,
        d=d,
        classes=("a", "b", "c"),
        lower=lo - 1.0,
        upper=np.where(rng.random(d) < 0.2, lo - 1.0, hi + 1.0),  # some constant features
        mean=np.zeros(d),
        std=np.ones(d),
        edges=edges,
        bin_probs=tuple(np.full(4, 0.25) for _ in range(d)),
        label_shares={},
        near_margin=0.1,
        near_share=0.1,
        volume_q={},
    )


def make_batch(rng: np.random.Generator, d: int, n_groups: int, long: int = 0) -> GroupBatch:
    """Groups of random length (0, 1, a few, or ``long``), whose events derive from a few base
    records by retries, one-field steps (sweeps), small multiplicative noise and fresh draws."""
    lengths = rng.choice([0, 1, 2, 5, 30, 80], n_groups)
    if long:
        lengths[rng.integers(n_groups)] = long
    # the oracle's seg_cumsum reads c[-1] for a *leading* empty group (engines never make
    # empty groups); empty groups elsewhere are fine, leading ones have their own test
    lengths[0] = max(lengths[0], 1)
    n = int(lengths.sum())
    x = np.empty((n, d))
    grid = np.linspace(-6.0, 6.0, 25)  # coarse values: exact ties and cell boundaries
    for i in range(n):
        r = rng.random()
        if i == 0 or r < 0.15:
            x[i] = rng.choice(grid, d) if rng.random() < 0.5 else rng.normal(0, 3, d)
        else:
            j = max(0, i - int(rng.integers(1, 4)))
            x[i] = x[j]
            if np.isnan(x[i]).any():
                x[i] = rng.choice(grid, d)
            elif r < 0.3:
                pass  # exact retry
            elif r < 0.55:  # one field stepped: sweeps and what-if variants
                f = int(rng.integers(min(d, 3)))
                x[i, f] = (
                    x[i - 1, f] + rng.choice([-1.0, 0.5, 1.0, 2.0])
                    if not np.isnan(x[i - 1, f])
                    else 0.0
                )
            elif r < 0.8:  # multiplicative noise on several fields
                k = int(rng.integers(1, d + 1))
                f = rng.choice(d, k, replace=False)
                x[i, f] *= 1.0 + rng.choice([-1, 1], k) * rng.choice([1e-3, 0.01, 0.05], k)
            else:  # a small additive nudge: near duplicates across cells
                x[i] += rng.normal(0, 0.02, d)
    nan_rows = rng.random(n) < 0.05
    x[nan_rows] = np.nan
    if n and rng.random() < 0.3:
        x[rng.integers(n), rng.integers(d)] = rng.choice([np.inf, -np.inf, 1e300])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return GroupBatch(
        scope="client_id",
        keys=[f"c{g}" for g in range(n_groups)],
        offsets=offsets,
        ts=np.arange(n, dtype=np.float64),
        x=x,
        label=rng.integers(-1, 3, n),
        margin=np.full(n, np.nan),
        status=np.full(n, 200),
        client=np.zeros(n, dtype=object),
        file=np.zeros(n, dtype=object),
        line=np.arange(n),
    )


def params(rng: np.random.Generator, det_id: str) -> dict[str, float]:
    """Thresholds small enough that the random batches cross them."""
    if det_id == EVASION:
        return {
            "cell": float(rng.choice([0.05, 0.2, 1.0])),
            "min_flips": 2.0,
            "flip_share": 0.05,
            "min_chain": 3.0,
            "chain_share": 0.2,
            "min_events": float(rng.choice([1, 5])),
        }
    if det_id == MEMBERSHIP:
        return {
            "cell": float(rng.choice([0.02, 0.1, 1.0])),
            "min_changed": 2.0,
            "max_step": float(rng.choice([0.03, 0.5])),
            "min_repeats": 2.0,
            "repeat_share": 0.1,
            "min_events": float(rng.choice([1, 5])),
        }
    return {
        "min_length": float(rng.choice([2, 3, 8])),
        "min_coverage": float(rng.choice([0.0, 0.1, 0.5])),
        "min_sweeps": 2.0,
    }


def assert_same(got: Any, want: Any) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    if want.dtype.kind == "f":
        np.testing.assert_array_equal(got, want)  # bit for bit (NaN == NaN here)
    else:
        assert got.dtype.kind == want.dtype.kind
        np.testing.assert_array_equal(got, want)


def check_detector(det_id: str, batch: GroupBatch, pop: Population, p: dict[str, float]) -> None:
    (det,) = load_detectors([det_id], params={det_id: p})
    scored = det.score(batch, pop)
    with np.errstate(all="ignore"):  # inf inputs: the oracle warns, the kernels do not
        online, cols = ORACLE[det_id](batch, pop, {**det.spec.params, **p})
    assert_same(scored.online, online)
    assert set(scored.columns) == set(cols)
    for name, want in cols.items():
        assert_same(scored.columns[name], want)
    # evidence() reads the columns: the same report from the kernel's as from the oracle's
    for g in np.flatnonzero(batch.lengths > 0)[:3].tolist():
        with np.errstate(all="ignore"):
            got_ev = det.evidence(batch, pop, scored, g, 0)
            want_ev = det.evidence(batch, pop, Scored(online, cols), g, 0)
        assert json.dumps(got_ev, sort_keys=True) == json.dumps(want_ev, sort_keys=True)  # NaN


def check_all(seed: int, d: int, n_groups: int, long: int = 0) -> None:
    rng = np.random.default_rng(seed)
    pop = make_pop(rng, d)
    batch = make_batch(rng, d, n_groups, long)
    for cell in (0.02, 0.05, 0.5):
        got = near_duplicates(batch, pop, cell)
        with np.errstate(all="ignore"):
            want = oracle.near_duplicates(batch, pop, cell)
        assert_same(got, want[0])
    for det_id in ORACLE:
        fresh = GroupBatch(
            **{
                k: getattr(batch, k)
                for k in (
                    "scope",
                    "keys",
                    "offsets",
                    "ts",
                    "x",
                    "label",
                    "margin",
                    "status",
                    "client",
                    "file",
                    "line",
                )
            }
        )
        check_detector(det_id, fresh, pop, params(rng, det_id))


@pytest.mark.parametrize("seed", range(12))
def test_tabular_batches_match_the_oracle(seed: int) -> None:
    check_all(seed, d=int(np.random.default_rng(seed).integers(1, 12)), n_groups=9)


@pytest.mark.parametrize("seed", range(3))
def test_long_vectors_hash_in_chunks_and_match(seed: int) -> None:
    # d > 16: 8-coordinate chunks, a near duplicate needs half of them; the chain rate counts
    check_all(100 + seed, d=int(np.random.default_rng(seed).choice([17, 40])), n_groups=5)


def test_long_group_and_empty_batch() -> None:
    check_all(7, d=6, n_groups=4, long=3000)
    check_all(8, d=6, n_groups=3, long=0)


def test_leading_empty_groups_change_nothing() -> None:
    rng = np.random.default_rng(11)
    pop = make_pop(rng, 4)
    batch = make_batch(rng, 4, 6)
    padded = GroupBatch(
        **{
            **{
                k: getattr(batch, k)
                for k in ("scope", "ts", "x", "label", "margin", "status", "client", "file", "line")
            },
            "keys": ["e1", "e2", *batch.keys],
            "offsets": np.concatenate([[0, 0], batch.offsets]),
        }
    )
    for det_id in ORACLE:
        (det,) = load_detectors([det_id], params={det_id: params(rng, det_id)})
        want, got = det.score(batch, pop), det.score(padded, pop)
        assert_same(got.online, want.online)
        for name in want.columns:
            assert_same(got.columns[name], want.columns[name])


def test_vectors_longer_than_the_multipliers() -> None:
    """Images of more than len(_MULT) = 512 values (the numpy code failed there): the
    multipliers repeat, each chunk has its own table, and a noisy copy still matches."""
    rng = np.random.default_rng(5)
    d = 600
    pop = dataclasses.replace(make_pop(rng, d), edges=tuple(np.array([0.0, 1.0]) for _ in range(d)))
    img = rng.random(d)
    x = np.stack([img, img + rng.normal(0, 1e-4, d), rng.random(d), img])
    batch = GroupBatch(
        scope="client_id",
        keys=["a"],
        offsets=np.array([0, 4], dtype=np.int64),
        ts=np.arange(4.0),
        x=x,
        label=np.zeros(4, dtype=np.int64),
        margin=np.full(4, np.nan),
        status=np.zeros(4),
        client=np.zeros(4, dtype=object),
        file=np.zeros(4, dtype=object),
        line=np.arange(4),
    )
    assert near_duplicates(batch, pop, 0.05).tolist() == [-1, 0, -1, 1]


def test_known_chain_by_hand() -> None:
    """A small case worked out by hand, so an off-by-one in the kernels shows even if the
    oracle were wrong in the same way: the match is the *latest* earlier near duplicate of
    the *same* group, NaN rows never match, and the flips/noisy counts are online."""
    rng = np.random.default_rng(0)
    pop = make_pop(rng, 3)
    pop = dataclasses.replace(pop, edges=tuple(np.array([0.0, 1.0]) for _ in range(3)))
    # (width 1: robust unit = value)
    base = np.array([0.21, 0.21, 0.21])
    x = np.array([base, base, base * 1.01, [np.nan] * 3, base * 1.01, [5.0, 5, 5], base])
    offsets = np.array([0, 5, 7], dtype=np.int64)  # group 2 starts with [5,5,5], then base
    batch = GroupBatch(
        scope="client_id",
        keys=["a", "b"],
        offsets=offsets,
        ts=np.arange(7.0),
        x=x,
        label=np.array([0, 0, 1, 0, 1, 0, 1]),
        margin=np.full(7, np.nan),
        status=np.zeros(7),
        client=np.zeros(7, dtype=object),
        file=np.zeros(7, dtype=object),
        line=np.arange(7),
    )
    assert near_duplicates(batch, pop, 0.05).tolist() == [-1, 0, 1, -1, 2, -1, -1]
    (ev,) = load_detectors([EVASION], params={EVASION: {"min_events": 1}})
    s = ev.score(batch, pop)
    assert s.columns["near"].tolist() == [False, False, True, False, False, False, False]
    assert s.columns["flip"].tolist() == [False, False, True, False, False, False, False]
    assert s.columns["flips"].tolist() == [0, 0, 1, 1, 1, 0, 0]
    (mem,) = load_detectors([MEMBERSHIP], params={MEMBERSHIP: {"min_events": 1}})
    assert mem.score(batch, pop).columns["noisy"].tolist() == [False, False, True] + [False] * 4


def test_noisy_repeat_against_an_infinite_field_is_not_small() -> None:
    """inf and 1e300 share a hash (both past the int64 range), so the pair is a near
    duplicate; its relative step on that field is inf/inf = NaN, which is not small."""
    rng = np.random.default_rng(1)
    pop = dataclasses.replace(make_pop(rng, 3), edges=tuple(np.array([0.0, 1.0]) for _ in range(3)))
    x = np.array([[np.inf, 0.21, 0.21], [1e300, 0.2121, 0.2121]])
    batch = GroupBatch(
        scope="client_id",
        keys=["a"],
        offsets=np.array([0, 2], dtype=np.int64),
        ts=np.arange(2.0),
        x=x,
        label=np.array([0, 0]),
        margin=np.full(2, np.nan),
        status=np.zeros(2),
        client=np.zeros(2, dtype=object),
        file=np.zeros(2, dtype=object),
        line=np.arange(2),
    )
    assert near_duplicates(batch, pop, 0.05).tolist() == [-1, 0]
    check_detector(MEMBERSHIP, batch, pop, {"min_events": 1.0})
    (mem,) = load_detectors([MEMBERSHIP], params={MEMBERSHIP: {"min_events": 1}})
    assert not mem.score(batch, pop).columns["noisy"].any()


@pytest.mark.fuzz
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 20), n_groups=st.integers(1, 8))
@settings(max_examples=max(10, settings().max_examples // 3))
def test_fuzz_kernels_match_the_oracle(seed: int, d: int, n_groups: int) -> None:
    check_all(seed, d, n_groups)


def sweep_batch(groups: list[np.ndarray]) -> GroupBatch:
    """One batch of the given groups' inputs (a group per client, in this order)."""
    x = np.concatenate(groups)
    n = len(x)
    return GroupBatch(
        scope="client_id",
        keys=[f"c{g}" for g in range(len(groups))],
        offsets=np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64),
        ts=np.arange(n, dtype=np.float64),
        x=x,
        label=np.zeros(n, dtype=np.int64),
        margin=np.full(n, np.nan),
        status=np.full(n, 200),
        client=np.zeros(n, dtype=object),
        file=np.zeros(n, dtype=object),
        line=np.arange(n),
    )


def test_sweep_coverage_does_not_depend_on_the_batch() -> None:
    """Issue 23: the Spark engine batches groups by hash bucket, DuckDB by its scan, so a
    client's scores must not depend on the other groups of its batch. A sweep of feature 0
    from 21 to 48 (width 54) covers exactly half of the range at its 10th query; the coverage
    is exactly 0.5 and the sweep is done there, alone or after other clients' runs (the
    coverage used to be computed over the whole batch's values and runs, and its rounding
    put it just under or just over 0.5 depending on the neighbours)."""
    rng = np.random.default_rng(23)
    pop = make_pop(rng, 2)
    pop = dataclasses.replace(pop, edges=(np.array([0.0, 54.0]), np.array([0.0, 10.0])))
    sweep = np.array([[v, 7.0] for v in range(21, 49, 3)])  # 21, 24, ..., 48: 10 queries
    p = {"min_length": 8.0, "min_coverage": 0.5, "min_sweeps": 1.0}
    (det,) = load_detectors([INVERSION], params={INVERSION: p})
    alone = det.score(sweep_batch([sweep]), pop)
    assert alone.columns["coverage"][9] == 0.5
    assert alone.columns["sweep_done"].tolist() == [False] * 9 + [True]
    for n_before in (1, 3, 40, 400):  # other clients' sweeps and jumps, of other sizes
        others = [
            np.column_stack([np.cumsum(rng.choice([0.0, 1.5, 7.0, -300.0], k)), np.zeros(k)])
            for k in rng.integers(1, 60, n_before)
        ]
        scored = det.score(sweep_batch([*others, sweep]), pop)
        for name in ("coverage", "sweep_done", "length"):
            assert_same(scored.columns[name][-10:], alone.columns[name])
        assert_same(scored.online[-10:], alone.online)
