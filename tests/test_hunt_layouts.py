"""Issue #21 item 3: the hunt reads the common layouts (one CSV column per feature, a
``features`` object) and says so when its input-space detectors could not run."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mlhunt.cli import app
from mlhunt.hunt.api import hunt

FEATURES = ("age", "income", "tenure")


def _records() -> list[dict[str, Any]]:
    """Sixty honest clients near the population, one uniform extractor (``thief``)."""
    rng = np.random.default_rng(0)
    out = []
    for c in range(60):
        for k in range(30):
            x = rng.normal([40, 5e4, 3], [10, 2e4, 1]).round(3)
            out.append((1709632800 + c * 100 + k, f"user{c}", x, [0.2, 0.8]))
    for k in range(200):
        x = rng.uniform([0, 0, -10], [120, 5e5, 20]).round(3)
        out.append((1709640000 + k, "thief", x, [0.45, 0.55]))
    return [
        {"ts": ts, "client_id": cid, "x": dict(zip(FEATURES, x.tolist(), strict=True)), "s": s}
        for ts, cid, x, s in out
    ]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layouts")
    recs = _records()
    wide = root / "wide.csv"
    with wide.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "client_id", "request_id", *FEATURES, "label", "score"])
        for i, r in enumerate(recs):
            w.writerow([r["ts"], r["client_id"], f"req-{i}", *r["x"].values(), "ok", r["s"][1]])
    feats = root / "features.jsonl"
    feats.write_text(
        "".join(
            json.dumps(
                {
                    "ts": r["ts"],
                    "client_id": r["client_id"],
                    "features": r["x"],
                    "output": {"label": "ok", "scores": r["s"]},
                }
            )
            + "\n"
            for r in recs
        )
    )
    bare = root / "bare.jsonl"
    bare.write_text(
        "".join(
            json.dumps({"ts": r["ts"], "client_id": r["client_id"], "output": {"label": "ok"}})
            + "\n"
            for r in recs
        )
    )
    return {"wide": wide, "features": feats, "bare": bare}


@pytest.mark.parametrize("layout", ["wide", "features"])
def test_feature_layouts_are_read_and_the_extractor_found(
    layouts: dict[str, Path], layout: str
) -> None:
    res = hunt(layouts[layout])
    assert res.read.malformed == 0 and res.read.records == 60 * 30 + 200
    assert res.population.d == 3 and res.read.input_dim == 3
    assert not res.read.warnings
    assert "thief" in {a.target for a in res.alerts}
    honest = {a.target for a in res.alerts} - {"thief"}
    assert len(honest) <= 1  # at most one of the sixty honest clients


def test_features_object_in_key_order_equals_input_array(
    layouts: dict[str, Path], tmp_path: Path
) -> None:
    from mlhunt.hunt.readers import ReadReport, read_batches

    report = ReadReport()
    rows = [r for t in read_batches(layouts["features"], report) for r in t.to_pylist()]
    first = json.loads(layouts["features"].read_text().splitlines()[0])
    assert rows[0]["input"] == list(first["features"].values())
    # a record whose keys come in another order is checked by Python, in the file's order
    swapped = dict(reversed(list(first["features"].items())))
    p = tmp_path / "swapped.jsonl"
    p.write_text(json.dumps(first) + "\n" + json.dumps({**first, "features": swapped}) + "\n")
    report = ReadReport()
    rows = [r for t in read_batches(p, report) for r in t.to_pylist()]
    assert report.records == 2 and {tuple(r["input"]) for r in rows} == {
        tuple(first["features"].values()),
        tuple(swapped.values()),
    }


def test_no_inputs_is_a_warning_not_silence(layouts: dict[str, Path]) -> None:
    res = hunt(layouts["bare"])
    assert res.read.records == 60 * 30 + 200 and res.population.d == 0
    assert res.read.warnings and "could not run" in res.read.warnings[0]
    assert "MLH-HUNT-EXTRACTION" in res.read.warnings[0]
    assert res.document()["read"]["warnings"] == res.read.warnings
    out = CliRunner().invoke(app, ["hunt", str(layouts["bare"]), "--format", "json"])
    assert out.exit_code == 0, out.output
    assert "warning:" in out.stderr and "no input vectors" in out.stderr
