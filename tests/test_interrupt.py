"""Issue #9, interrupted runs: SIGINT and SIGKILL at random moments of ``mlhunt assess``,
``mlhunt hunt`` and ``mlhunt run`` (real subprocesses on small fixtures).

After every kill, every file under the output folders must parse whole (JSON, SARIF, YAML,
HTML, Markdown, PNG; JSON Lines line by line); a file that was whole before a kill must still be
whole after it (*lost* counts the ones that were not: must be 0); work that had finished must not
be redone by the next ``--resume`` (result files keep their mtime, attacks do not run again); and
a last ``--resume`` completes the rest. Tries per command: ``MLHUNT_INTERRUPT_TRIES`` (default
3); the tallies go to ``test-artifacts/interrupt-counts.json`` for docs/security.md.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.assess_fakes import write_catalog
from tests.conftest import EXAMPLES, ROOT

TRIES = int(os.environ.get("MLHUNT_INTERRUPT_TRIES", "3"))
SIGNALS = (signal.SIGKILL, signal.SIGINT)
# SIGINT may land in start-up (Python's own KeyboardInterrupt: -2; click's "Aborted!": 1) or in
# the command (mlhunt's "interrupted": 130); 0 when the command finished first.
SIGINT_CODES = {0, 1, 130, -signal.SIGINT}
COUNTS = Path(os.environ.get("MLHUNT_TEST_ARTIFACTS") or ROOT / "test-artifacts") / (
    "interrupt-counts.json"
)


@dataclass
class Tally:
    kills: int = 0
    finished_before_kill: int = 0
    files_checked: int = 0
    broken: list[str] = field(default_factory=list)  # files that did not parse
    lost: list[str] = field(default_factory=list)  # whole before a kill, not whole after
    redone: list[str] = field(default_factory=list)  # finished work done again on resume
    stale_tmp: int = 0  # temporary files a SIGKILL left (never read as results)


def _whole(path: Path) -> bool:
    """Does this output file parse completely?"""
    try:
        data = path.read_bytes()
        suffix = path.suffix.lower()
        if suffix in (".json", ".sarif"):
            json.loads(data)
        elif suffix == ".jsonl":  # an append-only log: every finished line parses
            lines = data.split(b"\n")
            for line in lines[:-1]:
                if line.strip():
                    json.loads(line)
        elif suffix in (".yml", ".yaml"):
            yaml.safe_load(data)
        elif suffix == ".html":
            return data.rstrip().endswith(b"</html>")
        elif suffix == ".md":
            return data.endswith(b"\n") and data.startswith(b"#")
        elif suffix == ".png":
            from PIL import Image

            with Image.open(path) as img:
                img.load()
        return True
    except (OSError, ValueError, yaml.YAMLError, SyntaxError):
        return False


def _check(folders: list[Path], tally: Tally, before: set[Path]) -> set[Path]:
    """Every output file whole; returns the set of whole files."""
    whole: set[Path] = set()
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else ():
            if not path.is_file():
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                tally.stale_tmp += 1
                continue
            tally.files_checked += 1
            if _whole(path):
                whole.add(path)
            else:
                tally.broken.append(str(path))
    tally.lost += [str(p) for p in before - whole]
    return whole


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _kill_loop(
    name: str,
    args: list[str],
    folders: list[Path],
    finished: Callable[[], dict[str, int]],
    seed: int,
) -> Tally:
    """Start ``args`` TRIES times, each killed (SIGKILL / SIGINT in turn) after a random share
    of the time one whole run takes here and now (so the kill points spread over the run on a
    loaded machine too); check the outputs after each; ``finished()`` maps finished work to its
    file's mtime."""
    rng = random.Random(seed)
    tally = Tally()
    whole: set[Path] = set()
    cmd = [sys.executable, "-m", "mlhunt", *args]
    start = time.monotonic()
    _final(args)
    full = time.monotonic() - start
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    for i in range(TRIES):
        sig = SIGNALS[i % 2]
        done = finished()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            time.sleep(rng.uniform(0.1, 1.0) * full)
            proc.send_signal(sig)
            _out, err = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        code = proc.returncode
        if sig == signal.SIGKILL:
            assert code in (0, -signal.SIGKILL), err[-2000:]
        else:
            assert code in SIGINT_CODES, err[-2000:]
            assert "internal error" not in err, err[-2000:]
        tally.kills += code != 0
        tally.finished_before_kill += len(done)
        now = finished()
        tally.redone += [k for k, t in done.items() if now.get(k) != t]
        whole = _check(folders, tally, whole)
        if code == 0:  # it finished before the signal: start a fresh cycle for more kill points
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
            whole = set()
    _record(name, tally)
    return tally


def _record(name: str, tally: Tally) -> None:
    COUNTS.parent.mkdir(parents=True, exist_ok=True)
    try:
        counts = json.loads(COUNTS.read_text())
    except (OSError, ValueError):
        counts = {}
    counts[name] = {
        **asdict(tally),
        "tries": TRIES,
        "broken": len(tally.broken),
        "lost": len(tally.lost),
        "redone": len(tally.redone),
    }
    COUNTS.write_text(json.dumps(counts, indent=1) + "\n")


def _assert_clean(tally: Tally) -> None:
    assert not tally.broken, tally.broken
    assert not tally.lost, tally.lost
    assert not tally.redone, tally.redone


def _mtimes(paths: list[Path]) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in paths}


def _final(args: list[str]) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "mlhunt", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_assess_killed_at_random_resumes_without_losing_or_redoing(tmp_path: Path) -> None:
    counter = tmp_path / "runs.txt"
    counter.touch()
    cat = write_catalog(
        tmp_path / "cat",
        {
            f"S{i}": {
                "entry": "sleepy",
                "cost": i,
                "params": {"counter": str(counter), "tag": f"S{i}", "sleep": 0.5},
            }
            for i in range(1, 6)
        },
    )
    state, out = tmp_path / "state", tmp_path / "out"
    args = [
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
        "-o",
        str(out / "assess.json"),
    ]

    def finished() -> dict[str, int]:
        return _mtimes(list(state.glob("MLH-ASSESS-*.json")))

    tally = _kill_loop("assess", args, [state, out], finished, seed=1)
    _assert_clean(tally)
    starts = counter.read_text().split()
    before = finished()
    _final(args)
    doc = json.loads((out / "assess.json").read_text())
    assert [f["rule_id"] for f in doc["findings"]] == [f"MLH-ASSESS-S{i}" for i in range(1, 6)]
    kept = {n.removesuffix(".json") for n in before}
    assert {a["id"] for a in doc["attacks"] if a["resumed"]} == kept
    # an attack that had finished never started again
    again = counter.read_text().split()[len(starts) :]
    assert not kept & {f"MLH-ASSESS-{t}" for t in again}
    assert _mtimes([state / n for n in before]) == before
    _check([state, out], tally, set())
    _assert_clean(tally)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    rows = [
        {
            "ts": 1709632800 + c * 100 + k,
            "client_id": f"user{c}",
            "source_ip": f"10.0.0.{c}",
            "input": rng.normal([40, 5e4, 3], [10, 2e4, 1]).round(3).tolist(),
            "output": {"label": "ok", "scores": [0.2, 0.8]},
        }
        for c in range(40)
        for k in range(30)
    ]
    rows += [
        {
            "ts": 1709640000 + k,
            "client_id": "thief",
            "source_ip": "192.0.2.66",
            "input": rng.uniform([0, 0, -10], [120, 5e5, 20]).round(3).tolist(),
            "output": {"label": "ok", "scores": [0.45, 0.55]},
        }
        for k in range(200)
    ]
    path = tmp_path_factory.mktemp("logs") / "logs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_hunt_killed_at_random_never_leaves_half_a_file(tmp_path: Path, logs: Path) -> None:
    out = tmp_path / "out"
    args = [
        "hunt",
        str(logs),
        "-f",
        "html",
        "-o",
        str(out / "hunt.html"),
        "--export-sigma",
        str(out / "sigma"),
    ]
    tally = _kill_loop("hunt", args, [out], dict, seed=2)
    _assert_clean(tally)
    _final(args)  # hunt is one pass: running it again is the resume
    assert (out / "hunt.html").read_text().rstrip().endswith("</html>")
    rules = list((out / "sigma").glob("*.yml"))
    assert rules and all(yaml.safe_load(p.read_text())["title"] for p in rules)
    _check([out], tally, set())
    _assert_clean(tally)


@pytest.mark.slow
def test_run_killed_at_random_resumes_from_its_saved_parts(tmp_path: Path, logs: Path) -> None:
    folder = tmp_path / "loan"
    folder.mkdir()
    shutil.copy(EXAMPLES / "loan-approval" / "system.yaml", folder / "system.yaml")
    shutil.copytree(EXAMPLES / "loan-approval" / "deploy", folder / "deploy")
    shutil.copy(logs, folder / "logs.jsonl")
    project = {
        "system": "system.yaml",
        "output": "out",
        "models": [
            {
                "scenario": "loan-approval",
                "element": "prediction-api",
                "live": False,
                "attacks": ["corruptions"],
                "params": {
                    "MLH-ASSESS-CORRUPTIONS.n_eval": 40,
                    "MLH-ASSESS-CORRUPTIONS.severities": [1, 3],
                },
            }
        ],
        "logs": [{"path": "logs.jsonl", "element": "prediction-api"}],
        "scan": [{"path": "deploy"}],
    }
    (folder / "mlhunt.yaml").write_text(yaml.safe_dump(project), encoding="utf-8")
    out = folder / "out"
    args = ["run", str(folder / "mlhunt.yaml"), "--resume"]

    def finished() -> dict[str, int]:
        return _mtimes(list((out / "parts").glob("*.json")))

    tally = _kill_loop("run", args, [out], finished, seed=3)
    _assert_clean(tally)
    before = finished()
    r = _final(args)
    doc = json.loads((out / "run.json").read_text())
    assert sorted(doc.get("resumed", [])) == sorted(n.removesuffix(".json") for n in before)
    assert {f["source"] for f in doc["findings"]} >= {"model", "assess", "hunt", "scan"}
    assert _mtimes([out / "parts" / n for n in before]) == before  # reused, not rewritten
    assert "reused from" in r.stderr or not before
    # An input changed: its part runs again, the others are still reused.
    (folder / "deploy" / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    _final(args)
    doc = json.loads((out / "run.json").read_text())
    assert "scan-0" not in doc["resumed"] and "hunt-0" in doc["resumed"]
    _check([out], tally, set())
    _assert_clean(tally)


def test_atomic_write_survives_sigkill_at_any_moment(tmp_path: Path) -> None:
    """The write itself, killed mid-way: a 4 MB report rewritten in a loop."""
    target = tmp_path / "report.json"
    code = (
        "import json, sys; from pathlib import Path; from mlhunt._io import write_atomic\n"
        "p = Path(sys.argv[1]); i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    write_atomic(p, json.dumps({'i': i, 'pad': 'x' * 4_000_000}))\n"
    )
    rng = random.Random(4)
    tally = Tally()
    whole: set[Path] = set()
    for _ in range(TRIES * 3):
        proc = subprocess.Popen([sys.executable, "-c", code, str(target)], env=_env())
        deadline = time.monotonic() + 30
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.wait()
        tally.kills += 1
        whole = _check([tmp_path], tally, whole)
        for stale in tmp_path.glob(".*.tmp"):
            stale.unlink()
    _record("write_atomic", tally)
    _assert_clean(tally)
    assert json.loads(target.read_text())["i"] >= 1
