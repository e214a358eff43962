"""``pip install mlhunt`` without extras, as a user gets it: the wheel of this tree in a clean
virtual environment (packages from the index), then ``model`` and ``scan`` there, and ``hunt``
naming the extra it needs.

Slow (a venv and ~25 packages, minutes on a cold pip cache) and needs the package index: it is
skipped, with the reason, when the index cannot be reached, and fails for anything else.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from mlhunt.extras import COMMAND_EXTRAS, MODULE_EXTRAS

ROOT = Path(__file__).resolve().parent.parent
MAX_PACKAGES = 35  # issue #20: the base install, dependencies included
INSTALL_TIMEOUT = 1800  # generous: a cold pip cache on a loaded 2-core machine
RUN_TIMEOUT = 300
_OFFLINE = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Could not fetch URL",
    "ConnectTimeoutError",
    "Network is unreachable",
)


def _env() -> dict[str, str]:
    # Nothing of this checkout or of the test's venv may leak into the clean one.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, timeout: int = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the tree (building in place would leave build/ and egg-info)."""
    src = tmp / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(src)]
    if _has_setuptools():  # else pip fetches setuptools into an isolated build env
        cmd.append("--no-build-isolation")
    r = _run(cmd, cwd=tmp, timeout=INSTALL_TIMEOUT)
    _skip_if_offline(r)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheels = list(dist.glob("mlhunt-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _has_setuptools() -> bool:
    try:
        import setuptools  # noqa: F401
    except ImportError:
        return False
    return True


def _skip_if_offline(r: subprocess.CompletedProcess[str]) -> None:
    if r.returncode != 0 and any(m in r.stdout + r.stderr for m in _OFFLINE):
        pytest.skip("the package index cannot be reached: " + r.stderr.strip()[-300:])


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding the wheel of this tree and its required dependencies."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = _build_wheel(tmp)
    venv = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    r = _run([base, "-m", "venv", str(venv)], cwd=tmp)
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    # --no-compile: no byte-code for every module of the ~30 packages up front (about 4.6 of
    # the fixture's 20.5 CPU s); the commands below compile what they import, as imports do
    cmd = [str(py), "-m", "pip", "install", "--no-compile", str(wheel)]
    r = _run(cmd, cwd=tmp, timeout=INSTALL_TIMEOUT)
    _skip_if_offline(r)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return venv / "bin"


def test_base_install_is_small(clean_venv: Path) -> None:
    r = _run([str(clean_venv / "python"), "-m", "pip", "list", "--format", "json"], cwd=ROOT)
    names = {p["name"].lower() for p in json.loads(r.stdout)} - {"pip", "setuptools"}
    assert "mlhunt" in names
    assert len(names) <= MAX_PACKAGES, sorted(names)
    for heavy in ("torch", "duckdb", "adversarial-robustness-toolbox", "numba", "redis"):
        assert heavy not in names


def test_model_and_scan_run_without_extras(clean_venv: Path, tmp_path: Path) -> None:
    mlhunt = str(clean_venv / "mlhunt")
    system = ROOT / "examples" / "loan-approval" / "system.yaml"
    r = _run([mlhunt, "model", str(system), "-f", "json"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["command"] == "model" and doc["findings"]

    # A protocol-0 pickle that would call os.system (written as bytes, never loaded), beside the
    # example's deployment manifests: the pickle, Rego and secrets scanners all run.
    (tmp_path / "model.pkl").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    shutil.copytree(ROOT / "examples" / "loan-approval" / "deploy", tmp_path / "deploy")
    r = _run([mlhunt, "scan", str(tmp_path), "-f", "json"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rules = {f["rule_id"] for f in doc["findings"]}
    assert "MLH-SCAN-PICKLE-DANGEROUS-GLOBAL" in rules, sorted(rules)
    assert any(f["target"].startswith(str(tmp_path / "deploy")) for f in doc["findings"]), rules


def test_schema_and_init_run_without_extras(clean_venv: Path, tmp_path: Path) -> None:
    mlhunt = str(clean_venv / "mlhunt")
    r = _run([mlhunt, "schema"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["title"] == "mlhunt system description"
    # the image scenario's code needs PyTorch; starting a project from it must not
    r = _run([mlhunt, "init", "--scenario", "image-moderation"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mlhunt.yaml").is_file() and (tmp_path / "system.yaml").is_file()
    r = _run([mlhunt, "model", "system.yaml", "-f", "json"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_missing_extra_names_it(clean_venv: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("{}\n")
    r = _run([str(clean_venv / "mlhunt"), "hunt", str(log)], cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == ["error: mlhunt hunt needs the hunt extra: pip install 'mlhunt[hunt]'"]


def test_extras_table_matches_pyproject() -> None:
    """Every extra named by mlhunt.extras exists in pyproject.toml."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    named = {e for es in MODULE_EXTRAS.values() for e in es} | set(COMMAND_EXTRAS.values())
    assert named <= set(extras), named - set(extras)


def _requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_every_imported_package_is_declared() -> None:
    """Each third-party module imported under src/ comes from a distribution that pyproject.toml
    declares (required or in an extra): nothing works only because something else pulled it in."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(project["dependencies"])
    for reqs in project["optional-dependencies"].values():
        declared |= _requirement_names(reqs)
    dists = packages_distributions()
    missing: dict[str, str] = {}
    for path in (ROOT / "src" / "mlhunt").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "mlhunt":
                    continue
                owners = {d.lower().replace("_", "-") for d in dists.get(top, [top])}
                if not owners & declared:
                    missing[top] = str(path.relative_to(ROOT))
    assert not missing, missing
