"""The default hunt engine: embedded DuckDB.

Normalised reader batches are appended to a DuckDB table (memory-limited, spilling to a
temporary folder, so a log larger than memory is fine); the population comes from exact
aggregates plus a window-function sample; then, per scope, one sorted scan streams Arrow record
batches that are cut at group boundaries into :class:`GroupBatch` es for the detectors.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.detectors.base import Alert, Detector, run_detectors
from mlhunt.hunt.engines import EngineResult, Progress
from mlhunt.hunt.events import GroupBatch, Population, PopulationBuilder, sample_per_client
from mlhunt.hunt.readers import ReadReport, read_batches, schema

#: Rows per detector batch (whole groups are kept together, so a batch may be larger).
DETECT_ROWS = 200_000
MEMORY_LIMIT = "512MB"  # with the reader and Python, a 1 GB JSONL hunt peaks near 1.1 GB
_COLS = "file, line, ts, client_id, source_ip, input, label, margin, status"


def _quiet(_: str) -> None:
    pass


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, memory_limit: str = MEMORY_LIMIT, threads: int | None = None) -> None:
        self.memory_limit = memory_limit
        self.threads = threads

    def run(self, paths: Sequence[str | Path], detectors: list[Detector], report: ReadReport,
            *, reference: np.ndarray | None = None,
            progress: Progress | None = None) -> EngineResult:  # fmt: skip
        import duckdb

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
                builder = self._load(con, paths, report, say)
                t_read = time.perf_counter() - t0
                pop = self._population(con, builder, reference)
                t1 = time.perf_counter()
                alerts, t_detect = self._detect(con, detectors, pop, say)
                t_scan = time.perf_counter() - t1
            finally:
                con.close()
        n = report.records
        stats = {
            "engine": self.name,
            "events": n,
            "read_seconds": round(t_read, 3),
            "scan_seconds": round(t_scan, 3),
            "detect_seconds": round(t_detect, 3),
            "detect_events_per_s": round(n / t_detect) if t_detect > 0 else None,
        }
        return EngineResult(alerts=alerts, population=pop, stats=stats)

    def _load(self, con: Any, paths: Sequence[str | Path], report: ReadReport,
              say: Progress) -> PopulationBuilder:  # fmt: skip
        import pyarrow as pa

        con.register("empty_batch", pa.Table.from_pylist([], schema=schema()))
        con.execute("CREATE TABLE events AS SELECT * FROM empty_batch")
        con.unregister("empty_batch")
        builder = PopulationBuilder()
        for table in read_batches(paths, report):
            con.register("batch", table)
            con.execute("INSERT INTO events SELECT * FROM batch")
            con.unregister("batch")
            d = report.input_dim or 0
            from mlhunt.hunt.events import input_matrix

            builder.update(
                table.column("client_id").to_numpy(zero_copy_only=False),
                input_matrix(table.column("input"), d),
                table.column("label").to_numpy(zero_copy_only=False),
                table.column("margin").to_numpy(zero_copy_only=False).astype(np.float64),
            )
            say(f"read {report.records:,} records")
        return builder

    def _population(self, con: Any, builder: PopulationBuilder,
                    reference: np.ndarray | None) -> Population:  # fmt: skip
        from mlhunt.hunt.events import input_matrix

        per = sample_per_client(len(builder.per_client))
        tbl = con.sql(
            "SELECT input FROM (SELECT input, row_number() OVER (PARTITION BY client_id "  # noqa: S608
            "ORDER BY ts, file, line) AS rn FROM events WHERE input IS NOT NULL) "
            f"WHERE rn <= {int(per)}"
        ).to_arrow_table()
        if builder.d:
            builder.add_sample(input_matrix(tbl.column("input"), builder.d))
        return builder.build(reference)

    def _detect(self, con: Any, detectors: list[Detector], pop: Population,
                say: Progress) -> tuple[list[Alert], float]:  # fmt: skip
        alerts: list[Alert] = []
        busy = 0.0
        for scope in ("client_id", "source_ip"):
            dets = [d for d in detectors if d.spec.scope == scope and d.applies(pop)]
            if not dets:
                continue
            for batch in self._batches(con, scope, pop):
                t = time.perf_counter()
                alerts.extend(run_detectors(batch, pop, dets))
                busy += time.perf_counter() - t
            say(f"{scope}: {len(alerts)} alerts so far")
        return alerts, busy

    def _batches(self, con: Any, scope: str, pop: Population) -> Iterator[GroupBatch]:
        import pyarrow as pa

        reader = con.sql(
            f"SELECT {_COLS} FROM events WHERE {scope} IS NOT NULL "  # noqa: S608 (fixed names)
            f"ORDER BY {scope}, ts, file, line"
        ).to_arrow_reader(DETECT_ROWS)
        carry: list[Any] = []
        for rb in reader:
            if rb.num_rows == 0:
                continue
            keys = rb.column(scope)
            last = keys[rb.num_rows - 1].as_py()
            # rows of the last (possibly unfinished) group wait for the next batch
            import pyarrow.compute as pc

            is_last = pc.equal(keys, last).to_numpy(zero_copy_only=False)
            cut = int(np.argmax(is_last)) if is_last.any() else rb.num_rows
            if cut > 0:
                table = pa.Table.from_batches([*carry, rb.slice(0, cut)])
                carry = []
                yield GroupBatch.from_arrow(scope, table, pop.classes, pop.d)
            carry.append(rb.slice(cut))
        if carry:
            yield GroupBatch.from_arrow(scope, pa.Table.from_batches(carry), pop.classes, pop.d)
