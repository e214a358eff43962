"""Hunt clickstream events and recommender API logs for shilling (profile injection).

``mlhunt hunt`` recognises a clickstream events file by content (records with ``ts``, ``user``,
``item`` and ``event``; Parquet: those columns) and a recommender's API log (inference records
whose ``output.items`` is a list and which name the ``user``): docs/hunt.md.
"""

from __future__ import annotations

from mlhunt.clickhunt.api import ClickHuntResult, hunt, hunt_events, to_finding
from mlhunt.clickhunt.readers import CLICKSTREAM, RECOMMENDER_API, ClickRead, click_kind, read

__all__ = [
    "CLICKSTREAM",
    "RECOMMENDER_API",
    "ClickHuntResult",
    "ClickRead",
    "click_kind",
    "hunt",
    "hunt_events",
    "read",
    "to_finding",
]
