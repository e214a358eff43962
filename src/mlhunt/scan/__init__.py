"""``mlhunt scan``: model artifacts, deployment manifests and secrets, without executing anything.

The walker decides what each file is (by content for artifacts, by structure for manifests, by
kind of text for secrets) and hands it to the matching scanner. It never follows a symlink out
of the scanned root, and it never imports, unpickles or loads what it reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlhunt.findings import Finding, Severity

#: Folders that hold tools, not the project's artifacts.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__"})
#: Text files worth a secrets pass (besides manifests and anything named .env*).
SECRET_SUFFIXES = frozenset(
    {
        ".yaml", ".yml", ".json", ".env", ".ini", ".cfg", ".conf", ".toml", ".properties",
        ".ipynb", ".py", ".sh", ".txt", ".netrc", ".tf", ".tfvars",
    }
)  # fmt: skip


@dataclass
class ScanResult:
    """Findings plus what was looked at, so a clean result can be told from an empty scan."""

    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def _walk(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _symlink_escape(path: Path, root: Path) -> Finding | None:
    """A symlink whose target leaves the scanned root: reported, never read."""
    try:
        target = path.resolve(strict=False)
        inside = target.is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a loop: treat as escaping
        target, inside = Path(os.readlink(path)), False
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
) -> ScanResult:
    """Scan a file or a folder tree. ``allow`` extends the pickle allow-list (``module.name`` or
    ``module.*``); ``policy_dirs`` adds Rego policies; ``progress`` is called per file."""
    # The manifest and secrets scanners pull in regopy and detect-secrets: imported only when a
    # file needs them, so scanning a folder of model files starts fast.
    from mlhunt.scan.artifacts import is_artifact, scan_artifact

    allow = tuple(allow)
    policy_dirs = tuple(policy_dirs)
    result = ScanResult()
    manifests: list[Path] = []
    base = root if root.is_dir() else root.parent
    for path in _walk(root):
        if progress is not None:
            progress(path)
        if path.is_symlink():
            escape = _symlink_escape(path, base)
            if escape is not None:
                result.findings.append(escape)
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
        result.bytes += size
        if is_artifact(path):
            result.findings.extend(scan_artifact(path, allow=allow))
            continue
        text_like = path.suffix.lower() in SECRET_SUFFIXES or path.name.startswith(".env")
        if not text_like:
            continue
        from mlhunt.scan.manifests import is_manifest
        from mlhunt.scan.secrets import scan_secrets

        if is_manifest(path):
            manifests.append(path)
        if secrets:
            result.findings.extend(scan_secrets(path))
    if manifests:
        from mlhunt.scan.manifests import scan_manifests

        # Evaluated together: cross-resource rules (mTLS for the namespace a model is served in,
        # an AuthorizationPolicy per inference service) see every file of the tree.
        result.findings.extend(scan_manifests(manifests, policy_dirs=policy_dirs))
    result.findings.sort(key=lambda f: (-f.severity.rank, f.target, f.id))
    return result
