"""The in-memory path between reading and detecting (the analogue of :mod:`._duck_prep`).

:func:`prepare` gives client ids, labels and source addresses their sorted-name codes, puts each
scope's events in (target, ts, file, line) order with one stable counting sort (logs read in
time order need nothing else; others are ordered by (ts, file, line) first), builds the
population from exact counts and one pass over the inputs, keeps only the source addresses some
source detector can fire on, and cuts each scope into batches of whole groups that worker threads
gather (:meth:`MemPrepared.batches`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from mlhunt.hunt.detectors.base import Detector, GroupNeed
from mlhunt.hunt.engines._kern_mem import gather
from mlhunt.hunt.engines._kern_records import (
    _CLIENT,
    _SOURCE,
    bucket_peaks,
    counting_sort,
    feature_sums,
    first_inputs,
    group_counts,
    scan_records,
)
from mlhunt.hunt.engines._mem import Names, Store
from mlhunt.hunt.events import GroupBatch, Population, PopulationBuilder, sample_per_client

#: Events per batch handed to the detectors (whole groups: a longer group makes a longer one).
BATCH_EVENTS = 200_000
#: Rows per partial sum of the population's feature sums (added exactly at the end).
SUM_CHUNK = 65_536


@dataclass
class _Scope:
    rows: np.ndarray  # row numbers in (target, ts, file, line) order
    offsets: np.ndarray  # group g is rows[offsets[g]:offsets[g + 1]]
    keys: np.ndarray  # target names (object), sorted


@dataclass
class MemPrepared:
    pop: Population
    store: Store
    scopes: dict[str, _Scope | Future[_Scope | None]]
    files: np.ndarray  # file names by index (object)
    label_map: np.ndarray  # label code -> index into pop.classes (-1: unknown)
    xd: int  # input length the batches carry (0: NaN inputs of the population's width)
    clients: np.ndarray  # client ids by raw code (object)

    def scope(self, scope: str) -> _Scope | None:
        """The scope's sorted events (None: no target of it can alert); waits for the source
        scope's thread."""
        sc = self.scopes[scope]
        return sc.result() if isinstance(sc, Future) else sc

    def batches(self, scope: str) -> Iterator[Callable[[], GroupBatch]]:
        """Builders of the scope's batches, in target order (a builder gathers its rows, so
        worker threads share that work)."""
        sc = self.scope(scope)
        if sc is None:
            return
        off = sc.offsets
        g, n_groups = 0, len(off) - 1
        while g < n_groups:
            end = int(np.searchsorted(off, off[g] + BATCH_EVENTS, side="left"))
            end = min(max(end, g + 1), n_groups)
            yield partial(self._batch, scope, g, end)
            g = end

    def _batch(self, scope: str, g0: int, g1: int) -> GroupBatch:
        sc, st = self.scope(scope), self.store
        assert sc is not None
        a, b = int(sc.offsets[g0]), int(sc.offsets[g1])
        idx = sc.rows[a:b]
        ts, line, margin, status, client, label, file = gather(
            st.rec, st.rec_f, st.rec_i4, idx, self.label_map
        )
        # np.take, not x[idx]: numpy's fancy indexing of rows is several times slower
        x = (
            np.take(st.x, idx, axis=0)
            if self.xd and st.x is not None
            else np.full((b - a, self.pop.d), np.nan)
        )
        if len(self.files) == 1:  # (np.full of an object is several times slower)
            files = np.empty(b - a, dtype=object)
            files.fill(self.files[0])
        else:
            files = self.files[file]
        return GroupBatch(
            scope=scope,
            keys=sc.keys[g0:g1].tolist(),
            offsets=sc.offsets[g0 : g1 + 1] - a,
            ts=ts,
            x=x,
            label=label,
            margin=margin,
            status=status,
            client=self.clients[client],
            file=files,
            line=line,
        )


def _ranks(names: Names, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rank per code: -1 for a name no kept event has, sorted names, events per name)."""
    all_names = np.asarray(names.names, dtype=object)
    present = np.flatnonzero(count > 0)
    srt = present[np.argsort(all_names[present].astype(str), kind="stable")]
    rank = np.full(len(all_names), -1, np.int32)
    rank[srt] = np.arange(len(srt), dtype=np.int32)
    return rank, all_names[srt], count[srt]


def prepare(
    store: Store, files: list[str], reference: np.ndarray | None, detectors: list[Detector], d: int
) -> MemPrepared:
    n = store.n
    b = PopulationBuilder()
    ordered, c_count, s_count, l_count, b.n_margin, b.near, s_denied, s_runs = scan_records(
        store.rec,
        store.rec_f,
        store.rec_i4,
        n,
        len(store.clients.names),
        len(store.sources.names),
        len(store.labels.names),
        b.near_margin,
    )
    order = (
        np.empty(0, np.int64)
        if ordered
        else np.lexsort((store.line[:n], store.file[:n], store.ts[:n]))
    )
    sdets = [x for x in detectors if x.spec.scope == "source_ip"]
    scopes: dict[str, _Scope | Future[_Scope | None]] = {}
    if sdets:
        # the source scope in a second thread (the kernels release the GIL), ready long before
        # the client scope's detectors are done
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlhunt-sources")
        bounds = (s_count, s_denied, s_runs)
        scopes["source_ip"] = pool.submit(_sources, store, order, bounds, sdets)
        pool.shutdown(wait=False)
    c_rank, c_names, c_count = _ranks(store.clients, c_count)
    rows, offsets = counting_sort(store.rec_i4, _CLIENT, c_rank, order, n, len(c_names))
    b.n = n
    b.per_client = dict(zip(c_names.tolist(), c_count.tolist(), strict=True))
    _, l_names, l_count = _ranks(store.labels, l_count)
    b.labels = dict(zip(l_names.tolist(), l_count.tolist(), strict=True))
    pop, label_map, xd = _population(store, b, reference, d, rows, offsets, len(c_names))
    scopes = {"client_id": _Scope(rows, offsets, c_names), **scopes}
    return MemPrepared(
        pop=pop,
        store=store,
        scopes=scopes,
        files=np.array(files, dtype=object),
        label_map=label_map,
        xd=xd,
        clients=np.asarray(store.clients.names, dtype=object),
    )


def _population(
    store: Store,
    b: PopulationBuilder,
    reference: np.ndarray | None,
    d: int,
    rows: np.ndarray,
    offsets: np.ndarray,
    n_clients: int,
) -> tuple[Population, np.ndarray, int]:
    """The population, the label codes' class indices and the input length of the batches."""
    pop_d = d if reference is None else reference.shape[1]
    xd = d if d > 0 and d == pop_d and store.x is not None else 0
    if reference is None and xd:
        _features(store, b, xd, rows, offsets, n_clients)
    pop = b.build(reference)
    classes = {c: i for i, c in enumerate(pop.classes)}
    label_map = np.array([classes.get(v, -1) for v in store.labels.names] or [-1], np.int64)
    return pop, label_map, xd


def _features(
    store: Store,
    b: PopulationBuilder,
    d: int,
    rows: np.ndarray,
    offsets: np.ndarray,
    n_clients: int,
) -> None:
    """Exact per-feature aggregates and the per-client sample (each client's first inputs)."""
    assert store.x is not None
    x = store.x
    lo, hi, sums, sq, count = feature_sums(x, store.n, SUM_CHUNK)
    if not count:
        return
    b.add_sample(x[first_inputs(rows, offsets, x, sample_per_client(n_clients))])
    b.n_input, b.d = count, d
    b.mins, b.maxs = lo, hi
    b.sums = np.array([math.fsum(c) for c in sums.T])
    b.sumsq = np.array([math.fsum(c) for c in sq.T])


def _sources(
    store: Store, order: np.ndarray, bounds: tuple[np.ndarray, ...], dets: list[Detector]
) -> _Scope | None:
    """The source scope: addresses some detector in ``dets`` may fire on (all of them when one
    offers no necessary condition), as in :func:`._duck_prep.candidates`. ``bounds`` (events,
    denied answers and client-id runs per address code, from :func:`scan_records`) make a
    first cut, so only its addresses are sorted and counted exactly."""
    count, denied, runs = bounds
    rank, names, _ = _ranks(store.sources, count)
    if not len(names):
        return None
    needs = [det.prefilter() for det in dets]
    if not any(nd is None for nd in needs):
        code = np.flatnonzero(rank >= 0)[np.argsort(rank[rank >= 0])]  # code of each rank
        upper = {"n": count[code], "nc": runs[code], "nd": denied[code]}
        first = _meeting(needs, upper, store, None, None)
        if not first.any():
            return None
        keep_rank = np.full(len(names), -1, np.int32)
        keep_rank[first] = np.arange(int(first.sum()), dtype=np.int32)
        rank = np.where(rank >= 0, keep_rank[np.maximum(rank, 0)], -1).astype(np.int32)
        names = names[first]
    rows, off = counting_sort(store.rec_i4, _SOURCE, rank, order, store.n, len(names))
    if any(nd is None for nd in needs):
        return _Scope(rows, off, names)
    got = group_counts(rows, off, store.rec, store.rec_i4, len(store.clients.names))
    keep = _meeting(needs, dict(zip(("n", "nc", "nd"), got, strict=True)), store, rows, off)
    if not keep.any():
        return None
    if keep.all():
        return _Scope(rows, off, names)
    kept = np.flatnonzero(keep)
    lens = off[kept + 1] - off[kept]
    sel = np.concatenate([rows[off[g] : off[g + 1]] for g in kept.tolist()])
    return _Scope(sel, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64), names[keep])


def _meeting(
    needs: list[GroupNeed | None],
    cnt: dict[str, np.ndarray],
    store: Store,
    rows: np.ndarray | None,
    off: np.ndarray | None,
) -> np.ndarray:
    """Groups that meet at least one of ``needs`` (see :func:`_meets`)."""
    out = np.zeros(len(cnt["n"]), bool)
    for nd in dict.fromkeys(needs):
        assert nd is not None
        out |= _meets(nd, cnt, store, rows, off)
    return out


def _meets(
    need: GroupNeed,
    cnt: dict[str, np.ndarray],
    store: Store,
    rows: np.ndarray | None,
    off: np.ndarray | None,
) -> np.ndarray:
    """Groups that meet ``need`` by the counts ``cnt``; bursts are checked in the sorted
    ``rows`` (None: the counts are upper bounds and the burst check waits)."""
    n, w = float(need.count), float(need.window_s)
    if not (math.isfinite(n) and math.isfinite(w)):
        return np.zeros(len(cnt["n"]), dtype=bool)
    if need.kind == "events":
        return cnt["n"] >= n
    if need.kind == "clients":
        return cnt["nc"] >= n
    total = (cnt["nd"] if need.denied else cnt["n"]) >= n  # a cheap first cut
    if w <= 0 or not total.any() or rows is None or off is None:
        return total
    peaks = bucket_peaks(rows, off, store.rec, store.rec_f, w, bool(need.denied), total)
    return total & (peaks >= n)
