"""Workload of ``python -m bench hunt``: N inference-log events (DESIGN.md schema) as Parquet and
JSON Lines, generated vectorised in chunks (bounded memory) and cached under
``.mlhunt-cache/bench/hunt-n<N>-s<seed>/`` (keyed by N, seed and the generator version).

The traffic is a loan-approval API's day: ~N/200 clients with log-normal volumes and a daily
rhythm, realistic applicant inputs (the loan scenario's nine features and bounds), a handful of
NAT addresses shared by benign clients, and a few hostile clients: uniform-random extraction,
a sybil group (many ids, one address, uniform queries) and boundary probers (near-duplicate
chains). Answers come from a fixed logistic model, rounded as the scenario API rounds them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlhunt.scenarios.traffic import CONSUMER_HOURLY

GENERATOR_VERSION = 2  # 2: NAT and sybil addresses no longer cut to the width of the others
CHUNK = 500_000  # events per chunk / Parquet row group: ~150 MB of working memory at most
DAY_START_MS = 1_709_596_800_000  # 2024-03-05T00:00:00Z, the simulator's day
DAY_MS = 86_400_000
SYBIL_IP = "203.0.113.77"  # the sybil group's one address
# (name, lower, upper, integer): the loan-approval scenario's features.
FEATURES = (
    ("age", 18, 80, True),
    ("postcode_district", 1, 40, True),
    ("annual_income", 8_000, 400_000, False),
    ("debt_to_income", 0.0, 1.2, False),
    ("credit_history_years", 0, 62, True),
    ("delinquencies", 0, 15, True),
    ("loan_amount", 1_000, 150_000, False),
    ("employment_years", 0, 50, True),
    ("open_accounts", 0, 30, True),
)
LOWER = np.array([f[1] for f in FEATURES], dtype=float)
UPPER = np.array([f[2] for f in FEATURES], dtype=float)
INTEGER = np.array([f[3] for f in FEATURES])
# Fixed logistic "model" on standardised inputs (approval likelihood).
_W = np.array([0.3, 0.0, 1.2, -1.5, 0.6, -1.1, -0.7, 0.5, 0.1])
_HOURLY = CONSUMER_HOURLY  # the simulator's consumer day: requests per hour, relative


@dataclass(frozen=True)
class Workload:
    directory: Path
    parquet: Path
    jsonl: Path
    events: int
    clients: int
    attackers: dict[str, list[str]]
    jsonl_bytes: int
    parquet_bytes: int


@dataclass(frozen=True)
class _Clients:
    ids: np.ndarray  # str
    ips: np.ndarray  # str
    weight: np.ndarray  # share of traffic
    kind: np.ndarray  # 0 benign, 1 uniform extraction, 2 boundary probing
    attackers: dict[str, list[str]]


def _clients(n_events: int, rng: np.random.Generator) -> _Clients:
    n = max(50, n_events // 200)
    ids = np.array([f"acct-{i:08x}" for i in rng.choice(2**32, n, replace=False)])
    # object, not fixed-width text: a longer address assigned below would be cut to the width
    ips = np.array(
        [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(1, n + 1)], dtype=object
    )
    weight = rng.lognormal(0.0, 1.3, n)
    kind = np.zeros(n, dtype=np.int8)
    # Benign traps: 10 heavy batch re-scorers (2 % of traffic each), NATs of 30 clients.
    weight[:10] = 0.02 * weight.sum()
    for g in range(max(1, n // 1000)):
        ips[10 + g * 30 : 40 + g * 30] = f"192.168.{g // 250}.{g % 250 + 1}"
    # Hostile: 3 uniform extractors, a sybil group of 20 ids on one address, 3 boundary probers.
    extract = np.arange(n - 26, n - 23)
    sybil = np.arange(n - 23, n - 3)
    probe = np.arange(n - 3, n)
    per_attacker = max(2_000, n_events // 2_000)  # 0.05 % of traffic each, >= 2,000 queries
    weight[extract] = weight[probe] = 0
    weight[sybil] = 0
    weight = weight / weight.sum() * (n_events - per_attacker * 26) / n_events
    weight[np.concatenate([extract, probe])] = per_attacker / n_events
    weight[sybil] = per_attacker / n_events
    weight /= weight.sum()
    kind[extract] = kind[sybil] = 1
    kind[probe] = 2
    ips[sybil] = SYBIL_IP
    attackers = {
        "uniform-extraction": ids[extract].tolist(),
        "sybil-extraction": ids[sybil].tolist(),
        "boundary-probing": ids[probe].tolist(),
    }
    return _Clients(ids, ips, weight, kind, attackers)


def _benign_inputs(m: int, rng: np.random.Generator) -> np.ndarray:
    x = np.empty((m, len(FEATURES)))
    x[:, 0] = rng.normal(42, 12, m)
    x[:, 1] = rng.integers(1, 41, m)
    x[:, 2] = np.round(rng.lognormal(10.9, 0.5, m), -2)
    x[:, 3] = rng.gamma(4.0, 0.08, m)
    x[:, 4] = np.maximum(0, x[:, 0] - 18 - rng.integers(0, 10, m))
    x[:, 5] = rng.poisson(0.6, m)
    x[:, 6] = np.round(rng.lognormal(9.6, 0.7, m), -2)
    x[:, 7] = rng.integers(0, 25, m)
    x[:, 8] = rng.poisson(4, m)
    return x


def _inputs(kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = _benign_inputs(len(kind), rng)
    uni = kind == 1
    x[uni] = LOWER + rng.random((int(uni.sum()), len(FEATURES))) * (UPPER - LOWER)
    probe = kind == 2  # near-duplicates of one application, creeping along income
    if probe.any():
        base = np.array([35, 7, 42_000, 0.35, 10, 1, 15_000, 5, 3], dtype=float)
        x[probe] = base * (1 + rng.normal(0, 0.002, (int(probe.sum()), len(FEATURES))))
    x = np.clip(x, LOWER, UPPER)
    x[:, INTEGER] = np.round(x[:, INTEGER])
    x[:, 3] = np.round(x[:, 3], 3)
    return x


def _answers(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = (x - (LOWER + UPPER) / 2) / (UPPER - LOWER) * 4
    p = np.round(1 / (1 + np.exp(-(z @ _W + 0.2))), 6)
    return p, np.where(p >= 0.5, "approved", "rejected")


def _chunk(first: int, size: int, total: int, cl: _Clients, rng: np.random.Generator) -> object:
    import pyarrow as pa
    import pyarrow.compute as pc

    # Timestamps follow the daily rhythm: chunk c covers its share of the day's quantiles.
    cdf = np.concatenate([[0], np.cumsum(_HOURLY) / _HOURLY.sum()])
    q = np.sort(rng.uniform(first / total, (first + size) / total, size))
    ts_ms = DAY_START_MS + (np.interp(q, cdf, np.arange(25)) * 3_600_000).astype(np.int64)
    who = rng.choice(len(cl.ids), size, p=cl.weight)
    x = _inputs(cl.kind[who], rng)
    p, label = _answers(x)
    d = len(FEATURES)
    inputs = pa.ListArray.from_arrays(
        pa.array(np.arange(0, size * d + 1, d, dtype=np.int32)), pa.array(x.ravel())
    )
    scores = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 2 * size + 1, 2, dtype=np.int32)),
        pa.array(np.column_stack([np.round(1 - p, 6), p]).ravel()),
    )
    ts = pc.strftime(pa.array(ts_ms, pa.timestamp("ms")), format="%Y-%m-%dT%H:%M:%SZ")
    return pa.table(
        {
            "ts": ts,
            "client_id": pa.array(cl.ids[who]),
            "input": inputs,
            "output": pa.StructArray.from_arrays([pa.array(label), scores], ["label", "scores"]),
            "model": pa.array(np.full(size, "loan-approval-logreg-v1")),
            "source_ip": pa.array(cl.ips[who]),
            "status": pa.array(np.full(size, 200, dtype=np.int32)),
            "latency_ms": pa.array(np.round(rng.gamma(3.0, 1.1, size), 3)),
        }
    )


def cache_root() -> Path:
    return Path(os.environ.get("MLHUNT_CACHE", ".mlhunt-cache")) / "bench"


def ensure(n_events: int, seed: int = 0, log: Callable[[str], None] = print) -> Workload:
    """The cached workload for (n_events, seed), generated on first use."""
    import pyarrow.parquet as pq

    directory = cache_root() / f"hunt-n{n_events}-s{seed}-v{GENERATOR_VERSION}"
    meta_path = directory / "meta.json"
    if not meta_path.exists():
        tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        rng = np.random.default_rng(seed)
        cl = _clients(n_events, rng)
        first = 0
        writer = None
        while first < n_events:
            size = min(CHUNK, n_events - first)
            table = _chunk(first, size, n_events, cl, rng)
            if writer is None:
                writer = pq.ParquetWriter(tmp / "events.parquet", table.schema)  # type: ignore[attr-defined]
            writer.write_table(table, row_group_size=CHUNK)  # type: ignore[arg-type]
            first += size
            log(f"hunt: generated {first:,}/{n_events:,} events")
        assert writer is not None
        writer.close()
        _to_jsonl(tmp / "events.parquet", tmp / "events.jsonl")
        meta = {
            "events": n_events,
            "seed": seed,
            "clients": len(cl.ids),
            "attackers": cl.attackers,
            "version": GENERATOR_VERSION,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), "utf-8")
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)
    meta = json.loads(meta_path.read_text("utf-8"))
    parquet, jsonl = directory / "events.parquet", directory / "events.jsonl"
    return Workload(
        directory,
        parquet,
        jsonl,
        meta["events"],
        meta["clients"],
        meta["attackers"],
        jsonl.stat().st_size,
        parquet.stat().st_size,
    )


def _to_jsonl(parquet: Path, jsonl: Path) -> None:
    """JSON Lines with the same records, written by DuckDB's streaming COPY (row order kept)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        con.execute("SET enable_progress_bar = false")
        con.execute(f"COPY (SELECT * FROM read_parquet('{parquet}')) TO '{jsonl}' (FORMAT JSON)")
    finally:
        con.close()
