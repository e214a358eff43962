"""How mlhunt's detector code reaches Spark executors that do not have mlhunt installed.

On a cluster the executors are other processes on other machines, usually with another Python.
The hunt ships the driver's own ``mlhunt`` package with the job: :func:`package_archive` zips it
(sources, package data, and the numba kernels the driver has compiled, so each executor loads
machine code instead of compiling for tens of seconds) and :func:`ship` adds it with
``addArchive(...#mlhunt)``; Spark unpacks it into every executor's working directory, which
PySpark puts on the Python workers' ``sys.path``. The executors therefore run exactly the
driver's detector code, even where an older mlhunt is installed.

What the executors' Python must have is :data:`EXECUTOR_NEEDS` (measured: the Python side of
``applyInPandas`` plus the imports of the detector modules). :func:`check_executors` runs a small
job that imports each of them on the executors before any log is read, so a missing one is one
line naming the package to install, not a Java stack trace from the middle of the hunt.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mlhunt.errors import InputError

#: (module imported on the executors, the pip package that provides it).
EXECUTOR_NEEDS: tuple[tuple[str, str], ...] = (
    ("numpy", "numpy"),
    ("pandas", "pandas"),
    ("pyarrow", "pyarrow"),
    ("numba", "numba"),
    ("pydantic", "pydantic"),
    ("yaml", "PyYAML"),
)
#: The name the archive is unpacked under on the executors (so ``import mlhunt`` finds it).
ARCHIVE_ALIAS = "mlhunt"
_NUMBA_CACHE = (".nbi", ".nbc")
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _numba_cache_dirs(source_dir: Path) -> list[Path]:
    """Where numba keeps the compiled kernels of the modules in ``source_dir``: beside them
    (``__pycache__``) or under ``NUMBA_CACHE_DIR``."""
    out = [source_dir / "__pycache__"]
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    if cache_dir:
        # numba's own naming of the per-folder subdirectory (parent name + hash of the path)
        digest = hashlib.sha1(
            os.path.abspath(source_dir).encode(), usedforsecurity=False
        ).hexdigest()
        out.append(Path(cache_dir) / f"{source_dir.name}_{digest}")
    return out


def _archive_members(root: Path) -> list[tuple[str, Path]]:
    """(name in the archive, file) for the package's files and its compiled numba kernels."""
    members: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or "__pycache__" in rel.parts or path.suffix in _SKIP_SUFFIXES:
            continue
        members[rel.as_posix()] = path
    folders = {root} | {p.parent for p in members.values()}
    for folder in sorted(folders):
        rel_dir = folder.relative_to(root)
        for cache in _numba_cache_dirs(folder):
            if not cache.is_dir():
                continue
            for f in sorted(cache.iterdir()):
                if f.suffix in _NUMBA_CACHE and f.is_file():
                    name = (rel_dir / "__pycache__" / f.name).as_posix()
                    members.setdefault(name, f)
    return sorted(members.items())


def package_archive(dest_dir: Path) -> Path:
    """A zip of the driver's ``mlhunt`` package, its contents at the top (it is unpacked as the
    ``mlhunt`` folder), named by the hash of what it holds."""
    import mlhunt

    root = Path(os.path.abspath(mlhunt.__file__)).parent
    members = [(name, path.read_bytes()) for name, path in _archive_members(root)]
    digest = hashlib.sha256()
    for name, data in members:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    out = dest_dir / f"mlhunt-{digest.hexdigest()[:16]}.zip"
    if not out.exists():
        part = out.with_suffix(".part")
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                zf.writestr(name, data)
        part.replace(out)
    return out


def ship(spark: Any, dest_dir: Path) -> Path:
    """Add the mlhunt archive to the session's context; executors unpack it before their next
    task. Returns the archive."""
    archive = package_archive(dest_dir)
    spark.sparkContext.addArchive(f"{archive}#{ARCHIVE_ALIAS}")
    return archive


def _probe_function(needs: tuple[tuple[str, str], ...]) -> Any:
    """The probe run on the executors: a nested function, so cloudpickle ships it by value and
    the executors need nothing of mlhunt to run it."""

    def probe(_: Iterable[Any]) -> Iterator[dict[str, Any]]:
        import importlib
        import platform
        import socket
        import sys

        missing = []
        for module, package in needs:
            try:
                importlib.import_module(module)
            except Exception as exc:  # ImportError, or a broken install failing on import
                missing.append(f"{package} ({type(exc).__name__}: {str(exc)[:120]})")
        where = ""
        if not missing:
            try:
                import mlhunt.hunt.detectors.base as base

                where = str(Path(base.__file__).resolve())
            except Exception as exc:
                missing.append(f"mlhunt ({type(exc).__name__}: {str(exc)[:120]})")
        yield {
            "python": sys.executable,
            "version": platform.python_version(),
            "host": socket.gethostname(),
            "missing": missing,
            "mlhunt": where,
        }

    return probe


def check_executors(spark: Any, needs: tuple[tuple[str, str], ...] = EXECUTOR_NEEDS) -> list[dict]:
    """Import what the hunt needs on the executors (one task per default partition); raise one
    line naming what is missing. Returns what each task found (Python, host, mlhunt's path)."""
    sc = spark.sparkContext
    n = max(int(sc.defaultParallelism), 1)
    try:
        found = sc.parallelize(range(n), n).mapPartitions(_probe_function(needs)).collect()
    except Exception as exc:
        if not type(exc).__module__.startswith(("pyspark", "py4j")):
            raise
        raise InputError(
            f"--engine spark: the executors cannot run Python ({executor_cause(exc)}); "
            "set PYSPARK_PYTHON to the executors' Python (docs/spark.md)"
        ) from None
    bad = [f for f in found if f["missing"]]
    if bad:
        f = bad[0]
        names = [m.split(" ", 1)[0] for m in f["missing"]]
        install = " ".join(n for n in names if n != "mlhunt")
        raise InputError(
            f"--engine spark: the executors' Python ({f['python']} {f['version']} on "
            f"{f['host']}) cannot import {', '.join(f['missing'])}; "
            + (f"pip install {install} there" if install else "mlhunt was not shipped")
            + " or set PYSPARK_PYTHON to a Python that has them (docs/spark.md)"
        )
    return found


_CAUSES = (
    re.compile(r"(ModuleNotFoundError: .*)"),
    re.compile(r"(ImportError: .*)"),
    re.compile(r"(\[PYTHON_VERSION_MISMATCH\].*)"),
    re.compile(r"(Cannot run program .*)"),
)


def executor_cause(exc: BaseException) -> str:
    """The line of an executor failure that says what went wrong (a missing module, a Python
    that cannot start, mismatched versions), else the error's first line."""
    text = str(exc)
    for pattern in _CAUSES:
        m = pattern.search(text)
        if m:
            return m.group(1).strip()[:200]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def missing_module(exc: BaseException) -> str | None:
    """The module an executor could not import, when that is why a Spark job failed."""
    m = re.search(r"ModuleNotFoundError: No module named '([^']+)'", str(exc))
    return m.group(1) if m else None
