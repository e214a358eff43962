"""The LLM and agent supply-chain part of ``python -m bench scan`` (issue #24).

Workload, built into ``bench/out`` (git-ignored):

* the LLM corpus of the tests (``tests/scan_llm_corpus.py``, ``build_llm_corpus``): GGUF
  models, Hugging Face folders and MCP configurations, benign ones of several families and one
  malicious file per technique, rebuilt on every run into ``bench/out/scan-llm-corpus``;
* a 4 GB GGUF model (``bench/out/scan-llm-gguf/model-4g.gguf``): the metadata of a 7B-shaped
  model (32,000-token vocabulary, 64,000 merges, a Llama 3 chat template, 224 F16 tensors)
  written by ``gguf``'s own writer, the tensor data left as a sparse hole (reused when present).

Each tool runs as a whole process, start-up included: ``mlhunt scan PATH -f json`` and
``modelaudit scan PATH --format json --output FILE`` (from the venv, or from the interpreter
named by ``MLHUNT_BENCH_MODELAUDIT``: modelaudit's dependencies conflict with the project venv,
see bench/README.md). Wall seconds around ``Popen`` .. ``os.wait4``, peak RSS from
``ru_maxrss``. ``gguf_scan_s`` is mlhunt's own scan of the 4 GB file inside one process
(``scan_gguf`` with its sandboxed template render, interpreter and imports excluded; best of
3, the render cache cleared before each; ``gguf_4g_metadata_s`` the same without rendering).

Detections, per judged corpus file: mlhunt, a finding at ``medium`` or above whose target is the
file (``caught_at_expect``: at the severity the corpus expects, ``high`` for most techniques);
modelaudit, an issue at ``warning`` or ``critical`` whose location is the file. A benign file
flagged at those levels is a false positive. The canaries are checked after the runs.
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

from bench import log

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CORPUS_DIR = OUT / "scan-llm-corpus"
GGUF_PATH = OUT / "scan-llm-gguf" / "model-4g.gguf"
GGUF_BYTES = 4_000_000_000
MB = 1e6
SEVERITIES = ("info", "low", "medium", "high", "critical")

_BUILD_CORPUS = """
import json, sys
from pathlib import Path
from tests.scan_llm_corpus import build_llm_corpus
items = build_llm_corpus(Path(sys.argv[1]))
json.dump([{"path": str(i.path), "technique": i.technique, "malicious": i.malicious,
            "expect": i.expect, "canary": str(i.canary) if i.canary else None}
           for i in items], sys.stdout)
"""

_BUILD_GGUF = """
import sys, numpy as np
from gguf import GGUFWriter
path, total = sys.argv[1], int(sys.argv[2])
from tests.scan_llm_templates import LLAMA3
w = GGUFWriter(path, "llama")
w.add_name("Bench-7B-Instruct"); w.add_context_length(4096); w.add_tokenizer_model("llama")
n = 32000
w.add_token_list([f"tok{i}" for i in range(n)]); w.add_token_scores([0.0] * n)
w.add_token_types([1] * n); w.add_token_merges([f"a{i} b{i}" for i in range(2 * n)])
w.add_chat_template(LLAMA3)
names = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down", "ffn_gate"]
count = 32 * len(names)
rows = total // count // (4096 * 2)
for i in range(32):
    for name in names:
        w.add_tensor_info(f"blk.{i}.{name}.weight", (rows, 4096), np.dtype(np.float16),
                          rows * 4096 * 2)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_ti_data_to_file()
f = w.fout[0]
start = f.tell() + (-f.tell() % 32)
f.truncate(start + count * rows * 4096 * 2)
f.close()
"""

_TIME_GGUF = """
import sys, time
from pathlib import Path
from mlhunt.scan.gguf_scan import scan_gguf
from mlhunt.scan.template_render import render_in_child
best, meta = None, None
for _ in range(3):
    render_in_child.cache_clear()  # every run renders the chat template in its child again
    t = time.perf_counter()
    findings = scan_gguf(Path(sys.argv[1]))
    s = time.perf_counter() - t
    best = s if best is None else min(best, s)
    t = time.perf_counter()
    scan_gguf(Path(sys.argv[1]), render=False)
    s = time.perf_counter() - t
    meta = s if meta is None else min(meta, s)
print(best, len(findings), meta)
"""


def _child(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def _build_corpus() -> list[dict[str, Any]]:
    if CORPUS_DIR.exists():
        shutil.rmtree(CORPUS_DIR)
    CORPUS_DIR.mkdir(parents=True)
    return json.loads(_child(_BUILD_CORPUS, str(CORPUS_DIR)))


def _big_gguf() -> Path:
    if GGUF_PATH.exists() and GGUF_PATH.stat().st_size >= GGUF_BYTES * 0.99:
        return GGUF_PATH
    GGUF_PATH.parent.mkdir(parents=True, exist_ok=True)
    log(f"scan_llm: writing {GGUF_PATH.relative_to(ROOT)} (sparse, {GGUF_BYTES / 1e9:.0f} GB)")
    _child(_BUILD_GGUF, str(GGUF_PATH), str(GGUF_BYTES))
    return GGUF_PATH


def _modelaudit() -> str | None:
    named = os.environ.get("MLHUNT_BENCH_MODELAUDIT")
    for candidate in (named, str(Path(sys.executable).parent / "modelaudit")):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("modelaudit")


# modelaudit reports usage to a server by default: off (and the bench machine is offline).
_QUIET = {"PROMPTFOO_DISABLE_TELEMETRY": "1", "NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1"}


def _run(cmd: list[str], stdout: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB, exit code) of one whole process."""
    with open(stdout, "wb") as out, open(os.devnull, "wb") as err:
        start = time.perf_counter()
        env = {**os.environ, **_QUIET}
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss * 1024 / MB, proc.returncode


def _mlhunt_flags(stdout: Path) -> list[tuple[str, int]]:
    doc = json.loads(stdout.read_text(encoding="utf-8"))
    return [
        (os.path.normpath(f["target"]), SEVERITIES.index(f["severity"])) for f in doc["findings"]
    ]


def _modelaudit_flags(report: Path, base: Path) -> list[str]:
    if not report.exists():
        return []
    doc = json.loads(report.read_text(encoding="utf-8"))
    out = []
    for issue in doc.get("issues", []):
        if str(issue.get("severity", "")).lower() not in ("warning", "critical"):
            continue
        loc = str(issue.get("location") or "").split(" (")[0].split(":")[0]
        out.append(os.path.normpath(loc if os.path.isabs(loc) else str(base / loc)))
    return out


def _score(items: list[dict[str, Any]], flagged: set[str]) -> dict[str, Any]:
    mal = [i for i in items if i["malicious"]]
    ben = [i for i in items if not i["malicious"]]
    return {
        "caught": sum(i["path"] in flagged for i in mal),
        "missed": [i["technique"] for i in mal if i["path"] not in flagged],
        "false_positives": [i["technique"] for i in ben if i["path"] in flagged],
    }


def run(quick: bool) -> dict[str, Any]:
    log(f"scan_llm: building the LLM corpus into {CORPUS_DIR.relative_to(ROOT)}")
    items = _build_corpus()
    big = _big_gguf()
    runs = 1 if quick else 2
    out: dict[str, Any] = {
        "workload": {
            "items": len(items),
            "malicious": sum(i["malicious"] for i in items),
            "benign": sum(not i["malicious"] for i in items),
            "gguf_bytes": big.stat().st_size,
            "gguf_disk_bytes": big.stat().st_blocks * 512,
        }
    }
    mlhunt = str(Path(sys.executable).parent / "mlhunt")
    with tempfile.TemporaryDirectory(prefix="mlhunt-bench-llm-") as tmp:
        work = Path(tmp)
        walls = [_run([mlhunt, "scan", str(CORPUS_DIR), "-f", "json"], work / "m.out")]
        walls += [
            _run([mlhunt, "scan", str(CORPUS_DIR), "-f", "json"], work / "m.out")
            for _ in range(runs - 1)
        ]
        flags = _mlhunt_flags(work / "m.out")
        medium = {t for t, sev in flags if sev >= SEVERITIES.index("medium")}
        at_expect = sum(
            any(t == i["path"] and sev >= SEVERITIES.index(i["expect"]) for t, sev in flags)
            for i in items
            if i["malicious"]
        )
        gguf_wall = [
            _run([mlhunt, "scan", str(big), "-f", "json"], work / "g.out") for _ in range(3)
        ]
        inproc = _child(_TIME_GGUF, str(big)).split()
        out["mlhunt"] = {
            "corpus_s": round(min(w for w, _, _ in walls), 3),
            "corpus_rss_mb": round(max(r for _, r, _ in walls), 1),
            **_score(items, medium),
            "caught_at_expect": at_expect,
            "gguf_4g_process_s": round(min(w for w, _, _ in gguf_wall), 3),
            "gguf_4g_rss_mb": round(max(r for _, r, _ in gguf_wall), 1),
            "gguf_4g_scan_s": round(float(inproc[0]), 3),
            "gguf_4g_findings": int(inproc[1]),
            "gguf_4g_metadata_s": round(float(inproc[2]), 3),  # without the render child
        }
        log(f"scan_llm: mlhunt {out['mlhunt']}")
        tool = _modelaudit()
        if tool is None:
            out["peer"] = {"name": "modelaudit", "error": "not installed (see bench/README.md)"}
            out["ratio"] = None
        else:
            report = work / "ma.json"
            cmd = [tool, "scan", str(CORPUS_DIR), "--format", "json", "--output", str(report)]
            wall, rss, rc = _run(cmd, work / "ma.out")
            peer_flags = set(_modelaudit_flags(report, CORPUS_DIR))
            gcmd = [tool, "scan", str(big), "--format", "json", "--output", str(work / "g.json")]
            # modelaudit reads the whole 4 GB (minutes): the full run only
            gwall, grss, grc = (None, None, None) if quick else _run(gcmd, work / "mag.out")
            out["peer"] = {
                "name": "modelaudit",
                "corpus_s": round(wall, 3),
                "corpus_rss_mb": round(rss, 1),
                "exit": rc,
                **_score(items, peer_flags),
                "gguf_4g_process_s": None if gwall is None else round(gwall, 3),
                "gguf_4g_rss_mb": None if grss is None else round(grss, 1),
                "gguf_4g_exit": grc,
            }
            out["ratio"] = round(wall / out["mlhunt"]["corpus_s"], 3)
            log(f"scan_llm: modelaudit {out['peer']}")
    out["canaries_fired"] = [
        i["canary"] for i in items if i["canary"] and Path(i["canary"]).exists()
    ]
    if out["canaries_fired"]:
        log(f"scan_llm: WARNING: canaries fired: {out['canaries_fired']}")
    return out
