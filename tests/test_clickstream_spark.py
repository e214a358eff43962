"""The clickstream feature job on real Spark (local mode): sessions, interactions and
aggregates match a plain-Python computation of the same events; a malformed record is counted.

One Spark job for the module (starting Spark takes 10-20 s on a busy machine).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from mlhunt.scenarios import clickfeatures as cf
from mlhunt.scenarios import clickgen as cg

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java (scripts/system-deps.sh installs it)", allow_module_level=True)

START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Path], Path]:
    folder = tmp_path_factory.mktemp("click")
    table = cg.combine(
        cg.generate(n_users=40, n_items=60, seed=3, start=START, days=3),
        cg.shilling(n_fake=6, target="i0042", n_items=60, seed=3, start=START),
    )
    events = folder / "events.jsonl"
    cg.write_events(table, events)
    with events.open("a", encoding="utf-8") as fh:  # two records the job must reject
        fh.write("not json at all\n")
        fh.write('{"ts": "2026-03-02T10:00:00Z", "user": "u1", "item": "i1", "event": "like"}\n')
    return table, cf.build_features(events, folder / "features"), folder / "features"


def _sessions(table: Any) -> dict[str, list[list[dict[str, Any]]]]:
    """Per user, events split where 30 minutes pass without one (the reference rule)."""
    out: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    last: dict[str, datetime] = {}
    for row in sorted(table.to_pylist(), key=lambda r: (r["user"], r["ts"])):
        u = row["user"]
        if u not in last or (row["ts"] - last[u]).total_seconds() > cf.SESSION_GAP_S:
            out[u].append([])
        out[u][-1].append(row)
        last[u] = row["ts"]
    return out


def test_files_and_counts(built: tuple[Any, dict[str, Path], Path]) -> None:
    table, paths, folder = built
    assert set(paths) == set(cf.ROLES)
    assert all(p.is_file() and p.parent == folder for p in paths.values())
    summary = json.loads((folder / cf.SUMMARY).read_text("utf-8"))
    assert summary["events"] == table.num_rows and summary["rejected"] == 2


def test_sessions_match_reference(built: tuple[Any, dict[str, Path], Path]) -> None:
    table, paths, _ = built
    ref = _sessions(table)
    got = pq.read_table(paths["sessions"]).to_pylist()
    assert len(got) == sum(len(s) for s in ref.values())
    by_user: dict[str, list[int]] = defaultdict(list)
    for s in got:
        by_user[s["user"]].append(s["events"])
    assert {u: sorted(v) for u, v in by_user.items()} == {
        u: sorted(len(s) for s in ss) for u, ss in ref.items()
    }
    users = {r["user"]: r for r in pq.read_table(paths["user_features"]).to_pylist()}
    assert {u: r["sessions"] for u, r in users.items()} == {u: len(s) for u, s in ref.items()}


def test_interactions_and_items(built: tuple[Any, dict[str, Path], Path]) -> None:
    table, paths, _ = built
    want: dict[tuple[str, str], float] = defaultdict(float)
    views: dict[str, int] = defaultdict(int)
    for row in table.to_pylist():
        want[(row["user"], row["item"])] += cf.EVENT_WEIGHTS[row["event"]]
        views[row["item"]] += row["event"] == "view"
    got = {
        (r["user"], r["item"]): r["weight"]
        for r in pq.read_table(paths["interactions"]).to_pylist()
    }
    assert got == pytest.approx(dict(want))
    items = {r["item"]: r for r in pq.read_table(paths["item_features"]).to_pylist()}
    assert {i: r["views"] for i, r in items.items()} == dict(views)
    # the shilling target's purchases include all six fake profiles' purchases
    assert items["i0042"]["purchases"] >= 6
