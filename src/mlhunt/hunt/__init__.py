"""``mlhunt hunt``: find extraction, probing, inference and abuse in inference-API logs.

Layout (see README.md beside this file for how an engine calls the detectors):

- :mod:`.readers`: JSONL / CSV / Parquet, files, folders, globs, gzip, streamed; malformed
  records counted in a :class:`~.readers.ReadReport`. DuckDB reads (:mod:`.duckread`) with the
  record checks of :mod:`.checks` (derived from :mod:`mlhunt.logschema`) in its SQL; Python's
  ``json``/``csv`` modules name what it cannot vouch for.
- :mod:`.events`: :class:`~.events.GroupBatch` (many targets' events as numpy arrays plus
  segment offsets), :class:`~.events.Population`, the segment operations.
- :mod:`.detectors`: one module + one YAML per detector, registered in one place.
- :mod:`.engines`: ``duckdb`` (default) and ``spark``.
- :mod:`.alerts`: alerts -> :class:`mlhunt.findings.Finding`.
- :mod:`.api`: :func:`hunt`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlhunt.hunt.api import HuntResult


def hunt(*args: Any, **kwargs: Any) -> HuntResult:
    """See :func:`mlhunt.hunt.api.hunt` (imported on use: numpy/duckdb stay out of start-up)."""
    from mlhunt.hunt.api import hunt as _hunt

    return _hunt(*args, **kwargs)


__all__ = ["hunt"]
