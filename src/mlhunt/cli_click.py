"""The clickstream half of ``mlhunt hunt``: shop events are told apart from inference logs by
content and hunted for shilling by :mod:`mlhunt.clickhunt`; a recommender's API log gets the
inference hunt plus the shilling detector over its sessions (docs/hunt.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlhunt.cli_output import choose_format, emit, err, exit_code, fail_threshold
from mlhunt.errors import InputError


def log_kind(paths: Sequence[str]) -> str | None:
    """``clickstream``, ``recommender-api`` or None (see :func:`mlhunt.clickhunt.click_kind`)."""
    from mlhunt.clickhunt import click_kind

    return click_kind(paths)


def run_click_hunt(
    paths: Sequence[str],
    *,
    fmt: str | None,
    output: Path | None,
    fail_on: str | None,
    export_sigma: Path | None,
    sigma_backend: str | None,
    wide: bool,
    reference: Path | None = None,
) -> int:
    """Hunt clickstream events, write the report (and Sigma rules), return the exit code.
    ``reference``: earlier events whose accounts are not new."""
    from mlhunt.clickhunt import hunt

    chosen = choose_format(fmt, output)
    threshold = fail_threshold(fail_on)
    if sigma_backend is not None and export_sigma is None:
        raise InputError("--sigma-backend: needs --export-sigma DIR")
    result = hunt(paths, reference=reference)
    err(f"clickstream: {result.read.report.summary()}")
    doc = result.document()
    _sigma(doc, export_sigma, sigma_backend)
    emit(doc, chosen, output, wide=wide)
    return exit_code(doc, threshold)


def is_events(path: Path | None) -> bool:
    """Whether ``path`` is a clickstream events file (a ``--reference`` of known accounts)."""
    from mlhunt.clickhunt import CLICKSTREAM, click_kind

    return path is not None and click_kind([str(path)]) == CLICKSTREAM


def add_api_shilling(
    doc: dict[str, Any], paths: Sequence[str], reference: Path | None = None
) -> None:
    """Add the shilling detector's findings over a recommender API log's sessions to an
    inference hunt's document (findings re-sorted, summary recounted); ``reference``: the
    clickstream events whose accounts are not new."""
    from mlhunt.clickhunt import RECOMMENDER_API, hunt
    from mlhunt.findings import Severity, summarize

    result = hunt(paths, kind=RECOMMENDER_API, reference=reference)
    with_items = result.read.events["item"].null_count < result.read.events.num_rows
    doc["clickstream"] = {**result.read_summary(), "detectors": result.detectors}
    if result.errors:
        doc["clickstream"]["detector_errors"] = result.errors
    if not with_items:
        note = "the API log names no session items (field 'items'): shilling not hunted on it"
        doc["clickstream"]["warnings"] = [*doc["clickstream"].get("warnings", []), note]
        err(f"shilling: {note}")
    found = [f.to_dict() for f in result.findings]
    doc["findings"] = sorted(
        [*doc["findings"], *found],
        key=lambda f: (-Severity(f["severity"]).rank, f["rule_id"], f["target"]),
    )
    summary = summarize([])
    for f in doc["findings"]:
        summary["by_severity"][f["severity"]] += 1
    summary["total"] = len(doc["findings"])
    doc["summary"] = summary


def click_rows() -> list[tuple[str, list[str], str]]:
    """``hunt --list`` rows for the clickstream detectors: id, mappings, description."""
    from mlhunt.clickhunt.detectors import load_detectors

    return [
        (d.spec.id, [*d.spec.atlas, *d.spec.owasp_ml], d.spec.description) for d in load_detectors()
    ]


def _sigma(doc: dict[str, Any], export_sigma: Path | None, backend: str | None) -> None:
    if export_sigma is None:
        return
    from mlhunt.clickhunt.sigma import export_sigma as write_sigma

    written = write_sigma(export_sigma, backend=backend)
    doc["sigma"] = {"folder": str(export_sigma), "files": [str(p) for p in written]}
    err(f"wrote {len(written)} Sigma files under {export_sigma}/")
