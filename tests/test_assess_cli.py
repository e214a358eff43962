"""`mlhunt assess` as a user runs it: the document, bad input, unsafe models, kill + resume."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from tests.assess_fakes import write_catalog
from tests.conftest import ROOT


def _mlhunt(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlhunt", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=cwd,
        env=_env(),
    )


def _env() -> dict[str, str]:
    # Tests import the fake attacks as tests.assess_fakes: the repository root on the path.
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_scenario_in_process_json_document(tmp_path: Path) -> None:
    cat = write_catalog(
        tmp_path / "cat",
        {
            "PROBE": {"entry": "probe", "params": {"n": 40}},
            "MEMBERS": {"entry": "probe", "kind": "membership", "requires": ["members"], "cost": 2},
            "PATCHY": {"entry": "probe", "kind": "patch", "requires": ["boxes"], "cost": 3},
            "IMAGE": {"entry": "probe", "applies_to": ["image"]},
        },
    )
    r = _mlhunt(
        "assess",
        "--scenario",
        "loan-approval",
        "--in-process",
        "--catalog",
        str(cat),
        "--state",
        str(tmp_path / "s"),
        "--max-queries",
        "5000",
        "-f",
        "json",
        "--fail-on",
        "critical",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["command"] == "assess" and doc["target"] == "loan-approval-logreg-v1"
    assert set(doc["summary"]["by_severity"]) == {"critical", "high", "medium", "low", "info"}
    ids = [f["rule_id"] for f in doc["findings"]]
    assert ids == ["MLH-ASSESS-PROBE", "MLH-ASSESS-MEMBERS", "MLH-ASSESS-PATCHY"]
    probe, members, patchy = doc["findings"]
    # It probes the survivors (rows the model gets right): nothing to break, refuted, info.
    assert probe["evidence"]["queries"] == 40 and probe["evidence"]["verdict"] == "refuted"
    assert probe["severity"] == "info" and probe["evidence"]["success_rate"] == 0.0
    assert probe["evidence"]["validates"] == ["MLH-ML-EVASION-API"]
    assert members["evidence"]["verdict"] in ("validated", "refuted")  # scenario has members
    assert patchy["evidence"]["verdict"] == "skipped" and "boxes" in patchy["evidence"]["reason"]
    assert doc["budget"]["max_queries"] == 5000
    assert doc["budget"]["queries_this_run"] <= 5000
    assert 0.5 < doc["clean_accuracy"] <= 1.0
    assert "assess: MLH-ASSESS-PROBE: refuted" in r.stderr  # plain progress lines
    assert (tmp_path / "s" / "MLH-ASSESS-PROBE.json").is_file()

    only = _mlhunt(
        "assess",
        "--scenario",
        "loan-approval",
        "--in-process",
        "--catalog",
        str(cat),
        "--attack",
        "probe",
        "--param",
        "probe.n=3",
        "--state",
        str(tmp_path / "t"),
        "-f",
        "markdown",
        "--fail-on",
        "info",
    )
    assert only.returncode == 1  # a finding reached --fail-on
    assert "Measured:" in only.stdout and "success_rate" in only.stdout


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    cat = write_catalog(tmp_path / "cat", {"PROBE": {"entry": "probe"}})
    cases = [
        (["--scenario", "nope"], "unknown scenario"),
        (["--scenario", "loan-approval", "--in-process", "--attack", "zap"], "no attack 'zap'"),
        (["--scenario", "loan-approval", "--in-process", "--param", "probe.m=1"], "'m'"),
        (["--scenario", "loan-approval", "--in-process", "--param", "probe"], "ID.key=value"),
        (["--scenario", "loan-approval", "--in-process", "--threshold", "probe.x=1"], "x"),
        (["model.skops"], "--data"),
    ]
    for args, expected in cases:
        r = _mlhunt("assess", "--catalog", str(cat), "--state", str(tmp_path / "s"), *args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
        assert expected in lines[0], (expected, lines[0])


def test_unsafe_pickle_refused_without_trust_skops_accepted(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    model = LogisticRegression().fit(x, y)
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(model))
    sio.dump(model, tmp_path / "m.skops")
    np.savez(tmp_path / "d.npz", x=x, y=y)
    cat = write_catalog(tmp_path / "cat", {"PROBE": {"entry": "probe"}})
    common = ["--data", str(tmp_path / "d.npz"), "--catalog", str(cat), "-f", "json"]
    refused = _mlhunt("assess", str(tmp_path / "m.pkl"), *common, "--state", str(tmp_path / "a"))
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "--trust" in refused.stderr
    trusted = _mlhunt(
        "assess", str(tmp_path / "m.pkl"), *common, "--trust", "--state", str(tmp_path / "b")
    )
    assert trusted.returncode == 0, trusted.stderr
    skops = _mlhunt("assess", str(tmp_path / "m.skops"), *common, "--state", str(tmp_path / "c"))
    assert skops.returncode == 0, skops.stderr
    assert json.loads(skops.stdout)["findings"][0]["target"] == "m.skops"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_without_redoing_finished_attacks(tmp_path: Path, sig: int) -> None:
    counter = tmp_path / "runs.txt"
    cat = write_catalog(
        tmp_path / "cat",
        {
            f"S{i}": {
                "entry": "sleepy",
                "cost": i,
                "params": {"counter": str(counter), "tag": f"S{i}", "sleep": 0.2 if i < 3 else 30},
            }
            for i in (1, 2, 3)
        },
    )
    state = tmp_path / "state"
    args = [
        sys.executable,
        "-m",
        "mlhunt",
        "assess",
        "--scenario",
        "loan-approval",
        "--in-process",
        "--catalog",
        str(cat),
        "--state",
        str(state),
        "-f",
        "json",
    ]
    # output to files, not pipes nobody reads while waiting: a full pipe would block the
    # child's writes (its "interrupted" line included) and look like a hang
    out, err = (tmp_path / "stdout.txt").open("w+b"), (tmp_path / "stderr.txt").open("w+b")
    # Ctrl-C's default disposition in the child even when this run inherited SIGINT ignored (a
    # test run started in the background with `&`): mlhunt keeps an ignored SIGINT ignored
    proc = subprocess.Popen(
        args, cwd=ROOT, env=_env(), stdout=out, stderr=err, preexec_fn=_default_sigint
    )
    try:
        # events, not a schedule: the loop returns as soon as S2's result is written and S3
        # started; the bound only ends a run that never gets there (it may have to build the
        # scenario first, on a busy machine)
        deadline = time.monotonic() + 300
        while not (state / "MLH-ASSESS-S2.json").is_file():
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "the run never got to its second result"
            time.sleep(0.05)
        while counter.read_text().split() != ["S1", "S2", "S3"]:  # S3 is running (asleep)
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(sig)  # SIGKILL: a crash, no chance to clean up; SIGINT: Ctrl-C
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError((tmp_path / "stderr.txt").read_text()[-4000:]) from None
        assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()
    mtimes = {p.name: p.stat().st_mtime_ns for p in state.glob("*.json")}
    assert set(mtimes) == {"baseline.json", "MLH-ASSESS-S1.json", "MLH-ASSESS-S2.json"}
    for p in state.glob("*.json"):
        json.loads(p.read_text())  # every result file is whole

    fast = {"counter": str(counter), "tag": "S3", "sleep": 0}
    r = _mlhunt(
        "assess",
        "--scenario",
        "loan-approval",
        "--in-process",
        "--catalog",
        str(cat),
        "--state",
        str(state),
        "--resume",
        "-f",
        "json",
        *[f"--param=s3.{k}={v}" for k, v in fast.items()],
    )
    assert r.returncode == 0, r.stderr
    assert counter.read_text().split() == ["S1", "S2", "S3", "S3"]  # S1, S2 not redone
    for name in ("MLH-ASSESS-S1.json", "MLH-ASSESS-S2.json"):
        assert (state / name).stat().st_mtime_ns == mtimes[name]
    doc = json.loads(r.stdout)
    assert [f["rule_id"] for f in doc["findings"]] == [f"MLH-ASSESS-S{i}" for i in (1, 2, 3)]
    assert [a["resumed"] for a in doc["attacks"]] == [True, True, False]
    assert not list(state.glob(".*.tmp"))
