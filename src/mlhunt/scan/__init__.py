"""``mlhunt scan``: model artifacts, LLM and agent supply chains (GGUF, chat templates, Hugging
Face folders, MCP configurations), deployment manifests and secrets, without executing anything.

The walker decides what each file is (by content for artifacts, by structure for manifests, by
kind of text for secrets) and hands it to the matching scanner. It never follows a symlink out
of the scanned root, and it never imports, unpickles or loads what it reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mlhunt.findings import Finding, Severity
from mlhunt.record import Record
from mlhunt.scan.h5child import H5Reader
from mlhunt.scan.pickleops import Limits

__all__ = ["Limits", "ScanResult", "scan_path"]

#: Folders that hold tools, not the project's artifacts.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__"})
#: Text files worth a secrets pass (besides manifests and anything named .env*).
SECRET_SUFFIXES = frozenset(
    {
        ".yaml",
        ".yml",
        ".json",
        ".env",
        ".ini",
        ".cfg",
        ".conf",
        ".toml",
        ".properties",
        ".ipynb",
        ".py",
        ".sh",
        ".txt",
        ".netrc",
        ".tf",
        ".tfvars",
    }
)


class ScanResult(Record):
    """Findings plus what was looked at, so a clean result can be told from an empty scan."""

    __slots__ = ("bytes", "files", "findings", "skipped")

    def __init__(
        self,
        findings: list[Finding] | None = None,
        files: int = 0,
        bytes: int = 0,  # the field's name since the first release
        skipped: list[str] | None = None,
    ) -> None:
        self.findings: list[Finding] = [] if findings is None else findings
        self.files = files
        self.bytes = bytes
        self.skipped: list[str] = [] if skipped is None else skipped


def _walk(root: Path, skipped: list[str]) -> Iterator[Path]:
    if not root.is_dir():
        yield root
        return

    def unreadable(exc: OSError) -> None:
        skipped.append(f"{exc.filename}: {exc.strerror or exc}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        # Links to folders are never descended into; they are yielded so the caller reports
        # the ones that leave the root.
        links = sorted(d for d in dirnames if (Path(dirpath) / d).is_symlink())
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and d not in links)
        for name in sorted([*filenames, *links]):
            yield Path(dirpath) / name


def _symlink_escape(path: Path, root: Path) -> Finding | None:
    """A symlink whose target leaves the scanned root: reported, never read."""
    try:
        target = path.resolve(strict=False)
        inside = target.is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a loop: treat as escaping
        try:
            target = Path(os.readlink(path))
        except OSError:
            target = path
        inside = False
    if inside:
        return None
    return Finding(
        id=f"MLH-SCAN-SYMLINK-ESCAPE@{path}",
        rule_id="MLH-SCAN-SYMLINK-ESCAPE",
        title="Symlink points outside the scanned folder",
        severity=Severity.MEDIUM,
        source="scan",
        target=str(path),
        description="The link was not followed. A model folder that links elsewhere can make "
        "a loader read (or a packager ship) files nobody reviewed.",
        cwe=["CWE-59"],
        evidence={"link_target": str(target)},
        mitigations=["Replace the link with the file itself, or keep it inside the folder."],
    )


def scan_path(
    root: Path,
    *,
    allow: Iterable[str] = (),
    policy_dirs: Iterable[Path] = (),
    secrets: bool = True,
    progress: Callable[[Path], None] | None = None,
    limits: Limits | None = None,
) -> ScanResult:
    """Scan a file or a folder tree. ``allow`` extends the pickle allow-list (``module.name`` or
    ``module.*``); ``policy_dirs`` adds Rego policies; ``progress`` is called per file;
    ``limits`` bounds the work per file (a file over ``max_file_bytes`` is not opened at all)."""
    # HDF5 files are read by one reader process that starts at the first of them and works
    # while the walk goes on; its findings are collected at the end.
    with H5Reader() as h5:
        result = _scan(root, allow, policy_dirs, secrets, progress, limits, h5)
        for late in h5.finish():
            result.findings.extend(late)
    result.findings.sort(key=lambda f: (-f.severity.rank, f.target, f.id))
    return result


def _scan(
    root: Path,
    allow: Iterable[str],
    policy_dirs: Iterable[Path],
    secrets: bool,
    progress: Callable[[Path], None] | None,
    limits: Limits | None,
    h5: H5Reader,
) -> ScanResult:
    # The manifest and secrets scanners pull in regopy and detect-secrets: imported only when a
    # file needs them, so scanning a folder of model files starts fast.
    from mlhunt.scan.artifacts import is_artifact, scan_artifact
    from mlhunt.scan.limits import secrets_size_finding, size_finding
    from mlhunt.scan.llm import LlmScan

    limits = limits or Limits()
    allow = tuple(allow)
    policy_dirs = tuple(policy_dirs)
    result = ScanResult()
    manifests: list[Path] = []
    llm = LlmScan()  # GGUF, Hugging Face folders, chat templates, MCP configurations
    base = root if root.is_dir() else root.parent
    for path in _walk(root, result.skipped):
        if progress is not None:
            progress(path)
        if path.is_symlink():
            escape = _symlink_escape(path, base)
            if escape is not None:
                result.findings.append(escape)
                continue
            if path.is_dir():  # a link to a folder inside the root: scanned there, not twice
                result.skipped.append(f"{path}: link to a folder, not followed")
                continue
        if not path.is_file():
            result.skipped.append(f"{path}: not a regular file")
            continue
        try:
            size = path.stat().st_size
        except OSError as exc:
            result.skipped.append(f"{path}: {exc.strerror or exc}")
            continue
        result.files += 1
        if size > limits.max_file_bytes:
            result.findings.append(size_finding(path, size, limits))
            continue
        result.bytes += size
        if llm.claims(path):  # GGUF: metadata only, never the tensors
            result.findings.extend(llm.scan(path))
            continue
        if is_artifact(path):
            result.findings.extend(scan_artifact(path, allow=allow, limits=limits, h5=h5))
            continue
        result.findings.extend(llm.scan(path))
        text_like = path.suffix.lower() in SECRET_SUFFIXES or path.name.startswith(".env")
        if not text_like:
            continue
        from mlhunt.scan.manifests import is_manifest
        from mlhunt.scan.secrets import scan_secrets

        if is_manifest(path):
            manifests.append(path)
        too_big = secrets_size_finding(path, size) if secrets else None
        if too_big is not None:  # not read for secrets: say so rather than pass it silently
            result.findings.append(too_big)
        elif secrets:
            result.findings.extend(scan_secrets(path))
    result.findings.extend(llm.finish())  # one MCP server's tools shadowing another's
    if manifests:
        from mlhunt.scan.manifests import scan_manifests

        # Evaluated together: cross-resource rules (mTLS for the namespace a model is served in,
        # an AuthorizationPolicy per inference service) see every file of the tree.
        result.findings.extend(scan_manifests(manifests, policy_dirs=policy_dirs))
    return result
