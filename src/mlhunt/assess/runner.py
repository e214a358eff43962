"""The budgeted, resumable run plan.

A plan is the catalog's attacks that apply to the target's input kind, cheapest first; an
attack whose requirement is missing stays in the plan as *skipped* with the reason. The global
query budget is shared out so that every planned attack gets a fair part (its declared need when
all needs fit, else the same fraction of each need: see :func:`query_shares`), the time budget
by cost; what one attack leaves unused flows to the next. Each result is written atomically
under the state folder as soon as it exists, keyed by attack id + parameters + seed + target,
so ``resume`` redoes only the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlhunt._units import parse_assignment
from mlhunt.assess.base import (
    AssessData,
    AttackContext,
    AttackResult,
    BudgetExhausted,
    QueryBudget,
    Target,
)
from mlhunt.assess.catalog import AttackKind, CatalogAttack, Requirement
from mlhunt.errors import InputError

PREFIX = "MLH-ASSESS-"


@dataclass
class PlanItem:
    attack: CatalogAttack
    params: dict[str, Any]
    skip_reason: str | None = None

    @property
    def id(self) -> str:
        return self.attack.id


def short_name(attack_id: str) -> str:
    return attack_id.removeprefix(PREFIX).lower()


def _matches(attack: CatalogAttack, name: str) -> bool:
    n = name.strip().lower()
    return n in (attack.id.lower(), short_name(attack.id), attack.spec.kind.value)


def resolve(catalog: Sequence[CatalogAttack], name: str, what: str = "--attack") -> list[str]:
    """Attack ids a name means: a full id, a short name (``fgsm``) or a kind (``evasion``)."""
    ids = [a.id for a in catalog if _matches(a, name)]
    if not ids:
        known = ", ".join(short_name(a.id) for a in catalog) or "none"
        raise InputError(f"{what}: no attack {name!r} (known: {known})")
    return ids


def parse_params(
    items: Iterable[str], catalog: Sequence[CatalogAttack]
) -> dict[str, dict[str, Any]]:
    """``ID.key=value`` overrides (value parsed as YAML: numbers, lists, booleans)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        lhs, parsed = parse_assignment(item)
        name, _, key = lhs.rpartition(".")
        for attack_id in resolve(catalog, name, "--param"):
            spec = next(a.spec for a in catalog if a.id == attack_id)
            if key not in spec.params:  # a typo would otherwise be silently ignored
                raise InputError(
                    f"--param: {attack_id} has no parameter {key!r} "
                    f"(known: {', '.join(spec.params) or 'none'})"
                )
            out.setdefault(attack_id, {})[key] = parsed
    return out


def missing_requirement(req: Requirement, target: Target, data: AssessData) -> str | None:
    checks: dict[Requirement, Callable[[], bool]] = {
        Requirement.WHITE_BOX: lambda: (
            target.torch_module() is not None or target.sklearn_estimator() is not None
        ),
        Requirement.TORCH: lambda: target.torch_module() is not None,
        Requirement.MEMBERS: lambda: data.x_members is not None and data.x_nonmembers is not None,
        Requirement.POOL: lambda: data.x_pool is not None,
        Requirement.SENSITIVE_FEATURE: lambda: data.sensitive_feature is not None,
        Requirement.TRAINER: lambda: data.trainer is not None,
        Requirement.BOXES: lambda: "boxes_eval" in data.extra,
    }
    reasons = {
        Requirement.WHITE_BOX: "needs white-box access (a model file or module, not an API)",
        Requirement.TORCH: "needs a PyTorch module",
        Requirement.MEMBERS: "needs known members and non-members (x_members, x_nonmembers)",
        Requirement.POOL: "needs a pool of attacker inputs (x_pool)",
        Requirement.SENSITIVE_FEATURE: "needs a sensitive feature (spec: sensitive)",
        Requirement.TRAINER: "needs the model's trainer (poisoning)",
        Requirement.BOXES: "needs object boxes for the evaluation images",
    }
    return None if checks[req]() else reasons[req]


def make_plan(
    catalog: Sequence[CatalogAttack],
    target: Target,
    data: AssessData,
    *,
    select: Iterable[str] = (),
    params: dict[str, dict[str, Any]] | None = None,
) -> list[PlanItem]:
    """Attacks for this target, cheapest first. Attacks for another input kind are left out
    unless named with ``select`` (then they are skipped, with the reason)."""
    chosen: set[str] = {i for name in select for i in resolve(catalog, name)}
    kind = target.spec.kind
    plan: list[PlanItem] = []
    for attack in sorted(catalog, key=lambda a: (a.spec.cost, a.id)):
        spec = attack.spec
        if chosen and attack.id not in chosen:
            continue
        item = PlanItem(attack, {**spec.params, **(params or {}).get(attack.id, {})})
        if kind not in spec.applies_to:
            if not chosen:
                continue
            item.skip_reason = f"applies to {', '.join(spec.applies_to)} inputs, not {kind}"
        else:
            item.skip_reason = next(
                (r for r in (missing_requirement(q, target, data) for q in spec.requires) if r),
                None,
            )
        plan.append(item)
    return plan


class Observer(Protocol):
    """What the runner reports while it works (the CLI draws bars; a library caller logs)."""

    def begin(self, plan: list[PlanItem]) -> None: ...
    def start(self, item: PlanItem) -> None: ...
    def message(self, text: str) -> None: ...
    def done(self, result: AttackResult, resumed: bool) -> None: ...


@dataclass
class RunOptions:
    max_queries: int | None = None
    max_seconds: float | None = None
    seed: int = 0
    resume: bool = False
    debug: bool = False


@dataclass
class RunState:
    """What a run produced: results in plan order, and the baseline it started from."""

    results: list[AttackResult] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    budget: QueryBudget = field(default_factory=QueryBudget)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "target"


def attack_seed(seed: int, attack_id: str) -> int:
    """Per attack, independent of which other attacks run (deterministic)."""
    return (seed * 1_000_003 + int(hashlib.sha256(attack_id.encode()).hexdigest()[:8], 16)) % (
        2**31
    )


def result_key(attack_id: str, params: dict[str, Any], seed: int, target: str) -> str:
    blob = json.dumps([attack_id, params, seed, target], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def write_json_atomic(path: Path, data: Any) -> None:
    """Temp file in the same folder, fsync, rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=_jsonable)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _load_finished(path: Path, key: str) -> AttackResult | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("key") != key or record["result"]["verdict"] == "error":
            return None
        return AttackResult.from_dict(record["result"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or from an older layout: run it again


def _baseline(target: Target, data: AssessData, budget: QueryBudget) -> dict[str, Any]:
    """Clean predictions on the evaluation set: survivors are the rows classified correctly."""
    target.budget = budget
    try:
        pred = np.argmax(target.predict_proba(data.x_eval), axis=1)
    except BudgetExhausted:
        return {"survivors": list(range(len(data.x_eval))), "clean_accuracy": None, "queries": 0}
    except (KeyboardInterrupt, SystemExit, InputError):
        raise
    except Exception as exc:  # e.g. an API that is down: the attacks record it, the run goes on
        line = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        return {
            "survivors": list(range(len(data.x_eval))),
            "clean_accuracy": None,
            "queries": budget.used,
            "error": line,
        }
    ok = pred == np.asarray(data.y_eval)
    return {
        "survivors": [int(i) for i in np.flatnonzero(ok)],
        "clean_accuracy": float(ok.mean()),
        "queries": len(data.x_eval),
    }


def _error_result(item: PlanItem, exc: BaseException, debug: bool) -> AttackResult:
    line = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
    metrics: dict[str, Any] = {"error": line}
    if debug:
        metrics["traceback"] = traceback.format_exc()
    return AttackResult(
        item.id, "error", f"the attack failed: {line}", metrics=metrics, params=item.params
    )


def _http_stats(target: Target) -> dict[str, Any] | None:
    stats = getattr(target, "stats", None)
    return stats.to_dict() if stats is not None and hasattr(stats, "to_dict") else None


def _kinds(faults: dict[str, int]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(faults.items()) if n) or "none"


def run_plan(
    plan: list[PlanItem],
    target: Target,
    data: AssessData,
    state_dir: Path,
    options: RunOptions,
    observer: Observer,
) -> RunState:
    """Run every planned attack (skips recorded), saving each result as it finishes."""
    state = RunState(budget=QueryBudget(options.max_queries, options.max_seconds))
    state_dir.mkdir(parents=True, exist_ok=True)
    observer.begin(plan)
    keys = {it.id: result_key(it.id, it.params, options.seed, target.name) for it in plan}
    finished = {
        it.id: r
        for it in plan
        if options.resume and (r := _load_finished(state_dir / f"{it.id}.json", keys[it.id]))
    }
    survivors = np.arange(len(data.x_eval))
    if any(it.attack.spec.kind == AttackKind.EVASION and it.skip_reason is None for it in plan):
        base_path = state_dir / "baseline.json"
        base_key = result_key("baseline", {"n": len(data.x_eval)}, options.seed, target.name)
        saved = json.loads(base_path.read_text()) if options.resume and base_path.is_file() else {}
        if saved.get("key") == base_key:
            state.baseline = saved["baseline"]
        else:
            observer.message("baseline: clean predictions on the evaluation set")
            state.baseline = _baseline(target, data, state.budget.child())
            if "error" not in state.baseline:  # a failed baseline is redone on resume
                write_json_atomic(base_path, {"key": base_key, "baseline": state.baseline})
        survivors = np.asarray(state.baseline["survivors"], dtype=np.int64)

    pending = [it for it in plan if it.skip_reason is None and it.id not in finished]
    for item in plan:
        if item.skip_reason is not None:
            result = AttackResult(item.id, "skipped", item.skip_reason, params=item.params)
            state.results.append(result)
            observer.done(result, False)
            continue
        if item.id in finished:
            result = finished[item.id]
            state.resumed.append(item.id)
            observer.done(result, True)
        else:
            result = _run_one(
                item, target, data, state, pending, survivors, state_dir, options, observer
            )
            pending.remove(item)
            if result.verdict != "skipped":  # a skip for want of budget is redone on resume
                write_json_atomic(
                    state_dir / f"{item.id}.json",
                    {"key": keys[item.id], "result": result.to_dict()},
                )
            observer.done(result, False)
        state.results.append(result)
        if item.attack.spec.kind == AttackKind.EVASION and result.survivors is not None:
            survivors = np.asarray(result.survivors, dtype=np.int64)
    return state


def _share(total: float | None, item: PlanItem, pending: list[PlanItem]) -> float | None:
    """Cost-weighted part of ``total`` (seconds) for ``item`` among the pending attacks."""
    if total is None:
        return None
    weight = sum(it.attack.spec.cost for it in pending) or 1
    return max(0.0, total) * item.attack.spec.cost / weight


def query_shares(total: int, pending: Sequence[PlanItem]) -> dict[str, float]:
    """Each pending attack's fair part of ``total`` queries.

    An attack may declare the queries it needs (``queries`` in its YAML). When the declared
    needs fit, each such attack gets its need and the others share the rest by cost (with none,
    the surplus goes to all by cost). When they do not fit, the others get their cost-weighted
    part and the declared ones share what is left in proportion to their needs: each gets the
    same fraction of what it needs, so no attack can take the budget of the ones after it. What
    an attack leaves unused still flows on (shares are recomputed as each attack starts).
    """
    if not pending:
        return {}
    total = max(0, total)
    cost = {it.id: float(it.attack.spec.cost) for it in pending}
    need = {it.id: float(q) for it in pending if (q := it.attack.spec.queries) is not None}
    others = [i for i in cost if i not in need]
    wanted = sum(need.values())
    if wanted <= total:
        rest = total - wanted
        takers = others or list(cost)
        weight = sum(cost[i] for i in takers)
        return {
            i: need.get(i, 0.0) + (rest * cost[i] / weight if i in takers else 0.0) for i in cost
        }
    out = {i: total * cost[i] / sum(cost.values()) for i in others}
    left = total - sum(out.values())
    out.update({i: left * n / wanted for i, n in need.items()})
    return out


def degenerate(result: AttackResult, attack: CatalogAttack) -> str | None:
    """Why a validated or refuted result measured nothing, else None: the attack said so
    (``metrics["degenerate"]``), or its impact metric is missing or not a finite number."""
    if result.verdict not in ("validated", "refuted"):
        return None
    said = result.metrics.get("degenerate")
    if said:
        return str(said)
    metric = attack.spec.severity.metric
    value = result.metrics.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return f"no {metric} measured"
    if not np.isfinite(float(value)):
        return f"{metric} is {value}"
    return None


def _run_one(
    item: PlanItem,
    target: Target,
    data: AssessData,
    state: RunState,
    pending: list[PlanItem],
    survivors: np.ndarray,
    state_dir: Path,
    options: RunOptions,
    observer: Observer,
) -> AttackResult:
    glob = state.budget
    left = glob.time_left()
    if (left is not None and left <= 0) or glob.remaining == 0:
        what = "time" if left is not None and left <= 0 else "query"
        return AttackResult(
            item.id, "skipped", f"{what} budget exhausted before it started", params=item.params
        )
    remaining = glob.remaining
    queries = None if remaining is None else query_shares(remaining, pending)[item.id]
    child = glob.child(None if queries is None else int(queries), _share(left, item, pending))
    target.budget = child
    ctx = AttackContext(
        target=target,
        data=data,
        budget=child,
        params=dict(item.params),
        seed=attack_seed(options.seed, item.id),
        out_dir=state_dir / item.id,
        progress=observer.message,
        survivors=survivors.copy(),
    )
    observer.start(item)
    before = _http_stats(target)
    start = time.monotonic()
    try:
        result = item.attack.load()(ctx)
    except BudgetExhausted as exc:  # the attack should catch it; recorded if it escapes
        result = AttackResult(item.id, "inconclusive", f"budget exhausted: {exc}")
    except (KeyboardInterrupt, SystemExit, InputError):
        raise
    except Exception as exc:
        result = _error_result(item, exc, options.debug)
    result.attack_id = item.id
    reason = degenerate(result, item.attack)
    if reason is not None:
        # An attack that could not measure neither proves nor refutes its threat.
        result.summary = f"inconclusive, the measurement is degenerate ({reason}): {result.summary}"
        result.verdict = "inconclusive"
        result.survivors = None
    result.seconds = round(time.monotonic() - start, 3)
    result.queries = child.used
    result.params = item.params
    after = _http_stats(target)
    if before is not None and after is not None:
        delta = {k: after[k] - before[k] for k in ("requests", "retries", "failures", "throttled")}
        faults = {k: n - before["errors"].get(k, 0) for k, n in after["errors"].items()}
        result.metrics.setdefault("failed_queries", delta["failures"])
        result.metrics["http"] = {
            **delta,
            "label_only": after["label_only"],
            "faults": {k: n for k, n in sorted(faults.items()) if n},
        }
        share = after.get("max_failed_share")
        if (
            result.verdict in ("validated", "refuted", "inconclusive")
            and share is not None
            and delta["failures"] > share * max(1, child.used)
        ):
            # The failed rows were answered with uniform noise: the measurement is not the
            # model's, so it neither validates nor refutes the threat.
            result.verdict = "error"
            result.summary = (
                f"the target failed {delta['failures']} of {child.used} queries "
                f"after retries ({_kinds(faults)}): {result.summary}"
            )
            result.metrics["error"] = "too many failed queries"
            result.survivors = None  # not a measurement: later attacks keep the old set
    # Plain JSON types (attacks may hand back NumPy scalars and arrays): a fresh result then
    # reads exactly like a resumed one.
    return AttackResult.from_dict(json.loads(json.dumps(result.to_dict(), default=_jsonable)))
