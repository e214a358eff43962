"""Built-in scenarios: small but real ML deployments to attack and hunt (a practice range).

Each scenario is one module honouring :class:`mlhunt.scenarios.base.Scenario`, registered here
by name and imported only when used (they pull in scikit-learn or PyTorch).
"""

from __future__ import annotations

import fcntl
import importlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlhunt.errors import InputError
from mlhunt.scenarios.base import BuiltScenario, LoadedScenario, Progress, Scenario

_REGISTRY: dict[str, str] = {
    "loan-approval": "mlhunt.scenarios.loan:LoanApproval",
    "image-moderation": "mlhunt.scenarios.image:ImageModeration",
    "fraud-detection": "mlhunt.scenarios.fraud:FraudDetection",
    "clickstream-recommender": "mlhunt.scenarios.clickstream:ClickstreamRecommender",
}


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> Scenario:
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown scenario {name!r} (available: {', '.join(_REGISTRY)})") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)()  # type: ignore[no-any-return]


def cache_dir() -> Path:
    """Where built scenarios live: $MLHUNT_CACHE, else ~/.cache/mlhunt."""
    root = os.environ.get("MLHUNT_CACHE") or Path.home() / ".cache" / "mlhunt"
    return Path(root) / "scenarios"


def build(
    name: str,
    *,
    seed: int = 0,
    directory: Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
    options: dict[str, Any] | None = None,
) -> BuiltScenario:
    """Build ``name`` for ``seed`` unless already built there (or ``force``); nothing loaded.

    ``options`` go to the scenario's ``build`` (e.g. ``db_url`` for loan-approval).
    """
    scenario = get(name)
    directory = directory or cache_dir() / f"{name}-seed{seed}"
    directory.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time per folder (parallel test workers, two terminals, the demo's
    # background builder): the others wait on the lock, then find the finished build instead
    # of training the same model again.
    with (directory.parent / f".{directory.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or not is_built(name, seed=seed, directory=directory):
            # Built aside and renamed into place: an interrupted build leaves nothing that
            # looks finished.
            tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
            try:
                kwargs: dict[str, Any] = dict(options or {})
                if progress is not None:
                    kwargs["progress"] = progress
                built = scenario.build(tmp, seed=seed, **kwargs)
                built.directory = directory
                built.save_to(tmp)
                shutil.rmtree(directory, ignore_errors=True)
                tmp.rename(directory)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return BuiltScenario.read(directory)


def is_built(name: str, *, seed: int = 0, directory: Path | None = None) -> bool:
    """Whether a finished build of ``name`` is there (a build from before the scenario
    published its declared artifact counts as not built: it is rebuilt)."""
    directory = directory or cache_dir() / f"{name}-seed{seed}"
    artifact = getattr(get(name), "artifact", None)
    if artifact is not None and not (directory / artifact).is_file():
        return False
    return (directory / "scenario.json").is_file()


def ensure_built(
    name: str,
    *,
    seed: int = 0,
    directory: Path | None = None,
    progress: Progress | None = None,
    force: bool = False,
    options: dict[str, Any] | None = None,
) -> tuple[BuiltScenario, LoadedScenario]:
    """:func:`build` ``name`` if needed, then load it.

    ``options`` go to the scenario's ``build`` (e.g. ``db_url`` for loan-approval).
    """
    built = build(
        name, seed=seed, directory=directory, progress=progress, force=force, options=options
    )
    return built, get(name).load(built.directory)


def artifact_path(name: str, *, seed: int = 0) -> Path:
    """The model artifact scenario ``name`` publishes in the format its system description
    declares (``Scenario.artifact``), built first if needed: for ``scan``, which never loads
    it."""
    built = build(name, seed=seed)  # the file is all a scan needs: nothing loaded
    artifact = getattr(get(name), "artifact", None)
    if artifact is None:
        raise InputError(f"scenario {name!r} publishes no model artifact")
    return built.directory / str(artifact)
