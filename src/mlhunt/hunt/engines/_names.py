"""Dense codes for the strings of Arrow columns (client ids, source addresses, labels).

Each batch is dictionary-encoded by Arrow (C++), and only its distinct strings are looked up
among the known ones (``index_in``, also C++); only strings never seen before pass through
Python. A compiled hash table over the UTF-8 bytes was measured no faster. Codes follow first
appearance; callers sort names where order matters."""

from __future__ import annotations

from typing import Any

import numpy as np


class Names:
    """Dense codes for strings, in order of first appearance."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self._known: Any = None  # the names as an Arrow array, rebuilt after additions

    def code(self, name: str) -> int:
        c = self.index.get(name)
        if c is None:
            c = self.index[name] = len(self.names)
            self.names.append(name)
            self._known = None
        return c

    def encode(self, arr: Any) -> np.ndarray:
        """int32 codes of a string array: -1 for null, -2 for the empty string."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if len(arr) == 0:
            return np.empty(0, np.int32)
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr)
        words = arr.dictionary.cast(pa.string())
        if self._known is None:
            self._known = pa.array(self.names, pa.string())
        pos = pc.index_in(words, value_set=self._known)
        lut = pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        new = np.flatnonzero(lut < 0)
        if len(new):
            lut[new] = [self.code(w) for w in words.take(pa.array(new)).to_pylist()]
        empty = self.index.get("")
        if empty is not None:
            lut[lut == empty] = -2
        lut = np.append(lut, np.int32(-1))  # null
        return lut[arr.indices.fill_null(len(words)).to_numpy(zero_copy_only=False)]
