"""A deterministic shop clickstream: honest sessions, a marketing burst and a shilling group.

Every function draws from its own ``numpy.random.Generator`` seeded by its arguments (no global
state), so the same call gives the same table. Events are a ``pyarrow.Table`` (see
:data:`SCHEMA`); ``label`` is the simulator's ground truth and is never read by detectors.

The populations are built so that each hunt signal has a real false-positive source to beat:
honest *regulars* (old accounts) have near-identical daily sessions around the featured item,
and the *marketing* burst brings many new accounts to one item with otherwise diverse sessions.
Only the shilling group is new, near-identical and focused on one item at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("user", pa.string(), nullable=False),
        pa.field("item", pa.string(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("source_ip", pa.string(), nullable=False),
        pa.field("referrer", pa.string()),
        pa.field("label", pa.string(), nullable=False),
    ]
)
EVENTS = ("view", "cart", "purchase")
#: Where a marketing campaign's users arrive from.
CAMPAIGN_REFERRER = "https://mail.example.com/newsletter/spring-sale"
SEARCH_REFERRER = "https://search.example.com/"
#: Share of honest users that are "regulars" checking the featured item every day.
REGULAR_SHARE = 0.06
#: Share of honest users whose account is new (first session after the first day).
NEW_HONEST_SHARE = 0.15
#: First user number of each generator, so their ids never collide.
MARKETING_FIRST_USER = 50_000
SHILLING_FIRST_USER = 90_000


def item_name(i: int) -> str:
    return f"i{i:04d}"


def user_name(u: int) -> str:
    return f"u{u:05d}"


def popularity(n_items: int, seed: int) -> np.ndarray:
    """Long-tailed (Zipf, exponent 1.1) item probabilities, ranks shuffled over the item ids."""
    rng = np.random.default_rng([seed, 1])
    weights = 1.0 / np.arange(1, n_items + 1) ** 1.1
    return rng.permutation(weights / weights.sum())


def categories(n_items: int) -> np.ndarray:
    """Each item's category (about 25 items a category, at least 4 categories)."""
    n_cat = max(4, n_items // 25)
    return np.arange(n_items) % n_cat


def featured(n_items: int, seed: int) -> int:
    """The shop's featured ("deal of the day") item: the most popular one."""
    return int(np.argmax(popularity(n_items, seed)))


class _Rows:
    """Column lists that become the events table."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}

    def add(
        self, ts: datetime, user: str, item: int, event: str, ip: str, ref: str | None, label: str
    ) -> None:
        for key, value in zip(
            SCHEMA.names, (ts, user, item_name(item), event, ip, ref, label), strict=True
        ):
            self.cols[key].append(value)

    def session(
        self,
        rng: np.random.Generator,
        t: datetime,
        user: str,
        items: list[int],
        ip: str,
        ref: str | None,
        label: str,
        *,
        cart: float = 0.12,
        buy: float = 0.4,
        must_buy: int | None = None,
    ) -> datetime:
        """Views of ``items`` 20 s to 3 min apart, with carts and purchases; returns the end."""
        for k, item in enumerate(items):
            self.add(t, user, item, "view", ip, ref if k == 0 else None, label)
            t += timedelta(seconds=float(rng.uniform(20, 180)))
            if item == must_buy or rng.random() < cart:
                self.add(t, user, item, "cart", ip, None, label)
                t += timedelta(seconds=float(rng.uniform(10, 60)))
                if item == must_buy or rng.random() < buy:
                    self.add(t, user, item, "purchase", ip, None, label)
                    t += timedelta(seconds=float(rng.uniform(30, 120)))
        return t

    def table(self) -> pa.Table:
        table = pa.Table.from_pydict(self.cols, schema=SCHEMA)
        return table.sort_by([("ts", "ascending"), ("user", "ascending")])


def _ip(rng: np.random.Generator, prefix: str = "10") -> str:
    a, b, c = (int(x) for x in rng.integers(1, 255, size=3))
    return f"{prefix}.{a}.{b}.{c}"


def _browse(
    rng: np.random.Generator, pop: np.ndarray, cats: np.ndarray, liked: np.ndarray, n: int
) -> list[int]:
    """``n`` distinct items, drawn by popularity boosted 6x in the user's liked categories."""
    w = pop * np.where(np.isin(cats, liked), 6.0, 1.0)
    n = min(n, len(pop))
    return [int(i) for i in rng.choice(len(pop), size=n, replace=False, p=w / w.sum())]


def generate(*, n_users: int, n_items: int, seed: int, start: datetime, days: int = 7) -> pa.Table:
    """Honest shop traffic over ``days``: each user likes one or two categories and has a few
    sessions of views with some carts and purchases. Most accounts are old (a session on the
    first day); some are new; a few regulars view the featured item and the same top items
    every day (similar sessions, old accounts)."""
    if n_users < 1 or n_items < 10 or days < 1:
        raise ValueError("generate needs n_users >= 1, n_items >= 10, days >= 1")
    rng = np.random.default_rng([seed, 0])
    pop, cats = popularity(n_items, seed), categories(n_items)
    top = [int(i) for i in np.argsort(-pop)[:4]]
    rows = _Rows()
    span = days * 86400.0
    for u in range(n_users):
        user = user_name(u)
        ip = _ip(rng)
        liked = rng.choice(cats.max() + 1, size=int(rng.integers(1, 3)), replace=False)
        kind = rng.random()
        if kind < REGULAR_SHARE:  # the daily deal checkers: one short session a day
            for d in range(days):
                t = start + timedelta(days=d, seconds=float(rng.uniform(6, 10) * 3600))
                items = top if rng.random() < 0.8 else top[:3]
                rows.session(rng, t, user, items, ip, None, "benign", cart=0.03)
            continue
        new = kind > 1.0 - NEW_HONEST_SHARE
        first = rng.uniform(0.25, 1.0) * span if new else rng.uniform(0, 86400.0)
        n_sessions = 1 + int(rng.poisson(1.0 if new else 3.0))
        times = np.sort(np.concatenate([[first], rng.uniform(first, span, n_sessions - 1)]))
        for s in times:
            items = _browse(rng, pop, cats, liked, 2 + int(rng.poisson(4)))
            ref = SEARCH_REFERRER if rng.random() < 0.3 else None
            rows.session(rng, start + timedelta(seconds=float(s)), user, items, ip, ref, "benign")
    return rows.table()


def marketing_burst(
    *,
    n_users: int,
    item: str,
    n_items: int,
    seed: int,
    start: datetime,
    first_user: int = MARKETING_FIRST_USER,
) -> pa.Table:
    """A legitimate campaign: ``n_users`` (new accounts) arrive within two hours of ``start``
    from one newsletter link, view ``item`` (a fifth buy it) and then browse on their own."""
    rng = np.random.default_rng([seed, 2])
    target = _item_index(item, n_items)
    pop, cats = popularity(n_items, seed), categories(n_items)
    rows = _Rows()
    for k in range(n_users):
        user = user_name(first_user + k)
        liked = rng.choice(cats.max() + 1, size=int(rng.integers(1, 3)), replace=False)
        t = start + timedelta(seconds=float(rng.uniform(0, 7200)))
        ip = _ip(rng)
        buys = rng.random() < 0.2
        own = [i for i in _browse(rng, pop, cats, liked, 2 + int(rng.poisson(4))) if i != target]
        rows.session(
            rng,
            t,
            user,
            [target, *own],
            ip,
            CAMPAIGN_REFERRER,
            "marketing",
            must_buy=target if buys else None,
        )
    return rows.table()


def shilling(
    *,
    n_fake: int,
    target: str,
    n_items: int,
    seed: int,
    start: datetime,
    first_user: int = SHILLING_FIRST_USER,
) -> pa.Table:
    """Profile injection: ``n_fake`` new accounts, created within three hours of ``start`` from
    a few proxy addresses, each with one or two near-identical sessions (the same popular filler
    items, half with one swapped, plus ``target``, which each one carts and buys)."""
    rng = np.random.default_rng([seed, 3])
    tgt = _item_index(target, n_items)
    pop = popularity(n_items, seed)
    order = [int(i) for i in np.argsort(-pop) if int(i) != tgt]
    filler, spare = order[:6], order[6:20]
    proxies = [_ip(rng, "203") for _ in range(4)]
    rows = _Rows()
    for k in range(n_fake):
        user = user_name(first_user + k)
        t = start + timedelta(seconds=float(rng.uniform(0, 3 * 3600)))
        for _ in range(1 + int(rng.random() < 0.3)):
            items = list(filler)
            if rng.random() < 0.5:  # near-identical, not identical: half swap one filler item
                items[int(rng.integers(len(items)))] = spare[int(rng.integers(len(spare)))]
            items.insert(int(rng.integers(len(items) + 1)), tgt)
            ip = proxies[int(rng.integers(len(proxies)))]
            t = rows.session(rng, t, user, items, ip, None, "shilling", cart=0.0, must_buy=tgt)
            t += timedelta(seconds=float(rng.uniform(3600, 5 * 3600)))
    return rows.table()


def _item_index(item: str, n_items: int) -> int:
    if not (item.startswith("i") and item[1:].isdigit() and int(item[1:]) < n_items):
        raise ValueError(f"item {item!r} is not one of i0000..{item_name(n_items - 1)}")
    return int(item[1:])


def combine(*tables: pa.Table) -> pa.Table:
    """One events table from several, in time order."""
    return pa.concat_tables(tables).sort_by([("ts", "ascending"), ("user", "ascending")])


def write_events(table: pa.Table, path: Path) -> None:
    """JSON Lines (``ts`` as ISO 8601 with ``Z``) when ``path`` ends in ``.jsonl``, else
    Parquet when it ends in ``.parquet``."""
    path = Path(path)
    if path.suffix == ".parquet":
        pq.write_table(table.cast(SCHEMA), path)
        return
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: events are written as .jsonl or .parquet")
    with path.open("w", encoding="utf-8") as fh:
        for row in table.to_pylist():
            row["ts"] = row["ts"].astimezone(UTC).isoformat(timespec="microseconds")
            row["ts"] = row["ts"].replace("+00:00", "Z")
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")


def read_events(path: Path) -> pa.Table:
    """The events :func:`write_events` wrote (trusted simulator output; the hunt has its own
    reader that counts malformed records)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pq.read_table(path).cast(SCHEMA)
    import pyarrow.json as pj

    opts = pj.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
    return pj.read_json(path, parse_options=opts).cast(SCHEMA)


@dataclass(frozen=True)
class Week:
    """A simulated week of shop traffic and its ground truth (for tests and the report)."""

    events: pa.Table
    campaign_item: str
    target: str
    marketing_users: tuple[str, ...]
    fake_users: tuple[str, ...]


def simulate_week(
    *,
    n_users: int = 240,
    n_items: int = 200,
    seed: int = 0,
    start: datetime,
    days: int = 7,
    n_marketing: int = 60,
    n_fake: int = 25,
) -> Week:
    """Honest traffic over ``days``, a marketing burst (day 3, 09:00) sending ``n_marketing``
    new users to a mid-popularity item, and ``n_fake`` shilling profiles (day 4, 02:00) pushing
    a long-tail item: what ``simulate`` and the hunt's tests replay."""
    if days < 5:
        raise ValueError("simulate_week needs at least 5 days (the burst and attack come later)")
    order = [int(i) for i in np.argsort(-popularity(n_items, seed))]
    campaign, target = item_name(order[n_items // 10]), item_name(order[(3 * n_items) // 4])
    honest = generate(n_users=n_users, n_items=n_items, seed=seed, start=start, days=days)
    burst = marketing_burst(
        n_users=n_marketing,
        item=campaign,
        n_items=n_items,
        seed=seed,
        start=start + timedelta(days=3, hours=9),
    )
    fake = shilling(
        n_fake=n_fake,
        target=target,
        n_items=n_items,
        seed=seed,
        start=start + timedelta(days=4, hours=2),
    )
    return Week(
        events=combine(honest, burst, fake),
        campaign_item=campaign,
        target=target,
        marketing_users=tuple(sorted(set(burst["user"].to_pylist()))),
        fake_users=tuple(sorted(set(fake["user"].to_pylist()))),
    )
