"""The DuckDB engine between reading and detecting: codes, candidates, sorted tables, population.

Once the logs are in the ``events`` table (:mod:`._duck_load`), :func:`prepare`

1. counts events per (client, label) in one GROUP BY: the population's per-client volumes,
   label shares and near-boundary share, and the dense codes of client ids and labels
   (sorted, so ordering by code orders by name);
2. per source address, one GROUP BY of what the source detectors' needs read (events, distinct
   client ids, denied answers) and, for burst needs, a bucketed window over the few addresses
   with enough events: the *candidates* (:func:`candidates`), the only addresses a source
   detector can fire on;
3. sorts each scope's events once into a table (``sorted_client_id``, ``sorted_source_ip``:
   integer codes, numbers and the input as a fixed-size array), which every later pass scans
   in order without sorting again;
4. streams ``sorted_client_id`` once for the population's exact feature aggregates and its
   per-client sample (each client's first ``sample_per_client`` events with an input: the
   first rows of its group), unless ``--reference`` replaces them.

The source events are copied before ``events`` is dropped, so at most two copies of the data
live in DuckDB (spilling to its temporary folder past the memory limit) at any time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlhunt.hunt.detectors.base import Detector, GroupNeed
from mlhunt.hunt.events import (
    GroupBatch,
    Population,
    PopulationBuilder,
    sample_per_client,
)
from mlhunt.hunt.margins import margin_bucket_sql

SCOPES = ("client_id", "source_ip")
#: Rows per Arrow record batch of the scans.
SCAN_ROWS = 200_000


@dataclass
class Prepared:
    """What the detector pass needs: the population, the codes and the sorted table per scope
    (a scope whose detectors cannot fire on any target has no table)."""

    pop: Population
    codes: Codes
    tables: dict[str, str]
    d: int  # input length of the sorted tables' ``x`` (0: no ``x`` column)


class Codes:
    """Dense codes for client ids, source addresses and labels (sorted names, so ordering by
    code orders by name), as DuckDB tables for the sorted copies and numpy arrays to decode."""

    def __init__(
        self, con: Any, clients: list[str], sources: list[str], labels: list[str], files: list[str]
    ) -> None:
        self.client = self._make(con, "client_id", clients)
        self.source = self._make(con, "source_ip", sources)
        self.labels = self._make(con, "label", labels)
        self.files = np.array(files, dtype=object)
        self.label_map = np.arange(len(labels), dtype=np.int64)

    @staticmethod
    def _make(con: Any, col: str, names: list[str]) -> np.ndarray:
        import pyarrow as pa

        tbl = pa.table(
            {
                col: pa.array(names, pa.string()),
                "code": pa.array(np.arange(len(names), dtype=np.int32)),
            }
        )
        con.register("mlhunt_names", tbl)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE codes_{col} AS "  # noqa: S608 (fixed)
                "SELECT * FROM mlhunt_names"
            )
        finally:
            con.unregister("mlhunt_names")
        return np.array(names, dtype=object)

    def relabel(self, pop: Population) -> None:
        """Label codes index the population's classes (the same sorted names, unless a class
        never appears in the logs)."""
        self.label_map = np.array(
            [pop.classes.index(v) if v in pop.classes else -1 for v in self.labels.tolist()],
            dtype=np.int64,
        )

    def batch(self, scope: str, cols: dict[str, np.ndarray]) -> GroupBatch:
        keys = self.client if scope == "client_id" else self.source
        k = cols["key"]
        n = len(k)
        starts = np.concatenate([[0], np.flatnonzero(k[1:] != k[:-1]) + 1]).astype(np.int64)
        return GroupBatch(
            scope=scope,
            keys=keys[k[starts]].tolist(),
            offsets=np.append(starts, n).astype(np.int64),
            ts=cols["ts"].astype(np.float64),
            x=cols["x"],
            label=self.label_map[cols["label"]],
            margin=cols["margin"].astype(np.float64),
            status=cols["status"].astype(np.int64),
            client=self.client[cols["client"]],
            file=self.files[cols["file_idx"]],
            line=cols["line"].astype(np.int64),
        )


def prepare(
    con: Any, d: int, reference: np.ndarray | None, detectors: list[Detector], files: list[str]
) -> Prepared:
    """Steps 1-4 of the module docstring; drops ``events``."""
    import pyarrow.compute as pc

    b = PopulationBuilder()
    near = float(b.near_margin)
    # per (client, label, margin bucket), then one row per (client, label) with its buckets
    tbl = con.sql(
        "SELECT client_id, label, sum(n) AS n, sum(nm) AS nm, sum(near) AS near, "  # noqa: S608
        "list(bucket) AS bucket, list(nm) AS bn FROM (SELECT client_id, label, "
        f"{margin_bucket_sql()} AS bucket, count(*) AS n, count(margin) AS nm, "
        f"count(*) FILTER (margin < {near!r}) AS near FROM events GROUP BY ALL) GROUP BY ALL"
    ).to_arrow_table()
    cols = {c: tbl.column(c) for c in ("bucket", "bn")}
    cols |= {c: tbl.column(c).to_numpy(zero_copy_only=False) for c in ("client_id", "label")}
    cols |= {c: tbl.column(c).to_numpy().astype(np.int64) for c in ("n", "nm", "near")}
    b.n, b.n_margin, b.near = (int(cols[c].sum()) for c in ("n", "nm", "near"))
    lens = pc.list_value_length(cols["bucket"]).to_numpy(zero_copy_only=False)
    bk = pc.list_flatten(cols["bucket"]).to_numpy(zero_copy_only=False)
    bn = pc.list_flatten(cols["bn"]).to_numpy(zero_copy_only=False)
    known = bn > 0  # a NULL margin's group has no bucket and no known margin
    who = np.repeat(cols["client_id"], lens)[known]
    b.add_margin_buckets(who, bk[known].astype(np.int64), bn[known].astype(np.int64))
    for name, store in (("client_id", b.per_client), ("label", b.labels)):
        uniq, inv = np.unique(cols[name].astype(str), return_inverse=True)
        sums = np.bincount(inv, weights=cols["n"], minlength=len(uniq))
        store.update(zip(uniq.tolist(), sums.astype(np.int64).tolist(), strict=True))
    sdets = [x for x in detectors if x.spec.scope == "source_ip"]
    sources = candidates(con, sdets) if sdets else []
    codes = Codes(con, sorted(b.per_client), sources, sorted(b.labels), files)
    pop_d = d if reference is None else reference.shape[1]
    xd = d if d > 0 and d == pop_d else 0
    tables = {"client_id": _sorted(con, "client_id", xd)}
    if sources:
        tables["source_ip"] = _sorted(con, "source_ip", xd)
    con.execute("DROP TABLE events")  # the sorted copies hold every event a pass reads
    if reference is None and xd:
        _features(con, b, xd, len(b.per_client))
    pop = b.build(reference)
    codes.relabel(pop)
    return Prepared(pop=pop, codes=codes, tables=tables, d=xd)


def _sorted(con: Any, scope: str, d: int) -> str:
    """``sorted_<scope>``: the scope's events sorted by (code, ts, file, line)."""
    x = f", e.input::DOUBLE[{int(d)}] AS x" if d else ""
    src = " JOIN codes_source_ip s USING (source_ip)" if scope == "source_ip" else ""
    key = "s.code" if scope == "source_ip" else "c.code"
    name = f"sorted_{scope}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {key} AS key, c.code AS client, "  # noqa: S608
        f"l.code AS label, e.ts, e.file_idx, e.line, e.margin, coalesce(e.status, 0) AS status"
        f"{x} FROM events e JOIN codes_client_id c USING (client_id) "
        f"JOIN codes_label l USING (label){src} ORDER BY key, e.ts, e.file_idx, e.line"
    )
    return name


def scan(con: Any, table: str) -> Iterator[Any]:
    """The sorted table's record batches, in its (sorted) insertion order."""
    yield from con.sql(f"SELECT * FROM {table}").to_arrow_reader(SCAN_ROWS)  # noqa: S608


def _features(con: Any, b: PopulationBuilder, d: int, n_clients: int) -> None:
    """Exact per-feature aggregates and the per-client sample, in one ordered pass."""
    per = sample_per_client(n_clients)
    mins = np.full(d, np.inf)
    maxs = np.full(d, -np.inf)
    sums: list[np.ndarray] = []
    sumsq: list[np.ndarray] = []
    picked: list[np.ndarray] = []
    last_key, seen = -1, 0  # the group continuing from the previous batch, inputs seen in it
    for rb in con.sql("SELECT key, x FROM sorted_client_id").to_arrow_reader(SCAN_ROWS):
        n = rb.num_rows
        if n == 0:
            continue
        key = rb.column("key").to_numpy()
        x = fixed_rows(rb.column("x"), d, n)
        has = ~np.isnan(x[:, 0]) if d else np.zeros(n, bool)
        xs = x[has]
        if len(xs):
            mins = np.minimum(mins, xs.min(axis=0))
            maxs = np.maximum(maxs, xs.max(axis=0))
            sums.append(xs.sum(axis=0))
            sumsq.append((xs * xs).sum(axis=0))
            b.n_input += len(xs)
        # position of each input among its group's inputs (a group may span batches)
        starts = np.concatenate([[0], np.flatnonzero(key[1:] != key[:-1]) + 1])
        csum = np.cumsum(has)
        before = np.concatenate([[0], csum[starts[1:] - 1]])
        pos = csum - np.repeat(before, np.diff(np.append(starts, n))) - 1
        cont = int(key[0]) == last_key
        if cont:
            pos[: int(starts[1]) if len(starts) > 1 else n] += seen
        picked.append(x[has & (pos < per)])
        last = int(starts[-1])
        seen = int(has[last:].sum()) + (seen if cont and last == 0 else 0)
        last_key = int(key[-1])
    if b.n_input:
        b.add_sample(np.concatenate(picked))
        b.d = d
        b.mins, b.maxs = mins, maxs
        b.sums = np.array([math.fsum(c) for c in np.array(sums).T])
        b.sumsq = np.array([math.fsum(c) for c in np.array(sumsq).T])


def fixed_rows(col: Any, d: int, n: int) -> np.ndarray:
    """(n, d) float64 from a fixed-size-list Arrow column, NaN rows where it is null."""
    flat = col.values.to_numpy(zero_copy_only=False)[col.offset * d : (col.offset + n) * d]
    x = flat.astype(np.float64).reshape(n, d)
    if col.null_count:
        x[col.is_null().to_numpy(zero_copy_only=False)] = np.nan
    return x


# --- candidates of the source scope ------------------------------------------------------------


def candidates(con: Any, dets: list[Detector]) -> list[str]:
    """Sorted source addresses some detector in ``dets`` may fire on: all of them when a
    detector offers no necessary condition (:meth:`Detector.prefilter`), else those meeting at
    least one detector's need. Scores are per target, so the others' alerts are none anyway."""
    needs = [det.prefilter() for det in dets]
    tbl = con.sql(
        "SELECT source_ip AS k, count(*) AS n, count(DISTINCT client_id) AS nc, "
        "count(*) FILTER (coalesce(status, 0) IN (401, 403)) AS nd FROM events "
        "WHERE source_ip IS NOT NULL GROUP BY ALL"
    ).to_arrow_table()
    keys = np.array(tbl.column("k").to_pylist(), dtype=object)
    if any(nd is None for nd in needs):
        return sorted(keys.tolist())
    cnt = {c: tbl.column(c).to_numpy() for c in ("n", "nc", "nd")}
    keep = np.zeros(len(keys), dtype=bool)
    for nd in dict.fromkeys(needs):
        assert nd is not None
        keep |= _meets(con, nd, keys, cnt)
    return sorted(keys[keep].tolist())


def _meets(con: Any, need: GroupNeed, keys: np.ndarray, cnt: dict[str, np.ndarray]) -> np.ndarray:
    n, w = float(need.count), float(need.window_s)
    if not (math.isfinite(n) and math.isfinite(w)):
        return np.zeros(len(keys), dtype=bool)
    if need.kind == "events":
        return cnt["n"] >= n
    if need.kind == "clients":
        return cnt["nc"] >= n
    total = (cnt["nd"] if need.denied else cnt["n"]) >= n  # a cheap first cut
    if w <= 0 or not total.any():
        return total
    # a window of w seconds lies within 2 aligned w-buckets (4 consecutive buckets also cover
    # an event that floor(ts / w) rounds into a neighbouring bucket)
    import pyarrow as pa

    denied = " AND coalesce(status, 0) IN (401, 403)" if need.denied else ""
    con.register("mlhunt_cands", pa.table({"k": pa.array(keys[total].tolist(), pa.string())}))
    try:
        hit = con.sql(
            f"SELECT k FROM (SELECT k, sum(c) OVER (PARTITION BY k ORDER BY bk RANGE BETWEEN "  # noqa: S608
            f"CURRENT ROW AND 3 FOLLOWING) AS s FROM (SELECT source_ip AS k, floor(ts / {w!r}) "
            f"AS bk, count(*) AS c FROM events SEMI JOIN mlhunt_cands ON source_ip = k "
            f"WHERE true{denied} GROUP BY ALL)) GROUP BY k HAVING max(s) >= {n!r}"
        ).to_arrow_table()
    finally:
        con.unregister("mlhunt_cands")
    return np.isin(keys, np.array(hit.column("k").to_pylist(), dtype=object))
