"""Dense codes for the strings of Arrow columns (client ids, source addresses, labels).

Columns arrive dictionary-encoded (Parquet stores them so, and pyarrow keeps it), so only each
dictionary's values are coded and the rows take their value's code. A compiled open-addressing
table keyed by a seeded hash of the bytes finds a value's code and confirms it byte for byte (so
two strings with the same hash never share a code: ids are attacker-chosen). Only strings never
seen before are copied into the table's byte pool. Codes follow first appearance; callers sort
names where order matters."""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from mlhunt.hunt._jit import njit
from mlhunt.hunt.engines import _arrow


@njit
def _hash1(data: np.ndarray, a: int, b: int, seed: np.uint64) -> np.uint64:
    """A 64-bit hash of ``data[a:b]`` (FNV-1a from a per-table random seed, then splitmix64's
    finaliser): only the table's probing depends on it, never a code."""
    prime = np.uint64(0x100000001B3)
    h = seed ^ np.uint64(b - a)
    for k in range(a, b):
        h = (h ^ np.uint64(data[k])) * prime
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@njit
def _hashes(offsets: np.ndarray, data: np.ndarray, seed: np.uint64, out: np.ndarray) -> None:
    """:func:`_hash1` of each string of an offsets/data pair."""
    for i in range(len(out)):
        out[i] = _hash1(data, offsets[i], offsets[i + 1], seed)


@njit
def _intern(
    starts: np.ndarray,
    stops: np.ndarray,
    data: np.ndarray,
    valid: np.ndarray,
    hashes: np.ndarray,
    start: int,
    table: np.ndarray,
    pool: np.ndarray,
    pool_off: np.ndarray,
    known: np.ndarray,
    n_names: int,
    out: np.ndarray,
) -> tuple[int, int]:
    """Codes of rows ``start``.. (row ``i``: ``data[starts[i]:stops[i]]``) into ``out`` (-1
    null, -2 empty string), adding new strings; returns (names now, row to resume at:
    ``len(out)`` when done, earlier when the table, the pool or the name arrays must grow
    first)."""
    mask = len(table) - 1
    for i in range(start, len(out)):
        if len(valid) and not valid[i]:
            out[i] = -1
            continue
        a, b = starts[i], stops[i]
        if b == a:
            out[i] = -2
            continue
        h = hashes[i]
        slot = np.int64(h & np.uint64(mask))
        code = -1
        while table[slot] >= 0:
            c = table[slot]
            if known[c] == h and pool_off[c + 1] - pool_off[c] == b - a:
                p = pool_off[c]
                same = True
                for k in range(b - a):
                    if pool[p + k] != data[a + k]:
                        same = False
                        break
                if same:
                    code = c
                    break
            slot = (slot + 1) & mask
        if code < 0:
            used = pool_off[n_names]
            if (
                n_names + 1 >= len(known)
                or used + (b - a) > len(pool)
                or 2 * (n_names + 1) > len(table)
            ):
                return n_names, i
            pool[used : used + (b - a)] = data[a:b]
            pool_off[n_names + 1] = used + (b - a)
            known[n_names] = h
            table[slot] = n_names
            code = n_names
            n_names += 1
        out[i] = code
    return n_names, len(out)


@njit
def _rehash(known: np.ndarray, n_names: int, table: np.ndarray) -> None:
    mask = len(table) - 1
    for c in range(n_names):
        slot = np.int64(known[c] & np.uint64(mask))
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = c


class Names:
    """Dense codes for strings, in order of first appearance."""

    def __init__(self) -> None:
        self.n = 0
        self.table = np.full(1024, -1, np.int32)
        self.pool = np.empty(16_384, np.uint8)
        self.pool_off = np.zeros(513, np.int64)
        self.known = np.empty(512, np.uint64)  # each name's hash
        self._names: list[str] = []
        self.seed = np.uint64(secrets.randbits(64))
        self._last: tuple[Any, np.ndarray] | None = None  # the last dictionary and its codes

    @property
    def names(self) -> list[str]:
        """The strings by code (decoded from the pool when first asked for)."""
        for c in range(len(self._names), self.n):
            raw = bytes(self.pool[self.pool_off[c] : self.pool_off[c + 1]])
            self._names.append(raw.decode("utf-8"))
        return self._names

    def codes_of(self, names: list[str]) -> np.ndarray:
        """Codes of Python strings (the Python reader's rows)."""
        if not names:
            return np.empty(0, np.int32)
        return self.column(_arrow.strings(names))

    def column(self, arr: Any) -> np.ndarray:
        """int32 codes of a string column, plain or dictionary-encoded (-1 null, -2 empty
        string). Raises ValueError for bytes that are not UTF-8 (pyarrow does not check them
        when it reads Parquet)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(arr, pa.ChunkedArray):
            parts = [self.column(c) for c in arr.chunks]
            return np.concatenate(parts) if parts else np.empty(0, np.int32)
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr)  # hashed in Arrow's C++, then coded per value
        codes = self._dictionary(arr.dictionary)
        n = len(arr)
        if len(codes) == 0:  # no values: every row is null
            return np.full(n, -1, np.int32)
        idx = _arrow.values(arr.indices)
        if not arr.null_count:
            return codes[idx]
        ok = _arrow.valid(arr)
        out = codes[np.where(ok, idx, 0)]  # a null row's index slot may hold anything
        out[~ok] = -1
        return out

    def _dictionary(self, d: Any) -> np.ndarray:
        """Codes of a dictionary's values; the last dictionary's are kept (the batches of one
        row group each carry a copy of the row group's dictionary: compared, not coded again)."""
        if self._last is not None:
            old, codes = self._last
            if len(old) == len(d) and old.equals(d):
                return codes
        try:
            d.validate(full=True)
        except Exception as exc:  # pyarrow.ArrowInvalid: not UTF-8
            raise ValueError(f"strings that are not UTF-8 ({exc})") from None
        codes = self.encode(d, None)
        self._last = (d, codes)
        return codes

    def encode(self, arr: Any, hashes: Any | None = None) -> np.ndarray:
        """int32 codes of a plain string array, one per row (-1 null, -2 empty string), given
        each row's hash (uint64 array; None: this table's own)."""
        import pyarrow as pa

        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.large_string())
        if len(arr) == 0:
            return np.empty(0, np.int32)
        off = _arrow.offsets(arr).astype(np.int64)
        raw = _arrow.data(arr)
        ok = _arrow.valid(arr) if arr.null_count else np.empty(0, bool)
        if hashes is None:
            h = np.empty(len(off) - 1, np.uint64)
            _hashes(off, raw, self.seed, h)
        else:
            h = _arrow.values(hashes.fill_null(0)).astype(np.uint64)
        return self._codes(off, raw, ok, h)

    def _codes(
        self, off: np.ndarray, data: np.ndarray, valid: np.ndarray, hashes: np.ndarray
    ) -> np.ndarray:
        return self.spans(off[:-1], off[1:], data, valid, hashes)

    def spans(
        self,
        starts: np.ndarray,
        stops: np.ndarray,
        data: np.ndarray,
        valid: np.ndarray,
        hashes: np.ndarray,
    ) -> np.ndarray:
        """int32 codes of the strings ``data[starts[i]:stops[i]]`` (int64 bounds; -1 where
        ``valid``, unless empty, is False; -2 for an empty string), given their hashes with
        this table's :attr:`seed` (:func:`_hash1`); the bytes must be UTF-8."""
        out = np.empty(len(starts), np.int32)
        start = 0
        while True:
            self.n, start = _intern(
                starts,
                stops,
                data,
                valid,
                hashes,
                start,
                self.table,
                self.pool,
                self.pool_off,
                self.known,
                self.n,
                out,
            )
            if start >= len(out):
                return out
            self._grow(int(stops[start] - starts[start]))

    def _grow(self, need: int) -> None:
        if self.n + 1 >= len(self.known):
            size = 2 * len(self.known)
            self.known = np.resize(self.known, size)
            self.pool_off = np.resize(self.pool_off, size + 1)
        if 2 * (self.n + 1) > len(self.table):
            self.table = np.full(2 * len(self.table), -1, np.int32)
            _rehash(self.known, self.n, self.table)
        used = int(self.pool_off[self.n])
        if used + need > len(self.pool):
            self.pool = np.resize(self.pool, max(2 * len(self.pool), used + need))
