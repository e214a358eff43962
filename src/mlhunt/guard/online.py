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

from array import array
from collections import OrderedDict
from collections.abc import Callable
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
        self.blocks = Blocks()
        #: Called between detector calls (the scoring process yields its core there, so a
        #: proxy waiting for one waits one detector call, not a whole rescoring pass).
        self.between: Callable[[], None] | None = None

    def score(
        self, scope: str, windows: dict[str, list[Event]], new: dict[str, int], pop: Population
    ) -> dict[str, dict[str, TargetScore]]:
        """target -> detector id -> verdict, for ``scope``'s detectors that apply."""
        dets = [d for d in self.detectors if d.spec.scope == scope and d.applies(pop)]
        keys = [k for k, w in windows.items() if w]
        if not dets or not keys:
            return {}
        batch = _batch(scope, keys, windows, pop, self.blocks)
        out: dict[str, dict[str, TargetScore]] = {k: {} for k in keys}
        offsets = batch.offsets
        starts, ends = offsets[:-1], offsets[1:]
        tails = np.array([new.get(k, 1) for k in keys], dtype=np.int64)
        tail_starts = ends - np.clip(tails, 1, ends - starts)
        # reduceat bounds: [tail start, group end) per group; the sentinel makes n a valid index
        bounds = np.stack([tail_starts, ends], axis=1).ravel()
        for det in dets:
            if self.between is not None:
                self.between()
            scored = det.score(batch, pop)
            online = np.nan_to_num(np.asarray(scored.online, dtype=np.float64), nan=0.0, posinf=1e6)
            # per group: the highest online score among its new events, and the first event
            # over the threshold (one vectorised pass instead of a numpy call per group)
            peak = np.maximum.reduceat(np.append(online, 0.0), bounds)[::2].tolist()
            over = np.flatnonzero(online >= det.spec.alert_at)
            pos = np.searchsorted(over, starts)
            first = np.append(over, np.iinfo(np.int64).max)[pos]
            fired = np.where(first < ends, first - starts, -1).tolist()
            for g, key in enumerate(keys):
                out[key][det.spec.id] = TargetScore(
                    score=float(peak[g]),
                    fired=int(fired[g]),
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


def pack(ts: float, margin: float | None, status: int | None, x: list[float] | None) -> bytes:
    """An event's numbers as one float64 record ``[ts, margin, status, *x]``, made once when the
    event is parsed (the 8th element of a memory-store :data:`Event`): stacking a window is
    then one ``bytes.join``, not a numpy conversion per row and column at every rescoring."""
    return array("d", [ts, np.nan if margin is None else margin, status or 0, *(x or ())]).tobytes()


class Blocks:
    """Per target, its window's columns as arrays (float64 ``[ts, margin, status, *x]`` rows,
    label codes, client ids), in arrival order, extended at each rescoring by the events
    appended since: a rescoring then converts only its new events, not the whole window.

    The cached block is reused only when the window still holds the very event object it
    ended with and is its continuation (memory store); otherwise (Redis: windows are decoded
    afresh, other replicas append) it is rebuilt. Bounded: the ``max_targets`` most recently
    scored targets."""

    def __init__(self, max_targets: int = 4096) -> None:
        self.max_targets = max_targets
        self._c: OrderedDict[
            tuple[str, str], tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]
        ] = OrderedDict()
        self._pop: Population | None = None
        self._code: dict[str, int] = {}

    def codes(self, pop: Population) -> dict[str, int]:
        """label -> code for ``pop``'s classes (one dict per population: blocks key on it)."""
        if pop is not self._pop:
            self._pop, self._code = pop, {c: i for i, c in enumerate(pop.classes)}
            self._c.clear()
        return self._code

    def get(
        self, scope: str, key: str, window: list[Event], d: int, code: dict[str, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = (scope, key)
        n = len(window)
        start, old = 0, None
        got = self._c.get(k)
        if got is not None and got[4] is code and got[1].shape[1] == 3 + d:
            last = got[0]
            for j in range(n - 1, -1, -1):  # new events follow the cached last one
                if window[j] is last:
                    if j + 1 <= len(got[1]):
                        start, old = j + 1, got
                    break
        fresh = _columns(window[start:], d, code)
        if old is None:
            m, lab, cli = fresh
        else:
            keep = start  # the old block's last ``start`` rows are window[:start]
            m = np.concatenate([old[1][len(old[1]) - keep :], fresh[0]])
            lab = np.concatenate([old[2][len(old[2]) - keep :], fresh[1]])
            cli = np.concatenate([old[3][len(old[3]) - keep :], fresh[2]])
        if n:
            self._c[k] = (window[-1], m, lab, cli, code)
            self._c.move_to_end(k)
            while len(self._c) > self.max_targets:
                self._c.popitem(last=False)
        return m, lab, cli


def _columns(
    rows: list[Event], d: int, code: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events to (records, label codes, client ids); events without a packed record, or whose
    input is not of length ``d``, are packed here with a NaN input row (as ``input_matrix``)."""
    width = 8 * (3 + d)
    blank = [np.nan] * d
    recs = [
        r[7]
        if len(r) > 7 and len(r[7]) == width
        else pack(r[0], r[4], r[5], r[6] if r[6] is not None and len(r[6]) == d else blank)
        for r in rows
    ]
    m = np.frombuffer(b"".join(recs), dtype=np.float64).reshape(len(rows), 3 + d)
    lab = np.array([code.get(r[3], -1) for r in rows], dtype=np.int64)
    cli = np.empty(len(rows), dtype=object)
    cli[:] = [r[1] for r in rows]
    return m, lab, cli


def _batch(
    scope: str,
    keys: list[str],
    windows: dict[str, list[Event]],
    pop: Population,
    blocks: Blocks | None = None,
) -> GroupBatch:
    """The windows of ``keys`` stacked into one batch, each in time order (stable, as
    ``sorted`` by ts: windows arrive nearly in order)."""
    d = pop.d
    code = blocks.codes(pop) if blocks is not None else {c: i for i, c in enumerate(pop.classes)}
    parts = [
        blocks.get(scope, k, windows[k], d, code)
        if blocks is not None
        else _columns(windows[k], d, code)
        for k in keys
    ]
    lens = [len(p[0]) for p in parts]
    m = np.concatenate([p[0] for p in parts])
    lab = np.concatenate([p[1] for p in parts])
    cli = np.concatenate([p[2] for p in parts])
    n = len(m)
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    order = np.lexsort((m[:, 0], np.repeat(np.arange(len(keys)), lens)))
    if np.any(order != np.arange(n)):
        m, lab, cli = m[order], lab[order], cli[order]
    return GroupBatch(
        scope=scope,
        keys=[str(k) for k in keys],
        offsets=offsets,
        ts=m[:, 0].copy(),
        x=np.ascontiguousarray(m[:, 3:]),
        label=lab,
        margin=m[:, 1].copy(),
        status=m[:, 2].astype(np.int64),
        client=cli,
        file=np.full(n, "guard", dtype=object),
        line=np.arange(n, dtype=np.int64),
    )


class PopulationSource:
    """The population the detectors compare targets with.

    - ``reference`` is an inference log (JSONL/CSV/Parquet): the whole population comes from it
      (inputs, labels, margins, volumes), ready before the first request.
    - ``reference`` is ``.npz``/``.npy`` (inputs only): those inputs are the baseline of the
      distribution tests; labels, margins and volumes come from the first ``warmup`` events.
    - no reference: everything comes from the first ``warmup`` events (client-balanced, at most
      32 events per client, so a heavy client cannot drag the baseline towards itself).
    Only successful (2xx) events count. Nothing is scored before the population exists; the
    windows are kept meanwhile and every target is scored as soon as it does.

    The input dimension ``dim`` is never set by whoever sends the first request: it
    is the configuration's, else the reference's, else, once the warm-up is complete, the
    length the most distinct clients sent (warm-up inputs are kept until then, each at most
    ``max_dim`` long). Inputs of another length are not inputs (a NaN row).
    """

    def __init__(
        self,
        reference: Path | None,
        warmup: int,
        classes: tuple[str, ...],
        dim: int | None = None,
        max_dim: int = 4096,
    ) -> None:
        from mlhunt.errors import InputError

        self.warmup = warmup
        self.classes = classes
        self.dim = dim
        self.max_dim = max_dim
        self.builder = PopulationBuilder()
        self.ref_x: np.ndarray | None = None
        self.per_client: dict[str, int] = {}
        self.pending: list[Event] = []  # warm-up events while the dimension is unknown
        self.population: Population | None = None
        if reference is not None:
            if reference.suffix in (".npz", ".npy"):
                from mlhunt.hunt.api import load_reference

                self.ref_x = load_reference(reference)
                width = int(self.ref_x.shape[1])
                if dim is not None and dim != width:
                    raise InputError(
                        f"--reference: inputs of length {width}, the configuration says {dim}",
                        file=str(reference),
                    )
                self.dim = width
            else:
                self._from_log(reference)

    def _from_log(self, path: Path) -> None:
        from mlhunt.hunt.readers import ReadReport, read_batches

        report = ReadReport()
        seen: dict[str, int] = {}
        for t in read_batches(path, report):
            cols = {c: t.column(c).to_pylist() for c in ("client_id", "input", "label", "margin")}
            if self.dim is None:  # the reference is trusted: its common length is the dimension
                self.dim = _common_length(cols["input"], [None] * len(cols["input"]))
            self._feed(cols["client_id"], cols["input"], cols["label"], cols["margin"], seen)
        if self.builder.n < 10:
            from mlhunt.errors import InputError

            raise InputError("--reference: fewer than 10 usable records", file=str(path))
        self.population = self._build()

    def _feed(
        self,
        clients: list[Any],
        inputs: list[Any],
        labels: list[Any],
        margins: list[Any],
        seen: dict[str, int],
    ) -> None:
        d = self.dim or 0
        x = np.full((len(inputs), d), np.nan)
        for i, v in enumerate(inputs):
            if v is not None and len(v) == d:
                x[i] = v
        m = np.array([np.nan if v is None else float(v) for v in margins])
        self.builder.update(
            np.asarray(clients, dtype=object),
            x,
            np.asarray([str(v) for v in labels], dtype=object),
            m,
        )
        keep = []
        for i, c in enumerate(clients):
            if d and not np.isnan(x[i]).any() and seen.get(c, 0) < SAMPLE_PER_CLIENT:
                seen[c] = seen.get(c, 0) + 1
                keep.append(i)
        if keep:
            self.builder.add_sample(x[keep])

    def _build(self) -> Population:
        pop = self.builder.build(self.ref_x)
        if self.classes:  # the API's class order (labels never seen stay codable)
            from dataclasses import replace

            pop = replace(pop, classes=tuple(self.classes))
        return pop

    def observe(self, events: list[Event]) -> bool:
        """Feed warm-up events (failed ones are ignored); True when the population has just
        been built."""
        if self.population is not None or not events:
            return False
        events = [e for e in events if 200 <= e[5] < 300]
        if self.dim is None:
            self.pending += [e for e in events if e[6] is None or len(e[6]) <= self.max_dim]
            if len(self.pending) < self.warmup:
                return False
            events, self.pending = self.pending, []
            self.dim = _common_length([e[6] for e in events], [e[1] for e in events])
        if not events:
            return False
        self._feed(
            [e[1] for e in events],
            [e[6] for e in events],
            [e[3] for e in events],
            [e[4] for e in events],
            self.per_client,
        )
        if self.builder.n >= self.warmup and self.builder.n_input >= 10:
            self.population = self._build()
            return True
        return False


def _common_length(inputs: list[Any], clients: list[Any]) -> int | None:
    """The input length sent by the most distinct clients (ties: the most inputs), None when
    there is no input; ``clients`` None each: every input counts as its own client."""
    voters: dict[int, set[Any]] = {}
    rows: dict[int, int] = {}
    for i, (x, c) in enumerate(zip(inputs, clients, strict=True)):
        if x is not None and len(x):
            voters.setdefault(len(x), set()).add(i if c is None else c)
            rows[len(x)] = rows.get(len(x), 0) + 1
    if not voters:
        return None
    return max(voters, key=lambda n: (len(voters[n]), rows[n]))


__all__ = ["SCOPES", "PopulationSource", "Scorer", "TargetScore", "pack"]
