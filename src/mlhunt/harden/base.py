"""The contracts of ``harden``: what a mitigation gets (:class:`HardenContext`), what it returns
(:class:`Outcome`, one per variant such as one epsilon), and the helpers every mitigation uses
to re-run an assess attack before and after on the same data with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlhunt.assess.base import AssessData, AttackContext, AttackResult, QueryBudget
from mlhunt.scenarios.base import InputSpec, LoadedScenario

Progress = Callable[[str], None]
PredictFn = Callable[[np.ndarray], np.ndarray]

# Metrics too bulky (or per-sub-attack) for a before/after comparison in the evidence.
_BULKY = ("attacks", "agreement_by_class_curve")


@dataclass
class HardenContext:
    """Everything a mitigation run gets: the loaded scenario, the assess data (identical for the
    before and after runs), its parameters (YAML defaults merged with overrides), the seed and
    a folder for plots."""

    loaded: LoadedScenario
    data: AssessData
    params: dict[str, Any]
    seed: int
    out_dir: Path
    progress: Progress
    mitigation: str = ""  # its id, for error messages naming the parameter

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


@dataclass
class Outcome:
    """One measured variant of a mitigation (e.g. DP at epsilon 1): the evidence of a finding."""

    variant: dict[str, Any]
    utility_before: dict[str, float]
    utility_after: dict[str, float]
    attack_before: dict[str, Any]
    attack_after: dict[str, Any]
    effective: bool
    summary: str
    extra: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)


class ModelTarget:
    """A model (the scenario's own, a retrained one, or a wrapped one) behind assess's
    :class:`~mlhunt.assess.base.Target` protocol; every query is charged to ``budget``."""

    def __init__(
        self,
        name: str,
        spec: InputSpec,
        classes: tuple[str, ...],
        predict: PredictFn,
        *,
        torch_module: Callable[[], Any] | None = None,
        sklearn: Any | None = None,
        budget: QueryBudget | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.classes = classes
        self.budget = budget or QueryBudget()
        self._predict = predict
        self._torch = torch_module
        self._sklearn = sklearn

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.budget.charge(len(x))
        return np.asarray(self._predict(x), dtype=np.float64)

    def torch_module(self) -> Any | None:
        return self._torch() if self._torch is not None else None

    def sklearn_estimator(self) -> Any | None:
        return self._sklearn


def scenario_target(loaded: LoadedScenario) -> ModelTarget:
    """The unmitigated scenario model (the "before" of every comparison)."""
    from mlhunt.assess.scenario import ScenarioTarget

    base = ScenarioTarget(loaded)
    return ModelTarget(
        loaded.model_name,
        loaded.spec,
        tuple(loaded.classes),
        loaded.predict_proba,
        torch_module=base.torch_module,
        sklearn=base.sklearn_estimator(),
    )


def attack_params(attack_id: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The attack's default parameters from the assess catalog, with ``overrides`` on top."""
    from mlhunt.assess.catalog import default_attacks

    spec = next(a.spec for a in default_attacks() if a.id == attack_id)
    return {**spec.params, **(overrides or {})}


def run_attack(
    ctx: HardenContext,
    module: Any,
    target: ModelTarget,
    params: dict[str, Any],
    label: str,
) -> AttackResult:
    """Run ``module.run`` (an assess attack) on ``target`` with the context's data and seed:
    the before and after runs differ only in the target."""
    actx = AttackContext(
        target=target,
        data=ctx.data,
        budget=target.budget,
        params=dict(params),
        seed=ctx.seed,
        out_dir=ctx.out_dir / label,
        progress=ctx.progress,
        survivors=np.arange(len(ctx.data.x_eval)),
    )
    result: AttackResult = module.run(actx)
    return result


def measures(result: AttackResult) -> dict[str, Any]:
    """The numbers assess reports for one attack (its metrics, verdict and summary)."""
    out = {k: v for k, v in result.metrics.items() if k not in _BULKY}
    out.update(verdict=result.verdict, summary=result.summary)
    return plain(out)


def plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python numbers (evidence goes into the JSON document)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def rounded(values: dict[str, float], digits: int = 4) -> dict[str, float]:
    return {k: round(float(v), digits) for k, v in values.items()}


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Torch and OpenMP/BLAS capped at ``n`` threads for the work inside, restored after: on
    busy shared cores 2 threads trained a small model 30x slower than one (measured). The
    threadpoolctl cap comes second because it also sets OpenMP, which would reset torch."""
    import torch

    from mlhunt._threads import few_threads

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with few_threads(n):
            torch.set_num_threads(n)
            yield
    finally:
        torch.set_num_threads(before)
