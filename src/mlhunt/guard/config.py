"""The guard's configuration: the policy YAML (validated with pydantic at load: a typo is an
:class:`~mlhunt.errors.InputError` naming the file and field) and :class:`GuardConfig`, what
:func:`mlhunt.guard.create_guard_app` needs."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from ipaddress import ip_network
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlhunt.errors import InputError
from mlhunt.hunt.detectors.base import SEVERITIES

Action = Literal["allow", "alert", "degrade", "throttle", "block"]
ACTIONS: tuple[str, ...] = ("allow", "alert", "degrade", "throttle", "block")


def _as_set(v: object, allowed: tuple[str, ...] = ACTIONS) -> frozenset[str]:
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("expected an action or a non-empty list of actions")
    bad = [a for a in items if a not in allowed]
    if bad:
        raise ValueError(f"unknown action(s) {bad} (expected: {', '.join(allowed)})")
    return frozenset(str(a) for a in items)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Throttle(_Strict):
    rate: float = Field(0.2, gt=0, description="Requests per second while throttled.")
    burst: int = Field(5, ge=1)


class Degrade(_Strict):
    mode: Literal["labels", "round", "noise"] = "round"
    decimals: int = Field(1, ge=0, le=6)
    noise: float = Field(0.1, gt=0, le=1.0)


class Policy(_Strict):
    """severity -> actions, per detector id (``default`` for the others)."""

    allowed_actions: ClassVar[tuple[str, ...]] = ACTIONS

    default: dict[str, frozenset[str]] = Field(default_factory=dict)
    detectors: dict[str, dict[str, frozenset[str]]] = Field(default_factory=dict)
    throttle: Throttle = Field(default_factory=Throttle)
    degrade: Degrade = Field(default_factory=Degrade)
    hold_s: float = Field(86_400.0, gt=0)

    @field_validator("default", mode="before")
    @classmethod
    def _default(cls, v: object) -> dict[str, frozenset[str]]:
        return _levels(v, cls.allowed_actions)

    @field_validator("detectors", mode="before")
    @classmethod
    def _detectors(cls, v: object) -> dict[str, dict[str, frozenset[str]]]:
        if not isinstance(v, dict):
            raise ValueError("expected a mapping of detector id -> {severity: action}")
        return {str(k): _levels(lv, cls.allowed_actions) for k, lv in v.items()}

    def actions(self, detector: str, severity: str) -> frozenset[str]:
        table = self.detectors.get(detector, self.default)
        got = table.get(severity)
        if got is None:
            got = self.default.get(severity, frozenset({"alert"}))
        return got


def _levels(v: object, allowed: tuple[str, ...] = ACTIONS) -> dict[str, frozenset[str]]:
    if not isinstance(v, dict):
        raise ValueError("expected a mapping of severity -> action(s)")
    out = {}
    for sev, acts in v.items():
        if sev not in SEVERITIES:
            raise ValueError(f"unknown severity {sev!r} (expected: {', '.join(SEVERITIES)})")
        out[str(sev)] = _as_set(acts, allowed)
    return out


def default_policy_path() -> Path:
    return Path(str(resources.files("mlhunt.guard") / "default_policy.yaml"))


def load_policy(
    path: Path | None = None,
    known: set[str] | None = None,
    model: type[Policy] = Policy,
    default: Path | None = None,
) -> Policy:
    """The policy at ``path`` (``default``, else the shipped default, when None); ``known``
    detector ids: a policy naming another detector is an error (a typo would silently fall
    back to ``default``); ``model``: the policy class (``LlmPolicy`` for ``guard --llm``)."""
    p = path or default or default_policy_path()
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), file=str(p)) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file=str(p)) from None
    if not isinstance(raw, dict):
        raise InputError("expected a mapping", file=str(p))
    try:
        policy = model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise InputError(err["msg"], file=str(p), field=where) from None
    if known is not None:
        bad = sorted(set(policy.detectors) - known)
        if bad:
            raise InputError(
                f"unknown detector id(s) {', '.join(bad)}", file=str(p), field="detectors"
            )
    return policy


@dataclass
class GuardConfig:
    """Everything the guard needs (the CLI fills it from its options).

    ``client_header``: the request header that identifies the caller (the loan API's
    ``X-API-Key``; its value, less ``strip_prefix``, is the client id). ``hash_client_ids`` (on by
    default): record a keyed hash (HMAC-SHA256 with ``id_key``) of that value instead of the
    value, so API keys never reach logs, alerts or Redis key names; ``id_key`` unset: a random
    key kept in Redis (replicas and restarts agree) or, with memory state, per process.
    ``trust_forwarded``: take the source address from ``X-Forwarded-For``: the right-most hop
    (the one the trusted proxy in front appended), or with ``trusted_proxies`` (CIDRs) the
    right-most hop not in them, and only when the peer itself is one of them.
    ``window``: recent events kept per target and rescored (see docs/guard.md); a target is
    rescored once it has ``score_every`` new events or its oldest unscored event is
    ``score_interval_s`` old, in passes a tenth of that interval apart (1 and 0: after every
    event); ``worker_duty`` caps the share of
    time the scoring worker may hold the interpreter (it shares it with the request path).
    ``reference``: known-good inputs for the population (``.npz``/``.npy``/log); without it the
    first ``warmup`` successful (2xx) events build the population and nothing is scored before.
    ``input_dim``: the length of an input vector (else the reference's, ``feature_names``'s, or
    the length most distinct clients sent during the warm-up); other lengths are not inputs.
    ``fail_open``: when the detector/state path errors, pass requests through (else 503).
    ``scoring``: ``thread`` scores on a worker thread of the proxy's process (sharing its GIL);
    ``process`` in a separate scoring process (:mod:`mlhunt.guard.scoring`; ``mlhunt guard``'s
    choice under load: scoring then never holds the proxy's interpreter), restarted when it dies.
    Bounds: ``max_body_bytes`` per request body (else 413), ``max_answer_bytes`` per
    upstream answer (else 502), ``queue_bytes_max`` of bodies waiting to be scored (else the
    event is dropped, counted), ``max_input_dim`` floats per input vector, ``header_timeout_s``
    to send a request head and ``body_timeout_s`` its body, ``max_header_bytes`` per request
    head (else 431), ``max_connections`` open client connections (else 503),
    ``upstream_max_connections`` to the upstream. ``admin_allow``: peer networks that may read
    ``/guard/health`` and ``/guard/metrics`` (others get 404).
    """

    upstream: str
    policy: Path | None = None
    http_config: Path | None = None
    reference: Path | None = None
    redis_url: str | None = None
    log: Path | None = None
    alerts: Path | None = None
    webhook: str | None = None
    fail_open: bool = True
    client_header: str = "X-API-Key"
    strip_prefix: str | None = None
    hash_client_ids: bool = True
    id_key: str | None = None
    trust_forwarded: bool = False
    trusted_proxies: tuple[str, ...] = ()
    window: int = 512
    source_window: int = 1024
    warmup: int = 2000
    score_every: int = 8
    score_interval_s: float = 0.25
    worker_duty: float = 0.5
    queue_max: int = 100_000
    upstream_timeout: float = 30.0
    predict_paths: tuple[str, ...] = ("/predict",)
    detectors: list[str] | None = None
    key_prefix: str = "mlhunt:guard:"
    feature_names: tuple[str, ...] = ()
    scoring: Literal["thread", "process"] = "thread"
    input_dim: int | None = None
    max_body_bytes: int = 1 << 20
    max_answer_bytes: int = 16 << 20
    queue_bytes_max: int = 64 << 20
    max_input_dim: int = 4096
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 2048
    upstream_max_connections: int = 256
    admin_allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # guard --llm (docs/guard.md, "LLM mode"): an OpenAI-compatible upstream, the llmhunt
    # detectors, canaries planted in system prompts, tool name -> JSON Schema of its arguments
    llm: bool = False
    llm_paths: tuple[str, ...] = ("/v1/chat/completions", "/chat/completions")
    canaries: tuple[str, ...] = ()
    tool_limits: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.upstream.startswith(("http://", "https://")):
            raise InputError(f"--upstream: expected an http(s) URL, got {self.upstream!r}")
        self.upstream = self.upstream.rstrip("/")
        if self.window < 16 or self.source_window < 16:
            raise InputError("window: at least 16 events per target")
        if self.score_every < 1 or self.score_interval_s < 0:
            raise InputError("score_every: at least 1; score_interval_s: not negative")
        if not 0.05 <= self.worker_duty <= 1.0:
            raise InputError("worker_duty: between 0.05 and 1")
        if self.scoring not in ("thread", "process"):
            raise InputError(f"scoring: 'thread' or 'process', got {self.scoring!r}")
        if self.warmup < 10:
            raise InputError("warmup: at least 10 events")
        if self.input_dim is not None and not 1 <= self.input_dim <= self.max_input_dim:
            raise InputError(f"input_dim: between 1 and {self.max_input_dim}")
        for name in ("max_body_bytes", "max_answer_bytes", "queue_bytes_max", "max_header_bytes"):
            if getattr(self, name) < 1024:
                raise InputError(f"{name}: at least 1024 bytes")
        if min(self.max_connections, self.upstream_max_connections, self.max_input_dim) < 1:
            raise InputError("connection limits and max_input_dim: at least 1")
        if min(self.header_timeout_s, self.body_timeout_s) <= 0:
            raise InputError("header_timeout_s and body_timeout_s: positive")
        self.trusted_proxies = tuple(self.trusted_proxies)
        self.admin_allow = tuple(self.admin_allow)
        for field, nets in (
            ("trusted_proxies", self.trusted_proxies),
            ("admin_allow", self.admin_allow),
        ):
            for net in nets:
                try:
                    ip_network(net, strict=False)
                except ValueError:
                    raise InputError(f"{field}: not an address or network: {net!r}") from None
        if self.trusted_proxies:
            self.trust_forwarded = True
        self.canaries = tuple(self.canaries)
        short = [c for c in self.canaries if len(c) < 8]
        if short:  # a short canary matches ordinary text: every completion would be a leak
            raise InputError(f"canary: expected at least 8 characters, not {short[0]!r}")
