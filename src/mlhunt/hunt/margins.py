"""The answers' top-2 margins per client, bucketed alike in every engine: the baseline of the
natural-extraction detector (``detectors/natural.py``), which needs the population's uncertain
tail whatever the model's confidence scale (loan answers spread over 0..1, fraud answers sit
above 0.99). :class:`~mlhunt.hunt.events.PopulationBuilder` keeps the per-client counts and
:func:`robust_margin_cdf` makes the typical client's shares of them."""

from __future__ import annotations

import numpy as np

#: Each client's answers are counted per bucket of their top-2 margin, cut where the margin's
#: odds m / (1 - m) pass 10 ** (k / MARGIN_STEPS) for k in MARGIN_LO+1..MARGIN_HI (margins
#: about 0.0099 to 0.9999): the natural-extraction test then finds the population's uncertain
#: tail whatever the model's confidence scale. Buckets are numbered MARGIN_LO..MARGIN_HI.
MARGIN_STEPS, MARGIN_LO, MARGIN_HI = 8, -17, 32
#: The cut points: a margin is below ``MARGIN_GRID[j]`` exactly when its bucket is at most
#: ``MARGIN_LO + j``. Every engine compares margins with these very numbers (a binary search,
#: :func:`margin_bucket_tree`), so DuckDB, Spark and the guard bucket every margin alike.
MARGIN_GRID = 1 / (1 + 10.0 ** (-np.arange(MARGIN_LO + 1, MARGIN_HI + 1) / MARGIN_STEPS))
#: Clients with at least this many known margins make the population's margin baseline.
MARGIN_MIN_EVENTS = 20


def margin_bucket(margin: np.ndarray) -> np.ndarray:
    """The bucket of each margin: ``MARGIN_LO`` + the number of cut points at or below it (NaN
    stays NaN)."""
    m = np.asarray(margin, dtype=np.float64)
    b = MARGIN_LO + np.searchsorted(MARGIN_GRID, m, side="right").astype(np.float64)
    return np.where(np.isnan(m), np.nan, b)


BucketTree = int | tuple[float, "BucketTree", "BucketTree"]


def margin_bucket_tree(lo: int = 0, hi: int = len(MARGIN_GRID)) -> BucketTree:
    """:func:`margin_bucket` as a binary search an engine renders into its own expression:
    a leaf is a bucket, a node ``(cut, below, at_or_above)`` compares ``margin < cut``."""
    if lo == hi:
        return MARGIN_LO + lo
    mid = (lo + hi) // 2
    return (float(MARGIN_GRID[mid]), margin_bucket_tree(lo, mid), margin_bucket_tree(mid + 1, hi))


def margin_bucket_sql(tree: BucketTree | None = None) -> str:
    """:func:`margin_bucket` in SQL over a column ``margin`` (NULL stays NULL)."""
    if tree is None:
        return (
            f"CASE WHEN margin IS NULL THEN NULL ELSE {margin_bucket_sql(margin_bucket_tree())} END"
        )
    if isinstance(tree, int):
        return str(tree)
    cut, below, above = tree
    lo, hi = margin_bucket_sql(below), margin_bucket_sql(above)
    return f"CASE WHEN margin < {cut!r} THEN {lo} ELSE {hi} END"


def robust_margin_cdf(counts: dict[str, np.ndarray], cut: float = 0.2) -> np.ndarray:
    """Per :data:`MARGIN_GRID` cut point, the share of answers below it for the typical client:
    the mean over clients with :data:`MARGIN_MIN_EVENTS` known margins after dropping the
    ``cut`` highest and lowest shares at each point (one vote per client)."""
    rows = np.array([c for c in counts.values() if c.sum() >= MARGIN_MIN_EVENTS], dtype=np.float64)
    if len(rows) == 0:
        return np.empty(0)
    below = np.cumsum(rows, axis=1)[:, :-1]
    shares = np.sort(below / rows.sum(axis=1, keepdims=True), axis=0)
    k = int(cut * len(shares))
    return shares[k : len(shares) - k].mean(axis=0)  # type: ignore[no-any-return]
