"""Turning a composed YAML document into plain JSON-able data, with bounds.

PyYAML builds aliases as shared references, which is cheap; copying them into plain data (for
Rego's input) is not: ten levels of nine aliases is 9**10 values from a 500-byte file (the
"billion laughs"), and ``&a [*a]`` is a cycle. Both are refused with a clear reason instead of a
hang or a RecursionError.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_VALUES", "YamlBomb", "to_plain"]

MAX_VALUES = 1_000_000  # values in one document once aliases are expanded
MAX_DEPTH = 256  # nesting; Kubernetes objects are a few dozen levels at most


class YamlBomb(ValueError):
    """A document whose aliases expand past the bounds, or refer to themselves."""


def to_plain(value: Any, *, max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` with str keys, lists for tuples, ISO dates, None for NaN and infinities."""
    budget = [max_values]
    return _plain(value, budget, max_depth, set())


def _plain(value: Any, budget: list[int], depth: int, path: set[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlBomb("YAML aliases expand to too many values (an alias bomb)")
    if isinstance(value, dict | list | tuple):
        if depth <= 0:
            raise YamlBomb("YAML nested too deeply")
        if id(value) in path:
            raise YamlBomb("YAML alias refers to itself (a cycle)")
        path.add(id(value))
        try:
            if isinstance(value, dict):
                return {_text(str(k)): _plain(v, budget, depth - 1, path) for k, v in value.items()}
            return [_plain(v, budget, depth - 1, path) for v in value]
        finally:
            path.discard(id(value))
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):  # NaN, .inf: not JSON
        return None
    return value


def _text(value: str) -> str:
    """YAML's "\\ud800" escape yields a lone surrogate, which no UTF-8 consumer (Rego's input,
    a JSON report) accepts: replaced by U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value
