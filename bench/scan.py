"""``python -m bench scan``: mlhunt's artifact scanner vs picklescan and modelscan, whole processes.

Workload, built into ``bench/out`` (git-ignored):

* the scan corpus of the tests (``tests/scan_corpus.py``, ``build_corpus``): 55 malicious
  techniques and 26 benign scikit-learn / PyTorch / NumPy / Keras / ONNX / safetensors / text
  files, rebuilt on every run into ``bench/out/scan-corpus`` (with its helper script, 82 files);
* a PyTorch checkpoint: a ``state_dict`` of float32 tensors (64 layers of a 2048 x 2048 weight
  and a 2048 bias, 1 GiB of tensor data; ``--quick``: 6 layers, ~100 MB) saved with
  ``torch.save`` (zip format) into ``bench/out/scan-ckpt``, reused when present with the
  expected size.

Both are generated in child processes, so this process stays small: on Linux a child's
``ru_maxrss`` starts from its parent's RSS at fork / exec (the parent's floor is reported as
``rss_floor_mb``; it is ~10 MB, far below every tool's own peak).

Each tool runs as a whole process on the same input in the same run, start-up included:
``mlhunt scan PATH -f json``, ``picklescan -p PATH`` and ``modelscan scan -p PATH -r json -o
FILE`` (the venv's console scripts), taking turns run by run. mlhunt's bytecode is compiled
first, as ``pip install`` does. Wall seconds are measured around ``Popen`` .. ``os.wait4``; CPU
seconds (user + system, with waited-for children) and peak RSS (``ru_maxrss``) come from
``os.wait4``. Corpus: best of 3 runs; checkpoint: best of 3 (``--quick``: 2). files/s and MB/s
(10^6 bytes) use the same input size for all three tools (every regular file under the corpus
folder; the checkpoint's size on disk), whatever each tool chose to open. ``startup_s``: best
of 3 runs on one small benign pickle (a pickled NumPy ``Generator``, 6 kB), i.e. start-up plus
one trivial file.

Detections (from the last corpus run of each tool, one process for the whole folder, attributed
per file):

* mlhunt: a finding at ``high`` or ``critical`` whose ``target`` is the file or a member of it
  (``file!entry``); ``caught_at_expect`` counts instead at the severity the corpus expects of
  mlhunt for each item (``expect``: ``medium`` for the lying safetensors header, which runs no
  code; ``high`` or ``critical`` for all others);
* picklescan: a ``FILE[:entry]: dangerous import '...' FOUND`` line (its "infected" verdict;
  globals it only calls *suspicious* are not printed and not counted);
* modelscan: an issue (any severity) whose ``source`` (relative to the scanned folder) is the
  file or ``file:entry``; its scan errors (``errors``) are not detections.

``ratio`` = picklescan corpus wall seconds / mlhunt corpus wall seconds; ``ratio_ckpt`` the same
on the checkpoint; ``ratio_cpu`` and ``ratio_ckpt_cpu`` the same in CPU seconds; ``ratio_modelscan``
= modelscan corpus seconds / mlhunt corpus seconds.
After the runs the canary files of the corpus are checked: no tool may have executed a payload.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import log, scan_llm

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CORPUS_DIR = OUT / "scan-corpus"
CKPT_DIR = OUT / "scan-ckpt"

LAYER_DIM = 2048
FULL_LAYERS = 64  # 64 x (2048 x 2048 + 2048) float32 = 1.0 GiB
QUICK_LAYERS = 6  # ~100 MB
CORPUS_RUNS = 3
CKPT_RUNS = 3
QUICK_CKPT_RUNS = 2
TOOLS = ("mlhunt", "picklescan", "modelscan")
MB = 1e6

_BUILD_CORPUS = """
import json, sys
from pathlib import Path
from tests.scan_corpus import build_corpus
items = build_corpus(Path(sys.argv[1]))
json.dump([{"path": str(i.path), "technique": i.technique, "malicious": i.malicious,
            "expect": i.expect, "canary": str(i.canary) if i.canary else None}
           for i in items], sys.stdout)
"""

_BUILD_CKPT = """
import sys
from collections import OrderedDict
import torch
path, layers, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gen = torch.Generator().manual_seed(0)
sd = OrderedDict()
for i in range(layers):
    sd[f"layers.{i}.weight"] = torch.randn(dim, dim, generator=gen)
    sd[f"layers.{i}.bias"] = torch.randn(dim, generator=gen)
torch.save(sd, path)
"""


# --- workload -------------------------------------------------------------------------------


def _build_corpus() -> list[dict[str, Any]]:
    if CORPUS_DIR.exists():
        shutil.rmtree(CORPUS_DIR)
    CORPUS_DIR.mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-c", _BUILD_CORPUS, str(CORPUS_DIR)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def _ckpt_tensor_bytes(layers: int) -> int:
    return layers * (LAYER_DIM * LAYER_DIM + LAYER_DIM) * 4


def _checkpoint(layers: int) -> Path:
    """The generated state_dict checkpoint, reused if its size is right."""
    tensor_bytes = _ckpt_tensor_bytes(layers)
    path = CKPT_DIR / f"state_dict-{layers}x{LAYER_DIM}.pt"
    if path.exists() and tensor_bytes <= path.stat().st_size <= tensor_bytes * 1.01:
        log(f"scan: reusing {path.relative_to(ROOT)} ({path.stat().st_size / MB:.0f} MB)")
        return path
    CKPT_DIR.mkdir(parents=True, exist_ok=True)
    log(f"scan: generating {path.relative_to(ROOT)} ({tensor_bytes / MB:.0f} MB of float32)")
    tmp = path.with_suffix(".tmp")
    subprocess.run(
        [sys.executable, "-c", _BUILD_CKPT, str(tmp), str(layers), str(LAYER_DIM)],
        cwd=ROOT,
        check=True,
    )
    tmp.replace(path)
    return path


def _input_size(path: Path) -> tuple[int, int]:
    """(regular files, bytes) under ``path`` (or of the file itself)."""
    if path.is_file():
        return 1, path.stat().st_size
    files = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(files), sum(p.stat().st_size for p in files)


# --- running a tool -------------------------------------------------------------------------


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench scan: {name} not found next to {sys.executable} or on PATH")
    return found


def _command(tool: str, target: Path, report: Path) -> list[str]:
    if tool == "mlhunt":
        return [_bin("mlhunt"), "scan", str(target), "-f", "json"]
    if tool == "picklescan":
        return [_bin("picklescan"), "-p", str(target)]
    if tool == "modelscan":
        return [_bin("modelscan"), "scan", "-p", str(target), "-r", "json", "-o", str(report)]
    raise ValueError(tool)


def _run_once(cmd: list[str], stdout: Path) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MB, exit code, CPU seconds) of one whole process."""
    with open(stdout, "wb") as out, open(os.devnull, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
    # user + system of the process and the children it waited for (mlhunt's HDF5 reader)
    return wall, usage.ru_maxrss * 1024 / MB, proc.returncode, usage.ru_utime + usage.ru_stime


def _measure(target: Path, runs: int, work: Path) -> dict[str, dict[str, Any]]:
    """Per tool: best wall and CPU seconds and peak RSS over ``runs``, the tools taking turns
    run by run (so a burst of load on a shared machine hits all of them); the outputs of each
    tool's last run stay in ``work``."""
    out: dict[str, dict[str, Any]] = {
        t: {"walls": [], "cpus": [], "rss_mb": 0.0, "rc": 0} for t in TOOLS
    }
    for _ in range(runs):
        for tool in TOOLS:
            stdout, report = work / f"{tool}.out", work / f"{tool}.json"
            report.unlink(missing_ok=True)
            wall, peak, rc, cpu = _run_once(_command(tool, target, report), stdout)
            r = out[tool]
            r["walls"].append(wall)
            r["cpus"].append(cpu)
            r["rss_mb"] = max(r["rss_mb"], peak)
            r["rc"] = rc
    return {
        t: {
            "s": min(r["walls"]),
            "cpu_s": min(r["cpus"]),
            "runs_s": [round(w, 3) for w in r["walls"]],
            "rss_mb": r["rss_mb"],
            "rc": r["rc"],
        }
        for t, r in out.items()
    }


def _compile_bytecode() -> None:
    """Compile mlhunt's bytecode first, as ``pip install`` does: with PYTHONDONTWRITEBYTECODE
    set (or a read-only tree) an editable checkout would compile every module on every run."""
    import importlib.util

    spec = importlib.util.find_spec("mlhunt")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        subprocess.run([sys.executable, "-m", "compileall", "-q", folder], check=False)


# --- detections -----------------------------------------------------------------------------


SEVERITIES = ("info", "low", "medium", "high", "critical")


def _mlhunt_findings(stdout: Path) -> list[tuple[str, int]]:
    """(target, severity rank) of every finding in mlhunt's JSON document."""
    doc = json.loads(stdout.read_text(encoding="utf-8"))
    return [
        (os.path.normpath(f["target"]), SEVERITIES.index(f.get("severity", "info")))
        for f in doc["findings"]
    ]


def _flagged_mlhunt(stdout: Path, at_least: str = "high") -> list[str]:
    rank = SEVERITIES.index(at_least)
    return [target for target, sev in _mlhunt_findings(stdout) if sev >= rank]


def _flagged_picklescan(stdout: Path) -> list[str]:
    marker = ": dangerous import '"
    out = []
    for line in stdout.read_text(encoding="utf-8", errors="replace").splitlines():
        if marker in line and line.rstrip().endswith("FOUND"):
            out.append(line.split(marker, 1)[0])
    return out


def _flagged_modelscan(report: Path, base: Path) -> list[str]:
    if not report.exists():
        return []
    doc = json.loads(report.read_text(encoding="utf-8"))
    out = []
    for issue in doc.get("issues", []):
        source = str(issue.get("source", ""))
        out.append(source if os.path.isabs(source) else str(base / source))
    return out


def _flagged(tool: str, work: Path, base: Path) -> list[str]:
    if tool == "mlhunt":
        return _flagged_mlhunt(work / "mlhunt.out")
    if tool == "picklescan":
        return _flagged_picklescan(work / "picklescan.out")
    return _flagged_modelscan(work / "modelscan.json", base)


def _hits(flagged: list[str], path: str, sep: str) -> bool:
    return any(t == path or t.startswith(path + sep) for t in flagged)


_MEMBER_SEP = {"mlhunt": "!", "picklescan": ":", "modelscan": ":"}


# --- the benchmark --------------------------------------------------------------------------


def _summary(
    tool: str,
    corpus: dict[str, Any],
    ckpt: dict[str, Any],
    startup: dict[str, Any],
    sizes: dict[str, tuple[int, int]],
    detections: list[dict[str, Any]],
    ckpt_flags: int,
) -> dict[str, Any]:
    files, corpus_bytes = sizes["corpus"]
    _, ckpt_bytes = sizes["ckpt"]
    malicious = [d for d in detections if d["malicious"]]
    benign = [d for d in detections if not d["malicious"]]
    return {
        "corpus_s": round(corpus["s"], 3),
        "corpus_cpu_s": round(corpus["cpu_s"], 3),
        "corpus_files_per_s": round(files / corpus["s"], 1),
        "corpus_mb_per_s": round(corpus_bytes / MB / corpus["s"], 3),
        "ckpt_s": round(ckpt["s"], 3),
        "ckpt_cpu_s": round(ckpt["cpu_s"], 3),
        "ckpt_mb_per_s": round(ckpt_bytes / MB / ckpt["s"], 1),
        "peak_rss_mb_corpus": round(corpus["rss_mb"], 1),
        "peak_rss_mb_ckpt": round(ckpt["rss_mb"], 1),
        "caught": sum(d[tool] for d in malicious),
        "missed": sum(not d[tool] for d in malicious),
        "false_positives": sum(d[tool] for d in benign),
        "startup_s": round(startup["s"], 3),
        "startup_rss_mb": round(startup["rss_mb"], 1),
        "ckpt_flags": ckpt_flags,
        "corpus_runs_s": corpus["runs_s"],
        "ckpt_runs_s": ckpt["runs_s"],
        "exit_codes": {"corpus": corpus["rc"], "ckpt": ckpt["rc"]},
    }


def run(quick: bool) -> dict[str, Any]:
    log(f"scan: building the corpus into {CORPUS_DIR.relative_to(ROOT)}")
    items = _build_corpus()
    ckpt = _checkpoint(QUICK_LAYERS if quick else FULL_LAYERS)
    sizes = {"corpus": _input_size(CORPUS_DIR), "ckpt": _input_size(ckpt)}
    log(
        f"scan: corpus {sizes['corpus'][0]} files, {sizes['corpus'][1] / 1e3:.0f} kB "
        f"({sum(i['malicious'] for i in items)} malicious, "
        f"{sum(not i['malicious'] for i in items)} benign); "
        f"checkpoint {sizes['ckpt'][1] / MB:.0f} MB"
    )
    small = next(Path(i["path"]) for i in items if i["technique"] == "numpy-rng-pickle")

    floor = _run_once(["/bin/true"], Path(os.devnull))[1]
    _compile_bytecode()
    flagged: dict[str, list[str]] = {}
    ckpt_flags: dict[str, int] = {}
    ckpt_runs = QUICK_CKPT_RUNS if quick else CKPT_RUNS
    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-scan-") as tmp:
        work = Path(tmp)
        startup = _measure(small, 3, work)
        corpus = _measure(CORPUS_DIR, CORPUS_RUNS, work)
        for tool in TOOLS:
            flagged[tool] = _flagged(tool, work, CORPUS_DIR)
            c = corpus[tool]
            log(
                f"scan: {tool}: start-up {startup[tool]['s']:.3f} s, corpus {c['s']:.3f} s "
                f"(runs {c['runs_s']}, CPU {c['cpu_s']:.3f} s), peak {c['rss_mb']:.0f} MB, "
                f"exit {c['rc']}"
            )
        ml_findings = _mlhunt_findings(work / "mlhunt.out")
        big = _measure(ckpt, ckpt_runs, work)
        for tool in TOOLS:
            ckpt_flags[tool] = len(_flagged(tool, work, ckpt.parent))
            b = big[tool]
            log(
                f"scan: {tool}: checkpoint {b['s']:.3f} s (runs {b['runs_s']}, CPU "
                f"{b['cpu_s']:.3f} s), peak {b['rss_mb']:.0f} MB, {ckpt_flags[tool]} flags, "
                f"exit {b['rc']}"
            )
    results = {t: {"corpus": corpus[t], "ckpt": big[t], "startup": startup[t]} for t in TOOLS}

    detections = [
        {
            "technique": item["technique"],
            "malicious": item["malicious"],
            "file": str(Path(item["path"]).relative_to(CORPUS_DIR)),
            **{tool: _hits(flagged[tool], item["path"], _MEMBER_SEP[tool]) for tool in TOOLS},
        }
        for item in items
    ]
    for row, item in zip(detections, items, strict=True):
        # mlhunt at the severity the corpus expects of it (medium for a lying safetensors
        # header: no code runs); the "mlhunt" column is at high or above for every item.
        row["expect"] = item["expect"] if item["malicious"] else None
        row["mlhunt_at_expect"] = item["malicious"] and _hits(
            [t for t, sev in ml_findings if sev >= SEVERITIES.index(item["expect"])],
            item["path"],
            "!",
        )
    fired = [i["canary"] for i in items if i["canary"] and Path(i["canary"]).exists()]
    if fired:
        log(f"scan: WARNING: canaries fired (a payload was executed): {fired}")

    summaries = {
        tool: _summary(
            tool,
            results[tool]["corpus"],
            results[tool]["ckpt"],
            results[tool]["startup"],
            sizes,
            detections,
            ckpt_flags[tool],
        )
        for tool in TOOLS
    }
    for tool in TOOLS:
        s = summaries[tool]
        missed = [d["technique"] for d in detections if d["malicious"] and not d[tool]]
        fps = [d["technique"] for d in detections if not d["malicious"] and d[tool]]
        log(
            f"scan: {tool}: caught {s['caught']}/{s['caught'] + s['missed']}, "
            f"false positives {s['false_positives']} {fps}; missed {missed}"
        )
    summaries["mlhunt"]["caught_at_expect"] = sum(d["mlhunt_at_expect"] for d in detections)
    ml, ps, ms = (results[t] for t in TOOLS)
    return {
        "mlhunt": summaries["mlhunt"],
        "peer": {"name": "picklescan", **summaries["picklescan"]},
        "ratio": round(ps["corpus"]["s"] / ml["corpus"]["s"], 3),
        "ratio_ckpt": round(ps["ckpt"]["s"] / ml["ckpt"]["s"], 3),
        # the same in CPU seconds: steadier than wall time on a shared machine
        "ratio_cpu": round(ps["corpus"]["cpu_s"] / ml["corpus"]["cpu_s"], 3),
        "ratio_ckpt_cpu": round(ps["ckpt"]["cpu_s"] / ml["ckpt"]["cpu_s"], 3),
        "ratio_modelscan": round(ms["corpus"]["s"] / ml["corpus"]["s"], 3),
        "ratio_modelscan_ckpt": round(ms["ckpt"]["s"] / ml["ckpt"]["s"], 3),
        "modelscan": {"name": "modelscan", **summaries["modelscan"]},
        "workload": {
            "corpus_files": sizes["corpus"][0],
            "corpus_bytes": sizes["corpus"][1],
            "malicious": sum(i["malicious"] for i in items),
            "benign": sum(not i["malicious"] for i in items),
            "ckpt_bytes": sizes["ckpt"][1],
            "ckpt_tensors": 2 * (QUICK_LAYERS if quick else FULL_LAYERS),
            "corpus_runs": CORPUS_RUNS,
            "ckpt_runs": ckpt_runs,
            "rss_floor_mb": round(floor, 1),
        },
        "canaries_fired": fired,
        "detections": detections,
        "llm": scan_llm.run(quick),  # GGUF / HF / MCP corpus vs modelaudit, 4 GB GGUF (#24)
    }
