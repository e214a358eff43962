"""The query-distance kernels (src/mlhunt/hunt/detectors/_kern_distance.py) against the numpy
code they replaced (tests/hunt_oracle_distance.py): the same numbers bit for bit (float32
distances summed in numpy's einsum order, float32 KS), hence the same bins, edges and alerts.

Sensitivity: every comparison is exact, and ``test_comparisons_see_off_by_one`` checks that
the batches used here tell a window of W from W-1 and a running count that includes the
current event from one that does not, so a kernel off by one event fails these tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlhunt.hunt.detectors import _kern_distance as kern
from mlhunt.hunt.detectors import distance as dist_mod
from mlhunt.hunt.engines import duckdb as duck_engine
from tests import hunt_oracle_distance as oracle

eq = np.testing.assert_array_equal  # NaN == NaN here, and dtypes are checked separately


def _offsets(rng: np.random.Generator, n_groups: int, long: bool) -> np.ndarray:
    """Group sizes with empty and one-event groups, and (``long``) groups longer than the
    kernel's chunk so the chunk seams are crossed. Never empty first: the oracle's
    ``seg_cumsum`` reads ``c[-1]`` there (see ``test_leading_empty_group``)."""
    sizes = rng.choice([0, 1, 2, 5, 17, 40, 90], size=n_groups)
    sizes[0] = max(sizes[0], 1)
    if long:
        sizes[rng.integers(0, n_groups)] = kern.CHUNK * 2 + 37
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _inputs(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 inputs with duplicated rows (distance 0), coarse values (tied distances), a
    few NaN/inf rows and rows without an input (``valid`` False)."""
    z = (rng.normal(size=(n, d)) * rng.uniform(0.05, 20, d)).astype(np.float32)
    if n > 4:
        z[rng.integers(0, n, n // 5)] = z[rng.integers(0, n, n // 5)]  # duplicates
        coarse = rng.random(n) < 0.2
        z[coarse] = np.round(z[coarse])
        z[rng.integers(0, n, max(1, n // 50))] = np.nan
        z[rng.integers(0, n, max(1, n // 80)), 0] = np.inf
    valid = rng.random(n) > 0.15
    return z, valid


def _batches(seed: int, count: int = 14) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    dims = [1, 2, 3, 4, 5, 7, 9, 15, 16, 17, 31, 32, 33, 50]
    for k in range(count):
        offsets = _offsets(rng, int(rng.integers(1, 14)), long=k % 3 == 0)
        n = int(offsets[-1])
        z, valid = _inputs(rng, n, dims[k % len(dims)])
        # the detector's robust inputs are float64: the kernel rounds them to float32
        robust = z.astype(np.float64) * (1 + rng.normal(0, 1e-6, z.shape))
        window = int(rng.choice([0, 1, 3, 16, 16, 25]))
        yield {
            "z": z,
            "robust": robust,
            "offsets": offsets,
            "valid": valid,
            "diff": rng.integers(0, 5, n),
            "window": window,
        }


def _edges(rng: np.random.Generator, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges taken from the distances themselves (as reference_edges does: exact ties)."""
    fin = np.unique(dist[np.isfinite(dist)].astype(np.float64))
    if len(fin) == 0:
        fin = np.array([1.0])
    edges = np.unique(rng.choice(fin, size=min(19, len(fin)), replace=False))
    cdf = np.sort(rng.uniform(0.01, 1.0, len(edges)))
    return edges, cdf


def _oracle_score(
    dist: np.ndarray,
    b: dict[str, Any],
    edges: np.ndarray,
    cdf: np.ndarray,
    limits: tuple[float, ...] = (3.0, 0.3, 20),
) -> dict[str, np.ndarray]:
    """The detector's score() before the kernels, on the oracle functions (``limits``: the
    yaml's lambda_threshold, d_threshold, min_events)."""
    weight = oracle.counted(b["valid"], b["diff"], b["offsets"]) & np.isfinite(dist)
    m, d_plus, _ = oracle.online_ks(dist, weight, b["offsets"], edges, cdf)
    lam = d_plus * np.sqrt(m)
    s = np.minimum(lam / limits[0], d_plus / limits[1])
    return {
        "dist": dist,
        "weight": weight,
        "m": m,
        "d_plus": d_plus,
        "lam": lam,
        "online": np.where(m >= limits[2], s, 0.0),
    }


def _kernel(
    z: np.ndarray,
    b: dict[str, Any],
    window: int,
    edges: Any = (),
    cdf: Any = (),
) -> dict[str, np.ndarray]:
    """The fused kernel at any history ``window`` (the detector uses ``WINDOW``), by column."""
    names = ("dist", "weight", "m", "d_plus", "lam", "online")
    got = kern.distance_test(
        np.ascontiguousarray(z),
        b["offsets"],
        b["valid"],
        b["diff"].astype(np.int64),
        window,
        np.asarray(edges, dtype=np.float64),
        np.asarray(cdf, dtype=np.float32),
        np.array([3.0, 0.3, 20.0]),
    )
    return dict(zip(names, got, strict=True))


def _oracle_counted(b: dict[str, Any], dist: np.ndarray, window: int) -> np.ndarray:
    return oracle.counted(b["valid"], b["diff"], b["offsets"], window) & np.isfinite(dist)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_distances_match_oracle_bit_for_bit(seed: int) -> None:
    for b in _batches(seed):
        got = _kernel(b["z"], b, b["window"])
        want = oracle.window_nn(b["z"], b["offsets"], b["valid"], b["window"])
        assert got["dist"].dtype == want.dtype == np.float32
        eq(got["dist"], want)
        eq(got["weight"], _oracle_counted(b, want, b["window"]))


@pytest.mark.parametrize("seed", [3, 4])
def test_online_ks_matches_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for b in _batches(seed):
        dist = oracle.window_nn(b["z"], b["offsets"], b["valid"], b["window"])
        edges, cdf = _edges(rng, dist)
        got = _kernel(b["z"], b, b["window"], edges, cdf)
        weight = _oracle_counted(b, dist, b["window"])
        m, d_plus, _ = oracle.online_ks(dist, weight, b["offsets"], edges, cdf)
        for k, want in (("m", m), ("d_plus", d_plus)):
            assert got[k].dtype == want.dtype
            eq(got[k], want)


def test_online_ks_without_edges_and_empty_batch() -> None:
    b = {
        "offsets": np.array([0, 3, 3, 5]),
        "valid": np.ones(5, dtype=bool),
        "diff": np.full(5, 2),
    }
    z = np.arange(5, dtype=np.float32)[:, None] ** 2
    for edges, cdf in ((np.empty(0), np.empty(0)), (np.array([1.5]), np.array([0.5]))):
        got = _kernel(z, b, 1, edges, cdf)
        weight = _oracle_counted(b, got["dist"], 1)
        want = oracle.online_ks(got["dist"], weight, b["offsets"], edges, cdf)
        eq(got["m"], want[0])
        eq(got["d_plus"], want[1])
    empty = {"offsets": np.array([0]), "valid": np.zeros(0, bool), "diff": np.zeros(0, int)}
    got = _kernel(np.zeros((0, 3), dtype=np.float32), empty, 16, np.array([1.0]), [0.5])
    assert all(len(v) == 0 for v in got.values())


def test_leading_empty_group() -> None:
    """Batches start with a non-empty group, but the kernel does not rely on it: after empty
    groups the count starts at 0 (the numpy version's m read the batch's last total there)."""
    b = {
        "offsets": np.array([0, 0, 0, 3, 5]),
        "valid": np.ones(5, dtype=bool),
        "diff": np.full(5, 2),
    }
    z = np.array([[0.0], [3.0], [4.0], [1.0], [1.5]], dtype=np.float32)
    got = _kernel(z, b, 1, np.array([1.0]), np.array([0.5]))
    eq(got["dist"], [np.inf, 3.0, 1.0, np.inf, 0.5])
    eq(got["weight"], [False, True, True, False, True])
    eq(got["m"], [0, 1, 2, 0, 1])
    eq(got["d_plus"], [0.5, 0.5, 0.0, 0.5, 0.0])


@pytest.mark.parametrize("seed", [5, 6])
def test_fused_detector_pass_matches_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for b in _batches(seed):
        for robust in (b["robust"], b["z"]):  # float64 (the detector's), float32
            z = oracle.project(robust)
            want_dist = oracle.window_nn(z, b["offsets"], b["valid"])  # detector: WINDOW
            edges, cdf = _edges(rng, want_dist)
            want = _oracle_score(want_dist, b, edges, cdf)
            online, cols = dist_mod.distance_test(
                robust, b["offsets"], b["valid"], b["diff"], edges, cdf, 3.0, 0.3, 20
            )
            eq(online, want["online"])
            assert set(cols) == {"dist", "weight", "m", "d_plus", "lam"}
            for k, v in cols.items():
                assert v.dtype == want[k].dtype, k
                eq(v, want[k])


@pytest.mark.parametrize("d", [3, 9, 50])
def test_reference_edges_identical(d: int) -> None:
    rng = np.random.default_rng(d)
    base = rng.normal(size=(9000, d)) * rng.uniform(0.1, 5, d)
    base[rng.integers(0, 9000, 500)] = base[rng.integers(0, 9000, 500)]  # duplicated rows
    base[rng.integers(0, 9000, 60), 0] = np.nan
    robust = (base - np.nanmedian(base, axis=0)) / np.nanstd(base, axis=0)
    got = dist_mod.reference_edges(base, robust)
    want = oracle.reference_edges(base, robust)
    assert len(want[0]) > 10
    for g, w in zip(got, want, strict=True):
        eq(g, w)


class _NoWarm:
    def join(self) -> None:
        pass


def test_detector_on_real_traffic_matches_oracle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole hunt on the distance test's traffic: every batch the detector scores (and
    the population pass of reference_edges, without edges) gives the oracle's columns, and
    the extractor still alerts."""
    from mlhunt.hunt.api import hunt
    from tests.test_hunt_distance import _logs, _write

    path = _write(tmp_path, _logs(np.random.default_rng(21)))
    real = dist_mod.distance_test
    seen: list[int] = []

    def checked(
        robust: np.ndarray,
        offsets: np.ndarray,
        valid: np.ndarray,
        diff: np.ndarray,
        edges: np.ndarray,
        cdf: np.ndarray,
        *limits: float,
    ) -> Any:
        online, cols = real(robust, offsets, valid, diff, edges, cdf, *limits)
        b = {"valid": valid, "diff": diff, "offsets": offsets}
        z = oracle.project(robust)
        want = _oracle_score(oracle.window_nn(z, offsets, valid), b, edges, cdf, limits)
        eq(online, want["online"])
        for k, v in cols.items():
            eq(v, want[k])
        seen.append(len(edges))
        return online, cols

    monkeypatch.setattr(dist_mod, "distance_test", checked)
    # the engine loads kernels by running every detector on synthetic batches in a thread:
    # those calls would reach the patched function too (and race with the hunt's)
    monkeypatch.setattr(duck_engine, "_Warmer", _NoWarm)
    res = hunt(path, detectors=["MLH-HUNT-QUERY-DISTANCE"])
    assert seen[0] == 0 and len(seen) > 1 and all(seen[1:])  # reference, then batches
    assert "extractor" in {a.target for a in res.alerts}


def test_comparisons_see_off_by_one() -> None:
    """The batches above would catch a kernel that looked one event too far or too short, or
    counted the current event (or not) once too often."""
    window_seen = count_seen = False
    rng = np.random.default_rng(9)
    for b in _batches(0):
        if b["window"] < 2:
            continue
        w = oracle.window_nn(b["z"], b["offsets"], b["valid"], b["window"])
        short = oracle.window_nn(b["z"], b["offsets"], b["valid"], b["window"] - 1)
        long = oracle.window_nn(b["z"], b["offsets"], b["valid"], b["window"] + 1)
        window_seen |= not np.array_equal(w, short) and not np.array_equal(w, long)
        edges, cdf = _edges(rng, w)
        weight = rng.random(len(w)) < 0.8
        m, dp, _ = oracle.online_ks(w, weight, b["offsets"], edges, cdf)
        shifted = np.concatenate([[False], weight[:-1]])  # the count one event late
        m2, dp2, _ = oracle.online_ks(w, shifted, b["offsets"], edges, cdf)
        count_seen |= not np.array_equal(m, m2) and not np.array_equal(dp, dp2)
    assert window_seen and count_seen


@pytest.mark.fuzz
@settings(max_examples=max(10, settings().max_examples // 3))
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(1, 40),
    window=st.integers(-1, 20),
    sizes=st.lists(st.integers(0, 70), min_size=1, max_size=12),
)
def test_fuzz_kernels_match_oracle(seed: int, d: int, window: int, sizes: list[int]) -> None:
    rng = np.random.default_rng(seed)
    sizes[0] = max(sizes[0], 1)  # as _offsets
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(offsets[-1])
    z, valid = _inputs(rng, n, d)
    b = {"valid": valid, "diff": rng.integers(0, 4, n), "offsets": offsets}
    want = oracle.window_nn(z, offsets, valid, window)
    edges, cdf = _edges(rng, want)
    got = _kernel(z, b, window, edges, cdf)
    eq(got["dist"], want)
    weight = _oracle_counted(b, want, window)
    m, d_plus, _ = oracle.online_ks(want, weight, offsets, edges, cdf)
    eq(got["m"], m)
    eq(got["d_plus"], d_plus)
    robust = z.astype(np.float64) * (1 + rng.normal(0, 1e-6, z.shape))
    online, cols = dist_mod.distance_test(robust, offsets, valid, b["diff"], edges, cdf, 3, 0.3, 20)
    full = _oracle_score(oracle.window_nn(oracle.project(robust), offsets, valid), b, edges, cdf)
    eq(online, full["online"])
    for k, v in cols.items():
        eq(v, full[k])
