"""``mlhunt hunt`` on the command line: formats, exit codes, the read summary, options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlhunt.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Benign clients plus one uniform extractor and one malformed line."""
    rng = np.random.default_rng(0)
    lines = []
    for c in range(60):
        for k in range(30):
            x = rng.normal([40, 5e4, 3], [10, 2e4, 1])
            lines.append(
                {
                    "ts": 1709632800 + c * 100 + k,
                    "client_id": f"user{c}",
                    "input": x.round(3).tolist(),
                    "source_ip": f"10.0.0.{c}",
                    "output": {"label": "ok", "scores": [0.2, 0.8]},
                }
            )
    for k in range(200):
        x = rng.uniform([0, 0, -10], [120, 5e5, 20])
        lines.append(
            {
                "ts": 1709640000 + k,
                "client_id": "thief",
                "source_ip": "192.0.2.66",
                "input": x.round(3).tolist(),
                "output": {"label": "ok", "scores": [0.45, 0.55]},
            }
        )
    path = tmp_path_factory.mktemp("hunt") / "logs.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in lines)
    path.write_text(text + "{broken\n")
    return path


def test_json_document_and_read_summary(logs: Path) -> None:
    res = runner.invoke(app, ["hunt", str(logs), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["command"] == "hunt"
    assert doc["read"]["records"] == 2000 and doc["read"]["malformed"] == 1
    assert doc["read"]["errors"][0]["line"] == 2001
    assert "1 malformed" in res.stderr
    thief = [f for f in doc["findings"] if f["target"] == "thief"]
    assert {f["rule_id"] for f in thief} >= {"MLH-HUNT-EXTRACTION"}
    ev = thief[0]["evidence"]
    assert {"detector", "first_event_ts", "detected_at_event", "score"} <= set(ev)
    assert ev["first_event_ts"].endswith("Z") and ev["detected_at_event"] <= 60
    assert not any(f["target"].startswith("user") for f in doc["findings"])


def test_fail_on_and_other_formats(logs: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["hunt", str(logs), "-f", "json", "--fail-on", "medium"])
    assert res.exit_code == 1
    for fmt, probe in (("sarif", '"version": "2.1.0"'), ("markdown", "thief"), ("html", "<html")):
        out = tmp_path / f"r.{fmt}"
        res = runner.invoke(app, ["hunt", str(logs), "-f", fmt, "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert probe in out.read_text()


def test_detector_filter(logs: Path) -> None:
    res = runner.invoke(
        app, ["hunt", str(logs), "-f", "json", "--detector", "MLH-HUNT-INVERSION-SWEEP"]
    )
    doc = json.loads(res.stdout)
    assert [d["id"] for d in doc["detectors"]] == ["MLH-HUNT-INVERSION-SWEEP"]
    assert doc["findings"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hunt", "no/such.jsonl"], "no/such.jsonl: no such file or folder"),
        (["hunt", "{logs}", "--engine", "hadoop"], "--engine: unknown engine 'hadoop'"),
        (["hunt", "{logs}", "--detector", "MLH-HUNT-NOPE"], "unknown detector(s) MLH-HUNT-NOPE"),
        (["hunt", "{logs}", "--reference", "no.npz"], "no.npz: --reference: no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2(logs: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, [a.replace("{logs}", str(logs)) for a in args])
    assert res.exit_code == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def test_reference_baseline(logs: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ref = tmp_path / "ref.npz"
    np.savez(ref, x=rng.normal([40, 5e4, 3], [10, 2e4, 1], (500, 3)))
    res = runner.invoke(app, ["hunt", str(logs), "-f", "json", "--reference", str(ref)])
    doc = json.loads(res.stdout)
    assert doc["population"]["baseline"] == "reference"
    assert "thief" in {f["target"] for f in doc["findings"]}


def test_alert_timeline_series_and_html_plot(logs: Path, tmp_path: Path) -> None:
    """Each alert carries its online score per event; the HTML draws it as a timeline."""
    res = runner.invoke(app, ["hunt", str(logs), "--format", "json"])
    doc = json.loads(res.stdout)
    ev = next(f for f in doc["findings"] if f["target"] == "thief")["evidence"]
    series = ev["series"]
    events = [e for e, _ in series]
    assert events == sorted(events) and events[-1] == ev["events"] and len(series) <= 121
    fired = dict(series)[ev["detected_at_event"]]
    assert fired >= ev["threshold"]
    assert all(s < ev["threshold"] for e, s in series if e < ev["detected_at_event"])
    out = tmp_path / "hunt.html"
    assert runner.invoke(app, ["hunt", str(logs), "-f", "html", "-o", str(out)]).exit_code == 0
    html = out.read_text()
    assert html.count("<polyline") >= len(doc["findings"]) and "alert fired" in html
