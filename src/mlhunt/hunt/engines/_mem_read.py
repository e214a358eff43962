"""Reading Parquet logs into the in-memory :class:`~._mem.Store` (see :mod:`._mem`).

DuckDB decodes each file into Arrow record batches of the raw columns (in a thread, so decoding
overlaps the checks); per batch, numpy and the kernels apply the readers' checks, and the rows
they vouch for are written into the store. The others go through the Python reader exactly as
:func:`._duck_load._vouch` sends them: rows before the first vouched row with an input first
(they may fix the input length), the rest at the end of the file.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.engines._kern_mem import margins, put_x, vec_check
from mlhunt.hunt.engines._mem import Declined, Store
from mlhunt.hunt.engines._mem_warm import preload
from mlhunt.hunt.readers import ReadReport, _Normaliser

#: DuckDB threads while reading (the engine's own setting is restored after).
DECODE_THREADS = 2
#: Rows per Arrow record batch that DuckDB hands over.
READ_ROWS = 1_048_576
#: DuckDB's streaming buffer while reading (decoded batches waiting for the checks).
STREAM_BUFFER = "64MB"
_NO_LIST = (np.empty(0, np.int64), np.empty(0), np.empty(0, bool), np.empty(0, bool))
_NONE = np.empty(0, bool)


def read(con: Any, files: list[Path], sels: list[dict[str, str]], report: ReadReport,
         say: Any) -> tuple[Store, list[str]]:  # fmt: skip
    """Every file into a :class:`Store`; returns it and the file names indexed by ``file``.
    Raises Declined, with ``report`` as it was, when DuckDB cannot decode a file."""
    import pyarrow.parquet as pq

    from mlhunt.hunt.engines._duck_load import file_ranks

    ranks = file_ranks(files)
    # numba's import and the reading kernels' machine code take a fraction of a second: loaded
    # in a thread while the store's memory is mapped and DuckDB decodes the first rows (numba
    # serialises loading, so a kernel the checks reach first is loaded once, by either thread)
    threading.Thread(target=_preload, name="mlhunt-preload", daemon=True).start()
    # DuckDB's decoding threads stop when its streaming buffer (1 MB by default) is full; a
    # larger one keeps them busy while this thread checks the previous batch
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.execute(f"SET streaming_buffer_size = '{STREAM_BUFFER}'")
    # (two decoding threads and 1M-row batches measured fastest beside the checking thread)
    con.execute(f"SET threads = {DECODE_THREADS}")
    store = Store(sum(pq.ParquetFile(p).metadata.num_rows for p in files))
    saved = (report.records, report.malformed, len(report.errors), report.input_dim,
             len(report.files))  # fmt: skip
    try:
        for path, sel in zip(files, sels, strict=True):
            _File(con, store, path, ranks[str(path)], sel, report).run()
            say(f"read {report.records:,} records")
    except Declined:
        report.records, report.malformed, n_err, report.input_dim, n_files = saved
        del report.errors[n_err:]
        del report.files[n_files:]
        raise
    finally:
        con.execute(f"SET threads = {int(threads)}")
    return store, sorted(ranks, key=ranks.__getitem__)


def _preload() -> None:
    # only a head start: the reading thread loads (or fails on) any kernel itself
    with contextlib.suppress(Exception):
        preload()


class _File:
    def __init__(self, con: Any, store: Store, path: Path, idx: int, sel: dict[str, str],
                 report: ReadReport) -> None:  # fmt: skip
        self.con, self.store, self.path, self.idx = con, store, path, idx
        self.sel, self.report = sel, report
        self.norm = _Normaliser(report)
        self.slow: list[np.ndarray] = []  # lines for the Python reader at the end
        self.last_line = 0

    def run(self) -> None:
        cols = ", ".join(f"{v} AS {k}" for k, v in self.sel.items())
        query = f"SELECT {cols} FROM read_parquet($1, file_row_number = true)"  # noqa: S608
        kept = 0
        for rb in _batches(self.con, query, str(self.path)):
            kept += self._batch(rb)
        self._python(np.concatenate(self.slow) if self.slow else np.empty(0, np.int64))
        self.report.records += kept
        self.report.files.append(str(self.path))

    def _batch(self, rb: Any) -> int:
        from mlhunt.hunt.engines._kern_ts import arrow_ts

        st, col, n = self.store, rb.column, rb.num_rows
        if n == 0:
            return 0
        line = col("line").to_numpy().astype(np.int64)
        if line[0] <= self.last_line or bool((line[1:] <= line[:-1]).any()):
            raise Declined("rows out of order")  # DuckDB keeps the file's order; check anyway
        self.last_line = int(line[-1])
        if "ts" in self.sel:
            ts, ok = arrow_ts(col("ts"))
        else:
            ts = _floats(col("ts_num"))
            ok = np.isfinite(ts)
        client = st.clients.encode(col("client_id"), col("client_hash"))
        label = st.labels.encode(col("label"), col("label_hash"))
        ok &= (client >= 0) & (label >= 0)
        if "source_ip" in self.sel:
            source = st.sources.encode(col("source_ip"), col("source_hash"))
            source[source == -2] = -1  # an empty address is no address
        else:
            source = np.full(n, -1, np.int32)
        xs = _parts(col("input")) if "input" in self.sel else _NO_LIST
        if "input" in self.sel:
            length, x_ok = vec_check(*xs)
            ok &= x_ok
        else:
            length = np.zeros(n, np.int32)
        sc = _parts(col("scores")) if "scores" in self.sel else _NO_LIST
        score, s_valid = (_floats(col("score")), _valid(col("score"), n)) if "score" in self.sel \
            else (np.empty(0), _NONE)  # fmt: skip
        margin, m_ok = margins(n, *sc, score, s_valid)
        ok &= m_ok
        status = np.zeros(n, np.int64)
        if "status" in self.sel:
            sd = _floats(col("status"))
            known = ~np.isnan(sd)
            ok &= ~known | ((sd >= -(2.0**63)) & (sd < 2.0**63))
            status[known & ok] = np.trunc(sd[known & ok]).astype(np.int64)
        if "latency_ms" in self.sel:
            lat = _floats(col("latency_ms"))
            ok &= ~_valid(col("latency_ms"), n) | np.isfinite(lat)
        keep = self._keep(ok, length, line)
        every = bool(keep.all())
        s = st.append({"ts": ts, "line": line, "client": client, "source": source,
                       "label": label, "margin": margin, "status": status}, self.idx,
                      None if every else keep)  # fmt: skip
        d = self.report.input_dim
        if d:
            put_x(xs[0], xs[1], length, keep, d, st.ensure_x(d), s.start)
        elif st.x is not None:
            st.x[s] = np.nan
        return s.stop - s.start

    def _keep(self, ok: np.ndarray, length: np.ndarray, line: np.ndarray) -> np.ndarray:
        """Rows kept here; the others are queued for the Python reader (or read at once when
        they come before the first vouched input while the input length is unknown)."""
        done = np.zeros(len(ok), bool)
        if self.report.input_dim is None:
            first = np.flatnonzero(ok & (length > 0))
            if len(first):
                f = int(first[0])
                self.slow.append(line[:f][~ok[:f]])
                self._python(np.concatenate(self.slow))
                self.slow = []
                done[:f] = True
                if self.report.input_dim is None:
                    self.report.input_dim = int(length[f])
        d = self.report.input_dim
        keep = ok & ((length == 0) | (length == d)) if d else ok & (length == 0)
        self.slow.append(line[~keep & ~done])
        return keep

    def _python(self, lines: np.ndarray) -> None:
        """Rows ``lines`` through the Python reader, kept ones into the store."""
        from mlhunt.hunt.engines._duck_load import _parquet_rows

        if not len(lines):
            return
        rows = []
        for line, rec in _parquet_rows(self.path, lines):
            row = self.norm.row(str(self.path), line, rec)
            if row is not None:
                rows.append(row)
        if self.report.input_dim:
            self.store.ensure_x(self.report.input_dim)
        self.store.add_rows(rows, self.idx)


def _floats(arr: Any) -> np.ndarray:
    """float64 values, NaN where null."""
    return arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _valid(arr: Any, n: int = 0) -> np.ndarray:
    """Validity as booleans (empty when there are no nulls, unless ``n`` asks for n Trues)."""
    if arr.null_count:
        return arr.is_valid().to_numpy(zero_copy_only=False)
    return np.ones(n, bool) if n else _NONE


def _parts(arr: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, values, validity, value validity) of a list<double> array (empty validity:
    no nulls)."""
    import pyarrow as pa

    if pa.types.is_large_list(arr.type):
        off = np.frombuffer(arr.buffers()[1], np.int64)
    else:
        off = np.frombuffer(arr.buffers()[1], np.int32)
    off = off[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    vals = arr.values
    return off, _floats(vals), _valid(arr), _valid(vals)


def _batches(con: Any, query: str, path: str) -> Iterator[Any]:
    """The query's record batches, decoded by DuckDB in a thread while the caller checks the
    previous one (DuckDB and the kernels release the GIL)."""
    import duckdb

    box: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for rb in con.sql(query, params=[path]).to_arrow_reader(READ_ROWS):
                if not put(rb):
                    return
            put(None)
        except BaseException as exc:  # handed to the reading thread, which raises it
            put(exc)

    t = threading.Thread(target=pump, name="mlhunt-parquet", daemon=True)
    t.start()
    try:
        while True:
            got = box.get()
            if got is None:
                return
            if isinstance(got, duckdb.Error):
                raise Declined(f"{Path(path).name}: DuckDB cannot read it ({got})")
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        t.join()
