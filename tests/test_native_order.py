"""regopy before torch aborts the process; :func:`preload_torch` is the guard run/demo use."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_preload_then_regopy_then_torch_survives() -> None:
    code = (
        "from mlhunt._native import preload_torch; assert preload_torch(); "
        "import regopy, torch; print('ok')"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "ok"


def test_preload_refuses_after_regopy() -> None:
    out = _python("import regopy; from mlhunt._native import preload_torch; print(preload_torch())")
    assert out.returncode == 0 and out.stdout.strip() == "False"
