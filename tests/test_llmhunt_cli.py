"""`mlhunt hunt` on LLM logs: told apart from inference logs by content, hunted end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlhunt.llmhunt import simulate


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """The range written by `mlhunt simulate llm-helpdesk` (the library's simulate, wired)."""
    out = tmp_path_factory.mktemp("llmsim")
    r = mlhunt("simulate", "llm-helpdesk", "--out", "sim", "--seed", "7", cwd=out)
    assert r.returncode == 0, r.stderr
    assert "simulated LLM calls" in r.stderr and "--canary CANARY-" in r.stderr
    labels = json.loads((out / "sim" / "labels.json").read_text("utf-8"))
    assert sum(v["label"] == "benign" for v in labels.values()) >= 200
    canary = r.stderr.rsplit("--canary ", 1)[1].split()[0]
    return out, labels, canary


def test_simulate_llm_range_is_the_library_range_and_refuses_live(tmp_path: Path) -> None:
    r = mlhunt("simulate", "llm-helpdesk", "--out", "a", "--scale", "0.05", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lib = simulate(tmp_path / "b", seed=0, benign_users=10)
    assert (tmp_path / "a" / "gateway.jsonl").read_bytes() == lib.gateway.read_bytes()
    r = mlhunt(
        "simulate", "llm-helpdesk", "--out", "c", "--live", "http://127.0.0.1:9", cwd=tmp_path
    )
    assert r.returncode == 2 and "--live" in r.stderr


def mlhunt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlhunt", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_gateway_log_is_hunted_as_llm_traffic(sim: tuple[Path, dict, str]) -> None:
    out, labels, canary = sim
    r = mlhunt(
        "hunt", "sim/gateway.jsonl", "--canary", canary, "-f", "json", "-o", "h.json", cwd=out
    )
    assert r.returncode == 0, r.stderr
    assert "LLM records" in r.stderr and "0 malformed" in r.stderr
    doc = json.loads((out / "h.json").read_text("utf-8"))
    assert doc["log_kind"] == "llm"
    targets = {f["target"] for f in doc["findings"]}
    attackers = {k for k, v in labels.items() if v["label"] == "attack"}
    benign = {k for k, v in labels.items() if v["label"] == "benign"}
    assert not targets & benign
    caught = {labels[t]["style"] for t in targets & attackers}
    assert caught == {v["style"] for v in labels.values() if v["label"] == "attack"}
    assert {f["evidence"]["detector"] for f in doc["findings"]} >= {
        "MLH-HUNT-LLM-PROMPT-INJECTION",
        "MLH-HUNT-LLM-PROMPT-LEAK",
    }


def test_otel_traces_are_hunted_too_and_mixing_with_inference_logs_is_refused(
    sim: tuple[Path, dict, str], tmp_path: Path
) -> None:
    out, _, _ = sim
    r = mlhunt("hunt", "sim/otel.jsonl", "-f", "json", "-o", "o.json", cwd=out)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "o.json").read_text("utf-8"))["findings"]
    inference = tmp_path / "inference.jsonl"
    inference.write_text(
        json.dumps({"ts": 1, "client_id": "a", "input": [1.0], "output": {"label": "x"}}) + "\n"
    )
    r = mlhunt("hunt", str(out / "sim" / "gateway.jsonl"), str(inference), cwd=tmp_path)
    assert r.returncode == 2 and "mixed with inference logs" in r.stderr


def test_a_short_canary_is_refused(sim: tuple[Path, dict, str]) -> None:
    out, _, _ = sim
    r = mlhunt("hunt", "sim/gateway.jsonl", "--canary", "X", cwd=out)
    assert r.returncode == 2 and "--canary" in r.stderr and len(r.stderr.splitlines()) == 1


def test_list_shows_the_llm_detectors(tmp_path: Path) -> None:
    r = mlhunt("hunt", "--list", cwd=tmp_path)
    assert r.returncode == 0
    assert "MLH-HUNT-LLM-PROMPT-INJECTION" in r.stdout and "LLM01" in r.stdout
