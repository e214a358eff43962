"""The contracts every ``assess`` part honours: targets, data, budgets, attacks and results.

A *target* answers queries (and, when white-box, hands out a differentiable module); an *attack*
is a small self-describing unit (id, mappings and thresholds as data in ``attacks.yaml``, code in
one module under ``mlhunt.assess.attacks``) that measures one threat against a target and returns
an :class:`AttackResult`; the runner orders attacks cheap-first, shares the query and time budget
between them, saves each result as it finishes (``--resume``) and turns results into findings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from mlhunt.scenarios.base import InputSpec

Progress = Callable[[str], None]


class BudgetExhausted(RuntimeError):
    """The query or time budget ran out; an attack catches it and reports what it reached."""


class QueryBudget:
    """Queries (rows sent to the model) and wall-clock seconds an attack may still spend.

    Thread-safe; ``charge`` raises :class:`BudgetExhausted` *before* the queries are sent, so a
    budget is never overrun. ``child`` carves a share for one attack out of the global budget.
    """

    def __init__(
        self,
        queries: int | None = None,
        seconds: float | None = None,
        parent: QueryBudget | None = None,
    ) -> None:
        self.limit = queries
        self.seconds = seconds
        self.used = 0
        self.parent = parent
        self._started = time.monotonic()
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int | None:
        own = None if self.limit is None else max(0, self.limit - self.used)
        up = self.parent.remaining if self.parent is not None else None
        if own is None:
            return up
        return own if up is None else min(own, up)

    def time_left(self) -> float | None:
        own = None if self.seconds is None else self.seconds - (time.monotonic() - self._started)
        up = self.parent.time_left() if self.parent is not None else None
        if own is None:
            return up
        return own if up is None else min(own, up)

    def charge(self, n: int) -> None:
        left = self.time_left()
        if left is not None and left <= 0:
            raise BudgetExhausted("time budget exhausted")
        with self._lock:
            rem = self.remaining
            if rem is not None and n > rem:
                raise BudgetExhausted(f"query budget exhausted ({self.used} used)")
            self.used += n
        if self.parent is not None:
            self.parent.charge(n)

    def child(self, queries: int | None = None, seconds: float | None = None) -> QueryBudget:
        return QueryBudget(queries, seconds, parent=self)


@runtime_checkable
class Target(Protocol):
    """A model under assessment. Every query goes through ``predict_proba`` and is charged to
    ``budget`` (black-box attacks see nothing else)."""

    name: str
    spec: InputSpec
    classes: tuple[str, ...]
    budget: QueryBudget

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, n_classes) for a batch shaped (n, *spec.shape) or (n, d)."""
        ...

    def torch_module(self) -> Any | None:
        """A differentiable ``torch.nn.Module`` returning logits (white box), else None."""
        ...

    def sklearn_estimator(self) -> Any | None:
        """A fitted scikit-learn estimator (white box for ART's sklearn wrappers), else None."""
        ...


class Trainer(Protocol):
    """Fits a fresh model on (x, y) and returns its predict_proba."""

    def __call__(
        self, x: np.ndarray, y: np.ndarray, /, **options: Any
    ) -> Callable[[np.ndarray], np.ndarray]: ...


@dataclass
class AssessData:
    """What attacks need besides the target. All optional except the evaluation set.

    ``x_eval``/``y_eval``: labelled inputs the attacks start from (never training data).
    ``x_members``/``x_nonmembers``: known training members and non-members (membership
    inference). ``x_pool``: unlabelled realistic inputs an attacker could collect (extraction
    seed data, shadow models). ``sensitive_feature``: index of the feature attribute inference
    tries to recover. ``trainer``: fits a fresh model of the target's kind on (x, y) and returns
    a predict_proba callable (poisoning sensitivity); keyword options (epochs, batch_size ...)
    pass through to trainers that take them (the CNN's). ``extra``: scenario specifics (image
    ``boxes_eval`` of the prohibited object, ``positive_class`` index ...).
    """

    x_eval: np.ndarray
    y_eval: np.ndarray
    x_members: np.ndarray | None = None
    y_members: np.ndarray | None = None
    x_nonmembers: np.ndarray | None = None
    y_nonmembers: np.ndarray | None = None
    x_pool: np.ndarray | None = None
    sensitive_feature: int | None = None
    trainer: Trainer | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttackContext:
    """Everything an attack run gets. ``survivors`` are indices into ``data.x_eval`` that the
    target still classifies correctly and no earlier evasion attack has broken: cheap attacks run
    first and expensive ones only on what survived (an attack may narrow it)."""

    target: Target
    data: AssessData
    budget: QueryBudget
    params: dict[str, Any]
    seed: int
    out_dir: Path  # where this attack may write plots and artefacts
    progress: Progress
    survivors: np.ndarray

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


# "error": the attack raised; the runner records it (one line) and the run goes on.
Verdict = Literal["validated", "refuted", "inconclusive", "skipped", "error"]


@dataclass
class AttackResult:
    """What one attack measured. ``metrics`` use the evidence keys of the assess issue where
    they apply (clean_accuracy, adversarial_accuracy, epsilon, success_rate, queries, agreement,
    auc, tpr_at_fpr, hide_rate, patch_area, advantage) plus attack-specific ones; ``curves`` hold
    the series behind the plots; ``plots`` are file names under the attack's ``out_dir``."""

    attack_id: str
    verdict: Verdict
    summary: str
    metrics: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    queries: int = 0
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    survivors: list[int] | None = None  # new survivor set for later attacks, if narrowed

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttackResult:
        return cls(**d)


class AttackFn(Protocol):
    def __call__(self, ctx: AttackContext) -> AttackResult: ...
