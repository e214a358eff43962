"""Dense codes for the strings of Arrow columns (client ids, source addresses, labels).

DuckDB hashes each string while it decodes (``hash(col)``, in its own threads); a compiled
open-addressing table keyed by that hash finds the string's code and confirms it byte for byte
(so two strings with the same hash never share a code: ids are attacker-chosen). Only strings
never seen before are copied into the table's byte pool. Codes follow first appearance; callers
sort names where order matters."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.hunt._jit import njit


@njit
def _intern(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray, hashes: np.ndarray,
            start: int, table: np.ndarray, pool: np.ndarray, pool_off: np.ndarray,
            known: np.ndarray, n_names: int, out: np.ndarray) -> tuple[int, int]:  # fmt: skip
    """Codes of rows ``start``.. into ``out`` (-1 null, -2 empty string), adding new strings;
    returns (names now, row to resume at: ``len(out)`` when done, earlier when the table, the
    pool or the name arrays must grow first)."""
    mask = len(table) - 1
    for i in range(start, len(out)):
        if len(valid) and not valid[i]:
            out[i] = -1
            continue
        a, b = offsets[i], offsets[i + 1]
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
            if (n_names + 1 >= len(known) or used + (b - a) > len(pool)
                    or 2 * (n_names + 1) > len(table)):  # fmt: skip
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

    @property
    def names(self) -> list[str]:
        """The strings by code (decoded from the pool when first asked for)."""
        for c in range(len(self._names), self.n):
            raw = bytes(self.pool[self.pool_off[c] : self.pool_off[c + 1]])
            self._names.append(raw.decode("utf-8"))
        return self._names

    def codes_of(self, names: list[str]) -> np.ndarray:
        """Codes of Python strings (the Python reader's rows), hashed by DuckDB as the columns
        are (a private connection: the engine's may be busy decoding in another thread)."""
        import duckdb
        import pyarrow as pa

        if not names:
            return np.empty(0, np.int32)
        tbl = pa.table({"s": pa.array(names, pa.string())})
        con = duckdb.connect()
        try:
            con.register("mlhunt_names", tbl)
            got = con.sql("SELECT s, hash(s) AS h FROM mlhunt_names").to_arrow_table()
        finally:
            con.close()
        return self.encode(got.column("s").combine_chunks(), got.column("h").combine_chunks())

    def encode(self, arr: Any, hashes: Any) -> np.ndarray:
        """int32 codes of a string array (-1 null, -2 empty string), given each row's hash."""
        import pyarrow as pa

        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.large_string())
        wide = pa.types.is_large_string(arr.type)
        off = np.frombuffer(arr.buffers()[1], np.int64 if wide else np.int32)
        off = off[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
        buf = arr.buffers()[2]
        data = np.frombuffer(buf, np.uint8) if buf is not None else np.empty(0, np.uint8)
        valid = (arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count
                 else np.empty(0, bool))  # fmt: skip
        h = hashes.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
        return self._codes(off, data, valid, h)

    def _codes(self, off: np.ndarray, data: np.ndarray, valid: np.ndarray,
               hashes: np.ndarray) -> np.ndarray:  # fmt: skip
        out = np.empty(len(off) - 1, np.int32)
        start = 0
        while True:
            self.n, start = _intern(off, data, valid, hashes, start, self.table, self.pool,
                                    self.pool_off, self.known, self.n, out)  # fmt: skip
            if start >= len(out):
                return out
            self._grow(int(off[start + 1] - off[start]))

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
