"""What detectors see: a :class:`GroupBatch` of many targets' events, and the :class:`Population`
they are compared with.

A group batch holds the events of several *targets* (client ids, or source addresses for
source-scoped detectors), sorted by (target, ts, file, line), as flat numpy arrays, plus
``offsets``: ``offsets[g]`` is the first row of group ``g`` and ``offsets[-1] == n``. Detectors
work on whole batches with segment operations (:func:`seg_max`, :func:`window_count`, ...),
never with a Python loop over events, so the same code runs on one group (a Spark
``applyInPandas`` call) or on thousands (a DuckDB batch).

Both engines build batches with :meth:`GroupBatch.from_arrow` / :meth:`GroupBatch.from_pandas`
from the normalised columns of :mod:`mlhunt.hunt.readers` and compute the :class:`Population`
with :class:`PopulationBuilder` (order-independent aggregates plus a deterministic per-client
sample), so both produce the same alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mlhunt.hunt.margins import MARGIN_GRID as MARGIN_GRID  # (re-exported)
from mlhunt.hunt.margins import (
    MARGIN_HI,
    MARGIN_LO,
    margin_bucket,
    robust_margin_cdf,
)
from mlhunt.hunt.margins import margin_bucket_sql as margin_bucket_sql  # (re-exported)

#: Quantiles that cut each feature into the bins of the distribution tests: fine in the tails,
#: where extraction queries land and natural traffic rarely goes.
BIN_QUANTILES = (0.01, 0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95, 0.99)
#: At most this many events per client enter the population sample (a heavy client, benign or
#: hostile, cannot drag the baseline towards itself).
SAMPLE_PER_CLIENT = 32
SAMPLE_MAX = 200_000


def sample_per_client(n_clients: int) -> int:
    """Events per client in the population sample: ``SAMPLE_PER_CLIENT``, fewer when there are
    so many clients that the sample would pass ``SAMPLE_MAX`` (never fewer than 2)."""
    return max(2, min(SAMPLE_PER_CLIENT, SAMPLE_MAX // max(n_clients, 1)))


@dataclass(frozen=True)
class Population:
    """Statistics of all traffic (or of ``--reference`` inputs) that targets are compared with.

    ``lower``/``upper``/``mean``/``std`` are exact per-feature aggregates; ``edges`` (d lists of
    increasing cut points) and ``bin_probs`` (d arrays, one share per bin) come from the
    client-balanced sample; ``near_share`` is the share of events whose top-2 margin is below
    ``near_margin``; ``volume_q`` maps "p50"/"p90"/"p99"/"max" to per-client event counts.
    """

    n_events: int
    n_clients: int
    d: int
    classes: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    edges: tuple[np.ndarray, ...]
    bin_probs: tuple[np.ndarray, ...]
    label_shares: dict[str, float]
    near_margin: float
    near_share: float
    volume_q: dict[str, float]
    reference: bool = False
    #: Quantile edges of the population's nearest-earlier-query distances (robust units, see
    #: ``detectors/distance.py``) and the population's CDF at them: the distance test's baseline.
    nn_edges: np.ndarray = field(default_factory=lambda: np.empty(0))
    nn_cdf: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: The typical client's share of answers with a margin below each ``MARGIN_GRID`` cut
    #: point (a trimmed mean over clients, so attackers and heavy clients cannot move it; empty
    #: when no client has :data:`MARGIN_MIN_EVENTS` known margins).
    margin_cdf: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def span(self) -> np.ndarray:
        """Per-feature range used to normalise inputs (1 where a feature is constant)."""
        s = self.upper - self.lower
        return np.where(s > 0, s, 1.0)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        return (x - self.lower) / self.span

    @property
    def width(self) -> np.ndarray:
        """Per-feature 1st..99th percentile range (the full range where that is degenerate):
        the unit of "near" for heavy-tailed features such as amounts."""
        if not self.edges:
            return self.span
        lo = np.array([e[0] for e in self.edges])
        hi = np.array([e[-1] for e in self.edges])
        return np.where(hi > lo, hi - lo, self.span)

    def robust(self, x: np.ndarray) -> np.ndarray:
        """Inputs in units of :attr:`width`."""
        return x / self.width

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.n_events,
            "clients": self.n_clients,
            "features": self.d,
            "classes": list(self.classes),
            "label_shares": {k: round(v, 4) for k, v in self.label_shares.items()},
            "near_boundary_share": round(self.near_share, 4),
            "volume_per_client": {k: round(v, 1) for k, v in self.volume_q.items()},
            "baseline": "reference" if self.reference else "logs",
        }


@dataclass
class PopulationBuilder:
    """Accumulates a :class:`Population` from batches of normalised events in any order.

    Feed it with :meth:`update` (numpy columns of one batch); :meth:`build` cuts the bins from
    the per-client sample: each client's first :func:`sample_per_client` events that have an
    input, ordered by (ts, file, line),
    selected by each engine (a window function, or the first rows of each group of a sorted
    table) and passed to :meth:`add_sample`.
    """

    near_margin: float = 0.2
    n: int = 0
    d: int = 0
    mins: np.ndarray | None = None
    maxs: np.ndarray | None = None
    sums: np.ndarray | None = None
    sumsq: np.ndarray | None = None
    n_input: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    near: int = 0
    n_margin: int = 0
    per_client: dict[str, int] = field(default_factory=dict)
    sample: list[np.ndarray] = field(default_factory=list)
    #: client -> answers per margin bucket (MARGIN_LO..MARGIN_HI, see :func:`margin_bucket`)
    margin_counts: dict[str, np.ndarray] = field(default_factory=dict)

    def add_margin_buckets(
        self, clients: np.ndarray, bucket: np.ndarray, count: np.ndarray
    ) -> None:
        """Per row: ``count`` answers of client ``clients[i]`` in margin bucket ``bucket[i]``
        (a client may come in several rows and calls)."""
        ids, inv = np.unique(np.asarray(clients).astype(str), return_inverse=True)
        hist = np.zeros((len(ids), MARGIN_HI - MARGIN_LO + 1), dtype=np.int64)
        np.add.at(hist, (inv, np.asarray(bucket, dtype=np.int64) - MARGIN_LO), count)
        for cid, row in zip(ids.tolist(), hist, strict=True):
            old = self.margin_counts.get(cid)
            self.margin_counts[cid] = row if old is None else old + row

    def update(
        self, client: np.ndarray, x: np.ndarray, label: np.ndarray, margin: np.ndarray
    ) -> None:
        """One batch: ``client`` (object array of ids), ``x`` (n, d; NaN rows = no input),
        ``label`` (object array), ``margin`` (float, NaN = unknown)."""
        self.n += len(client)
        ids, counts = np.unique(client.astype(str), return_counts=True)
        for cid, c in zip(ids.tolist(), counts.tolist(), strict=True):
            self.per_client[cid] = self.per_client.get(cid, 0) + c
        labs, lc = np.unique(label.astype(str), return_counts=True)
        for lab, c in zip(labs.tolist(), lc.tolist(), strict=True):
            self.labels[lab] = self.labels.get(lab, 0) + c
        ok_m = ~np.isnan(margin)
        self.n_margin += int(ok_m.sum())
        self.near += int((margin[ok_m] < self.near_margin).sum())
        if ok_m.any():
            self.add_margin_buckets(client[ok_m], margin_bucket(margin[ok_m]), 1)
        if x.ndim != 2 or x.shape[1] == 0:
            return
        rows = ~np.isnan(x).any(axis=1)
        xr = x[rows]
        if len(xr) == 0:
            return
        if self.mins is None:
            self.d = x.shape[1]
            self.mins, self.maxs = xr.min(axis=0), xr.max(axis=0)
            self.sums, self.sumsq = xr.sum(axis=0), (xr**2).sum(axis=0)
        else:
            assert self.maxs is not None and self.sums is not None and self.sumsq is not None
            self.mins = np.minimum(self.mins, xr.min(axis=0))
            self.maxs = np.maximum(self.maxs, xr.max(axis=0))
            self.sums = self.sums + xr.sum(axis=0)
            self.sumsq = self.sumsq + (xr**2).sum(axis=0)
        self.n_input += len(xr)

    def add_sample(self, x: np.ndarray) -> None:
        """Rows of the client-balanced sample (see the class docstring)."""
        x = x[~np.isnan(x).any(axis=1)] if x.ndim == 2 else x
        if len(x) and sum(len(s) for s in self.sample) < SAMPLE_MAX:
            self.sample.append(np.asarray(x, dtype=np.float64))

    def build(self, reference: np.ndarray | None = None) -> Population:
        """The population; ``reference`` (inputs known to be benign) replaces the sample and the
        ranges as the baseline of the distribution tests."""
        d = self.d if reference is None else reference.shape[1]
        if reference is not None:
            base = reference[~np.isnan(reference).any(axis=1)]
            lo, hi = base.min(axis=0), base.max(axis=0)
            mean, std = base.mean(axis=0), base.std(axis=0)
        elif self.mins is not None and self.n_input:
            assert self.maxs is not None and self.sums is not None and self.sumsq is not None
            base = np.concatenate(self.sample) if self.sample else np.empty((0, d))
            lo, hi = self.mins, self.maxs
            mean = self.sums / self.n_input
            std = np.sqrt(np.maximum(self.sumsq / self.n_input - mean**2, 0.0))
        else:
            base = np.empty((0, 0))
            lo = hi = mean = std = np.empty(0)
        edges, probs = bins_from_sample(base) if len(base) else ((), ())
        counts = np.array(sorted(self.per_client.values()) or [0], dtype=np.float64)
        total = max(self.n, 1)
        pop = Population(
            n_events=self.n,
            n_clients=len(self.per_client),
            d=d,
            classes=tuple(sorted(self.labels)),
            lower=np.asarray(lo, dtype=np.float64),
            upper=np.asarray(hi, dtype=np.float64),
            mean=np.asarray(mean, dtype=np.float64),
            std=np.asarray(std, dtype=np.float64),
            edges=edges,
            bin_probs=probs,
            label_shares={k: v / total for k, v in sorted(self.labels.items())},
            near_margin=self.near_margin,
            near_share=self.near / self.n_margin if self.n_margin else 0.0,
            volume_q={
                q: float(np.quantile(counts, p))
                for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
            },
            reference=reference is not None,
            margin_cdf=robust_margin_cdf(self.margin_counts),
        )
        if len(base) and base.shape[1]:
            from mlhunt.hunt.detectors.distance import reference_edges

            nn_edges, nn_cdf = reference_edges(base, pop.robust(base))
            pop = replace(pop, nn_edges=nn_edges, nn_cdf=nn_cdf)
        return pop


def bins_from_sample(sample: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Per feature: unique quantile cut points and the smoothed share of the sample per bin
    (``np.searchsorted(edges, v, side="right")`` gives a value's bin)."""
    edges, probs = [], []
    for f in range(sample.shape[1]):
        col = np.sort(sample[:, f])
        e = np.unique(np.quantile(col, BIN_QUANTILES, method="nearest"))
        counts = np.bincount(np.searchsorted(e, col, side="right"), minlength=len(e) + 1)
        p = (counts + 0.5) / (counts.sum() + 0.5 * len(counts))  # no bin is impossible
        edges.append(e)
        probs.append(p)
    return tuple(edges), tuple(probs)


@dataclass
class GroupBatch:
    """Events of several targets, sorted by (target, ts, file, line); see the module docstring.

    ``x`` is (n, d) float64 with NaN rows where a record had no input; ``label`` holds codes
    into ``classes`` (-1: unknown label); ``margin`` is top-1 minus top-2 probability (NaN:
    unknown); ``status`` is the HTTP status (0: unknown); ``client`` holds the client id of each
    event (useful for source-scoped groups).
    """

    scope: str  # "client_id" | "source_ip"
    keys: list[str]
    offsets: np.ndarray  # int64, len(keys) + 1
    ts: np.ndarray
    x: np.ndarray
    label: np.ndarray
    margin: np.ndarray
    status: np.ndarray
    client: np.ndarray
    file: np.ndarray
    line: np.ndarray
    #: Per-batch features shared by several detectors (``detectors/_features.py``: inputs in
    #: robust units, changes vs the previous query), computed once.
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.ts)

    @property
    def starts(self) -> np.ndarray:
        return self.offsets[:-1]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_columns(
        cls, scope: str, cols: dict[str, Any], classes: tuple[str, ...], d: int
    ) -> GroupBatch:
        """From column arrays already sorted by (scope key, ts, file, line): ``ts``,
        ``client_id``, ``source_ip``, ``input`` (list of lists or None), ``label``, ``margin``,
        ``status``, ``file``, ``line``."""
        key = np.asarray(cols[scope], dtype=object)
        n = len(key)
        if n:
            change = np.flatnonzero(key[1:] != key[:-1]) + 1
            starts = np.concatenate([[0], change]).astype(np.int64)
        else:
            starts = np.empty(0, dtype=np.int64)
        code = {c: i for i, c in enumerate(classes)}
        labels = np.fromiter((code.get(v, -1) for v in cols["label"]), np.int64, n)
        return cls(
            scope=scope,
            keys=[str(k) for k in key[starts]],
            offsets=np.append(starts, n).astype(np.int64),
            ts=np.asarray(cols["ts"], dtype=np.float64),
            x=input_matrix(cols["input"], d),
            label=labels,
            margin=_floats(cols["margin"]),
            status=np.nan_to_num(_floats(cols["status"]), nan=0.0).astype(np.int64),
            client=np.asarray(cols["client_id"], dtype=object),
            file=np.asarray(cols["file"], dtype=object),
            line=np.asarray(cols["line"], dtype=np.int64),
        )

    @classmethod
    def from_arrow(cls, scope: str, table: Any, classes: tuple[str, ...], d: int) -> GroupBatch:
        """From a pyarrow Table/RecordBatch with the reader's columns, sorted as above."""
        out = {k: table.column(k).to_numpy(zero_copy_only=False) for k in _SCALARS}
        out["input"] = table.column("input")
        return cls.from_columns(scope, out, classes, d)

    @classmethod
    def from_pandas(cls, scope: str, df: Any, classes: tuple[str, ...], d: int) -> GroupBatch:
        """From a pandas DataFrame (a Spark ``applyInPandas`` group), sorted as above."""
        df = df.sort_values([scope, "ts", "file", "line"], kind="stable")
        cols = {c: df[c].to_numpy() for c in _SCALARS}
        cols["input"] = list(df["input"])
        return cls.from_columns(scope, cols, classes, d)


_SCALARS = ("ts", "client_id", "source_ip", "label", "margin", "status", "file", "line")


def _floats(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object:
        return np.array([np.nan if v is None else float(v) for v in arr], dtype=np.float64)
    return arr.astype(np.float64)


def input_matrix(values: Any, d: int) -> np.ndarray:
    """(n, d) float64 from a list<double> Arrow column or a sequence of lists; rows without an
    input of length ``d`` are NaN."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.ListArray):
        n = len(values)
        offs = values.offsets.to_numpy()
        lens = np.diff(offs)
        if values.null_count:
            lens = np.where(values.is_null().to_numpy(zero_copy_only=False), 0, lens)
        flat = values.values.to_numpy(zero_copy_only=False).astype(np.float64)
        out = np.full((n, d), np.nan)
        ok = lens == d
        if d and ok.any():
            idx = offs[:-1][ok][:, None] + np.arange(d)[None, :]
            out[ok] = flat[idx]
        return out
    rows = list(values)
    out = np.full((len(rows), d), np.nan)
    for i, v in enumerate(rows):
        if v is not None and len(v) == d:
            out[i] = np.asarray(v, dtype=np.float64)
    return out


# --- segment operations (the vocabulary of every detector) -----------------------------------


def seg_max(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = np.full(len(offsets) - 1, -np.inf)
    nonempty = np.diff(offsets) > 0
    if nonempty.any():
        out[nonempty] = np.maximum.reduceat(values, offsets[:-1][nonempty])
    return out


def window_count(
    ts: np.ndarray, offsets: np.ndarray, flags: np.ndarray, window_s: float
) -> np.ndarray:
    """For every event: how many flagged events of its group fall in (ts - window_s, ts]
    (a compiled two-pointer scan per group)."""
    from mlhunt.hunt._kern_segments import window_counts

    if len(ts) == 0:
        return np.zeros(0)
    return window_counts(
        np.ascontiguousarray(ts, dtype=np.float64),
        np.ascontiguousarray(offsets, dtype=np.int64),
        np.ascontiguousarray(flags, dtype=np.float64),
        float(window_s),
    )
