"""Reading JSON Lines logs into the in-memory :class:`~._mem.Store` (see :mod:`._mem`).

The file is read in blocks of about :data:`BLOCK_BYTES` cut at line ends; worker threads run
the compiled parser (:func:`._kern_json.parse_block`, which releases the GIL) on the next
blocks while this thread codes the strings and writes the events of the block before. Lines
the parser cannot vouch for go through the reader's Python path (``readers.json_row``) exactly
as the table path's block reader (:mod:`mlhunt.hunt._fastjson`) sends them: per block, those
before the first vouched line with an input first (they may fix the input length), then the
rest. So the records, the malformed ones and their order in the report are the table path's.

A block holding a lone ``\\r`` (Python's line iteration ends a line there) is read wholly by
the Python path, split as Python splits it.
"""

from __future__ import annotations

import io
import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.hunt.engines._kern_json import OK, SLOW
from mlhunt.hunt.engines._mem import Store
from mlhunt.hunt.readers import ReadReport, _Normaliser, json_row

#: Bytes of text per parsed block (~30k log records).
BLOCK_BYTES = 8 << 20
#: Threads running the parser (the reading thread codes and stores meanwhile).
PARSERS = 2
#: Blocks parsed ahead of the one being stored.
AHEAD = 3
_BOM = b"\xef\xbb\xbf"
_SAMPLE = 1 << 20  # bytes read to estimate a file's events


def estimate(path: Path) -> tuple[int, int]:
    """(events, input length) a JSON Lines file likely holds, from its size and its first
    lines (an overestimate by a tenth; the store grows if the rest has shorter lines)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(_SAMPLE)
    head = head.removeprefix(_BOM)
    if len(head) == _SAMPLE:  # drop the cut line
        head = head[: head.rfind(b"\n") + 1] or head
    lines = max(head.count(b"\n") + (not head.endswith(b"\n")), 1)
    width = 0
    for raw in head.splitlines()[:200]:
        try:
            rec = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        x = rec.get("input") if isinstance(rec, dict) else None
        if isinstance(x, list) and x:
            width = len(x)
            break
    per_line = max(len(head), 1) / lines
    return int(size / per_line * 1.1) + 1024, width


class JsonFile:
    """One JSON Lines file into the store (see the module docstring)."""

    def __init__(self, store: Store, path: Path, idx: int, report: ReadReport, width: int) -> None:
        self.store, self.path, self.idx, self.report = store, path, idx, report
        self.file = str(path)
        self.norm = _Normaliser(report)
        self.width = width  # the input length the parser writes until the logs fix one
        self.line = 0  # lines before the current block, as Python's line iteration counts
        self.seeds = np.array(
            [store.clients.seed, store.sources.seed, store.labels.seed], np.uint64
        )

    def run(self) -> None:
        try:
            with (
                self.path.open("rb") as fh,
                ThreadPoolExecutor(PARSERS, thread_name_prefix="mlhunt-json") as pool,
            ):
                pending: deque[tuple[np.ndarray, Future[Any]]] = deque()
                # blocks alive: those pending and the one being read
                for block in _blocks(fh, AHEAD + 2):
                    pending.append((block, pool.submit(_parse, block, self._d(), self.seeds)))
                    if len(pending) > AHEAD:
                        self.take(*_result(pending.popleft()))
                while pending:
                    self.take(*_result(pending.popleft()))
        except OSError as exc:  # as the table path's reader: the lines before it count
            self.report.error(self.file, 0, f"unreadable file ({type(exc).__name__}: {exc})")
        self.report.files.append(self.file)

    def _d(self) -> int:
        return self.report.input_dim or self.width

    def take(self, block: np.ndarray, parsed: tuple[np.ndarray, ...] | None) -> None:
        """A parsed block into the store (None: the block is the Python path's)."""
        if parsed is None:
            self._python_block(block)
            return
        kind, bounds, ts, span, hashes, text, margin, status, length, x = parsed
        m = len(kind)
        first = self.line + 1
        self.line += m
        ok = kind == OK
        slow = np.flatnonzero(kind == SLOW)
        rep = self.report
        if rep.input_dim is None:
            cand = np.flatnonzero(ok & (length > 0))
            stop = int(cand[0]) if len(cand) else m
            self._python(block, bounds, slow[slow < stop], first)
            slow = slow[slow >= stop]
            if rep.input_dim is None and len(cand):
                rep.input_dim = int(length[cand[0]])
        d = rep.input_dim or 0
        if d and x.shape[1] != d and bool((ok & (length == d)).any()):
            x = _parse(block, d, self.seeds)[9]  # the inputs at the length the logs fixed
        keep = ok & ((length == 0) | (length == d)) if d else ok & (length == 0)
        wrong = np.flatnonzero(ok & ~keep)
        if len(wrong):
            slow = np.union1d(slow, wrong)
        self._store(text, keep, first, ts, span, hashes, margin, status, length, x)
        self._python(block, bounds, slow, first)

    def _store(
        self,
        text: np.ndarray,
        keep: np.ndarray,
        first: int,
        ts: np.ndarray,
        span: np.ndarray,
        hashes: np.ndarray,
        margin: np.ndarray,
        status: np.ndarray,
        length: np.ndarray,
        x: np.ndarray,
    ) -> None:
        from mlhunt.hunt.engines._kern_json import put_rows

        # Coded here, not in the parsing threads: looking names up there (in snapshots of
        # the tables) measured 10-15 % more CPU in all and no faster.
        st = self.store
        client = st.clients.spans(span[0], span[1], text, keep, hashes[0])
        source = st.sources.spans(span[2], span[3], text, keep & (span[3] >= 0), hashes[1])
        label = st.labels.spans(span[4], span[5], text, keep, hashes[2])
        line = np.arange(first, first + len(keep), dtype=np.int64)
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
            put_rows(x, length, keep, st.ensure_x(d), s.start)
        elif st.x is not None:
            st.x[s] = np.nan
        self.report.records += s.stop - s.start

    def _python(self, block: np.ndarray, bounds: np.ndarray, lines: np.ndarray, first: int) -> None:
        """Lines ``lines`` (indices in the block) through the Python path, kept ones into the
        store."""
        rows = []
        for k in lines.tolist():
            text = block[bounds[k] : bounds[k + 1]].tobytes().decode("utf-8", "replace")
            row = json_row(self.norm, self.file, first + k, text)
            if row is not None:
                rows.append(row)
        self._add(rows)

    def _python_block(self, block: np.ndarray) -> None:
        """Python's own line splitting (universal newlines) and decoding, for odd blocks."""
        rows = []
        text = io.StringIO(block.tobytes().decode("utf-8", "replace"), newline="")
        for k, line in enumerate(text, self.line + 1):
            self.line = k
            row = json_row(self.norm, self.file, k, line)
            if row is not None:
                rows.append(row)
        self._add(rows)

    def _add(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.report.input_dim:
            self.store.ensure_x(self.report.input_dim)
        self.store.add_rows(rows, self.idx)


def _result(item: tuple[np.ndarray, Future[Any]]) -> tuple[np.ndarray, Any]:
    return item[0], item[1].result()


def _parse(block: np.ndarray, d: int, seeds: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """:func:`._kern_json.parse_block` of a block; None when it holds a lone ``\\r``."""
    from mlhunt.hunt.engines._kern_json import count_lines, parse_block

    m, lone_cr = count_lines(block, len(block))
    if lone_cr:
        return None
    return parse_block(block, len(block), m, d, seeds)  # type: ignore[no-any-return]


def _blocks(fh: Any, ring: int) -> Iterator[np.ndarray]:
    """The file's bytes (without a leading UTF-8 BOM) in blocks that end at a line end (the
    last may lack one). ``ring`` buffers take turns (not fresh pages, faulted in, for every
    block): the caller may hold at most ``ring - 1`` blocks when it asks for the next."""
    rest = np.empty(0, np.uint8)
    first = True
    bufs: list[np.ndarray] = []
    turn = -1
    grow = False  # the last buffer ended inside a line longer than it: a bigger one in its turn
    while True:
        size = max(BLOCK_BYTES, 2 * len(rest))
        if not grow:
            if len(bufs) < ring:
                bufs.append(np.empty(size, np.uint8))
            turn = (turn + 1) % len(bufs)
        if len(bufs[turn]) < size:
            bufs[turn] = np.empty(size, np.uint8)  # `rest` keeps the old one alive
        buf = bufs[turn]
        buf[: len(rest)] = rest
        got = fh.readinto(memoryview(buf)[len(rest) :])
        total = len(rest) + got
        data = buf[:total]
        if first:
            first = False
            if data[:3].tobytes() == _BOM:
                data = data[3:]
        if got == 0:
            if len(data):
                yield data
            return
        cut = _last_newline(data)
        grow = cut < 0
        if grow:  # a line longer than the buffer: read on
            rest = data
            continue
        yield data[: cut + 1]
        rest = data[cut + 1 :]


def _last_newline(data: np.ndarray) -> int:
    step = 1 << 16
    end = len(data)
    while end > 0:
        start = max(end - step, 0)
        hits = np.flatnonzero(data[start:end] == 10)
        if len(hits):
            return start + int(hits[-1])
        end = start
    return -1
