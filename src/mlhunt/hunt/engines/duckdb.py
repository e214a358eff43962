"""The default hunt engine: embedded DuckDB.

Logs are loaded into a DuckDB table (memory-limited, spilling to a temporary folder, so a log
larger than memory is fine): Parquet read natively with the record checks in SQL, JSON Lines
and CSV through :func:`mlhunt.hunt.readers.read_batches` (:mod:`._duck_load`). The population
comes from exact SQL aggregates plus a window-function sample. Then, per scope, one sorted
scan streams Arrow record batches of small integer codes (target, client, label, file), numbers
and the input as a fixed-size array, which become :class:`GroupBatch` es cut at group
boundaries with numpy alone (no Python object per event).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.detectors.base import Alert, Detector, GroupNeed, run_detectors
from mlhunt.hunt.engines import EngineResult, Progress
from mlhunt.hunt.events import GroupBatch, Population, PopulationBuilder, sample_per_client
from mlhunt.hunt.readers import ReadReport, resolve

#: Rows per detector batch (whole groups are kept together, so a batch may be larger).
DETECT_ROWS = 200_000
#: Threads that score batches while the main thread reads the next one (0: no threads).
DETECT_WORKERS = 2
MEMORY_LIMIT = "512MB"  # with the reader and Python, a 1 GB JSONL hunt peaks near 1.1 GB
_NUMERIC = ("ts", "line", "margin", "status", "label", "client", "file_idx")


def _quiet(_: str) -> None:
    pass


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, memory_limit: str = MEMORY_LIMIT, threads: int | None = None,
                 workers: int = DETECT_WORKERS) -> None:  # fmt: skip
        self.memory_limit = memory_limit
        self.threads = threads
        self.workers = workers

    def run(self, paths: Sequence[str | Path], detectors: list[Detector], report: ReadReport,
            *, reference: np.ndarray | None = None,
            progress: Progress | None = None) -> EngineResult:  # fmt: skip
        import duckdb

        from mlhunt.hunt.engines._duck_load import good_view, load

        say = progress or _quiet
        with tempfile.TemporaryDirectory(prefix="mlhunt-duckdb-") as tmp:
            con = duckdb.connect(config={"memory_limit": self.memory_limit,
                                         "temp_directory": tmp})  # fmt: skip
            # No progress bar: DuckDB draws it on stdout, which carries the JSON report.
            con.execute("SET enable_progress_bar = false")
            if self.threads:
                con.execute(f"SET threads = {int(self.threads)}")
            try:
                t0 = time.perf_counter()
                files = load(con, resolve(paths), report, say)
                good_view(con, report.input_dim or 0)
                t_read = time.perf_counter() - t0
                pop = self._population(con, report.input_dim or 0, reference)
                t1 = time.perf_counter()
                t_pop = t1 - t0 - t_read
                alerts, t_detect, t_cpu = self._detect(con, detectors, pop, files,
                                                report.input_dim or 0, say)  # fmt: skip
                t_scan = time.perf_counter() - t1
            finally:
                con.close()
        n = report.records
        stats = {
            "engine": self.name,
            "events": n,
            "read_seconds": round(t_read, 3),
            "population_seconds": round(t_pop, 3),
            "scan_seconds": round(t_scan, 3),
            "detect_seconds": round(t_detect, 3),
            # CPU time of the detector calls (the per-target sequential logic): unlike the wall
            # times it does not grow when other work shares the cores
            "detect_cpu_seconds": round(t_cpu, 3),
            "detect_workers": self.workers,
            "detect_events_per_s": round(n / t_detect) if t_detect > 0 else None,
        }
        return EngineResult(alerts=alerts, population=pop, stats=stats)

    def _population(self, con: Any, d: int, reference: np.ndarray | None) -> Population:
        """Exact aggregates and the per-client sample, fed to the shared PopulationBuilder."""
        from mlhunt.hunt.events import input_matrix

        b = PopulationBuilder()
        feats = [f"min(input[{i}]), max(input[{i}]), fsum(input[{i}]), "
                 f"fsum(input[{i}] * input[{i}])" for i in range(1, d + 1)]  # fmt: skip
        row = con.execute(
            "SELECT count(*), count(input), count(margin), "  # noqa: S608 (fixed text, ints)
            f"count(*) FILTER (margin < {float(b.near_margin)!r}) "
            f"{''.join(', ' + f for f in feats)} FROM good"
        ).fetchall()[0]
        b.n, b.n_input, b.n_margin, b.near = (int(v) for v in row[:4])
        for cid, c in con.execute("SELECT client_id, count(*) FROM good GROUP BY ALL").fetchall():
            b.per_client[cid] = int(c)
        for lab, c in con.execute("SELECT label, count(*) FROM good GROUP BY ALL").fetchall():
            b.labels[lab] = int(c)
        if d and b.n_input:
            agg = np.array(row[4:], dtype=np.float64).reshape(d, 4)
            b.d = d
            b.mins, b.maxs, b.sums, b.sumsq = (agg[:, k].copy() for k in range(4))
            per = sample_per_client(len(b.per_client))
            # each client's first `per` inputs by (ts, file, line): a top-k per group (a heap),
            # half the cost of a row_number() window, which sorts every event
            tbl = con.sql(
                f"SELECT unnest(arg_min(input, (ts, file_idx, line), {int(per)})) AS input "  # noqa: S608
                "FROM good WHERE input IS NOT NULL GROUP BY client_id"
            ).to_arrow_table()
            b.add_sample(input_matrix(tbl.column("input"), d))
        return b.build(reference)

    def _detect(self, con: Any, detectors: list[Detector], pop: Population, files: list[str],
                d: int, say: Progress) -> tuple[list[Alert], float, float]:  # fmt: skip
        """Alerts of every detector, and the wall and CPU seconds spent in detector calls (CPU
        seconds do not grow when other work shares the cores, wall seconds do)."""
        alerts: list[Alert] = []
        spent = [0.0, 0.0]  # wall, cpu
        scopes = [s for s in ("client_id", "source_ip")
                  if any(x.spec.scope == s and x.applies(pop) for x in detectors)]  # fmt: skip
        if not scopes:
            return alerts, 0.0, 0.0
        names = _Codes(con, pop, files)

        def timed(batch: GroupBatch, dets: list[Detector]) -> tuple[list[Alert], float, float]:
            t, c = time.perf_counter(), time.thread_time()
            out = run_detectors(batch, pop, dets)
            return out, time.perf_counter() - t, time.thread_time() - c

        def take(got: tuple[list[Alert], float, float]) -> None:
            alerts.extend(got[0])
            spent[0] += got[1]
            spent[1] += got[2]

        # Batches are scored in worker threads while this thread pulls the next one from
        # DuckDB (numpy and DuckDB release the GIL); results are taken in submission order, so
        # the alerts come out as without threads. At most workers + 1 batches are in memory.
        with ThreadPoolExecutor(max_workers=max(self.workers, 1)) as pool:
            for scope in scopes:
                dets = [x for x in detectors if x.spec.scope == scope and x.applies(pop)]
                filtered = _prefilter(con, scope, dets)
                pending: deque[Future[tuple[list[Alert], float, float]]] = deque()
                for batch in self._batches(con, scope, pop, names, d, filtered):
                    if self.workers <= 0:
                        take(timed(batch, dets))
                        continue
                    pending.append(pool.submit(timed, batch, dets))
                    while len(pending) > self.workers:
                        take(pending.popleft().result())
                while pending:
                    take(pending.popleft().result())
                say(f"{scope}: {len(alerts)} alerts so far")
        return alerts, spent[0], spent[1]

    def _batches(self, con: Any, scope: str, pop: Population, names: _Codes, d: int,
                 filtered: bool = False) -> Iterator[GroupBatch]:  # fmt: skip
        same_d = d > 0 and d == pop.d
        x = f", e.input::DOUBLE[{int(d)}] AS x" if same_d else ""
        src = " JOIN codes_source_ip s USING (source_ip)" if scope == "source_ip" else ""
        key = "s.code" if scope == "source_ip" else "c.code"
        # only the targets some detector could fire on (see _prefilter)
        where = f" WHERE e.{scope} IN (SELECT k FROM cand_{scope})" if filtered else ""  # noqa: S608
        reader = con.sql(
            f"SELECT {key} AS key, c.code AS client, l.code AS label, e.ts, e.file_idx, "  # noqa: S608
            f"e.line, e.margin, coalesce(e.status, 0) AS status{x} FROM good e "
            f"JOIN codes_client_id c USING (client_id) JOIN codes_label l USING (label){src}"
            f"{where} ORDER BY key, e.ts, e.file_idx, e.line"
        ).to_arrow_reader(DETECT_ROWS)
        keys = names.client if scope == "client_id" else names.source
        carry: dict[str, np.ndarray] | None = None
        for rb in reader:
            if rb.num_rows == 0:
                continue
            cols = _numpy(rb, pop.d if same_d else 0, pop.d)
            if carry is not None:
                cols = {k: np.concatenate([carry[k], v]) for k, v in cols.items()}
            k = cols["key"]
            # rows of the last (possibly unfinished) group wait for the next batch
            cut = int(np.searchsorted(k, k[-1], side="left"))  # k is sorted
            if cut > 0:
                yield names.batch(scope, keys, {c: v[:cut] for c, v in cols.items()}, pop)
            carry = {c: v[cut:] for c, v in cols.items()}
        if carry is not None and len(carry["key"]):
            yield names.batch(scope, keys, carry, pop)


def _need_sql(scope: str, need: GroupNeed) -> str:
    """The targets of ``scope`` that meet ``need`` (a query with one column ``k``). Only fixed
    text, the scope's column name and finite numbers enter the SQL."""
    n, w = float(need.count), float(need.window_s)
    if not (math.isfinite(n) and math.isfinite(w)):
        return f"SELECT {scope} AS k FROM good WHERE false"  # noqa: S608
    if need.kind == "events":
        return f"SELECT {scope} AS k FROM good GROUP BY ALL HAVING count(*) >= {n!r}"  # noqa: S608
    if need.kind == "clients":
        return (f"SELECT {scope} AS k FROM good GROUP BY ALL "  # noqa: S608
                f"HAVING count(DISTINCT client_id) >= {n!r}")  # fmt: skip
    # burst: at least n such events in all (a cheap first cut), and a window of w seconds lies
    # within 2 aligned w-buckets (4 consecutive buckets also cover an event that floor(ts / w)
    # rounds into a neighbouring bucket)
    denied = " AND coalesce(status, 0) IN (401, 403)" if need.denied else ""
    total = (f"SELECT {scope} AS k FROM good WHERE true{denied} "  # noqa: S608
             f"GROUP BY ALL HAVING count(*) >= {n!r}")  # fmt: skip
    if w <= 0:
        return total
    return (
        f"SELECT k FROM (SELECT k, sum(c) OVER (PARTITION BY k ORDER BY bk RANGE BETWEEN "  # noqa: S608
        f"CURRENT ROW AND 3 FOLLOWING) AS s FROM (SELECT {scope} AS k, floor(ts / {w!r}) AS bk, "
        f"count(*) AS c FROM good WHERE true{denied} AND {scope} IN ({total}) GROUP BY ALL)) "
        f"GROUP BY k HAVING max(s) >= {n!r}"
    )


def _prefilter(con: Any, scope: str, dets: list[Detector]) -> bool:
    """Keep, in ``cand_<scope>``, the targets that meet at least one detector's need
    (:meth:`Detector.prefilter`); False (no filter) when some detector may fire on any target.
    Scores are per target, so dropping the others leaves every alert as it was."""
    needs = [det.prefilter() for det in dets]
    if not needs or any(nd is None for nd in needs):
        return False
    if all(nd is not None and nd.kind == "events" for nd in needs):
        return False  # a few dozen events: drops little traffic, not worth a GROUP BY
    parts = " UNION ".join(_need_sql(scope, nd) for nd in dict.fromkeys(needs) if nd)
    con.execute(f"CREATE OR REPLACE TEMP TABLE cand_{scope} AS {parts}")
    return True


def _numpy(rb: Any, d: int, width: int) -> dict[str, np.ndarray]:
    """A record batch of the scan as numpy columns; ``x`` (n, width) with NaN rows for events
    without an input (all NaN when the input length ``d`` is not the population's)."""
    out = {"key": rb.column("key").to_numpy()}
    for c in _NUMERIC:
        out[c] = rb.column(c).to_numpy(zero_copy_only=False)
    n = rb.num_rows
    if d:
        col = rb.column("x")
        flat = col.values.to_numpy(zero_copy_only=False)[col.offset * d : (col.offset + n) * d]
        x = flat.astype(np.float64).reshape(n, d)
        if col.null_count:
            x[col.is_null().to_numpy(zero_copy_only=False)] = np.nan
        out["x"] = x
    else:
        out["x"] = np.full((n, width), np.nan)
    return out


class _Codes:
    """Dense codes (in sorted order, so ordering by code orders by name) for client ids, source
    addresses and labels, as DuckDB tables for the scan and numpy arrays to decode batches."""

    def __init__(self, con: Any, pop: Population, files: list[str]) -> None:
        self.client = self._make(con, "client_id")
        self.source = self._make(con, "source_ip")
        labels = self._make(con, "label")
        # label codes index the population's classes (sorted the same way)
        self.label_map = np.array([pop.classes.index(v) if v in pop.classes else -1
                                   for v in labels.tolist()], dtype=np.int64)  # fmt: skip
        self.files = np.array(files, dtype=object)

    @staticmethod
    def _make(con: Any, col: str) -> np.ndarray:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE codes_{col} AS SELECT {col}, "  # noqa: S608 (fixed)
            f"(row_number() OVER (ORDER BY {col}) - 1)::INTEGER AS code "
            f"FROM (SELECT DISTINCT {col} FROM good WHERE {col} IS NOT NULL)"
        )
        tbl = con.sql(f"SELECT {col} FROM codes_{col} ORDER BY code").to_arrow_table()  # noqa: S608
        return np.array(tbl.column(col).to_pylist(), dtype=object)

    def batch(self, scope: str, keys: np.ndarray, cols: dict[str, np.ndarray],
              pop: Population) -> GroupBatch:  # fmt: skip
        k = cols["key"]
        n = len(k)
        starts = np.concatenate([[0], np.flatnonzero(k[1:] != k[:-1]) + 1]).astype(np.int64)
        margin = cols["margin"].astype(np.float64)
        return GroupBatch(
            scope=scope,
            keys=keys[k[starts]].tolist(),
            offsets=np.append(starts, n).astype(np.int64),
            ts=cols["ts"].astype(np.float64),
            x=cols["x"],
            label=self.label_map[cols["label"]],
            margin=margin,
            status=cols["status"].astype(np.float64).astype(np.int64),
            client=self.client[cols["client"]],
            file=self.files[cols["file_idx"]],
            line=cols["line"].astype(np.int64),
        )
