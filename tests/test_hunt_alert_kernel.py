"""The compiled first-crossing / peak pass of ``alerts_from_scores`` against the numpy code it
replaced (``np.nan_to_num`` then ``seg_first_true`` and ``seg_max``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlhunt.hunt._kern_segments import first_and_peak
from mlhunt.hunt.events import seg_max
from tests.hunt_segments import seg_first_true


def _numpy(online: np.ndarray, offsets: np.ndarray, at: float) -> tuple[np.ndarray, np.ndarray]:
    clean = np.nan_to_num(online, nan=0.0, posinf=1e6)
    return seg_first_true(clean >= at, offsets), seg_max(clean, offsets)


VALUES = st.one_of(
    st.floats(-3, 3),
    st.just(np.nan),
    st.just(np.inf),
    st.just(-np.inf),
    st.sampled_from([0.0, 1.0, 1e6]),
)


@pytest.mark.fuzz
@given(st.lists(st.lists(VALUES, max_size=12), max_size=8), st.sampled_from([0.0, 1.0, 1e6, 2.5]))
def test_first_and_peak_match_numpy(groups: list[list[float]], at: float) -> None:
    online = np.array([v for g in groups for v in g], dtype=np.float64)
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64)
    first, peak = first_and_peak(online, offsets, at)
    want_first, want_peak = _numpy(online, offsets, at)
    assert first.tolist() == want_first.tolist()
    assert peak.tolist() == want_peak.tolist()


def test_first_crossing_is_inside_the_group() -> None:
    online = np.array([0.5, 2.0, 3.0, np.nan, np.inf, 0.1])
    offsets = np.array([0, 3, 3, 6], dtype=np.int64)
    first, peak = first_and_peak(online, offsets, 2.0)
    assert first.tolist() == [1, -1, 1]  # group 3 crosses at its 2nd event (inf -> 1e6)
    assert peak.tolist() == [3.0, -np.inf, 1e6]
