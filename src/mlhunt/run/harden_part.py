"""The project's ``harden:`` section: run each mitigation check and hand its findings (source
``harden``) to the run, tied to the model element whose threats they address.

Used by ``mlhunt harden mlhunt.yaml`` (:func:`harden_project`) and by ``run_project``
(:func:`harden_part`, one call: the documents plus the evidence sets for the threat links).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlhunt.errors import InputError
from mlhunt.run.project import HardenConfig, Project

Progress = Callable[[str], None]


def _quiet(_m: str) -> None:
    pass


def element_of(project: Project, cfg: HardenConfig) -> str | None:
    """The configured element, else that of the project's model built from the same scenario."""
    if cfg.element:
        return cfg.element
    return next((m.element for m in project.models if m.scenario == cfg.scenario), None)


def harden_one(
    project: Project, cfg: HardenConfig, index: int, out: Path, progress: Progress = _quiet
) -> dict[str, Any]:
    """One ``harden:`` entry as a harden document (plots relative to ``out``)."""
    from mlhunt.harden import harden, parse_params

    where = f"harden[{index}]"
    try:
        params = parse_params(f"{k}={json.dumps(v)}" for k, v in cfg.params.items())
        report = harden(
            cfg.scenario,
            select=cfg.mitigations,
            params=params,
            seed=project.seed,
            out_dir=out / "harden" / f"{index}-{cfg.scenario}",  # one per entry
            progress=progress,
        )
    except InputError as exc:
        if exc.file:
            raise
        raise InputError(f"{where}: {exc}", file=project.file, field=where) from None
    doc = report.document()
    for f in doc["findings"]:  # plots relative to the report folder: the report embeds them
        ev = f.get("evidence") or {}
        if ev.get("plots"):
            ev["plots"] = [_relative(Path(p), out) for p in ev["plots"]]
    doc["element"] = element_of(project, cfg)
    return doc


def harden_project(project: Project, *, progress: Progress = _quiet) -> dict[str, Any]:
    """``mlhunt harden mlhunt.yaml``: every ``harden:`` entry, one harden document."""
    from mlhunt.findings import document

    if not project.harden:
        raise InputError("the project has no 'harden:' section", file=project.file, field="harden")
    out = project.resolve(project.output)
    docs = [harden_one(project, c, i, out, progress) for i, c in enumerate(project.harden)]
    doc = document(
        "harden",
        [],
        project=project.name or project.file,
        parts=[{k: v for k, v in d.items() if k != "findings"} for d in docs],
    )
    doc["findings"] = [f for d in docs for f in d["findings"]]  # already JSON-ready dicts
    for f in doc["findings"]:
        doc["summary"]["by_severity"][f["severity"]] += 1
    doc["summary"]["total"] = len(doc["findings"])
    return doc


def harden_part(
    project: Project, out: Path, progress: Progress = _quiet
) -> tuple[list[dict[str, Any]], list[Any]]:
    """(harden documents, evidence sets) for ``run_project``; nothing when no section."""
    from mlhunt.run.validation import EvidenceSet

    docs, evidence = [], []
    for i, cfg in enumerate(project.harden):
        progress(f"harden {cfg.scenario}: {', '.join(cfg.mitigations) or 'every mitigation'}")
        doc = harden_one(project, cfg, i, out, progress)
        docs.append(doc)
        el = doc.get("element")
        evidence.append(
            EvidenceSet("harden", doc["findings"], frozenset({el}) if el else frozenset())
        )
    return docs, evidence


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
