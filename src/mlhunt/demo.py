"""``mlhunt demo``: the whole product on the seed scenarios, from nothing.

For each scenario folder under ``examples/`` with a project file (``mlhunt.yaml``), ``mlhunt
run`` builds the scenario (data, database, model; cached after the first time), starts its REST
API on 127.0.0.1, sends a simulated day of benign and attacker traffic through real HTTP, stops
the API, attacks the model, hunts the logs, scans the deployment and links it all. The reports
land in ``OUT/<scenario>/`` and ``OUT/index.html`` links them. While the first scenario runs,
a background process builds the models the later ones use (:mod:`mlhunt.scenarios.prebuild`):
a run keeps about one core busy, the builds fill the other.

``quick`` is the variant the test suite runs: a fifth of the traffic, the cheap attacks only and
small query budgets, no time budget (so the same verdicts on a busy machine); the same code path
end to end. The poisoning attacks retrain the model (cost 3 and 4): a model entry that names only
those (the training job's) is left out of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlhunt.errors import InputError

QUICK_SCALE = 0.2
QUICK_MAX_COST = 2
QUICK_MAX_QUERIES = 15_000
# The load test: 3 s at its declared rate (20/s), far below what the APIs serve.
QUICK_LOAD_REQUESTS = 60


def scenarios(examples: Path) -> list[Path]:
    """Scenario folders under ``examples`` (those holding a project file), sorted by name."""
    if not examples.is_dir():
        raise InputError("examples folder not found", file=str(examples))
    return sorted(p.parent for p in examples.glob("*/mlhunt.yaml"))


def _demo_project(folder: Path, out: Path, quick: bool) -> Any:
    """The scenario's project, with its outputs redirected under ``out``."""
    from mlhunt.assess.catalog import default_attacks
    from mlhunt.run.project import load_project

    project = load_project(folder / "mlhunt.yaml")
    project.output = str(out.resolve())
    for log in project.logs:
        if log.simulate and quick:
            log.scale = QUICK_SCALE
    if quick:
        catalog = default_attacks()
        cheap = [a.id for a in catalog if a.spec.cost <= QUICK_MAX_COST]
        # A model entry that names its attacks (the training job's poisoning attacks, which
        # retrain the model) keeps only its cheap ones, and is left out when none is cheap.
        project.models = [m for m in project.models if not m.attacks or _cheap(m.attacks, catalog)]
        for model in project.models:
            model.attacks = _cheap(model.attacks, catalog) if model.attacks else cheap
            model.max_queries = min(model.max_queries or QUICK_MAX_QUERIES, QUICK_MAX_QUERIES)
            # bounded by queries and cheap attacks only: a wall-clock budget would make the
            # verdicts depend on how busy the machine is (the test suite runs this variant)
            model.max_seconds = None
            model.load_test.requests = min(model.load_test.requests, QUICK_LOAD_REQUESTS)
    return project


def _cheap(attacks: list[str], catalog: Any) -> list[str]:
    """Those of ``attacks`` (ids, short names or kinds) that name cheap attacks only."""
    from mlhunt.assess.runner import resolve

    cost = {a.id: a.spec.cost for a in catalog}
    return [a for a in attacks if all(cost[i] <= QUICK_MAX_COST for i in resolve(catalog, a))]


def run_demo(
    examples: Path,
    out_dir: Path,
    *,
    only: str | None = None,
    quick: bool = False,
    progress: Callable[[str], None] = lambda _m: None,
) -> list[Path]:
    """Run every scenario's project (or ``only`` one); return the files written."""
    from mlhunt._io import write_atomic
    from mlhunt.report.run_index import render_run_index
    from mlhunt.scenarios.prebuild import building

    found = scenarios(examples)
    if only is not None:
        found = [p for p in found if p.name == only]
        if not found:
            names = ", ".join(p.name for p in scenarios(examples))
            raise InputError(f"unknown scenario {only!r} (available: {names})")
    written: list[Path] = []
    runs: list[tuple[dict[str, Any], str]] = []
    projects = [_demo_project(folder, out_dir / folder.name, quick) for folder in found]
    # The first scenario's models are built by its run, now; those the later ones use, in a
    # background process meanwhile (the runs keep one core busy most of the time).
    first = set(built_scenarios(projects[0])) if projects else set()
    later = [s for p in projects[1:] for s in built_scenarios(p) if s not in first]
    with building(later):
        for folder, project in zip(found, projects, strict=True):
            written += _run_one(folder.name, project, runs, progress)
    index = out_dir / "index.html"
    write_atomic(index, render_run_index(runs, title="mlhunt demo: the seed scenarios"))
    written.append(index)
    return written


def built_scenarios(project: Any) -> list[str]:
    """The built-in scenarios (built for seed 0, as :mod:`mlhunt.run.api` uses them) that a
    project's models, simulated logs and scans use, in the order the run needs them."""
    from mlhunt.scenarios import names

    known = set(names())
    used = [c.scenario for c in project.scan]
    used += [c.simulate for c in project.logs]
    used += [m.scenario for m in project.models]
    return list(dict.fromkeys(u for u in used if u in known))


def _run_one(
    name: str,
    project: Any,
    runs: list[tuple[dict[str, Any], str]],
    progress: Callable[[str], None],
) -> list[Path]:
    """Run one scenario's project and write its outputs; returns the files written."""
    from mlhunt.report.run_view import evidence_line
    from mlhunt.run.api import run_project, write_outputs

    def step(msg: str, name: str = name) -> None:
        progress(f"[{name}] {msg}")

    result = run_project(project, progress=step)
    files = write_outputs(result)
    runs.append((result.document, f"{name}/report.html"))
    by = result.document["summary"].get("by_validation", {})
    step("verdicts: " + ", ".join(f"{v} {k}" for k, v in by.items() if v))
    if line := evidence_line(result.document["summary"]):
        step(line)
    report = next((f for f in files if f.name == "report.html"), None)
    if report is not None:  # open it now: the other scenarios take minutes more
        step(f"report: {report}")
    return files
