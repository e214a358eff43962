"""Hunt engines: where the events live while the detectors run.

Every engine implements :class:`Engine` — read -> population -> grouped batches -> detector
outputs -> alerts — and shares everything else:

1. read the logs with :func:`mlhunt.hunt.readers.read_batches` (or the engine's own reader
   producing the same normalised columns and the same :class:`ReadReport` entries);
2. build the :class:`~mlhunt.hunt.events.Population` with
   :class:`~mlhunt.hunt.events.PopulationBuilder` (exact aggregates via ``update``; the sample
   is each client's first ``sample_per_client(n_clients)`` events with an input, ordered by
   (ts, file, line), passed to ``add_sample``), or from ``reference`` inputs;
3. for each scope used by the detectors (``client_id``, ``source_ip``; rows with a null key are
   skipped), hand sorted events (key, ts, file, line) as
   :class:`~mlhunt.hunt.events.GroupBatch` es holding *whole groups* to
   :func:`mlhunt.hunt.detectors.base.run_detectors`, which returns
   :class:`~mlhunt.hunt.detectors.base.Alert` s (``Alert.to_row``/``from_row`` ship them between
   processes);
4. return an :class:`EngineResult`; :mod:`mlhunt.hunt.api` turns alerts into findings.

``duckdb`` (default) is :mod:`.duckdb`; ``spark`` is :mod:`.spark` (imported by name, so an
installation without it says so in one line).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlhunt.errors import InputError
from mlhunt.hunt.detectors.base import Alert, Detector
from mlhunt.hunt.events import Population
from mlhunt.hunt.readers import ReadReport

Progress = Callable[[str], None]
ENGINES = ("duckdb", "spark")


@dataclass
class EngineResult:
    alerts: list[Alert]
    population: Population
    stats: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    name: str

    def run(
        self,
        paths: Sequence[str | Path],
        detectors: list[Detector],
        report: ReadReport,
        *,
        reference: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> EngineResult: ...


def get_engine(name: str, **options: Any) -> Engine:
    """The engine called ``name`` (options: ``spark_master`` for spark)."""
    if name not in ENGINES:
        raise InputError(
            f"--engine: unknown engine {name!r} (expected one of: {', '.join(ENGINES)})"
        )
    if name == "duckdb":
        from mlhunt.hunt.engines.duckdb import DuckDBEngine

        return DuckDBEngine()
    try:
        mod = importlib.import_module("mlhunt.hunt.engines.spark")
    except ModuleNotFoundError as exc:
        raise InputError(f"--engine spark: not available in this installation ({exc})") from None
    engine: Engine = mod.SparkEngine(master=options.get("spark_master"))
    return engine


__all__ = ["ENGINES", "Engine", "EngineResult", "get_engine"]
