"""The hunt detectors in streaming form, without forking their code.

Each target (client id, or source address for source-scoped detectors) keeps a bounded window of
its most recent events. To score, the windows of every target with new events are stacked into
one :class:`~mlhunt.hunt.events.GroupBatch` (the detectors are vectorised over groups) and each
detector's ``score`` is run unchanged; a target's new score is the highest *online* score among
its new events (the last ones of its window). So scoring is exact for targets with at most
``window`` events and, beyond that, the detector's verdict on the latest ``window`` events:

- extraction (G-test) and low-confidence (binomial z): the test over the window (z saturates at
  the window size; KL per query and the shares are unaffected);
- probing, membership and inversion: near duplicates, repeats and sweeps inside the window (a
  chain longer than the window is judged on its latest part);
- request flood and credential stuffing: sliding time windows, exact while the window holds
  every event of ``window_s`` (``source_window`` >= max_rate_per_s * window_s, 1,000 events
  with the shipped parameters).

The total event count per target is kept beside the window and reported as ``events`` and
``detected_at_event`` in alerts; no detector's score reads the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.guard.state import Event
from mlhunt.hunt.detectors import load_detectors
from mlhunt.hunt.detectors.base import Detector, Scored
from mlhunt.hunt.events import (
    SAMPLE_PER_CLIENT,
    GroupBatch,
    Population,
    PopulationBuilder,
)

SCOPES = ("client_id", "source_ip")


@dataclass
class TargetScore:
    """One detector's verdict on one target after its new events."""

    score: float
    fired: int  # 0-based index in the window of the first event over the threshold, or -1
    evidence: Any  # callable building the hunt evidence dict (only called on escalation)


class Scorer:
    """Runs the detectors on stacked windows (see the module docstring)."""

    def __init__(self, only: list[str] | None = None) -> None:
        self.detectors: list[Detector] = load_detectors(only)
        self.specs = {d.spec.id: d.spec for d in self.detectors}

    def score(self, scope: str, windows: dict[str, list[Event]], new: dict[str, int],
              pop: Population) -> dict[str, dict[str, TargetScore]]:  # fmt: skip
        """target -> detector id -> verdict, for ``scope``'s detectors that apply."""
        dets = [d for d in self.detectors if d.spec.scope == scope and d.applies(pop)]
        keys = [k for k, w in windows.items() if w]
        if not dets or not keys:
            return {}
        batch = _batch(scope, keys, windows, pop)
        out: dict[str, dict[str, TargetScore]] = {k: {} for k in keys}
        for det in dets:
            scored = det.score(batch, pop)
            online = np.nan_to_num(scored.online, nan=0.0, posinf=1e6)
            for g, key in enumerate(keys):
                a, b = int(batch.offsets[g]), int(batch.offsets[g + 1])
                tail = max(1, min(new.get(key, 1), b - a))
                seg = online[a:b]
                over = np.flatnonzero(seg >= det.spec.alert_at)
                out[key][det.spec.id] = TargetScore(
                    score=float(seg[-tail:].max()),
                    fired=int(over[0]) if len(over) else -1,
                    evidence=_Evidence(det, batch, pop, scored, g),
                )
        return out


@dataclass
class _Evidence:
    det: Detector
    batch: GroupBatch
    pop: Population
    scored: Scored
    g: int

    def __call__(self, fired: int) -> dict[str, Any]:
        return self.det.evidence(self.batch, self.pop, self.scored, self.g, max(fired, 0))


def _batch(scope: str, keys: list[str], windows: dict[str, list[Event]],
           pop: Population) -> GroupBatch:  # fmt: skip
    rows: list[Event] = []
    for k in keys:
        rows.extend(sorted(windows[k], key=lambda e: e[0]))  # time order inside a target
    n = len(rows)
    cols: dict[str, Any] = {
        "ts": [r[0] for r in rows],
        "client_id": [r[1] for r in rows],
        "source_ip": [r[2] for r in rows],
        "label": [r[3] for r in rows],
        "margin": [r[4] for r in rows],
        "status": [r[5] for r in rows],
        "input": [r[6] for r in rows],
        "file": ["guard"] * n,
        "line": np.arange(n),
    }
    # the group key column must hold the target key (a client may appear under several keys)
    cols[scope] = [k for k in keys for _ in windows[k]]
    return GroupBatch.from_columns(scope, cols, pop.classes, pop.d)


class PopulationSource:
    """The population the detectors compare targets with.

    - ``reference`` is an inference log (JSONL/CSV/Parquet): the whole population comes from it
      (inputs, labels, margins, volumes), ready before the first request.
    - ``reference`` is ``.npz``/``.npy`` (inputs only): those inputs are the baseline of the
      distribution tests; labels, margins and volumes come from the first ``warmup`` events.
    - no reference: everything comes from the first ``warmup`` events (client-balanced, at most
      32 events per client, so a heavy client cannot drag the baseline towards itself).
    Nothing is scored before the population exists; the windows are kept meanwhile and every
    target is scored as soon as it does.
    """

    def __init__(self, reference: Path | None, warmup: int, classes: tuple[str, ...]) -> None:
        self.warmup = warmup
        self.classes = classes
        self.builder = PopulationBuilder()
        self.ref_x: np.ndarray | None = None
        self.per_client: dict[str, int] = {}
        self.population: Population | None = None
        if reference is not None:
            if reference.suffix in (".npz", ".npy"):
                from mlhunt.hunt.api import load_reference

                self.ref_x = load_reference(reference)
            else:
                self._from_log(reference)

    def _from_log(self, path: Path) -> None:
        from mlhunt.hunt.readers import ReadReport, read_batches

        report = ReadReport()
        seen: dict[str, int] = {}
        for t in read_batches(path, report):
            cols = {c: t.column(c).to_pylist() for c in ("client_id", "input", "label", "margin")}
            self._feed(cols["client_id"], cols["input"], cols["label"], cols["margin"], seen)
        if self.builder.n < 10:
            from mlhunt.errors import InputError

            raise InputError("--reference: fewer than 10 usable records", file=str(path))
        self.population = self._build()

    def _feed(self, clients: list[Any], inputs: list[Any], labels: list[Any],
              margins: list[Any], seen: dict[str, int]) -> None:  # fmt: skip
        d = max((len(x) for x in inputs if x is not None), default=0)
        x = np.full((len(inputs), d), np.nan)
        for i, v in enumerate(inputs):
            if v is not None and len(v) == d:
                x[i] = v
        m = np.array([np.nan if v is None else float(v) for v in margins])
        self.builder.update(np.asarray(clients, dtype=object), x,
                            np.asarray([str(v) for v in labels], dtype=object), m)  # fmt: skip
        keep = []
        for i, c in enumerate(clients):
            if not np.isnan(x[i]).any() and seen.get(c, 0) < SAMPLE_PER_CLIENT:
                seen[c] = seen.get(c, 0) + 1
                keep.append(i)
        if keep and d:
            self.builder.add_sample(x[keep])

    def _build(self) -> Population:
        pop = self.builder.build(self.ref_x)
        if self.classes:  # the API's class order (labels never seen stay codable)
            from dataclasses import replace

            pop = replace(pop, classes=tuple(self.classes))
        return pop

    def observe(self, events: list[Event]) -> bool:
        """Feed warm-up events; True when the population has just been built."""
        if self.population is not None or not events:
            return False
        self._feed([e[1] for e in events], [e[6] for e in events], [e[3] for e in events],
                   [e[4] for e in events], self.per_client)  # fmt: skip
        if self.builder.n >= self.warmup and self.builder.n_input >= 10:
            self.population = self._build()
            return True
        return False


__all__ = ["SCOPES", "PopulationSource", "Scorer", "TargetScore"]
