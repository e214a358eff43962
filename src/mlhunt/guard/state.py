"""Where the guard keeps per-target state: in memory (one replica) or in Redis (``--redis URL``:
several replicas share it, so an attacker cannot spread queries over replicas, and a restarted
guard picks up where it stopped).

Per target (a client id or a source address) the store holds: the window of recent events
(bounded: the newest ``window``), the total event count, the per-detector levels (severity, peak
score, until when the action holds) and the effective actions the request path reads; per
throttled key a token bucket. The request path reads the actions of the client and its address
in one round trip (``actions``) and takes a token (``take``) only while throttled; everything
else runs in the worker, off the request path.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Protocol

# [ts, client_id, source_ip, label, margin, status, input or None(, packed record: the guard's
# worker adds it, see mlhunt.guard.online.pack)]
Event = list[Any]

#: Caller-chosen ids (an API-key header) must not grow the state without bound: memory keeps the
#: most recently active targets, Redis expires a target's keys this long after its last event.
MAX_TARGETS = 200_000
STATE_TTL_S = 7 * 86_400

_TAKE_LUA = """
local t = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(t[1]) or burst
local stamp = tonumber(t[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
if ok == 1 then return {1, '0'} end
return {0, tostring((1 - tokens) / rate)}
"""


class StateStore(Protocol):
    """The store interface (see the module docstring); ``actions``/``take`` are awaited on the
    request path, the rest is called from the worker thread."""

    async def actions(self, keys: list[tuple[str, str]], now: float) -> list[set[str]]: ...

    async def take(self, key: str, rate: float, burst: int, now: float) -> float: ...

    def append(self, scope: str, key: str, events: list[Event], window: int) -> int: ...

    def window(self, scope: str, key: str) -> list[Event]: ...

    def count(self, scope: str, key: str) -> int: ...

    def levels(self, scope: str, key: str) -> dict[str, Any]: ...

    def set_levels(
        self, scope: str, key: str, levels: dict[str, Any], actions: list[str], until: float
    ) -> None: ...

    def ping(self) -> bool: ...

    def shared_key(self) -> bytes: ...

    def close(self) -> None: ...


def _live(doc: dict[str, Any] | None, now: float) -> set[str]:
    if not doc or float(doc.get("until", 0)) < now:
        return set()
    return set(doc.get("actions", ()))


class MemoryStore:
    """One process's state (lost on restart); at most ``max_targets`` targets, the least
    recently active forgotten first (with their levels and actions)."""

    def __init__(self, max_targets: int = MAX_TARGETS) -> None:
        self.max_targets = max_targets
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._events: dict[tuple[str, str], deque[Event]] = {}
        self._count: dict[tuple[str, str], int] = {}
        self._levels: dict[tuple[str, str], dict[str, Any]] = {}
        self._actions: dict[tuple[str, str], dict[str, Any]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    async def actions(self, keys: list[tuple[str, str]], now: float) -> list[set[str]]:
        return [_live(self._actions.get(k), now) for k in keys]

    async def take(self, key: str, rate: float, burst: int, now: float) -> float:
        """0 when a token was taken, else the seconds until the next one."""
        tokens, stamp = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + max(0.0, now - stamp) * rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / rate

    def append(self, scope: str, key: str, events: list[Event], window: int) -> int:
        k = (scope, key)
        with self._lock:
            ring = self._events.get(k)
            if ring is None or ring.maxlen != window:
                ring = self._events[k] = deque(ring or (), maxlen=window)
            ring.extend(events)
            self._count[k] = self._count.get(k, 0) + len(events)
            self._recent[k] = None
            self._recent.move_to_end(k)
            while len(self._recent) > self.max_targets:
                self._forget(self._recent.popitem(last=False)[0])
            return self._count[k]

    def _forget(self, k: tuple[str, str]) -> None:
        for table in (self._events, self._count, self._levels, self._actions):
            table.pop(k, None)  # type: ignore[attr-defined]
        self._buckets.pop(f"{k[0]}:{k[1]}", None)

    def window(self, scope: str, key: str) -> list[Event]:
        with self._lock:
            return list(self._events.get((scope, key), ()))

    def count(self, scope: str, key: str) -> int:
        return self._count.get((scope, key), 0)

    def levels(self, scope: str, key: str) -> dict[str, Any]:
        return dict(self._levels.get((scope, key), {}))

    def set_levels(
        self, scope: str, key: str, levels: dict[str, Any], actions: list[str], until: float
    ) -> None:
        self._levels[(scope, key)] = levels
        self._actions[(scope, key)] = {"actions": actions, "until": until}

    def ping(self) -> bool:
        return True

    def shared_key(self) -> bytes:
        """The key client ids are hashed with: random, this process only."""
        return os.urandom(32)

    def close(self) -> None:
        pass


class RedisStore:
    """State in Redis, shared by every replica pointing at the same server and ``prefix``.

    The request path uses the asyncio client (one ``MGET`` per request, one Lua token-bucket call
    while throttled); the worker uses a blocking client. Event windows are Redis lists trimmed
    to the window (``RPUSH`` + ``LTRIM`` in one pipeline), so replicas see each other's events.
    """

    def __init__(self, url: str, prefix: str = "mlhunt:guard:", ttl_s: int = STATE_TTL_S) -> None:
        import redis
        import redis.asyncio as aredis

        from mlhunt.errors import InputError

        self.url, self.p, self.ttl_s = url, prefix, ttl_s
        try:
            self._sync = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
            self._sync.ping()
        except (redis.RedisError, ValueError) as exc:
            raise InputError(f"--redis: cannot reach {url} ({exc})") from None
        self._async: Any = aredis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._take = self._async.register_script(_TAKE_LUA)

    def _k(self, kind: str, scope: str, key: str) -> str:
        return f"{self.p}{kind}:{scope}:{key}"

    async def actions(self, keys: list[tuple[str, str]], now: float) -> list[set[str]]:
        raw = await self._async.mget([self._k("act", s, k) for s, k in keys])
        return [_live(json.loads(r), now) if r is not None else set() for r in raw]

    async def take(self, key: str, rate: float, burst: int, now: float) -> float:
        ok, wait = await self._take(keys=[f"{self.p}tb:{key}"], args=[rate, burst, now])
        return 0.0 if int(ok) else float(wait)

    def append(self, scope: str, key: str, events: list[Event], window: int) -> int:
        k = self._k("ev", scope, key)
        pipe = self._sync.pipeline(transaction=True)
        # the first 7 fields: the packed record (8th, memory only) is rebuilt when scoring
        pipe.rpush(k, *[json.dumps(e[:7], separators=(",", ":")) for e in events])
        pipe.ltrim(k, -window, -1)
        pipe.incrby(self._k("n", scope, key), len(events))
        for kind in ("ev", "n", "lv", "act"):  # a target's keys live as long as its traffic
            pipe.expire(self._k(kind, scope, key), self.ttl_s)
        return int(pipe.execute()[2])

    def window(self, scope: str, key: str) -> list[Event]:
        return [json.loads(r) for r in self._sync.lrange(self._k("ev", scope, key), 0, -1)]

    def count(self, scope: str, key: str) -> int:
        return int(self._sync.get(self._k("n", scope, key)) or 0)

    def levels(self, scope: str, key: str) -> dict[str, Any]:
        raw = self._sync.get(self._k("lv", scope, key))
        return json.loads(raw) if raw else {}

    def set_levels(
        self, scope: str, key: str, levels: dict[str, Any], actions: list[str], until: float
    ) -> None:
        pipe = self._sync.pipeline(transaction=True)
        pipe.set(self._k("lv", scope, key), json.dumps(levels), ex=self.ttl_s)
        pipe.set(
            self._k("act", scope, key),
            json.dumps({"actions": actions, "until": until}),
            ex=self.ttl_s,
        )
        pipe.execute()

    def shared_key(self) -> bytes:
        """The key client ids are hashed with, created once and shared by every replica (so
        they, and a restarted guard, hash a client alike)."""
        k = f"{self.p}idkey"
        self._sync.set(k, os.urandom(32).hex(), nx=True)
        return bytes.fromhex(self._sync.get(k).decode())

    def ping(self) -> bool:
        import redis

        try:
            return bool(self._sync.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._sync.close()


def make_store(redis_url: str | None, prefix: str = "mlhunt:guard:") -> StateStore:
    return RedisStore(redis_url, prefix) if redis_url else MemoryStore()


def now() -> float:
    return time.time()
