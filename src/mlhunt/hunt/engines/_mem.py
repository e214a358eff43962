"""The in-memory path of the DuckDB engine: events as numpy columns, no table, no global sort.

When every log file is a plain (not gzipped) JSON Lines file or a Parquet file whose column
types this path understands, and the events fit :data:`MEMORY_BUDGET`, the files are read
straight into preallocated packed records (:class:`Store`). Parquet: pyarrow's reader decodes
row group by row group (string columns kept dictionary-encoded, so each distinct id is coded
once per row group; DuckDB's own reader measured two to three times the CPU here, most of it
handing rows to Arrow), and compiled kernels (:mod:`._kern_ts`, :mod:`._kern_mem`, strings
coded by :mod:`._names`) apply the readers' record checks (:mod:`._mem_read`). JSON Lines: a
compiled parser reads blocks of lines in worker threads (:mod:`._mem_json`,
:mod:`._kern_json`); the store's size is estimated from the first lines and grows if needed.
Logs arrive in time order, so a stable counting sort by target (:mod:`._mem_prep`) puts them in
the (target, ts, file, line) order the detectors need in one linear pass.

The checks are *sound, not complete*, as the SQL ones of :mod:`._duck_sql`: a row the kernels
cannot vouch for goes through the Python reader (``_Normaliser``), which keeps it or reports it
with its row number and reason, so the malformed-record report is the Python path's, row for row.
Anything unusual (a column type :func:`survey` does not take, a file pyarrow cannot decode,
strings that are not UTF-8) raises :class:`Declined`, with the read report as it was, and the
engine takes the table path instead.
"""

from __future__ import annotations

import mmap
import threading
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mlhunt.hunt.engines._names import Names
from mlhunt.hunt.readers import _kind

#: Most bytes the in-memory columns may take; larger logs take the table path (which spills).
MEMORY_BUDGET = 1_600 * 1024**2
#: Bytes per event besides the input (the packed record of :class:`Store`).
ROW_BYTES = 48
_MADV_POPULATE_WRITE = 23  # <linux/mman.h>
_STEP = 16 << 20  # bytes per populating call in the background (see _populate)


class Declined(Exception):
    """The in-memory path does not take these logs (the reason is the message)."""


class Store:
    """The events in the order they were read: one packed 48-byte record per event (so the
    detector batches gather one cache line per event, not one per column) and the inputs.

    Record words: ts (float64), line, margin (float64), status, then int32 pairs (client,
    source) and (label, file); the attributes below are (strided) views of them."""

    def __init__(self, capacity: int, background: bool = False) -> None:
        self.n = 0
        self.cap = capacity
        self.growable = False  # True when the capacity is an estimate (JSON Lines)
        self.max_cap = capacity  # most events :meth:`grow` may make room for
        # background: the pages are faulted in by a thread while reading starts (JSON Lines:
        # the reading thread itself parses; Parquet decodes in a thread meanwhile anyway)
        self.background = background
        self._views(_mapped((capacity, 6), np.int64, background))
        self.x: np.ndarray | None = None  # (capacity, d) once an input length is known
        self._x_known = False  # ensure_x was called (x's width is the logs' input length)
        self.clients, self.sources, self.labels = Names(), Names(), Names()

    def _views(self, rec: np.ndarray) -> None:
        self.rec = rec
        self.rec_f = self.rec.view(np.float64)
        self.rec_i4 = self.rec.view(np.int32)
        self.ts = self.rec_f[:, 0]
        self.line = self.rec[:, 1]
        self.margin = self.rec_f[:, 2]
        self.status = self.rec[:, 3]
        self.client = self.rec_i4[:, 8]
        self.source = self.rec_i4[:, 9]
        self.label = self.rec_i4[:, 10]
        self.file = self.rec_i4[:, 11]

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` events (a JSON Lines log's size is estimated from its first
        lines: one with longer lines later needs more)."""
        if capacity <= self.cap:
            return
        if capacity > self.max_cap:
            raise Declined(f"more than {self.max_cap:,} events")
        rec = _mapped((capacity, 6), np.int64)
        rec[: self.n] = self.rec[: self.n]
        self._views(rec)
        if self.x is not None:
            x = _mapped((capacity, self.x.shape[1]), np.float64)
            x[: self.n] = self.x[: self.n]
            self.x = x
        self.cap = capacity

    def reserve_x(self, d: int) -> None:
        """Map the inputs' memory ahead, for a width guessed from the files' footers (the
        pages are faulted in while the kernels load, not when the first input arrives)."""
        if self.x is None and d > 0:
            self.x = _mapped((self.cap, d), np.float64, self.background)

    def ensure_x(self, d: int) -> np.ndarray:
        """The inputs, ``d`` wide (the rows so far NaN); a reserved width that turns out wrong
        is replaced."""
        if self.x is None or self.x.shape[1] != d:
            self.x = _mapped((self.cap, d), np.float64)
            self._x_known = False
        if not self._x_known:
            self.x[: self.n] = np.nan
            self._x_known = True
        return self.x

    def append(
        self, cols: dict[str, np.ndarray], file_idx: int, keep: np.ndarray | None = None
    ) -> slice:
        """Rows ``keep`` (all: None) of the columns (``x`` is written by the caller into the
        returned slice)."""
        if keep is not None and bool(keep.all()):
            keep = None  # no copies through a mask
        m = len(cols["ts"]) if keep is None else int(keep.sum())
        if self.n + m > self.cap:
            if not self.growable:  # Parquet: only Python-path rows can exceed the row count
                raise Declined("more events than rows")
            self.grow(max(self.n + m, min(self.cap + self.cap // 4, self.max_cap)))
        s = slice(self.n, self.n + m)
        for name in ("ts", "line", "client", "source", "label", "margin", "status"):
            getattr(self, name)[s] = cols[name] if keep is None else cols[name][keep]
        self.file[s] = file_idx
        self.n += m
        return s

    def add_rows(self, rows: list[tuple[Any, ...]], file_idx: int) -> None:
        """Rows of the Python reader (``readers.COLUMNS`` order)."""
        if not rows:
            return
        src = [r[4] for r in rows]
        source = np.full(len(rows), -1, np.int32)
        has = np.array([v is not None for v in src], bool)
        source[has] = self.sources.codes_of([v for v in src if v is not None])
        cols = {
            "ts": np.array([r[2] for r in rows], np.float64),
            "line": np.array([r[1] for r in rows], np.int64),
            "client": self.clients.codes_of([r[3] for r in rows]),
            "source": source,
            "label": self.labels.codes_of([r[6] for r in rows]),
            "margin": np.array([np.nan if r[8] is None else r[8] for r in rows], np.float64),
            "status": np.array([0 if r[10] is None else r[10] for r in rows], np.int64),
        }
        s = self.append(cols, file_idx)
        if self.x is not None:
            d = self.x.shape[1]
            for j, r in enumerate(rows):
                self.x[s.start + j] = r[5] if r[5] is not None and len(r[5]) == d else np.nan


def _mapped(shape: tuple[int, ...], dtype: Any, background: bool = False) -> np.ndarray:
    """A zeroed array in its own anonymous mapping, its pages faulted in by the kernel at once:
    touching a gigabyte of fresh pages one fault at a time (and, for numpy's huge-page advice,
    compacting memory first) cost seconds on the VMs measured. ``MADV_POPULATE_WRITE`` (Linux
    5.14) through ctypes, which lets the other threads run (Python's ``mmap`` holds the GIL
    through ``MAP_POPULATE``: a quarter of a second per 600 MB); ``MAP_POPULATE`` where the
    kernel does not have it. ``background``: in a thread, while the caller goes on (writing
    meanwhile is fine: a page faulted in by the writer is left as it is)."""
    size = max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    buf = mmap.mmap(-1, size, flags=flags)
    if background:  # the caller goes on (and writes) while a thread faults the pages in
        threading.Thread(
            target=_populate, args=(buf, size, _STEP), name="mlhunt-populate", daemon=True
        ).start()
    elif not _populate(buf, size):
        buf = mmap.mmap(-1, size, flags=flags | getattr(mmap, "MAP_POPULATE", 0))
    return np.frombuffer(buf, dtype, count=int(np.prod(shape))).reshape(shape)


def _populate(buf: mmap.mmap, size: int, step: int = 0) -> bool:
    """Fault in every page of ``buf`` without the GIL, ``step`` bytes per call (0: at once);
    False where the kernel cannot. The kernel holds the process's memory-map lock through a
    call, so another thread mapping memory (a large allocation) waits for it: a thread
    working in the background goes in steps."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return False
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    view = ctypes.c_char.from_buffer(buf)
    try:
        base, step = ctypes.addressof(view), step or size
        for at in range(0, size, step):
            if int(madvise(base + at, min(step, size - at), _MADV_POPULATE_WRITE)) != 0:
                return False
        return True
    finally:
        del view  # the buffer export: the mapping stays as long as the array


# --- eligibility ---------------------------------------------------------------------------------


def _is_num(t: Any, ints: bool = True) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_float32(t) or pa.types.is_float64(t) or (ints and pa.types.is_integer(t))
    )


def _is_text(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _columns(sch: Any) -> dict[str, str]:
    """The columns to read for a Parquet file's Arrow schema (the reader's name for each, and
    its path in the file); raises Declined for a type this path does not read (the table path
    reads every type the readers accept)."""
    import pyarrow as pa

    names = list(sch.names)
    if len(set(names)) != len(names):
        raise Declined("duplicate column names")
    t = {n: sch.field(n).type for n in names}

    def absent(n: str) -> bool:
        return n not in t or pa.types.is_null(t[n])

    sel: dict[str, str] = {}
    if "ts" in t and _is_text(t["ts"]):
        sel["ts"] = "ts"
    elif "ts" in t and _is_num(t["ts"]):
        sel["ts_num"] = "ts"
    else:
        raise Declined("ts column type")
    if "client_id" not in t or not _is_text(t["client_id"]):
        raise Declined("client_id column type")
    sel["client_id"] = "client_id"
    for n in ("source_ip", "model"):
        if not absent(n) and not _is_text(t[n]):
            raise Declined(f"{n} column type")
    if not absent("source_ip"):
        sel["source_ip"] = "source_ip"
    if not absent("input"):
        if not (pa.types.is_list(t["input"]) and _is_num(t["input"].value_type)):
            raise Declined("input column type")
        sel["input"] = "input"
    out = t.get("output")
    if out is None or not pa.types.is_struct(out) or out.get_field_index("label") < 0:
        raise Declined("output column type")  # flattened output columns: the Python path
    if len({out.field(i).name for i in range(out.num_fields)}) != out.num_fields:
        raise Declined("duplicate output fields")
    if not _is_text(out.field("label").type):
        raise Declined("output.label type")
    sel["label"] = "output.label"
    for sub, kind in (("scores", "list"), ("score", "num")):
        i = out.get_field_index(sub)
        if i < 0 or pa.types.is_null(out.field(i).type):
            continue
        st = out.field(i).type
        is_list = pa.types.is_list(st) and _is_num(st.value_type)
        if not (is_list if kind == "list" else _is_num(st)):
            raise Declined(f"output.{sub} type")
        sel[sub] = f"output.{sub}"
    for n in ("status", "latency_ms"):
        if absent(n):
            continue
        if not _is_num(t[n], ints=True) or (n == "status" and not pa.types.is_integer(t[n])):
            raise Declined(f"{n} column type")
        sel[n] = n
    return sel


class Survey(NamedTuple):
    """What the Parquet footers (and the first lines of JSON Lines files) say, before any row
    is decoded."""

    sels: list[dict[str, str]]  # per file, its columns (:func:`_columns`; {} for JSON Lines)
    need: int  # bytes the events would take in the store
    rows: int  # rows in all files (the store's capacity)
    width: int  # the likely input length (input values per row, rounded; 0: no inputs)
    estimated: bool = False  # rows is an estimate (JSON Lines): the store may have to grow


def survey(files: list[Path]) -> Survey:
    """The files' columns and sizes from their footers (JSON Lines: estimated from the first
    lines); Declined if a file is neither plain Parquet of a readable schema nor plain JSON
    Lines."""
    import pyarrow.parquet as pq

    from mlhunt.hunt.engines._mem_json import estimate

    sels, rows, values = [], 0, 0
    estimated = False
    for path in files:
        if path.name.lower().endswith(".gz"):
            raise Declined(f"{path.name}: compressed")
        if _kind(path) == "jsonl":
            n, width = estimate(path)
            sels.append({})
            rows += n
            values += n * width
            estimated = True
            continue
        if _kind(path) != "parquet":
            raise Declined(f"{path.name}: not a Parquet or JSON Lines file")
        try:
            meta = pq.ParquetFile(path).metadata
            sels.append(_columns(meta.schema.to_arrow_schema()))
        except Declined:
            raise
        except Exception as exc:  # damaged footer, odd encoding: the table path reports it
            raise Declined(f"{path.name}: {type(exc).__name__}") from None
        rows += meta.num_rows
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        for g in range(meta.num_row_groups):
            for i, p in enumerate(names):
                if p.startswith("input."):
                    values += meta.row_group(g).column(i).num_values
    width = round(values / rows) if rows else 0
    return Survey(sels, rows * ROW_BYTES + values * 8, rows, width, estimated)
