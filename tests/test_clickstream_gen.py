"""The clickstream simulator: deterministic per seed, with the populations the hunt must tell
apart (honest users, a marketing burst, a shilling group)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

from mlhunt.scenarios import clickgen as cg

START = datetime(2026, 3, 2, tzinfo=UTC)


def _all(seed: int = 0) -> object:
    honest = cg.generate(n_users=60, n_items=80, seed=seed, start=START)
    burst = cg.marketing_burst(
        n_users=20, item="i0010", n_items=80, seed=seed, start=datetime(2026, 3, 4, tzinfo=UTC)
    )
    fake = cg.shilling(
        n_fake=12, target="i0033", n_items=80, seed=seed, start=datetime(2026, 3, 5, tzinfo=UTC)
    )
    return cg.combine(honest, burst, fake)


def test_same_seed_same_table_other_seed_other_table() -> None:
    assert _all(0).equals(_all(0))
    assert not _all(0).equals(_all(1))


def test_schema_and_populations() -> None:
    table = _all()
    assert table.schema == cg.SCHEMA
    assert set(pc.unique(table["event"]).to_pylist()) == set(cg.EVENTS)
    users = {
        label: set(pc.unique(table.filter(pc.equal(table["label"], label))["user"]).to_pylist())
        for label in ("benign", "marketing", "shilling")
    }
    assert len(users["benign"]) == 60 and len(users["marketing"]) == 20
    assert len(users["shilling"]) == 12
    assert not (users["benign"] & users["marketing"]) and not (users["benign"] & users["shilling"])
    # every fake account buys the target; every campaign visitor views the campaign item
    fake = table.filter(pc.equal(table["label"], "shilling"))
    bought = fake.filter(pc.equal(fake["event"], "purchase"))
    assert set(bought["item"].to_pylist()) == {"i0033"}
    assert len(set(bought["user"].to_pylist())) == 12
    burst = table.filter(pc.equal(table["label"], "marketing"))
    assert (
        set(burst.filter(pc.equal(burst["item"], "i0010"))["user"].to_pylist())
        == users["marketing"]
    )
    assert set(burst["referrer"].drop_null().to_pylist()) == {cg.CAMPAIGN_REFERRER}


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_read_round_trip(tmp_path: Path, suffix: str) -> None:
    table = _all()
    cg.write_events(table, tmp_path / f"events{suffix}")
    assert cg.read_events(tmp_path / f"events{suffix}").equals(table)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="i0000"):
        cg.shilling(n_fake=2, target="i9999", n_items=80, seed=0, start=START)
    with pytest.raises(ValueError, match=r"\.jsonl or \.parquet"):
        cg.write_events(_all(), Path("events.csv"))


def test_simulated_week_has_every_population() -> None:
    week = cg.simulate_week(n_users=200, start=START)
    labels = week.events["label"].to_pylist()
    users = week.events["user"].to_pylist()
    honest = {u for u, lab in zip(users, labels, strict=True) if lab == "benign"}
    assert len(honest) == 200
    assert set(week.fake_users) == {
        u for u, lab in zip(users, labels, strict=True) if lab == "shilling"
    }
    assert len(week.marketing_users) == 60 and len(week.fake_users) == 25
    assert week.target != week.campaign_item
