"""The guard's parts, built and validated before anything listens: :class:`Guard` (what the
request path, tests and benchmarks use), the scoring worker and the population source; and the
caller's identity (keyed client-id hashing) and source address (``X-Forwarded-For`` behind
trusted proxies only)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from starlette.requests import Request

from mlhunt.assess.http import HttpConfig, load_http_config
from mlhunt.guard.alerts import AlertSink
from mlhunt.guard.config import GuardConfig, Policy, load_policy
from mlhunt.guard.mapping import Mapping
from mlhunt.guard.metrics import Metrics
from mlhunt.guard.online import PopulationSource, Scorer
from mlhunt.guard.scoring import RemoteWorker
from mlhunt.guard.state import StateStore, make_store
from mlhunt.guard.upstream import Upstream
from mlhunt.guard.worker import Worker
from mlhunt.logschema import JsonlLogWriter

MAX_HOPS = 32  # X-Forwarded-For hops looked at, from the right
MAX_ID = 256  # longer client ids are hashed even with hash_client_ids off
MEMO = 16_384  # client ids and source addresses remembered (a dict lookup, not an HMAC)
Networks = tuple[IPv4Network | IPv6Network, ...]


def networks(cidrs: tuple[str, ...]) -> Networks:
    return tuple(ip_network(c, strict=False) for c in cidrs)


def within(addr: str | None, nets: Networks) -> bool:
    """``addr`` (an IP address) is in one of ``nets``; False for anything not an address."""
    if not addr or not nets:
        return False
    try:
        ip = ip_address(addr)
    except ValueError:
        return False
    return any(ip in n for n in nets)


@dataclass
class Guard:
    """The running guard's parts (``app.state.guard``): what tests and benchmarks inspect."""

    config: GuardConfig
    policy: Policy
    http: HttpConfig
    store: StateStore
    worker: Worker | RemoteWorker
    sink: AlertSink | None  # None with scoring="process" (the scoring process owns it)
    metrics: Metrics
    scorer: Scorer
    population: PopulationSource
    log: JsonlLogWriter | None
    upstream: Upstream | None = None  # while running
    id_key: bytes = b""
    trusted: Networks = field(default_factory=tuple)
    admin: Networks = field(default_factory=tuple)
    # header value -> id, (X-Forwarded-For, peer) -> address: most requests come from callers
    # seen before; bounded (emptied when full) and only for short values
    _ids: dict[str, str] = field(default_factory=dict, repr=False)
    _sources: dict[tuple[str, str | None], str] = field(default_factory=dict, repr=False)

    def client_id(self, request: Request) -> str:
        return self.client_of(request.headers.get(self.config.client_header))

    def source(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        fwd = ",".join(request.headers.getlist("x-forwarded-for")) or None
        return self.source_of(fwd, peer)

    def client_of(self, raw: str | None) -> str:
        """The client id from the ``client_header`` value (None: absent): with
        ``hash_client_ids`` a keyed hash (HMAC-SHA256), so the raw value (an API key) is never
        recorded and cannot be recovered from a log without the key."""
        if raw is None:
            return "anonymous"
        got = self._ids.get(raw)
        if got is None:
            got = self._client_of(raw)
            if len(raw) <= MAX_ID:
                if len(self._ids) >= MEMO:
                    self._ids.clear()
                self._ids[raw] = got
        return got

    def _client_of(self, raw: str) -> str:
        p = self.config.strip_prefix
        if p and raw.startswith(p) and len(raw) > len(p):
            raw = raw[len(p) :]
        if self.config.hash_client_ids or len(raw) > MAX_ID:  # a long id is state: bounded
            mac = hmac.new(self.id_key, raw.encode("utf-8", "surrogateescape"), hashlib.sha256)
            return "h-" + mac.hexdigest()[:24]
        return raw

    def source_of(self, forwarded: str | None, peer: str | None) -> str:
        """The source address: the peer, unless ``X-Forwarded-For`` is trusted; then the
        right-most hop not in ``trusted_proxies`` (a client writes the left-most hops itself:
        only what trusted proxies appended is believed). With ``trusted_proxies`` set, only a
        peer in them is believed at all; an unparsable hop ends the walk at the last proxy."""
        if not self.config.trust_forwarded or not forwarded:
            return peer or "unknown"
        got = self._sources.get((forwarded, peer))
        if got is None:
            got = self._source_of(forwarded, peer)
            if len(forwarded) <= MAX_ID:
                if len(self._sources) >= MEMO:
                    self._sources.clear()
                self._sources[(forwarded, peer)] = got
        return got

    def _source_of(self, forwarded: str, peer: str | None) -> str:
        addr = peer or "unknown"
        if self.trusted and not within(peer, self.trusted):
            return addr
        for hop in reversed(forwarded.rsplit(",", MAX_HOPS)[-MAX_HOPS:]):
            try:
                ip = ip_address(hop.strip())
            except ValueError:
                return addr
            if not any(ip in n for n in self.trusted):
                return str(ip)
            addr = str(ip)
        return addr

    def admin_ok(self, peer: str | None) -> bool:
        """The peer may read ``/guard/health`` and ``/guard/metrics`` (``admin_allow``)."""
        return within(peer, self.admin)


def build_worker(
    config: GuardConfig, store: StateStore, metrics: Metrics, duty: float | None = None
) -> Worker:
    """The scoring worker and what it owns (population, alerts, log): in the proxy's process
    (``scoring="thread"``) or in the scoring process (:mod:`mlhunt.guard.scoring`)."""
    from mlhunt.hunt.detectors._warm import warm_up

    scorer = Scorer(config.detectors)
    policy = load_policy(config.policy, known=set(scorer.specs))
    http = load_http_config(config.http_config)
    population = population_of(config, http)
    # the compiled detector kernels loaded (or compiled) now, not at the first rescoring (the
    # DuckDB engine's reading kernels are not the guard's)
    warm_up()
    sink = AlertSink(config.alerts, config.webhook)
    log = JsonlLogWriter(config.log) if config.log is not None else None
    return Worker(
        store=store,
        scorer=scorer,
        population=population,
        policy=policy,
        mapping=Mapping(http, config.feature_names),
        sink=sink,
        metrics=metrics,
        log=log,
        window=config.window,
        source_window=config.source_window,
        queue_max=config.queue_max,
        queue_bytes_max=config.queue_bytes_max,
        max_input_dim=config.max_input_dim,
        score_every=config.score_every,
        score_interval_s=config.score_interval_s,
        duty=config.worker_duty if duty is None else duty,
    )


def build_guard(config: GuardConfig) -> Guard:
    """Load and validate everything (bad input raises InputError before anything listens)."""
    store = make_store(config.redis_url, config.key_prefix)
    metrics = Metrics()
    worker: Worker | RemoteWorker
    if config.scoring == "process":
        # validate here (policy, mapping, reference) so bad input fails before listening; the
        # scoring process loads its own copies and owns the alerts and the log
        scorer = Scorer(config.detectors)
        policy = load_policy(config.policy, known=set(scorer.specs))
        http = load_http_config(config.http_config)
        population = population_of(config, http)
        sink, log = None, None
        worker = RemoteWorker(config, store, metrics)
    else:
        local = build_worker(config, store, metrics)
        scorer, policy, population = local.scorer, local.policy, local.population
        http, sink, log = local.mapping.config, local.sink, local.log
        worker = local
    metrics.gauges["mlhunt_guard_queue_depth"] = worker.qsize
    key = config.id_key.encode() if config.id_key else store.shared_key()
    return Guard(
        config,
        policy,
        http,
        store,
        worker,
        sink,
        metrics,
        scorer,
        population,
        log,
        id_key=key,
        trusted=networks(config.trusted_proxies),
        admin=networks(config.admin_allow),
    )


def population_of(config: GuardConfig, http: HttpConfig) -> PopulationSource:
    """The population source; its input dimension from the configuration when it says
    (``input_dim``, else the number of ``feature_names``), else from the reference."""
    dim = config.input_dim or (len(config.feature_names) or None)
    return PopulationSource(
        config.reference,
        config.warmup,
        tuple(http.classes),
        dim=dim,
        max_dim=config.max_input_dim,
    )
