"""The default hunt engine: embedded DuckDB.

Logs are loaded into a DuckDB table (memory-limited, spilling to a temporary folder, so a log
larger than memory is fine) by the one reader, :class:`mlhunt.hunt.duckread.Reader`
(:mod:`._duck_load`). Then :mod:`._duck_prep` counts, codes and sorts each scope's events once
into a table and builds the population from one ordered pass over it. The detector pass
streams the sorted tables as Arrow record batches of small integer codes (target, client,
label, file), numbers and the input as a fixed-size array, which become :class:`GroupBatch` es
cut at group boundaries with numpy alone (no Python object per event), scored in worker
threads.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.detectors.base import Alert, Detector, run_detectors
from mlhunt.hunt.engines import EngineResult, Progress
from mlhunt.hunt.engines._duck_prep import Prepared, fixed_rows, prepare, scan
from mlhunt.hunt.events import GroupBatch, Population
from mlhunt.hunt.readers import ReadReport, resolve

#: Threads that score batches while the main thread reads the next one (0: no threads).
DETECT_WORKERS = 2
MEMORY_LIMIT = "512MB"  # with the reader and Python, a 1 GB JSONL hunt peaks near 1.1 GB
#: Per scope, a callable giving its batches.
_Scopes = dict[str, Callable[[], Iterator[GroupBatch]]]
_NUMERIC = ("ts", "line", "margin", "status", "label", "client", "file_idx")


def _quiet(_: str) -> None:
    pass


class DuckDBEngine:
    name = "duckdb"

    def __init__(
        self,
        memory_limit: str = MEMORY_LIMIT,
        threads: int | None = None,
        workers: int = DETECT_WORKERS,
    ) -> None:
        self.memory_limit = memory_limit
        self.threads = threads
        self.workers = workers

    def run(
        self,
        paths: Sequence[str | Path],
        detectors: list[Detector],
        report: ReadReport,
        *,
        reference: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> EngineResult:
        say = progress or _quiet
        with contextlib.ExitStack() as stack:
            t0 = time.perf_counter()
            files = resolve(paths)
            con = stack.enter_context(self._connect())
            pop, scopes, t_read, warmer = self._table(con, files, report, reference, detectors, say)
            t1 = time.perf_counter()
            t_pop = t1 - t0 - t_read
            warmer.join()
            alerts, t_detect, t_cpu = self._detect(scopes, pop, detectors, say)
            t_scan = time.perf_counter() - t1
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

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Any]:
        """A DuckDB connection spilling to a temporary folder, closed (and the folder removed)
        on exit."""
        import duckdb

        with tempfile.TemporaryDirectory(prefix="mlhunt-duckdb-") as tmp:
            con = duckdb.connect(config={"memory_limit": self.memory_limit, "temp_directory": tmp})
            try:
                # No progress bar: DuckDB draws it on stdout, which carries the JSON report.
                con.execute("SET enable_progress_bar = false")
                if self.threads:
                    con.execute(f"SET threads = {int(self.threads)}")
                yield con
            finally:
                con.close()

    def _table(
        self,
        con: Any,
        files: list[Path],
        report: ReadReport,
        reference: np.ndarray | None,
        detectors: list[Detector],
        say: Progress,
    ) -> tuple[Population, _Scopes, float, _Warmer]:
        """The table path: logs loaded into DuckDB, each scope sorted into a table."""
        from mlhunt.hunt.engines._duck_load import load

        warmer = _Warmer()  # while DuckDB loads the logs
        t0 = time.perf_counter()
        names = load(con, files, report, say)
        t_read = time.perf_counter() - t0
        prep = prepare(con, report.input_dim or 0, reference, detectors, names)
        scopes = {s: partial(batches, con, s, t, prep) for s, t in prep.tables.items()}
        return prep.pop, scopes, t_read, warmer

    def _detect(
        self, scopes: _Scopes, pop: Population, detectors: list[Detector], say: Progress
    ) -> tuple[list[Alert], float, float]:
        """Alerts of every detector, and the wall and CPU seconds spent in detector calls (CPU
        seconds do not grow when other work shares the cores, wall seconds do)."""
        alerts: list[Alert] = []
        spent = [0.0, 0.0]  # wall, cpu

        def timed(batch: GroupBatch, dets: list[Detector]) -> tuple[list[Alert], float, float]:
            t, c = time.perf_counter(), time.thread_time()
            out = run_detectors(batch, pop, dets)
            return out, time.perf_counter() - t, time.thread_time() - c

        def take(got: tuple[list[Alert], float, float]) -> None:
            alerts.extend(got[0])
            spent[0] += got[1]
            spent[1] += got[2]

        # Batches are scored in worker threads while this thread pulls the next one
        # (numpy, DuckDB and the compiled kernels release the GIL); results are taken in
        # submission order, so the alerts come out as without threads. At most workers + 1
        # batches are in memory.
        with ThreadPoolExecutor(max_workers=max(self.workers, 1)) as pool:
            for scope, scan_batches in scopes.items():
                dets = [x for x in detectors if x.spec.scope == scope and x.applies(pop)]
                if not dets:
                    continue
                pending: deque[Future[tuple[list[Alert], float, float]]] = deque()
                for batch in scan_batches():
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


class _Warmer:
    """:func:`~mlhunt.hunt.detectors._warm.warm_up` of the detectors' kernels in a thread (the
    engine's own load as it uses them); :meth:`join` re-raises what it raised (a kernel that
    fails there would fail in the hunt)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="mlhunt-warm", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from mlhunt.hunt.detectors._warm import warm_up

        try:
            warm_up()
        except BaseException as exc:  # handed to the hunt's thread by join()
            self.error = exc

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def batches(con: Any, scope: str, table: str, prep: Prepared) -> Iterator[GroupBatch]:
    """The sorted table's events as batches of whole groups (a group spanning record batches
    waits for its end)."""
    carry: dict[str, np.ndarray] | None = None
    last = -1
    for rb in scan(con, table):
        if rb.num_rows == 0:
            continue
        cols = _numpy(rb, prep.d, prep.pop.d)
        k = cols["key"]
        if int(k[0]) < last or (len(k) > 1 and bool((k[1:] < k[:-1]).any())):
            raise RuntimeError(f"{table}: rows out of order (DuckDB did not keep the sort)")
        last = int(k[-1])
        if carry is not None:
            cols = {c: np.concatenate([carry[c], v]) for c, v in cols.items()}
            k = cols["key"]
        # rows of the last (possibly unfinished) group wait for the next batch
        cut = int(np.searchsorted(k, k[-1], side="left"))  # k is sorted
        if cut > 0:
            yield prep.codes.batch(scope, {c: v[:cut] for c, v in cols.items()})
        carry = {c: v[cut:] for c, v in cols.items()}
    if carry is not None and len(carry["key"]):
        yield prep.codes.batch(scope, carry)


def _numpy(rb: Any, d: int, width: int) -> dict[str, np.ndarray]:
    """A record batch of a sorted table as numpy columns; ``x`` (n, width) with NaN rows for
    events without an input (all NaN when the table has no input column, ``d`` = 0)."""
    out = {"key": rb.column("key").to_numpy()}
    for c in _NUMERIC:
        out[c] = rb.column(c).to_numpy(zero_copy_only=False)
    n = rb.num_rows
    out["x"] = fixed_rows(rb.column("x"), d, n) if d else np.full((n, width), np.nan)
    return out
