"""``mlhunt.hunt.hunt(paths)``: the library entry point of ``mlhunt hunt``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.errors import InputError
from mlhunt.findings import Finding, document
from mlhunt.hunt.alerts import to_findings
from mlhunt.hunt.detectors import load_detectors
from mlhunt.hunt.detectors.base import Alert, Detector
from mlhunt.hunt.events import Population
from mlhunt.hunt.readers import ReadReport, read_batches

Progress = Callable[[str], None]


@dataclass
class HuntResult:
    findings: list[Finding]
    alerts: list[Alert]
    read: ReadReport
    population: Population
    detectors: list[Detector]
    stats: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return document(
            "hunt",
            self.findings,
            read=self.read.to_dict(),
            population=self.population.to_dict(),
            detectors=[
                {
                    "id": d.spec.id,
                    "title": d.spec.title,
                    "scope": d.spec.scope,
                    "atlas": d.spec.atlas,
                    "ran": d.applies(self.population),
                }
                for d in self.detectors
            ],
            stats=self.stats,
        )


def load_reference(path: str | Path) -> np.ndarray:
    """Known-good inputs: ``.npz`` with an ``x`` array, ``.npy``, or a log file (its inputs)."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", file=str(p), field="--reference")
    if p.suffix.lower() in (".npz", ".npy"):
        from mlhunt._arrays import load_arrays, numeric

        arrays = load_arrays(p, "--reference")
        raw = arrays.get("x", arrays.get(""))
        if raw is None:
            raise InputError(
                f"--reference: expected an .npz with array 'x' (has: "
                f"{', '.join(sorted(arrays)) or 'none'})",
                file=str(p),
            )
        x = numeric(raw, "x", p)
    else:
        from mlhunt.hunt.events import input_matrix

        report = ReadReport()
        parts = [
            input_matrix(t.column("input"), report.input_dim or 0) for t in read_batches(p, report)
        ]
        x = np.concatenate(parts) if parts else np.empty((0, 0))
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:  # one row per sample, its values flattened (an image reference)
        x = x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))
    x = x[np.isfinite(x).all(axis=1)] if len(x) else x
    if x.shape[1] == 0:
        raise InputError("--reference: the inputs have no values", file=str(p))
    if len(x) < 10:
        raise InputError("--reference: fewer than 10 usable input rows", file=str(p))
    return x


def hunt(
    paths: str | Path | Sequence[str | Path],
    *,
    engine: str = "duckdb",
    reference: str | Path | None = None,
    detectors: Iterable[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    spark_master: str | None = None,
    progress: Progress | None = None,
) -> HuntResult:
    """Hunt inference logs (files, folders, globs) with every registered detector (or those in
    ``detectors``) on ``engine``; malformed records are reported in ``result.read``."""
    from mlhunt.hunt.engines import get_engine
    from mlhunt.hunt.readers import resolve

    if engine == "spark":  # URLs (s3a://, abfss://, hdfs://) are listed by Spark itself
        from mlhunt.hunt.engines.spark_urls import split_urls

        local, urls = split_urls(paths)
        files = [*resolve(local), *urls] if local or not urls else urls
    else:
        files = resolve(paths)  # a missing path fails here, before any work
    dets = load_detectors(detectors, params)
    ref = load_reference(reference) if reference is not None else None
    eng = get_engine(engine, spark_master=spark_master)
    report = ReadReport()
    started = time.perf_counter()
    out = eng.run(files, dets, report, reference=ref, progress=progress)
    if ref is not None and out.population.d != ref.shape[1] and report.input_dim:
        raise InputError(f"--reference: {ref.shape[1]} features, the logs have {report.input_dim}")
    skipped = [d.spec.id for d in dets if not d.applies(out.population)]
    if skipped and report.records:
        report.warn(
            f"{len(skipped)} input-space detector(s) could not run ({', '.join(skipped)}): "
            "no input vectors in the logs (expected an 'input' array, a 'features' object, "
            "or one CSV column per feature)"
        )
    specs = {d.spec.id: d.spec for d in dets}
    findings = to_findings(out.alerts, specs)
    stats = {
        **out.stats,
        "seconds": round(time.perf_counter() - started, 3),
        "alerts": len(out.alerts),
    }
    return HuntResult(findings, out.alerts, report, out.population, dets, stats)
