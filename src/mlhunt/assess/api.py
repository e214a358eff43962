"""The library entry point of ``mlhunt assess``.

``open_target(TargetOptions(...))`` turns a description (a scenario, a model file, a factory,
a callable or a URL) into a :class:`~mlhunt.assess.base.Target` plus its
:class:`~mlhunt.assess.base.AssessData`; ``assess(target, data, ...)`` plans, runs and turns the
results into findings::

    with open_target(TargetOptions(scenario="loan-approval")) as (target, data):
        report = assess(target, data, select=["extraction"], max_queries=5_000)
    doc = report.document()
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.assess.base import AssessData, AttackResult, QueryBudget, Target
from mlhunt.assess.catalog import CatalogAttack, default_attacks
from mlhunt.assess.progress import LineObserver
from mlhunt.assess.results import Thresholds, to_finding
from mlhunt.assess.runner import (
    Observer,
    PlanItem,
    RunOptions,
    make_plan,
    run_plan,
    slug,
)
from mlhunt.errors import InputError
from mlhunt.findings import Finding, document
from mlhunt.scenarios.base import InputSpec

KINDS = ("sklearn", "torch", "callable", "http")


@dataclass
class TargetOptions:
    """How to reach the model. ``target`` is a file, ``module:fn`` or a URL; ``kind`` is
    guessed from it when not given."""

    target: str | None = None
    scenario: str | None = None
    kind: str | None = None
    factory: str | None = None
    spec: Path | None = None
    data: Path | None = None
    http_config: Path | None = None
    api_key_env: str | None = None
    trust: bool = False
    in_process: bool = False
    scenario_seed: int = 0
    seed: int = 0
    log_dir: Path | None = None  # scenario over HTTP: where the API writes its inference log


def guess_kind(opts: TargetOptions) -> str:
    t = opts.target or ""
    if opts.kind:
        if opts.kind not in KINDS:
            raise InputError(f"--kind: expected one of {', '.join(KINDS)}, got {opts.kind!r}")
        return opts.kind
    if t.startswith(("http://", "https://")):
        return "http"
    if opts.factory:
        return "torch"
    if ":" in t and not Path(t).exists():
        return "callable"
    return "sklearn"


class LiveScenarioTarget:
    """A scenario served by its real REST API: black-box queries go over HTTP (and land in the
    API's inference log); white-box attacks get the loaded model's module or estimator."""

    def __init__(self, loaded: Any, http: Any) -> None:
        from mlhunt.assess.scenario import ScenarioTarget

        self.local = ScenarioTarget(loaded)
        self.http = http
        self.name, self.spec, self.classes = self.local.name, loaded.spec, self.local.classes
        self.budget = QueryBudget()
        self.stats = http.stats

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.budget.charge(len(x))
        return self.http.query(x)  # type: ignore[no-any-return]

    def torch_module(self) -> Any | None:
        return self.local.torch_module()

    def sklearn_estimator(self) -> Any | None:
        return self.local.sklearn_estimator()


@contextmanager
def _scenario(opts: TargetOptions) -> Iterator[tuple[Target, AssessData]]:
    from mlhunt.assess.scenario import ScenarioTarget, scenario_data
    from mlhunt.scenarios import ensure_built, get

    assert opts.scenario is not None
    get(opts.scenario)  # unknown name: one clear line before any work
    _built, loaded = ensure_built(opts.scenario, seed=opts.scenario_seed)
    if loaded.spec.kind == "recommender":  # top-k lists, not probabilities: its own target
        from mlhunt.assess.recommender import open_recommender

        with open_recommender(
            loaded, in_process=opts.in_process, seed=opts.seed, log_dir=opts.log_dir
        ) as pair:
            yield pair
        return
    data = scenario_data(loaded, seed=opts.seed)
    if opts.in_process:
        yield ScenarioTarget(loaded), data
        return
    from mlhunt.assess.http import HttpTarget, load_http_config
    from mlhunt.scenarios.server import KeyStore, create_app, running

    key = secrets.token_urlsafe(18)
    log = (opts.log_dir or Path(".mlhunt-assess") / slug(loaded.model_name)) / "api-log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    app = create_app(loaded, keys=KeyStore({key: "mlhunt-assess"}), log_path=log)
    body = {"vector": "{vector}"} if loaded.spec.kind == "tabular" else {"array": "{array}"}
    config = load_http_config(None, body=body, headers={"X-API-Key": key})
    with (
        running(app) as base,
        HttpTarget(f"{base}/predict", loaded.spec, config, tuple(loaded.classes)) as http,
    ):
        yield LiveScenarioTarget(loaded, http), data


@contextmanager
def open_target(opts: TargetOptions) -> Iterator[tuple[Target, AssessData]]:
    """The target and its data; closes servers and connections on exit."""
    if opts.scenario is not None:
        if opts.target is not None:
            raise InputError("give either TARGET or --scenario, not both")
        with _scenario(opts) as pair:
            yield pair
        return
    if opts.target is None:
        raise InputError(
            "TARGET: missing (a model file, module:predict_fn or a URL), or use --scenario"
        )
    if opts.data is None:
        raise InputError("--data: needed for a non-scenario target (an .npz with x and y)")
    from mlhunt.assess import targets as t

    data = t.load_data(opts.data)
    classes: tuple[str, ...] = ()
    if opts.spec is not None:
        spec, classes, sensitive = t.load_spec(opts.spec, data.x_eval)
        names = list(spec.names)
        data.sensitive_feature = names.index(sensitive) if sensitive else None
    else:
        spec = t.spec_from_data(data.x_eval)
    _check_shape(spec, data.x_eval, opts.data)
    kind = guess_kind(opts)
    with ExitStack() as stack:
        target: Target
        if kind == "sklearn":
            target = t.SklearnTarget(Path(opts.target), spec, trust=opts.trust, classes=classes)
        elif kind == "torch":
            if not opts.factory:
                raise InputError("--factory: needed for a PyTorch state dict (module:function)")
            target = t.TorchTarget(Path(opts.target), opts.factory, spec, classes)
        elif kind == "callable":
            target = t.CallableTarget(
                opts.target, spec, classes or t.classes_from_labels(data.y_eval)
            )
        else:
            from mlhunt.assess.http import HttpTarget, load_http_config

            config = load_http_config(opts.http_config, api_key_env=opts.api_key_env)
            url = opts.target
            target = stack.enter_context(HttpTarget(url, spec, config, classes))
        if not target.classes:
            target.classes = t.classes_from_labels(data.y_eval)
        yield target, data


def _check_shape(spec: InputSpec, x: np.ndarray, path: Path) -> None:
    want = tuple(spec.shape) if spec.kind == "image" else (len(spec.names),)
    if tuple(x.shape[1:]) != want and not (spec.kind == "image" and x.shape[1:] == (spec.size,)):
        raise InputError(
            f"x has rows of shape {list(x.shape[1:])}, the spec expects {list(want)}",
            file=str(path),
            field="x",
        )


@dataclass
class AssessReport:
    target: str
    plan: list[PlanItem]
    results: list[AttackResult]
    findings: list[Finding]
    state_dir: Path
    budget: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        attacks = [
            {
                "id": r.attack_id,
                "verdict": r.verdict,
                "queries": r.queries,
                "seconds": r.seconds,
                "resumed": r.attack_id in self.resumed,
            }
            for r in self.results
        ]
        clean = self.baseline.get("clean_accuracy")
        return document(
            "assess",
            self.findings,
            target=self.target,
            budget=self.budget,
            attacks=attacks,
            clean_accuracy=clean,
            state_dir=str(self.state_dir),
        )


def default_state_dir(target: Target) -> Path:
    return Path(".mlhunt-assess") / slug(target.name)


def assess(
    target: Target,
    data: AssessData,
    *,
    catalog: Sequence[CatalogAttack] | None = None,
    select: Iterable[str] = (),
    params: dict[str, dict[str, Any]] | None = None,
    max_queries: int | None = None,
    max_seconds: float | None = None,
    seed: int = 0,
    state_dir: Path | None = None,
    resume: bool = False,
    thresholds: Thresholds | None = None,
    observer: Observer | None = None,
    debug: bool = False,
) -> AssessReport:
    """Plan the catalog's attacks for ``target``, run them within the budgets, and return the
    results with one finding each."""
    if max_queries is not None and max_queries < 0:
        raise InputError(f"--max-queries: expected a number >= 0, got {max_queries}")
    if max_seconds is not None and max_seconds <= 0:
        raise InputError(f"--max-seconds: expected a positive number, got {max_seconds}")
    catalog = tuple(catalog if catalog is not None else default_attacks())
    plan = make_plan(catalog, target, data, select=select, params=params)
    state_dir = state_dir or default_state_dir(target)
    options = RunOptions(max_queries, max_seconds, seed, resume, debug)
    state = run_plan(
        plan, target, data, state_dir, options, observer or LineObserver(lambda _m: None)
    )
    specs = {it.id: it.attack.spec for it in plan}
    findings = [
        to_finding(
            specs[r.attack_id],
            r,
            target.name,
            plot_dir=state_dir / r.attack_id,
            thresholds=thresholds,
        )
        for r in state.results
    ]
    budget = {
        "max_queries": max_queries,
        "max_seconds": max_seconds,
        "seed": seed,
        "queries_this_run": state.budget.used,  # baseline included; resumed attacks not
        "queries_by_attacks": sum(r.queries for r in state.results),
    }
    return AssessReport(
        target.name, plan, state.results, findings, state_dir, budget, state.baseline, state.resumed
    )
