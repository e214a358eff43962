"""A simulated day of the recommendation API's traffic, benign and hostile, labelled.

``simulate_recommender`` is what :func:`mlhunt.scenarios.traffic.simulate` runs for a
recommender: it writes ``logs.jsonl`` (inference-log schema, the records the API writes) and
``labels.json`` (each client's label and role, what each attacker did). Every answer comes from
the real model, in process or through the live API (one ``POST /recommend`` per request, the
client in ``X-API-Key`` as ``api_key_prefix + client`` and its address in ``X-Forwarded-For``).

Benign: at least 200 shoppers' apps asking for their own carousel a few times a day; the web
frontend asking for many different users and anonymous sessions from one address (a heavy,
legitimate client that asks about other users, as a prober does); a marketing campaign's new
accounts arriving in a burst on one item. Hostile: a shilling group of new accounts behind a few
proxies, checking their own carousels and the target's neighbours; a catalogue sweep of one-item
sessions (extraction of the item embeddings); a prober asking for the top-100 of many users
(membership of their histories).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.errors import InputError
from mlhunt.scenarios.base import Progress, quiet
from mlhunt.scenarios.traffic import CONSUMER_HOURLY as HOURLY

BENIGN = "benign"
MIN_HONEST = 200


@dataclass
class _Request:
    t: float  # seconds into the day
    client: str
    ip: str
    user: str | None = None
    items: list[str] | None = None
    k: int = 10


@dataclass
class _World:
    rng: np.random.Generator
    requests: list[_Request] = field(default_factory=list)
    clients: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (label, role)
    attacks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ip(self, prefix: str = "10") -> str:
        a, b, c = (int(x) for x in self.rng.integers(1, 255, size=3))
        return f"{prefix}.{a}.{b}.{c}"

    def times(self, n: int, start: float = 0.0, span: float = 86_400.0) -> np.ndarray:
        """``n`` times in [start, start + span), daily rhythm when the span is the whole day."""
        if span >= 86_400.0:
            hours = self.rng.choice(24, size=n, p=HOURLY / HOURLY.sum())
            return np.sort(hours * 3600.0 + self.rng.uniform(0, 3600.0, n))
        return np.sort(start + self.rng.uniform(0, span, n))


def _plan(loaded: Any, seed: int, scale: float) -> _World:
    from mlhunt.scenarios import clickgen

    w = _World(np.random.default_rng([seed, 27]))
    rng = w.rng
    users, items = list(loaded.users), list(loaded.items)
    pop = np.bincount(loaded.train.items, minlength=len(items)).astype(float)
    pop /= pop.sum()

    def session(n: int) -> list[str]:
        return [items[int(i)] for i in rng.choice(len(items), size=n, replace=False, p=pop)]

    n_honest = max(MIN_HONEST, round(300 * scale))
    for u in rng.choice(len(users), size=min(n_honest, len(users)), replace=False):
        cid, ip = f"app-{users[int(u)]}", w.ip()
        w.clients[cid] = (BENIGN, "shopper")
        for t in w.times(1 + int(rng.poisson(3))):
            w.requests.append(_Request(float(t), cid, ip, user=users[int(u)], k=10))
    front, front_ip = "web-frontend", "10.0.0.10"
    w.clients[front] = (BENIGN, "web-frontend")
    for t in w.times(round(400 * scale)):
        if rng.random() < 0.7:
            user = users[int(rng.integers(len(users)))]
            w.requests.append(_Request(float(t), front, front_ip, user=user, k=20))
        else:
            w.requests.append(_Request(float(t), front, front_ip, items=session(3), k=20))
    # Marketing: new accounts (unknown to the model) from a newsletter, all on one item.
    campaign = items[int(np.argsort(-pop)[len(items) // 3])]
    start = 9 * 3600.0
    for j in range(round(60 * scale)):
        cid = f"app-{clickgen.user_name(clickgen.MARKETING_FIRST_USER + j)}"
        w.clients[cid] = (BENIGN, "marketing")
        ip = w.ip()
        for t in w.times(1 + int(rng.random() < 0.5), start, 7200.0):
            body = {"items": [campaign, *session(2)]} if rng.random() < 0.5 else {}
            user = None if body else cid.removeprefix("app-")
            w.requests.append(_Request(float(t), cid, ip, user=user, items=body.get("items")))
    w.attacks["marketing"] = {"item": campaign, "clients": round(60 * scale)}
    # Shilling: new accounts behind four proxies check that the target reaches their carousel.
    target = items[int(np.argsort(pop, kind="stable")[len(items) // 4])]
    filler = [items[int(i)] for i in np.argsort(-pop, kind="stable")[:6]]
    proxies = [w.ip("203") for _ in range(4)]
    # The accounts are created in the afternoon (new in the day's log) and each first sends the
    # planted session, then checks its own carousel or sends the session again.
    start = 15 * 3600.0
    n_fake = round(40 * scale)
    for j in range(n_fake):
        cid = f"app-{clickgen.user_name(clickgen.SHILLING_FIRST_USER + j)}"
        w.clients[cid] = ("shilling", "shilling")
        for n, t in enumerate(w.times(1 + int(rng.integers(0, 3)), start, 3 * 3600.0)):
            ip = proxies[int(rng.integers(len(proxies)))]
            if n > 0 and rng.random() < 0.5:
                w.requests.append(_Request(float(t), cid, ip, user=cid.removeprefix("app-")))
            else:
                w.requests.append(_Request(float(t), cid, ip, items=[*filler, target]))
    w.attacks["shilling"] = {"target": target, "filler": filler, "clients": n_fake}
    # Extraction: every item as a one-item session, the longest lists, within an hour.
    cid, ip = "sweep-7f3a", w.ip("198")
    w.clients[cid] = ("reco-extraction", "reco-extraction")
    order = rng.permutation(len(items))
    for t, i in zip(w.times(len(items), 14 * 3600.0, 3600.0), order, strict=True):
        w.requests.append(_Request(float(t), cid, ip, items=[items[int(i)]], k=100))
    w.attacks["reco-extraction"] = {"sessions": len(items), "k": 100}
    # Membership: the top-100 of many users, from one client.
    cid, ip = "probe-51c2", w.ip("198")
    w.clients[cid] = ("membership-probing", "membership-probing")
    n_probe = round(150 * scale)
    probed = rng.choice(len(users), size=min(n_probe, len(users)), replace=False)
    for t, u in zip(w.times(len(probed), 20 * 3600.0, 5400.0), probed, strict=True):
        w.requests.append(_Request(float(t), cid, ip, user=users[int(u)], k=100))
    w.attacks["membership-probing"] = {"users": len(probed), "k": 100}
    w.requests.sort(key=lambda r: (r.t, r.client))
    return w


class _Answerer:
    """The model's answers: in process, or one real request each to the live API."""

    def __init__(self, loaded: Any, url: str | None, prefix: str, max_requests: int) -> None:
        self.loaded, self.url, self.prefix, self.max = loaded, url, prefix, max_requests
        self.http: Any = None
        if url is not None:
            import httpx

            self.http = httpx.Client(base_url=url.rstrip("/"), timeout=30.0)

    def close(self) -> None:
        if self.http is not None:
            self.http.close()

    def history(self, r: _Request) -> np.ndarray:
        if r.items is not None:
            return self.loaded.session_history(r.items)  # type: ignore[no-any-return]
        return self.loaded.user_histories([r.user])  # type: ignore[no-any-return]

    def local(self, r: _Request) -> tuple[list[str], list[float], float | None]:
        idx, s = self.loaded.recommend_histories(self.history(r), r.k)
        return [self.loaded.items[int(i)] for i in idx[0]], [round(float(v), 6) for v in s[0]], None

    def live(self, r: _Request) -> tuple[list[str], list[float], float | None]:
        body: dict[str, Any] = {"k": r.k}
        body.update({"items": r.items} if r.items is not None else {"user": r.user})
        headers = {"X-API-Key": self.prefix + r.client, "X-Forwarded-For": r.ip}
        start = time.perf_counter()
        resp = self.http.post("/recommend", json=body, headers=headers)
        latency = round((time.perf_counter() - start) * 1000.0, 3)
        if resp.status_code != 200:
            raise InputError(
                f"--live: /recommend answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        doc = resp.json()
        return [str(i) for i in doc["items"]], [float(v) for v in doc["scores"]], latency

    def answer(self, reqs: list[_Request]) -> list[tuple[list[str], list[float], float | None]]:
        if self.http is None:
            return [self.local(r) for r in reqs]
        if len(reqs) > self.max:
            raise InputError(f"--live: more than {self.max:,} requests needed; lower --scale")
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(self.live, reqs))


def _stamp(t: float, day: str) -> str:
    ms = int(min(max(t, 0.0), 86_399.999) * 1000)
    s, milli = divmod(ms, 1000)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{day}T{h:02d}:{m:02d}:{sec:02d}.{milli:03d}Z"


def simulate_recommender(
    loaded: Any,
    out_dir: Path,
    *,
    seed: int,
    live_url: str | None,
    api_key_prefix: str,
    scale: float,
    progress: Progress = quiet,
    live_max_requests: int,
    day: str,
) -> Any:
    """Simulate the day (see the module docstring); returns a ``SimulationResult``."""
    from mlhunt.scenarios.traffic import SimulationResult

    started = time.perf_counter()
    world = _plan(loaded, seed, scale)
    progress(f"{len(world.requests):,} recommendation requests from {len(world.clients)} clients")
    answerer = _Answerer(loaded, live_url, api_key_prefix, live_max_requests)
    try:
        answers = answerer.answer(world.requests)
    finally:
        answerer.close()
    lat_rng = np.random.default_rng([seed, 28])
    lines = []
    for r, (items, scores, latency) in zip(world.requests, answers, strict=True):
        rec = {
            "ts": _stamp(r.t, day),
            "client_id": r.client,
            "input": loaded.log_vector(answerer.history(r)),
            "output": {"label": items[0], "items": items, "scores": scores},
            "model": loaded.model_name,
            "source_ip": r.ip,
            "status": 200,
            "latency_ms": latency
            if latency is not None
            else round(lat_rng.lognormal(1.0, 0.35), 3),
            "user": r.user,
            "items": r.items,
        }
        lines.append(json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    logs_path, labels_path = out_dir / "logs.jsonl", out_dir / "labels.json"
    per_client = Counter(r.client for r in world.requests)
    labels = {
        "scenario": loaded.name,
        "model": loaded.model_name,
        "seed": seed,
        "scale": scale,
        "mode": "live" if live_url else "in-process",
        "day": day,
        "clients": {c: lab for c, (lab, _role) in sorted(world.clients.items())},
        "roles": {c: role for c, (_lab, role) in sorted(world.clients.items())},
        "queries": dict(sorted(per_client.items())),
        "attacks": world.attacks,
    }
    for path, text in (
        (logs_path, "".join(lines)),
        (labels_path, json.dumps(labels, indent=1) + "\n"),
    ):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    by_label: Counter[str] = Counter()
    for r in world.requests:
        by_label[world.clients[r.client][0]] += 1
    return SimulationResult(
        out_dir=out_dir,
        logs_path=logs_path,
        labels_path=labels_path,
        mode=labels["mode"],
        records=len(lines),
        clients=dict(sorted(Counter(lab for lab, _ in world.clients.values()).items())),
        records_by_label=dict(sorted(by_label.items())),
        attacks=world.attacks,
        seconds=round(time.perf_counter() - started, 3),
    )
