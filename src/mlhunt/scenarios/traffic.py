"""The traffic simulator: one simulated day of a scenario's prediction API, benign and hostile,
labelled, in the inference-log schema of DESIGN.md.

``simulate(loaded, out_dir)`` writes ``out_dir/logs.jsonl`` (one record per query) and
``out_dir/labels.json`` (ground truth: each client's label, each source address's label, the
benign traps and what each attacker achieved). Every answer comes from the real model: either
in-process (``loaded.predict_proba`` in batches, fast) or through a live API on the loopback
interface (``live_url``: one real ``POST /predict`` per query, the client identity in
``X-API-Key`` as ``api_key_prefix + client_id`` and the simulated caller address in
``X-Forwarded-For``). Both modes write the same records: the simulator's timeline (timestamps
over a fixed day derived from the seed), the input as ``loaded.log_vector`` logs it, and the
label and scores the model returned (live: as the API returned them; in-process: rounded the way
the API rounds them).

Benign traffic (hundreds of clients) has skewed volumes (log-normal) and a daily rhythm, plus the
traps that make naive detectors cry wolf: heavy batch re-scoring jobs with realistic inputs,
retries of the same request, loan officers trying what-if variants of one application, and
groups of clients behind one NAT address. Attackers are in :mod:`attacks_traffic`; each has its
own client id and address except the sybil operator (many ids, one address).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from mlhunt.errors import InputError
from mlhunt.scenarios import attacks_traffic as atk
from mlhunt.scenarios.base import LoadedScenario, Progress, quiet

BASE_DATE = "2024-03-05"  # the simulated day (a Tuesday); timestamps never use the wall clock
DAY_S = 86_400.0
LIVE_MAX_REQUESTS = 60_000
LIVE_TIMEOUT_S = 600.0

BENIGN = "benign"
TABULAR_STYLES = (
    "uniform-extraction",
    "jbda-extraction",
    "knockoff-extraction",
    "evasion-probing",
    "membership-probing",
    "inversion-sweep",
    "sybil-extraction",
    "low-and-slow-extraction",
    "natural-extraction",
)
IMAGE_STYLES = ("patch-probing", "synthetic-extraction")

# Relative request intensity per hour of the day (UTC = local time of the lender).
_OFFICE = np.array(
    [
        0.1,
        0.05,
        0.05,
        0.05,
        0.05,
        0.1,
        0.3,
        1.2,
        4,
        7,
        8,
        8,
        6,
        7,
        8,
        7.5,
        6,
        4,
        1.5,
        0.8,
        0.5,
        0.3,
        0.2,
        0.15,
    ]
)
CONSUMER_HOURLY = np.array(
    [
        0.6,
        0.3,
        0.2,
        0.15,
        0.15,
        0.3,
        0.8,
        1.8,
        3,
        4,
        4.5,
        4.5,
        5,
        4.5,
        4,
        4,
        4.2,
        4.8,
        5.5,
        6,
        6,
        5,
        3.5,
        1.5,
    ]
)


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote."""

    out_dir: Path
    logs_path: Path
    labels_path: Path
    mode: str  # "in-process" | "live"
    records: int
    clients: dict[str, int]  # label -> number of clients
    records_by_label: dict[str, int]  # label -> number of records
    attacks: dict[str, Any]
    seconds: float

    def summary(self) -> str:
        benign = self.clients.get(BENIGN, 0)
        attackers = ", ".join(f"{k} {v}" for k, v in sorted(self.clients.items()) if k != BENIGN)
        return (
            f"{self.records:,} records ({self.mode}, {self.seconds:.1f}s): {benign} benign "
            f"clients; attackers: {attackers}"
        )


# --- clients and the oracle ------------------------------------------------------------------


@dataclass
class _Client:
    index: int
    label: str  # "benign" or an attack style
    role: str  # benign role ("regular", "officer", "batch-rescoring", ...) or the style
    ip: str
    timing: dict[str, float] = field(default_factory=dict)  # attackers: how to stamp queries
    times: list[float] = field(default_factory=list)  # benign: planned times
    n: int = 0
    rounds: list[int] = field(default_factory=list)  # ordinal of each round's first query
    id: str = ""


class _Oracle:
    """The model as the clients see it; records every query and its answer, in order."""

    def __init__(
        self,
        loaded: LoadedScenario,
        clients: list[_Client],
        transport: _LiveTransport | None,
    ) -> None:
        self.loaded = loaded
        self.clients = clients
        self.transport = transport
        self.k = len(loaded.classes)
        self.cidx: list[np.ndarray] = []
        self.inputs: list[list[float]] = []
        self.labels: list[str] = []
        self.scores: list[list[float]] = []
        self.latency: list[float | None] = []

    def ask_rows(self, cidx: np.ndarray, x: np.ndarray) -> np.ndarray:
        """One query per row of ``x`` from client ``cidx[row]``; returns the scores."""
        if len(x) == 0:
            return np.empty((0, self.k))
        if self.transport is not None:
            ids = [self.clients[int(c)] for c in cidx]
            answers = self.transport.predict(ids, x)
            labels = [a[0] for a in answers]
            scores = [a[1] for a in answers]
            lat: list[float | None] = [a[2] for a in answers]
        else:
            probs = self.loaded.predict_proba(x)
            labels = [self.loaded.classes[int(i)] for i in np.argmax(probs, axis=1)]
            # rounded exactly as the API rounds them
            scores = [[round(float(p), 6) for p in row] for row in probs]
            lat = [None] * len(x)
        self.cidx.append(np.asarray(cidx, dtype=np.int64))
        self.inputs.extend(self.loaded.log_vector(row) for row in x)
        self.labels.extend(labels)
        self.scores.extend(scores)
        self.latency.extend(lat)
        for c, n in Counter(int(c) for c in cidx).items():
            self.clients[c].n += n
        return np.asarray(scores, dtype=np.float64)

    def asker(self, client: _Client) -> atk.Asker:
        def ask(x: np.ndarray, *, new_round: bool = False) -> np.ndarray:
            if new_round and len(x):
                client.rounds.append(client.n)
            return self.ask_rows(np.full(len(x), client.index), x)

        return ask


class _LiveTransport:
    """Real HTTP requests to a loopback prediction API, bounded in count and time."""

    def __init__(
        self,
        url: str,
        loaded: LoadedScenario,
        prefix: str,
        max_requests: int,
        timeout_s: float,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.loaded = loaded
        self.prefix = prefix
        self.max_requests = max_requests
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.sent = 0
        self.http = httpx.Client(base_url=self.url, timeout=30.0)
        try:
            health = self.http.get("/health")
        except httpx.HTTPError as exc:
            self.http.close()
            raise InputError(f"--live: cannot reach {self.url}/health ({exc})") from None
        if health.status_code != 200:
            self.http.close()
            raise InputError(f"--live: {self.url}/health answered HTTP {health.status_code}")
        model = health.json().get("model")
        if model != loaded.model_name:
            self.http.close()
            raise InputError(
                f"--live: {self.url} serves model {model!r}, not {loaded.model_name!r}"
            )

    def _body(self, x: np.ndarray) -> dict[str, Any]:
        if self.loaded.spec.kind == "tabular":
            return {"vector": [float(v) for v in x]}
        return {"array": np.asarray(x, dtype=np.float32).tolist()}

    def _one(self, client: _Client, x: np.ndarray) -> tuple[str, list[float], float]:
        headers = {"X-API-Key": self.prefix + client.id, "X-Forwarded-For": client.ip}
        start = time.perf_counter()
        resp = self.http.post("/predict", json=self._body(x), headers=headers)
        latency = round((time.perf_counter() - start) * 1000.0, 3)
        if resp.status_code == 401:
            raise InputError(
                f"--live: {self.url} rejected key {self.prefix}{client.id!s} (HTTP 401); the "
                f"API must accept practice-range keys with prefix {self.prefix!r}"
            )
        if resp.status_code != 200:
            raise InputError(
                f"--live: {self.url}/predict answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        body = resp.json()
        return str(body["label"]), [float(s) for s in body["scores"]], latency

    def predict(
        self, clients: Sequence[_Client], x: np.ndarray
    ) -> list[tuple[str, list[float], float]]:
        if self.sent + len(x) > self.max_requests:
            raise InputError(
                f"--live: more than {self.max_requests:,} requests needed; lower --scale"
            )
        if time.monotonic() > self.deadline:
            raise InputError(
                f"--live: time limit of {self.timeout_s:.0f}s reached after {self.sent:,} "
                "requests; lower --scale"
            )
        self.sent += len(x)
        if len(x) <= 2:
            return [self._one(c, row) for c, row in zip(clients, x, strict=True)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(self._one, clients, list(x)))

    def close(self) -> None:
        self.http.close()


def check_live_url(url: str) -> str:
    """``url`` if it is an http(s) URL on the loopback interface, else :class:`InputError`: the
    simulator sends attack traffic, so it never talks to anything but this machine."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        raise InputError(f"--live: malformed URL {url!r}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise InputError(f"--live: expected an http:// URL on 127.0.0.1, got {url!r}")
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not loopback:
        raise InputError(
            f"--live: {url!r} is not a loopback address; the simulator only sends traffic to "
            "an API on this machine (127.0.0.1, ::1 or localhost)"
        )
    return url


# --- randomness, addresses, identities ---------------------------------------------------------


def _rng(seed: int, name: str) -> np.random.Generator:
    """An independent, named stream: changing one part of the simulation leaves the others."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


class _Addresses:
    """Unique caller addresses: carrier-grade NAT space and documentation ranges (no real
    public host is ever named)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.used: set[str] = set()
        self.cgnat = int(ipaddress.IPv4Address("100.64.0.0"))
        self.doc = [int(ipaddress.IPv4Address(a)) for a in ("198.51.100.0", "203.0.113.0")]

    def new(self) -> str:
        while True:
            if self.rng.random() < 0.8:
                addr = self.cgnat + int(self.rng.integers(1, 2**22 - 1))
            else:
                addr = self.doc[int(self.rng.integers(0, 2))] + int(self.rng.integers(1, 255))
            ip = str(ipaddress.IPv4Address(addr))
            if ip not in self.used:
                self.used.add(ip)
                return ip


class _ClientIds:
    """Opaque, unique, random account ids (nothing in an id says what the client is)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.seen: set[str] = set()

    def new(self) -> str:
        while True:
            cid = "acct-" + "".join(f"{int(v):x}" for v in self.rng.integers(0, 16, 8))
            if cid not in self.seen:
                self.seen.add(cid)
                return cid


def _scaled(base: float, scale: float, minimum: int) -> int:
    return max(minimum, round(base * scale))


# --- benign traffic ------------------------------------------------------------------------


def _session_starts(n: int, profile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hours = rng.choice(24, size=n, p=profile / profile.sum())
    return np.sort((hours + rng.random(n)) * 3600.0)


def _what_if_feature(loaded: LoadedScenario, rng: np.random.Generator) -> int | None:
    spec = loaded.spec
    mutable = [i for i, m in enumerate(spec.mutable or [True] * len(spec.names)) if m]
    if not mutable:
        return None
    amounts = [i for i in mutable if "amount" in spec.names[i]]
    if amounts and rng.random() < 0.7:
        return amounts[0]
    return int(rng.choice(mutable))


def _variant(
    loaded: LoadedScenario,
    box: atk.Box | None,
    x: np.ndarray,
    k: int,
    feat: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """A what-if variant of one application: one field changed by a round step."""
    v = x.copy()
    if box is None:  # image: a re-edited upload (brightness / contrast tweak)
        return np.clip(v * np.float32(1.0 + 0.06 * k * rng.choice([-1, 1])), 0, 1).astype(
            np.float32
        )
    if box.integer[feat]:
        v[feat] = v[feat] + k * rng.choice([-1, 1])
    else:
        val = v[feat] * (1.0 - 0.1 * k)
        v[feat] = np.round(val, -2) if box.hi[feat] >= 10_000 else np.round(val, 3)
    return box.fix(v[None, :])[0]


def _benign_plan(
    loaded: LoadedScenario,
    box: atk.Box | None,
    clients: list[_Client],
    volumes: list[int],
    rng: np.random.Generator,
    traits: dict[int, dict[str, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and planned times for the interactive benign clients (batch jobs are separate)."""
    total = int(sum(volumes))
    pool = loaded.sample_benign(total, rng)
    cursor = 0
    rows: list[np.ndarray] = []
    owners: list[int] = []
    for client, n in zip(clients, volumes, strict=True):
        t = traits[client.index]
        profile = _OFFICE if client.role == "officer" else CONSUMER_HOURLY
        sizes = []
        left = n
        while left > 0:
            s = min(left, int(rng.geometric(1.0 / t["session"])))
            sizes.append(s)
            left -= s
        starts = _session_starts(len(sizes), profile, rng)
        for start, size in zip(starts, sizes, strict=True):
            first = len(client.times)
            now = float(start)
            for _ in range(size):
                x = pool[cursor]
                cursor += 1
                rows.append(x)
                owners.append(client.index)
                client.times.append(now)
                if rng.random() < t["retry"]:  # the same request again, seconds later
                    for _ in range(int(rng.integers(1, 3))):
                        now += float(rng.uniform(1.5, 12.0))
                        rows.append(x)
                        owners.append(client.index)
                        client.times.append(now)
                    client.timing["retried"] = 1.0
                if rng.random() < t["what_if"]:
                    feat = _what_if_feature(loaded, rng)
                    if feat is not None or box is None:
                        for k in range(1, int(rng.integers(2, 6))):
                            now += float(rng.lognormal(np.log(35.0), 0.5))
                            rows.append(_variant(loaded, box, x, k, feat or 0, rng))
                            owners.append(client.index)
                            client.times.append(now)
                        client.timing["what_if"] = 1.0
                now += float(rng.lognormal(np.log(45.0), 0.8))
            overflow = client.times[-1] - (DAY_S - 1.0)
            if overflow > 0:  # a late session ends before midnight instead of spilling over
                client.times[first:] = [t - overflow for t in client.times[first:]]
    return np.stack(rows), np.asarray(owners, dtype=np.int64)


def _batch_times(n: int, start: float, rate: float, rng: np.random.Generator) -> list[float]:
    gaps = rng.exponential(1.0 / rate, n)
    return list(start + np.cumsum(gaps) - gaps[0])


# --- the simulation ---------------------------------------------------------------------------


@dataclass
class _World:
    loaded: LoadedScenario
    seed: int
    scale: float
    ids: _ClientIds
    clients: list[_Client] = field(default_factory=list)
    attacks: dict[str, Any] = field(default_factory=dict)
    traps: dict[str, Any] = field(default_factory=dict)

    def add(self, label: str, role: str, ip: str, **timing: float) -> _Client:
        c = _Client(index=len(self.clients), label=label, role=role, ip=ip, timing=dict(timing))
        c.id = self.ids.new()
        self.clients.append(c)
        return c


def _plan_benign(world: _World, addrs: _Addresses) -> tuple[list[_Client], list[int], dict]:
    """Benign clients, volumes (log-normal: many light users, a few heavy) and traits."""
    rng = _rng(world.seed, "benign-clients")
    image = world.loaded.spec.kind == "image"
    n_clients = max(250, round(250 * world.scale)) if world.scale > 1 else 250
    median = (12.0 if image else 40.0) * world.scale
    volumes = np.ceil(rng.lognormal(np.log(max(median, 0.5)), 1.1, n_clients)).astype(int)
    volumes = np.clip(volumes, 1, int(60 * median) + 1)
    nat_office = addrs.new()  # a branch office: officers behind one NAT address
    nat_carrier = addrs.new()  # a mobile carrier's CGNAT address shared by customers
    clients, traits = [], {}
    for i in range(n_clients):
        if i < 15:
            role, ip = "officer", nat_office
        elif i < 23:
            role, ip = "regular", nat_carrier
        else:
            role = "officer" if rng.random() < 0.25 else "regular"
            ip = addrs.new()
        c = world.add(BENIGN, role, ip)
        clients.append(c)
        retrier = rng.random() < 0.2
        traits[c.index] = {
            "session": float(rng.uniform(3, 12)),
            "retry": 0.12 if retrier else 0.01,
            "what_if": (0.35 if role == "officer" else 0.0) if not image else 0.05,
        }
    world.traps["nat"] = {nat_office: [], nat_carrier: []}
    return clients, [int(v) for v in volumes], traits


def _run_benign(
    world: _World, oracle: _Oracle, addrs: _Addresses, box: atk.Box | None, progress: Progress
) -> None:
    clients, volumes, traits = _plan_benign(world, addrs)
    rng = _rng(world.seed, "benign-traffic")
    x, owners = _benign_plan(world.loaded, box, clients, volumes, rng, traits)
    # Heavy, legitimate batch jobs with realistic inputs (trap for volume-only detectors).
    loaded, s = world.loaded, world.scale
    jobs: list[tuple[_Client, np.ndarray]] = []
    brng = _rng(world.seed, "batch-jobs")
    if box is not None:
        book = np.concatenate([loaded.x_train, loaded.x_holdout])
        n = min(len(book), _scaled(5000, s, 50))
        portfolio = book[np.sort(brng.choice(len(book), size=n, replace=False))]
        c = world.add(BENIGN, "batch-rescoring", addrs.new())
        c.times = _batch_times(n, 1.5 * 3600 + brng.uniform(0, 1800), 25.0, brng)
        jobs.append((c, portfolio))
        n = _scaled(4000, s, 40)
        c = world.add(BENIGN, "batch-rescoring", addrs.new())
        c.times = _batch_times(n, 3.0 * 3600 + brng.uniform(0, 1800), 15.0, brng)
        jobs.append((c, loaded.sample_benign(n, brng)))
        n = _scaled(2500, s, 25)
        c = world.add(BENIGN, "batch-rescoring", addrs.new())  # shadow scoring in office hours
        c.times = _batch_times(n, 8.0 * 3600, n / (10 * 3600.0), brng)
        jobs.append((c, loaded.sample_benign(n, brng)))
    else:
        n = _scaled(1500, s, 20)
        c = world.add(BENIGN, "batch-rescoring", addrs.new())  # re-moderation backfill
        c.times = _batch_times(n, 2.0 * 3600 + brng.uniform(0, 1800), 8.0, brng)
        jobs.append((c, loaded.sample_benign(n, brng)))
    for c, xs in jobs:
        x = np.concatenate([x, xs.astype(x.dtype)])
        owners = np.concatenate([owners, np.full(len(xs), c.index)])
    progress(f"benign traffic: {len(clients) + len(jobs)} clients, {len(x):,} queries")
    oracle.ask_rows(owners, x)
    for c in clients:
        if c.ip in world.traps["nat"]:
            world.traps["nat"][c.ip].append(c.index)
    world.traps["batch-rescoring"] = [c.index for c, _ in jobs]
    world.traps["retry"] = [c.index for c in clients if c.timing.get("retried")]
    world.traps["what-if"] = [c.index for c in clients if c.timing.get("what_if")]


def _model_labels(loaded: LoadedScenario, x: np.ndarray) -> np.ndarray:
    return np.argmax(loaded.predict_proba(x), axis=1) if len(x) else np.empty(0, dtype=int)


def _run_tabular_attacks(
    world: _World, oracle: _Oracle, addrs: _Addresses, box: atk.Box, progress: Progress
) -> None:
    loaded, s, seed = world.loaded, world.scale, world.seed
    names = loaded.spec.names
    # Held-out inputs and the model's own labels on them: to score each stolen copy (fidelity).
    eval_x = loaded.x_holdout[:2000]
    eval_y = _model_labels(loaded, eval_x)
    hour = 3600.0

    def attacker(style: str, budget: int, **timing: float) -> tuple[_Client, atk.Budgeted]:
        c = world.add(style, style, addrs.new(), **timing)
        return c, atk.Budgeted(oracle.asker(c), budget)

    def record(style: str, clients: list[_Client], out: atk.Outcome) -> None:
        world.attacks[style] = {
            "clients": [c.index for c in clients],
            "source_ips": sorted({c.ip for c in clients}),
            "queries": out.queries,
            **out.metrics,
        }
        progress(f"attack {style}: {out.queries:,} queries")

    def trng(name: str) -> np.random.Generator:
        return _rng(seed, "attack-" + name)

    r = trng("uniform")
    c, ask = attacker(
        "uniform-extraction",
        _scaled(2000, s, 150),
        kind=0,
        start=r.uniform(9, 17) * hour,
        gap=0.6,
        pause=5,
    )
    record(c.label, [c], atk.uniform_extraction(box, ask, r, eval_x, eval_y))

    r = trng("jbda")
    n_seed = _scaled(40, s, 6)
    c, ask = attacker(
        "jbda-extraction", n_seed * 32, kind=0, start=r.uniform(10, 20) * hour, gap=0.8, pause=90
    )
    seeds = loaded.sample_benign(n_seed, r)
    record(c.label, [c], atk.jbda_extraction(box, ask, seeds, r, eval_x, eval_y))

    r = trng("knockoff")
    n = _scaled(2000, s, 150)
    c, ask = attacker(
        "knockoff-extraction", n, kind=0, start=r.uniform(8, 16) * hour, gap=1.0, pause=40
    )
    pool = atk.shifted_population(loaded.sample_benign(3 * n, r), box, r)
    record(c.label, [c], atk.knockoff_extraction(box, ask, pool, r, eval_x, eval_y))

    r = trng("evasion")
    n_targets = _scaled(4, s, 2)
    per_target = _scaled(250, s, 60)
    c, ask = attacker(
        "evasion-probing",
        n_targets * per_target,
        kind=0,
        start=r.uniform(12, 21) * hour,
        gap=1.2,
        pause=2,
    )
    natural = loaded.sample_benign(400, r)
    labs = _model_labels(loaded, natural)  # the attacker's own history of applications
    desired = int(np.bincount(labs, minlength=len(loaded.classes)).argmax())
    targets = natural[labs != desired][:n_targets]
    if len(targets) < n_targets:  # rare undesired class (fraud): the attacker's own blocked cases
        own = loaded.x_train[_model_labels(loaded, loaded.x_train) != desired]
        extra = own[r.permutation(len(own))[: n_targets - len(targets)]]
        targets = np.concatenate([targets, extra])
    out = atk.evasion_probing(
        box, ask, targets, desired, natural[labs == desired], r, per_target=per_target
    )
    record(c.label, [c], out)
    world.attacks[c.label]["desired_label"] = loaded.classes[desired]

    r = trng("membership")
    n_rec = _scaled(40, s, 8)
    c, ask = attacker(
        "membership-probing", n_rec * 12, kind=0, start=r.uniform(7, 22) * hour, gap=0.7, pause=8
    )
    idx = r.choice(len(loaded.x_train), size=n_rec, replace=False)
    out = atk.membership_probing(box, ask, loaded.x_train[idx], loaded.y_train[idx], r)
    record(c.label, [c], out)

    r = trng("inversion")
    n_rec = _scaled(10, s, 3)
    feats = atk.sweep_features(box, names)
    c, ask = attacker(
        "inversion-sweep", 10**9, kind=0, start=r.uniform(9, 20) * hour, gap=0.9, pause=15
    )
    idx = r.choice(len(loaded.x_train), size=n_rec, replace=False)
    out = atk.inversion_sweep(box, ask, loaded.x_train[idx], loaded.y_train[idx], feats)
    out.metrics["features"] = [names[i] for i in feats]
    record(c.label, [c], out)

    r = trng("sybil")
    n_ids = _scaled(20, s, 8)
    per_id = _scaled(120, s, 15)
    ip = addrs.new()
    t0 = r.uniform(8, 16) * hour
    sybils = []
    for _ in range(n_ids):
        sc = world.add(
            "sybil-extraction",
            "sybil-extraction",
            ip,
            kind=0,
            start=t0 + r.uniform(0, 3 * hour),
            gap=20.0,
            pause=30,
        )
        sybils.append(sc)
    asks = [atk.Budgeted(oracle.asker(sc), per_id) for sc in sybils]
    record("sybil-extraction", sybils, atk.sybil_extraction(box, asks, r, eval_x, eval_y))

    r = trng("low-and-slow")
    window = {"start": r.uniform(0, 0.5) * hour, "end": DAY_S - r.uniform(0, 0.5) * hour}
    c, ask = attacker("low-and-slow-extraction", _scaled(600, s, 60), kind=1, **window)
    record(c.label, [c], atk.active_low_and_slow(box, ask, r, eval_x, eval_y))

    # Knockoff Nets with in-distribution data (drawn like the training set, as the honest
    # clients' applications are): nothing odd in any single query, only in how they are chosen.
    r = trng("natural")
    n = _scaled(2000, s, 150)
    c, ask = attacker(
        "natural-extraction", n, kind=0, start=r.uniform(8, 16) * hour, gap=1.0, pause=40
    )
    pool = loaded.sample_benign(3 * n, r)
    record(c.label, [c], atk.knockoff_extraction(box, ask, pool, r, eval_x, eval_y))


def _run_image_attacks(
    world: _World, oracle: _Oracle, addrs: _Addresses, progress: Progress
) -> None:
    loaded, s, seed = world.loaded, world.scale, world.seed
    hour = 3600.0
    r = _rng(seed, "attack-patch")
    pool = loaded.sample_benign(400, r)
    labs = _model_labels(loaded, pool)
    desired = int(np.bincount(labs, minlength=len(loaded.classes)).argmax())
    flagged = pool[labs != desired]
    clients = []
    metrics = []
    queries = 0
    for k in range(_scaled(2, s, 1)):
        c = world.add(
            "patch-probing",
            "patch-probing",
            addrs.new(),
            kind=0,
            start=r.uniform(10, 22) * hour,
            gap=1.5,
            pause=1,
        )
        ask = atk.Budgeted(oracle.asker(c), _scaled(300, s, 40))
        out = atk.patch_probing(ask, flagged[k % len(flagged)], desired, r)
        clients.append(c)
        metrics.append(out.metrics)
        queries += out.queries
    world.attacks["patch-probing"] = {
        "clients": [c.index for c in clients],
        "source_ips": sorted({c.ip for c in clients}),
        "queries": queries,
        "desired_label": loaded.classes[desired],
        "images": metrics,
    }
    progress(f"attack patch-probing: {queries:,} queries")
    r = _rng(seed, "attack-synthetic")
    c = world.add(
        "synthetic-extraction",
        "synthetic-extraction",
        addrs.new(),
        kind=0,
        start=r.uniform(8, 18) * hour,
        gap=0.8,
        pause=20,
    )
    out = atk.synthetic_extraction(
        atk.Budgeted(oracle.asker(c), _scaled(1500, s, 80)), tuple(loaded.spec.shape), r
    )
    world.attacks["synthetic-extraction"] = {
        "clients": [c.index],
        "source_ips": [c.ip],
        "queries": out.queries,
        **out.metrics,
    }
    progress(f"attack synthetic-extraction: {out.queries:,} queries")


def _attacker_times(c: _Client, rng: np.random.Generator) -> list[float]:
    """Scripted clients: exponential gaps at the attack's pace, a pause between rounds; a
    low-and-slow client spreads its queries evenly (with jitter) over its window."""
    n = c.n
    if n == 0:
        return []
    if c.timing.get("kind") == 1:
        start, end = c.timing["start"], c.timing["end"]
        slots = np.linspace(start, end, n, endpoint=False)
        return list(slots + rng.uniform(0, (end - start) / n, n) * 0.9)
    gaps = 0.05 + rng.exponential(c.timing["gap"], n)
    gaps[0] = 0.0
    rounds = set(c.rounds[1:]) if c.rounds else set()
    for i in rounds:
        if 0 < i < n:
            gaps[i] += rng.exponential(c.timing["pause"])
    t = np.cumsum(gaps)
    start = c.timing["start"]
    span = float(t[-1])
    if span > DAY_S - 60:
        t *= (DAY_S - 60) / span
        span = DAY_S - 60
    start = min(start, DAY_S - 1 - span)
    return list(start + t)


def _fmt_ts(ms: np.ndarray) -> list[str]:
    out = []
    for v in ms.tolist():
        s, milli = divmod(int(v), 1000)
        h, rem = divmod(s, 3600)
        m, sec = divmod(rem, 60)
        out.append(f"{BASE_DATE}T{h:02d}:{m:02d}:{sec:02d}.{milli:03d}Z")
    return out


def simulate(
    loaded: LoadedScenario,
    out_dir: Path | str,
    *,
    seed: int = 0,
    live_url: str | None = None,
    api_key_prefix: str = "sim-",
    scale: float = 1.0,
    progress: Progress = quiet,
    live_max_requests: int = LIVE_MAX_REQUESTS,
    live_timeout_s: float = LIVE_TIMEOUT_S,
) -> SimulationResult:
    """Simulate one day of labelled traffic against ``loaded``; write ``logs.jsonl`` and
    ``labels.json`` into ``out_dir``. Deterministic for a seed and scale (in-process mode: the
    files are byte-identical; live mode: the same records, with measured latencies)."""
    started = time.perf_counter()
    if not (isinstance(scale, int | float) and math.isfinite(scale) and 0 < scale <= 100):
        raise InputError(f"--scale: expected a number in (0, 100], got {scale!r}")
    if live_url is not None:
        check_live_url(live_url)
    kind = loaded.spec.kind
    if kind == "recommender":  # top-k lists for users and sessions: its own day of traffic
        from mlhunt.scenarios.reco_traffic import simulate_recommender

        result = simulate_recommender(
            loaded,
            Path(out_dir),
            seed=int(seed),
            live_url=live_url,
            api_key_prefix=api_key_prefix,
            scale=float(scale),
            progress=progress,
            live_max_requests=live_max_requests,
            day=BASE_DATE,
        )
        progress(f"wrote {result.logs_path} and {result.labels_path}")
        return result  # type: ignore[no-any-return]
    if kind not in ("tabular", "image"):
        raise InputError(f"scenario {loaded.name!r}: unsupported input kind {kind!r}")
    out_dir = Path(out_dir)
    world = _World(
        loaded=loaded, seed=int(seed), scale=float(scale), ids=_ClientIds(_rng(seed, "ids"))
    )
    addrs = _Addresses(_rng(seed, "addresses"))
    transport = None
    if live_url is not None:
        transport = _LiveTransport(
            live_url, loaded, api_key_prefix, live_max_requests, live_timeout_s
        )
    oracle = _Oracle(loaded, world.clients, transport)
    box = atk.Box.from_spec(loaded.spec) if kind == "tabular" else None
    try:
        _run_benign(world, oracle, addrs, box, progress)
        if box is not None:
            _run_tabular_attacks(world, oracle, addrs, box, progress)
        else:
            _run_image_attacks(world, oracle, addrs, progress)
    finally:
        if transport is not None:
            transport.close()

    records = _assemble(world, oracle)
    out_dir.mkdir(parents=True, exist_ok=True)
    logs_path = out_dir / "logs.jsonl"
    _write_atomic(logs_path, "".join(records))
    labels = _labels_doc(world, mode="live" if transport else "in-process")
    labels_path = out_dir / "labels.json"
    _write_atomic(labels_path, json.dumps(labels, indent=1) + "\n")

    n_clients = Counter(c.label for c in world.clients)
    by_label = Counter()
    for c in world.clients:
        by_label[c.label] += c.n
    result = SimulationResult(
        out_dir=out_dir,
        logs_path=logs_path,
        labels_path=labels_path,
        mode="live" if transport else "in-process",
        records=len(records),
        clients=dict(sorted(n_clients.items())),
        records_by_label=dict(sorted(by_label.items())),
        attacks=labels["attacks"],
        seconds=round(time.perf_counter() - started, 3),
    )
    progress(f"wrote {logs_path} and {labels_path}")
    return result


def _assemble(world: _World, oracle: _Oracle) -> list[str]:
    """Stamp every query with its time and render the records in time order."""
    cidx = np.concatenate(oracle.cidx) if oracle.cidx else np.empty(0, dtype=np.int64)
    n = len(cidx)
    ts = np.empty(n)
    seq = np.empty(n, dtype=np.int64)
    trng = _rng(world.seed, "attacker-timing")
    for c in world.clients:
        rows = np.flatnonzero(cidx == c.index)
        times = c.times if c.label == BENIGN else _attacker_times(c, trng)
        if len(times) != len(rows):
            raise RuntimeError(f"client {c.index}: {len(times)} times for {len(rows)} queries")
        ts[rows] = times
        seq[rows] = np.arange(len(rows))
    ms = np.clip(np.floor(ts * 1000.0), 0, DAY_S * 1000 - 1).astype(np.int64)
    # Within one client, time never runs backwards (clipping at midnight can tie, not reverse).
    order = np.lexsort((seq, cidx, ms))
    stamps = _fmt_ts(ms[order])
    lat_rng = _rng(world.seed, "latency")
    median = 6.0 if world.loaded.spec.kind == "image" else 2.5
    simulated = np.round(lat_rng.lognormal(np.log(median), 0.35, n), 3)
    model = world.loaded.model_name
    out = []
    for j, i in enumerate(order.tolist()):
        c = world.clients[int(cidx[i])]
        latency = oracle.latency[i]
        rec = {
            "ts": stamps[j],
            "client_id": c.id,
            "input": oracle.inputs[i],
            "output": {"label": oracle.labels[i], "scores": oracle.scores[i]},
            "model": model,
            "source_ip": c.ip,
            "status": 200,
            "latency_ms": float(simulated[j]) if latency is None else latency,
        }
        out.append(json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n")
    return out


def _labels_doc(world: _World, *, mode: str) -> dict[str, Any]:
    cl = world.clients
    sources: dict[str, set[str]] = {}
    for c in cl:
        sources.setdefault(c.ip, set()).add(c.label)
    attacks = {}
    for style, info in world.attacks.items():
        info = dict(info)
        info["clients"] = sorted(cl[i].id for i in info["clients"])
        attacks[style] = info
    traps = {
        "batch_rescoring": sorted(cl[i].id for i in world.traps.get("batch-rescoring", [])),
        "retry": sorted(cl[i].id for i in world.traps.get("retry", [])),
        "what_if": sorted(cl[i].id for i in world.traps.get("what-if", [])),
        "nat": {ip: sorted(cl[i].id for i in v) for ip, v in world.traps.get("nat", {}).items()},
    }
    return {
        "scenario": world.loaded.name,
        "model": world.loaded.model_name,
        "seed": world.seed,
        "scale": world.scale,
        "mode": mode,
        "day": BASE_DATE,
        "clients": {c.id: c.label for c in sorted(cl, key=lambda c: c.id)},
        "roles": {c.id: c.role for c in sorted(cl, key=lambda c: c.id)},
        "sources": {
            ip: (labels.pop() if len(labels) == 1 else "mixed")
            for ip, labels in sorted(sources.items())
        },
        "queries": {c.id: c.n for c in sorted(cl, key=lambda c: c.id)},
        "traps": traps,
        "attacks": attacks,
    }


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


__all__ = [
    "BASE_DATE",
    "IMAGE_STYLES",
    "TABULAR_STYLES",
    "SimulationResult",
    "check_live_url",
    "simulate",
]
