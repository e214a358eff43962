"""The shilling hunt over a simulated shop week: 240 honest users (regulars among them), a
marketing burst of 60 new users to one item, and 25 fake profiles pushing a long-tail item.

Acceptance: the one finding names every fake profile and only them; no honest user and not the
marketing burst is alerted. Each signal is needed: without the new-account rule the regulars
alert, without the similarity rule the marketing burst does. Seconds in all (DuckDB, SciPy)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mlhunt.clickhunt import CLICKSTREAM, RECOMMENDER_API, click_kind, hunt
from mlhunt.errors import InputError
from mlhunt.scenarios import clickgen as cg

START = datetime(2026, 3, 2, tzinfo=UTC)
ID = "MLH-HUNT-SHILLING"
#: Lines planted in the JSON Lines file (1-based line -> text): each must be reported.
BAD = {
    2: "not json",
    5: '{"ts": "2026-03-03T00:00:00Z", "user": 7, "item": "i0001", "event": "view"}',
    9: '{"ts": "later", "user": "u1", "item": "i0001", "event": "view"}',
    14: '{"ts": "2026-03-03T00:00:00Z", "user": "u1", "item": "i0001", "event": "like"}',
    20: "[1, 2, 3]",
}


@pytest.fixture(scope="module")
def week() -> cg.Week:
    return cg.simulate_week(n_users=240, seed=0, start=START)


@pytest.fixture(scope="module")
def logs(week: cg.Week, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("click")
    cg.write_events(week.events, folder / "events.parquet")
    cg.write_events(week.events, folder / "clean.jsonl")
    lines = (folder / "clean.jsonl").read_text("utf-8").splitlines()
    for at, text in sorted(BAD.items()):
        lines.insert(at - 1, text)
    lines.insert(11, "")  # a blank line still counts in the numbering
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    return {"parquet": folder / "events.parquet", "jsonl": folder / "events.jsonl"}


def _labels(week: cg.Week) -> dict[str, str]:
    return dict(zip(week.events["user"].to_pylist(), week.events["label"].to_pylist(), strict=True))


def _alerted(result: Any) -> dict[str, set[str]]:
    return {f.target: set(f.evidence["accounts"]) for f in result.findings}


def test_names_the_fake_group_and_nobody_else(week: cg.Week, logs: dict[str, Path]) -> None:
    result = hunt(logs["parquet"])
    assert result.read.kind == CLICKSTREAM and not result.errors
    assert len(result.findings) == 1
    f = result.findings[0]
    assert f.rule_id == ID and f.target == week.target
    assert set(f.evidence["accounts"]) == set(week.fake_users)
    assert f.evidence["accounts_total"] == 25
    assert "AML.T0020" in f.atlas and "ML02" in f.owasp_ml
    assert "MLH-ML-POISONING-TRAINING-FLOW" in f.evidence["validates"]
    # the group holds most of the item's training weight, and near-identical well above 0.75
    assert f.evidence["group_share_of_item_weight"] > 0.8
    assert f.evidence["mean_similarity"] > 0.8
    assert f.evidence["group_events_on_item"]["purchase"] >= 25


def test_jsonl_reports_every_malformed_line(week: cg.Week, logs: dict[str, Path]) -> None:
    result = hunt(logs["jsonl"])
    read = result.read.report
    assert read.records == week.events.num_rows and read.malformed == len(BAD)
    lines = {e["line"]: e["reason"] for e in read.errors}
    # the blank line inserted at index 11 pushes every planted line after it down by one
    assert set(lines) == {at if at <= 11 else at + 1 for at in BAD}
    assert lines[5].startswith("user:") and lines[9].startswith("ts:")
    assert lines[15].startswith("event:") and lines[2].startswith("not a JSON object")
    assert _alerted(result) == {week.target: set(week.fake_users)}


def test_new_account_signal_is_needed(week: cg.Week, logs: dict[str, Path]) -> None:
    """Every account compared: the regulars (old, near-identical daily sessions) alert."""
    result = hunt(logs["parquet"], params={ID: {"new_only": False}})
    labels = _labels(week)
    honest = {a for accts in _alerted(result).values() for a in accts if labels[a] == "benign"}
    assert len(honest) >= 5


def test_similarity_signal_is_needed(week: cg.Week, logs: dict[str, Path]) -> None:
    """No similarity needed: the marketing burst alerts on its campaign item."""
    result = hunt(logs["parquet"], params={ID: {"similarity": 0.0, "centroid_similarity": 0.0}})
    alerted = _alerted(result)
    assert week.campaign_item in alerted
    assert len(alerted[week.campaign_item] & set(week.marketing_users)) >= 50


def _api_records(week: cg.Week) -> list[dict[str, Any]]:
    """The shop frontend asks the recommender for each page view, with the session so far."""
    out: list[dict[str, Any]] = []
    session: dict[str, list[str]] = {}
    for row in week.events.to_pylist():
        if row["event"] != "view":
            continue
        items = session.setdefault(row["user"], [])
        items.append(row["item"])
        out.append(
            {
                "ts": row["ts"].isoformat().replace("+00:00", "Z"),
                "client_id": "shop-frontend",
                "input": [0.1, 0.2],
                "output": {"label": "i0000", "items": ["i0000", "i0001"]},
                "model": "clickstream-two-tower-v1",
                "source_ip": row["source_ip"],
                "status": 200,
                "user": row["user"],
                "items": list(items[-20:]),
            }
        )
    return out


def test_api_log_sessions(week: cg.Week, tmp_path: Path) -> None:
    path = tmp_path / "api.jsonl"
    records = _api_records(week)
    records.insert(3, {"ts": "2026-03-02T00:00:00Z", "client_id": "x", "output": {}, "items": 5})
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", "utf-8")
    assert click_kind([path]) == RECOMMENDER_API
    result = hunt([path], kind=RECOMMENDER_API)
    assert result.read.report.malformed == 1
    assert result.read.report.errors[0]["line"] == 4
    assert _alerted(result) == {week.target: set(week.fake_users)}


def test_log_kinds(logs: dict[str, Path], tmp_path: Path) -> None:
    assert click_kind([logs["parquet"]]) == CLICKSTREAM
    assert click_kind([logs["jsonl"]]) == CLICKSTREAM
    other = tmp_path / "inference.jsonl"
    other.write_text(json.dumps({"ts": 1, "client_id": "a", "output": {"label": "x"}}) + "\n")
    assert click_kind([other]) is None
    with pytest.raises(InputError, match="mixed"):
        click_kind([logs["parquet"], other])


def test_empty_and_tiny_logs(tmp_path: Path) -> None:
    path = tmp_path / "tiny.jsonl"
    path.write_text('{"ts": "2026-03-02T00:00:00Z", "user": "u1", "item": "i1", "event": "view"}\n')
    result = hunt([path])
    assert result.findings == [] and result.errors == [] and result.read.report.records == 1


def _mlhunt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlhunt", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_hunts_events_and_exports_sigma(week: cg.Week, logs: dict[str, Path]) -> None:
    folder = logs["jsonl"].parent
    r = _mlhunt(
        "hunt", "events.jsonl", "-f", "json", "-o", "h.json", "--export-sigma", "sig", cwd=folder
    )
    assert r.returncode == 0, r.stderr
    assert f"{len(BAD)} malformed" in r.stderr and "events.jsonl:2:" in r.stderr
    doc = json.loads((folder / "h.json").read_text("utf-8"))
    assert doc["log_kind"] == CLICKSTREAM and doc["summary"]["total"] == 1
    assert set(doc["findings"][0]["evidence"]["accounts"]) == set(week.fake_users)
    names = {p.name for p in (folder / "sig").iterdir()}
    assert {"mlhunt_click_buyers_per_item.yml", "mlhunt_alert_mlh_hunt_shilling.yml"} <= names


def test_cli_spark_engine_on_events_is_refused(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text(
        '{"ts": "2026-03-02T00:00:00Z", "user": "u1", "item": "i1", "event": "view"}\n', "utf-8"
    )
    r = _mlhunt("hunt", "e.jsonl", "--engine", "spark", cwd=tmp_path)
    assert r.returncode == 2 and "--engine spark" in r.stderr and "DuckDB only" in r.stderr


def test_cli_adds_shilling_to_an_api_log_hunt(week: cg.Week, tmp_path: Path) -> None:
    (tmp_path / "api.jsonl").write_text(
        "\n".join(json.dumps(r) for r in _api_records(week)) + "\n", "utf-8"
    )
    r = _mlhunt("hunt", "api.jsonl", "-f", "json", "-o", "h.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "h.json").read_text("utf-8"))
    shill = [f for f in doc["findings"] if f["rule_id"] == ID]
    assert [f["target"] for f in shill] == [week.target]
    assert doc["clickstream"]["log_kind"] == RECOMMENDER_API
    assert doc["summary"]["total"] == len(doc["findings"])


def test_hostile_records_are_counted_not_fatal(tmp_path: Path) -> None:
    good = '{"ts":"2026-03-02T00:00:00Z","user":"u1","item":"i1","event":"view"}'
    lines = [
        good.encode(),
        b"\xff\xfe not text",
        b"[" * 50_000 + b"]" * 50_000,  # nesting deeper than any parser's stack
        good.replace('"u1"', '"' + "x" * 300 + '"').encode(),
        b'{"ts": 1e300, "user": "u", "item": "i", "event": "view"}',
        good.replace('"view"}', '"view","source_ip":{"a":1}}').encode(),
        good.encode(),
    ]
    (tmp_path / "e.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = hunt([tmp_path / "e.jsonl"])
    report = result.read.report
    assert (report.records, report.malformed) == (2, 5) and not result.errors
    reasons = {e["line"]: e["reason"] for e in report.errors}
    assert reasons[4] == "user: longer than 256 characters"
    assert reasons[5].startswith("ts:") and reasons[6].startswith("source_ip:")
    data = (tmp_path / "e.jsonl").read_bytes()
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(data * 50)[:300])
    cut = hunt([tmp_path / "cut.jsonl.gz"], kind=CLICKSTREAM)
    assert cut.read.report.malformed >= 1 and cut.read.report.errors[0]["line"] == 0


def test_one_day_api_log_needs_the_reference(week: cg.Week, tmp_path: Path) -> None:
    """A day of API log has no history of its own: accounts are told new against the earlier
    events (the data the model was trained on)."""
    day = "2026-03-06"
    records = [r for r in _api_records(week) if r["ts"].startswith(day)]
    (tmp_path / "api.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    cut = pc.less(
        week.events["ts"], pa.scalar(datetime(2026, 3, 6, tzinfo=UTC), week.events["ts"].type)
    )
    cg.write_events(week.events.filter(cut), tmp_path / "before.parquet")
    # alone, the day's first hours are its warm-up: the fakes (02:00-05:00) count as old, and
    # the regulars' daily visits (06:00-10:00) as new near-identical accounts
    alone = _alerted(hunt([tmp_path / "api.jsonl"], kind=RECOMMENDER_API))
    assert week.target not in alone
    labels = _labels(week)
    assert {labels[a] for accts in alone.values() for a in accts} <= {"benign"}
    result = hunt(
        [tmp_path / "api.jsonl"], kind=RECOMMENDER_API, reference=tmp_path / "before.parquet"
    )
    assert _alerted(result) == {week.target: set(week.fake_users)}
    assert result.read_summary()["reference"]["malformed"] == 0


def test_detector_yaml_is_checked(tmp_path: Path) -> None:
    from mlhunt.clickhunt.detectors import REGISTRY, load_spec
    from mlhunt.errors import CatalogError

    src = Path(__file__).parents[1] / "src/mlhunt/clickhunt/detectors/shilling.yaml"
    assert "shilling" in REGISTRY and load_spec(src).id == ID
    bad = tmp_path / "bad.yaml"
    bad.write_text(src.read_text("utf-8").replace("AML.T0020,", "AML.T9999,"), "utf-8")
    with pytest.raises(CatalogError, match=r"bad\.yaml: atlas: unknown id\(s\) AML\.T9999"):
        load_spec(bad)
    bad.write_text(src.read_text("utf-8") + "colour: red\n", "utf-8")
    with pytest.raises(CatalogError, match="colour"):
        load_spec(bad)


def test_sigma_rules_convert() -> None:
    from mlhunt.clickhunt.sigma import build_rules
    from mlhunt.llmhunt.sigma import convert

    rules = build_rules()
    spl = convert(rules, "splunk")
    assert 'event IN ("cart", "purchase")' in spl["mlhunt_click_buyers_per_item"][0]
    assert "dc(user)" in spl["mlhunt_click_buyers_per_item"][0]
    assert f'rule_id="{ID}"' in spl["mlhunt_alert_mlh_hunt_shilling"][0]


def test_reading_is_bounded(logs: dict[str, Path]) -> None:
    from mlhunt.clickhunt import read

    got = read([logs["parquet"], logs["jsonl"]], max_events=1000)
    assert got.report.records == 1000 and got.events.num_rows == 1000
    assert any("stopped after 1,000 records" in w for w in got.report.warnings)
