"""The LLM half of ``mlhunt hunt``: gateway logs and OpenTelemetry GenAI traces are told apart
from inference logs by content and hunted by :mod:`mlhunt.llmhunt` (docs/llmhunt.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlhunt.cli_output import choose_format, emit, err, exit_code, fail_threshold
from mlhunt.errors import InputError
from mlhunt.llmhunt.api import load_tool_limits as read_tool_limits
from mlhunt.llmhunt.simulate import BENIGN_USERS, SCENARIO

LLM_SCENARIO = SCENARIO  # `mlhunt simulate llm-helpdesk`: the LLM practice range

MIN_CANARY = 8


def llm_rows() -> list[tuple[str, list[str], str]]:
    """``hunt --list`` rows for the LLM detectors: id, mappings, description."""
    from mlhunt.llmhunt import registry

    return [(d.spec.id, [*d.spec.atlas, *d.spec.owasp_llm], d.spec.description) for d in registry()]


def run_llm_hunt(
    paths: Sequence[str],
    *,
    fmt: str | None,
    output: Path | None,
    fail_on: str | None,
    canaries: Sequence[str],
    tool_limits: Path | None,
    export_sigma: Path | None,
    sigma_backend: str | None,
    wide: bool,
) -> int:
    """Hunt LLM logs, write the report (and Sigma rules), return the exit code."""
    from mlhunt.llmhunt import hunt

    chosen = choose_format(fmt, output)
    threshold = fail_threshold(fail_on)
    short = [c for c in canaries if len(c) < MIN_CANARY]
    if short:  # a short canary matches ordinary text: every completion would be a "leak"
        raise InputError(f"--canary: expected at least {MIN_CANARY} characters, not {short[0]!r}")
    if sigma_backend is not None and export_sigma is None:
        raise InputError("--sigma-backend: needs --export-sigma DIR")
    result = hunt(paths, canaries=canaries, tool_limits=read_tool_limits(tool_limits))
    read = result.read
    err(
        f"read {read.records:,} LLM records ({len(read.calls):,} calls, "
        f"{len(read.runs):,} agent runs); {read.malformed_total:,} malformed"
    )
    for m in read.malformed[:10]:
        err(f"  {m.file}:{m.line}: {m.reason}")
    doc = result.document()
    if export_sigma is not None:
        from mlhunt.llmhunt.sigma import export_sigma as write_sigma

        written = write_sigma(export_sigma, backend=sigma_backend)
        doc["sigma"] = {"folder": str(export_sigma), "files": [str(p) for p in written]}
        err(f"wrote {len(written)} Sigma files under {export_sigma}/")
    emit(doc, chosen, output, wide=wide)
    return exit_code(doc, threshold)


def run_llm_simulate(out: Path, *, seed: int, scale: float, live: str | None) -> int:
    """``mlhunt simulate llm-helpdesk``: the LLM range's gateway log, OpenTelemetry GenAI
    traces and labels under ``out`` (``scale`` multiplies the 200 benign users)."""
    from mlhunt.llmhunt import simulate

    if live is not None:
        raise InputError("--live: not for llm-helpdesk (its completions are simulated)")
    if not scale > 0:
        raise InputError(f"--scale: expected a positive number, got {scale}")
    result = simulate(out, seed=seed, benign_users=max(1, round(BENIGN_USERS * scale)))
    attackers = sum(1 for v in result.labels.values() if v.get("label") != "benign")
    err(
        f"wrote {result.calls:,} simulated LLM calls of {len(result.labels):,} clients "
        f"({attackers:,} attackers) to {result.gateway} and {result.otel}; labels in "
        f"{result.labels_path}"
    )
    err(f"hunt them: mlhunt hunt {result.gateway} --canary {result.canary}")
    return 0
