"""``python -m bench.scan_same OLD_SRC [NEW_SRC]``: is ``mlhunt scan``'s output unchanged?

A start-up change to the scanner must not change a finding. This runs ``python -m mlhunt scan
TARGET -f FORMAT`` with ``PYTHONPATH=OLD_SRC`` and with ``PYTHONPATH=NEW_SRC`` (default: this
checkout's ``src``) and compares stdout byte for byte, and the exit codes, for every format on:
the scan corpus of the tests, the LLM corpus, a small PyTorch checkpoint and every example's
``deploy`` and ``deploy-fixed`` folder. An old tree is made with ``git worktree add /tmp/old
main``. Prints one line per difference and exits 1 if there is any.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("json", "table", "sarif", "markdown", "html")

_BUILD = """
import sys
from pathlib import Path
from tests.scan_corpus import build_corpus
from tests.scan_llm_corpus import build_llm_corpus
build_corpus(Path(sys.argv[1]) / "corpus")
build_llm_corpus(Path(sys.argv[1]) / "llm")
import torch
torch.manual_seed(0)
(Path(sys.argv[1]) / "ckpt").mkdir()
torch.save({"w": torch.randn(64, 64), "b": torch.randn(64)}, Path(sys.argv[1]) / "ckpt" / "m.pt")
"""


def _scan(src: str, target: Path, fmt: str) -> tuple[int, bytes]:
    env = {**os.environ, "PYTHONPATH": src, "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-m", "mlhunt", "scan", str(target), "-f", fmt],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    return proc.returncode, proc.stdout


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    old = str(Path(argv[0]).resolve())
    new = str(Path(argv[1]).resolve()) if len(argv) == 2 else str(ROOT / "src")
    differences = 0
    with tempfile.TemporaryDirectory(prefix="mlhunt-scan-same-") as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-c", _BUILD, tmp], cwd=ROOT, check=True)
        examples = sorted((ROOT / "examples").glob("*/deploy*"))
        targets = [work / "corpus", work / "llm", work / "ckpt", *examples]
        for target in targets:
            for fmt in FORMATS:
                before, after = _scan(old, target, fmt), _scan(new, target, fmt)
                same = before == after
                differences += not same
                size = len(after[1])
                print(f"{'same' if same else 'DIFFERENT'}: {target} -f {fmt} ({size} bytes)")
    print(f"{differences} difference(s) in {len(targets) * len(FORMATS)} comparisons")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
