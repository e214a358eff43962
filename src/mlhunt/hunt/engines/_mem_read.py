"""Reading Parquet logs into the in-memory :class:`~._mem.Store` (see :mod:`._mem`).

pyarrow decodes each row group into Arrow record batches of the raw columns (in a thread, so
decoding overlaps the checks; the string columns stay dictionary-encoded); per batch, numpy and
the kernels apply the readers' checks, and the rows they vouch for are written into the store.
The others go through the Python reader exactly as :func:`._duck_load._vouch` sends them: rows
before the first vouched row with an input first (they may fix the input length), the rest at
the end of the file.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.engines._arrow import floats, offsets, valid
from mlhunt.hunt.engines._kern_mem import margins, put_x, vec_check
from mlhunt.hunt.engines._mem import MEMORY_BUDGET, ROW_BYTES, Declined, Store, Survey
from mlhunt.hunt.engines._mem_warm import preload
from mlhunt.hunt.engines._names import Names
from mlhunt.hunt.readers import ReadReport, _Normaliser

#: Most rows per Arrow record batch (a batch never spans row groups). Small batches reuse the
#: allocator's memory: 1 M-row ones had their pages faulted in afresh (a second of system time
#: per 10 M events on the VMs measured).
READ_ROWS = 131_072
#: Batches the timestamp stage may run ahead of the checks.
DEPTH = 4
#: Batches decoding may run ahead (~3 M rows): it goes on while numba loads the kernels (most
#: of a second, holding the GIL), when nothing else can use the second core.
DECODE_AHEAD = 24
#: The reader's columns that are strings to code (dictionary-encoded when read).
_TEXT = ("client_id", "source_ip", "label")
_NONE = np.empty(0, bool)
_NO_FLOATS = np.empty(0)
_NO_FLOATS.flags.writeable = False  # as floats() gives: one compiled version of each kernel
_NO_LIST = (np.empty(0, np.int64), _NO_FLOATS, _NONE, _NONE)


def read(
    files: list[Path], plan: Survey, report: ReadReport, say: Any, budget: int = MEMORY_BUDGET
) -> tuple[Store, list[str]]:
    """Every file into a :class:`Store` sized by ``plan`` (:func:`._mem.survey` of the same
    files; its likely input width is mapped ahead; an estimated size may grow while the events
    fit ``budget`` bytes); returns it and the file names indexed by ``file``. Raises Declined,
    with ``report`` as it was, when pyarrow cannot decode a file or the events outgrow the
    budget."""
    from mlhunt.hunt.engines._duck_load import file_ranks
    from mlhunt.hunt.engines._mem_json import JsonFile

    ranks = file_ranks(files)
    sels = plan.sels
    # numba's import and the reading kernels' machine code take a fraction of a second: loaded
    # in a thread while the store's memory is mapped and pyarrow decodes the first rows (numba
    # serialises loading, so a kernel the checks reach first is loaded once, by either thread)
    json_first = bool(sels) and not sels[0]
    threading.Thread(
        target=_preload, args=(json_first,), name="mlhunt-preload", daemon=True
    ).start()
    saved = (
        report.records,
        report.malformed,
        len(report.errors),
        report.input_dim,
        len(report.files),
    )

    def start(i: int) -> _Ahead | None:  # decoding a Parquet file ahead
        return _pipeline(files[i], sels[i]) if i < len(files) and sels[i] else None

    nxt = start(0)  # decoding starts before the mapping
    try:
        store = Store(plan.rows, background=plan.estimated)
        store.growable = plan.estimated
        store.max_cap = max(plan.rows, budget // (ROW_BYTES + 8 * max(plan.width, 1)))
        store.reserve_x(plan.width)
        for i, (path, sel) in enumerate(zip(files, sels, strict=True)):
            cur, nxt = nxt, None
            if not sel:  # JSON Lines
                nxt = start(i + 1)
                JsonFile(store, path, ranks[str(path)], report, plan.width).run()
            else:
                assert cur is not None
                with contextlib.closing(cur):
                    # the next file decodes while this one is checked
                    nxt = start(i + 1)
                    _File(store, path, ranks[str(path)], sel, report).run(cur)
            say(f"read {report.records:,} records")
    except Declined:
        report.records, report.malformed, n_err, report.input_dim, n_files = saved
        del report.errors[n_err:]
        del report.files[n_files:]
        raise
    finally:
        if nxt is not None:
            nxt.close()
    return store, sorted(ranks, key=ranks.__getitem__)


def _preload(json_first: bool) -> None:
    # only a head start: the reading thread loads (or fails on) any kernel itself
    with contextlib.suppress(Exception):
        preload(json_first)


class _File:
    def __init__(
        self, store: Store, path: Path, idx: int, sel: dict[str, str], report: ReadReport
    ) -> None:
        self.store, self.path, self.idx = store, path, idx
        self.sel, self.report = sel, report
        self.norm = _Normaliser(report)
        self.slow: list[np.ndarray] = []  # lines for the Python reader at the end

    def run(self, batches: Iterable[tuple[int, dict[str, Any], Any]]) -> None:
        """The file's batches (:func:`_pipeline`) into the store, then its slow rows."""
        kept = line = 0
        it = iter(batches)
        while True:
            with _unreadable(self.path):  # a damaged page, an odd encoding
                got = next(it, None)
            if got is None:
                break
            n, cols, ts = got
            kept += self._batch(cols, n, line, ts)
            line += n
        self._python(np.concatenate(self.slow) if self.slow else np.empty(0, np.int64))
        self.report.records += kept
        self.report.files.append(str(self.path))

    def _batch(self, col: dict[str, Any], n: int, first: int, parsed: Any = None) -> int:
        """Rows ``first + 1 ..`` of the file (the columns of :func:`flat`, with the parsed
        ``ts`` text when the pipeline parsed it) checked into the store; returns how many were
        kept there."""
        from mlhunt.hunt.engines._kern_ts import arrow_ts

        st = self.store
        if n == 0:
            return 0
        line = np.arange(first + 1, first + n + 1, dtype=np.int64)
        if "ts" in self.sel:
            ts, ok = arrow_ts(col["ts"]) if parsed is None else parsed
        else:
            ts = floats(col["ts_num"])
            ok = np.isfinite(ts)
        client = _codes(st.clients, col["client_id"], self.path)
        label = _codes(st.labels, col["label"], self.path)
        ok &= (client >= 0) & (label >= 0)
        if "source_ip" in self.sel:
            source = _codes(st.sources, col["source_ip"], self.path)
            source[source == -2] = -1  # an empty address is no address
        else:
            source = np.full(n, -1, np.int32)
        xs = _parts(col["input"]) if "input" in self.sel else _NO_LIST
        if "input" in self.sel:
            length, x_ok = vec_check(*xs)
            ok &= x_ok
        else:
            length = np.zeros(n, np.int32)
        sc = _parts(col["scores"]) if "scores" in self.sel else _NO_LIST
        score, s_valid = (
            (floats(col["score"]), _valid(col["score"], n))
            if "score" in self.sel
            else (_NO_FLOATS, _NONE)
        )
        margin, m_ok = margins(n, *sc, score, s_valid)
        ok &= m_ok
        status = np.zeros(n, np.int64)
        if "status" in self.sel:
            sd = floats(col["status"])
            known = ~np.isnan(sd)
            ok &= ~known | ((sd >= -(2.0**63)) & (sd < 2.0**63))
            status[known & ok] = np.trunc(sd[known & ok]).astype(np.int64)
        if "latency_ms" in self.sel:
            lat = floats(col["latency_ms"])
            ok &= ~_valid(col["latency_ms"], n) | np.isfinite(lat)
        keep = self._keep(ok, length, line)
        s = st.append(
            {
                "ts": ts,
                "line": line,
                "client": client,
                "source": source,
                "label": label,
                "margin": margin,
                "status": status,
            },
            self.idx,
            keep,
        )
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
        with _unreadable(self.path):  # bytes that are not UTF-8
            for line, rec in _parquet_rows(self.path, lines):
                row = self.norm.row(str(self.path), line, rec)
                if row is not None:
                    rows.append(row)
        if self.report.input_dim:
            self.store.ensure_x(self.report.input_dim)
        self.store.add_rows(rows, self.idx)


@contextlib.contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    """pyarrow failing on the file declines it (the table path reports the damage)."""
    from mlhunt.hunt.engines._duck_load import _pyarrow_failed

    try:
        yield
    except Exception as exc:
        if not _pyarrow_failed(exc):
            raise
        raise Declined(
            f"{path.name}: pyarrow cannot read it ({type(exc).__name__}: {exc})"
        ) from None


def _valid(arr: Any, n: int = 0) -> np.ndarray:
    """Validity as booleans (empty when there are no nulls, unless ``n`` asks for n Trues)."""
    if arr.null_count:
        return valid(arr)
    return np.ones(n, bool) if n else _NONE


def _parts(arr: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, values, validity, value validity) of a list<double> array (empty validity:
    no nulls)."""
    vals = arr.values
    return offsets(arr).astype(np.int64), floats(vals), _valid(arr), _valid(vals)


def flat(rb: Any, sel: dict[str, str]) -> dict[str, Any]:
    """A decoded record batch as the reader's flat columns (``sel`` of :func:`._mem._columns`):
    ``output``'s fields with the struct's nulls, number lists as lists of float64 (as exact as
    DuckDB's ``::DOUBLE[]``), a dictionary-encoded ``ts`` as strings."""
    import pyarrow as pa

    out: dict[str, Any] = {}
    fields: dict[str, list[Any]] = {}  # per struct column, its children AND its validity
    for key, path in sel.items():
        top, _, sub = path.partition(".")
        arr = rb.column(top)
        if sub:
            if top not in fields:
                fields[top] = arr.flatten()
            arr = fields[top][arr.type.get_field_index(sub)]
        if key in ("input", "scores") and not pa.types.is_float64(arr.type.value_type):
            arr = arr.cast(pa.list_(pa.float64()), safe=False)  # ints round as DuckDB's cast
        elif key == "ts" and pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        out[key] = arr
    return out


def _codes(names: Names, arr: Any, path: Path) -> np.ndarray:
    try:
        return names.column(arr)
    except ValueError as exc:  # not UTF-8: the table path reports the file as damaged
        raise Declined(f"{path.name}: {exc}") from None


class _Ahead:
    """The items of ``make()`` produced by a thread of their own, at most ``depth`` ahead of
    the consumer; started at once. :meth:`close` stops the thread (and ``after``, the stage it
    consumes); an exception in the thread is raised to the consumer in its place."""

    def __init__(
        self, make: Callable[[], Iterator[Any]], depth: int, name: str, after: _Ahead | None = None
    ) -> None:
        self.box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.after = after
        self.thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self.thread.start()

    def _put(self, item: tuple[bool, Any]) -> bool:
        while not self.stop.is_set():
            try:
                self.box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, make: Callable[[], Iterator[Any]]) -> None:
        try:
            for item in make():
                if not self._put((True, item)):
                    return
            self._put((False, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put((False, exc))

    def __iter__(self) -> Iterator[Any]:
        while True:
            more, item = self.box.get()
            if more:
                yield item
            elif item is None:
                return
            else:
                raise item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        if self.after is not None:
            self.after.close()


def _pipeline(path: Path, sel: dict[str, str]) -> _Ahead:
    """(rows, :func:`flat` columns, parsed ts text or None) per record batch of the file: one
    thread has pyarrow decode (pyarrow's own threads do the columns), the next parses the
    timestamps, while the caller checks the batch before (the kernels release the GIL)."""
    from mlhunt.hunt.engines._kern_ts import arrow_ts

    decoded = _Ahead(lambda: _batches(path, sel), DECODE_AHEAD, "mlhunt-parquet")

    def parse() -> Iterator[tuple[int, dict[str, Any], Any]]:
        for rb in decoded:
            cols = flat(rb, sel)
            yield rb.num_rows, cols, arrow_ts(cols["ts"]) if "ts" in sel else None

    return _Ahead(parse, DEPTH, "mlhunt-ts", after=decoded)


def _batches(path: Path, sel: dict[str, str]) -> Iterator[Any]:
    """The file's record batches, the columns of ``sel`` (string columns dictionary-encoded),
    none spanning row groups."""
    import pyarrow.parquet as pq

    cols = sorted(set(sel.values()))
    pf = pq.ParquetFile(path, read_dictionary=[sel[k] for k in _TEXT if k in sel])
    for g in range(pf.metadata.num_row_groups):
        yield from pf.iter_batches(
            batch_size=READ_ROWS, row_groups=[g], columns=cols, use_threads=True
        )
