"""The interface every built-in scenario honours (one uniform interface, like sklearn's).

A scenario *builds* into a folder (data, database, trained model, ``scenario.json`` metadata)
deterministically for a seed, and *loads* from that folder into a :class:`LoadedScenario` that
predicts, describes its inputs, and holds its train/holdout split. Servers (``server.py``),
the traffic simulator and ``assess`` only ever use this interface.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

Progress = Callable[[str], None]


def quiet(_msg: str) -> None:
    pass


@dataclass(frozen=True)
class InputSpec:
    """What the model reads.

    Tabular: one entry per feature in ``names`` with bounds, whether it is an integer, and
    whether an attacker can change it (immutable features, such as age or card country, are never
    perturbed by attacks). Images: ``shape`` is (channels, height, width), values in [0, 1].
    Recommenders: ``names`` are the components of the logged user vector (the input is a user or
    a session, not a feature vector; classifier attacks never apply).
    """

    kind: Literal["tabular", "image", "recommender"]
    names: tuple[str, ...] = ()
    lower: tuple[float, ...] = ()
    upper: tuple[float, ...] = ()
    integer: tuple[bool, ...] = ()
    mutable: tuple[bool, ...] = ()
    shape: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.kind == "image" else len(self.names)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass
class BuiltScenario:
    """What ``build`` produced: where, from which seed, and the model's measured quality."""

    name: str
    directory: Path
    seed: int
    metrics: dict[str, float]
    files: dict[str, str] = field(default_factory=dict)  # role -> path relative to directory
    seconds: float = 0.0

    def save(self) -> Path:
        return self.save_to(self.directory)

    def save_to(self, directory: Path) -> Path:
        path = directory / "scenario.json"
        data = {
            "name": self.name,
            "seed": self.seed,
            "metrics": self.metrics,
            "files": self.files,
            "seconds": self.seconds,
        }
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: Path) -> BuiltScenario:
        data = json.loads((directory / "scenario.json").read_text(encoding="utf-8"))
        return cls(directory=directory, **data)


class LoadedScenario(Protocol):
    """A built scenario, loaded and ready to answer queries."""

    name: str
    model_name: str
    spec: InputSpec
    classes: tuple[str, ...]
    # Train/holdout split as used for training (membership inference is scored against it).
    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch (n, *spec.shape or n_features), float64 rows sum to 1."""
        ...

    def log_vector(self, x: np.ndarray) -> list[float]:
        """The vector the deployment logs for one input (images: a downsampled proxy)."""
        ...

    def sample_benign(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Fresh, realistic inputs as legitimate clients would send (not from the training set)."""
        ...


class Scenario(Protocol):
    """A built-in scenario: a name, a build step and a loader. It may also name ``artifact``:
    the file its build publishes in the format its system description declares (a joblib,
    ``torch.save`` or skops file), which ``run`` scans and never loads."""

    name: str
    description: str

    def build(
        self, directory: Path, *, seed: int = 0, progress: Progress = quiet, **options: Any
    ) -> BuiltScenario: ...

    def load(self, directory: Path) -> LoadedScenario: ...


class TabularLoaded:
    """What every tabular scenario's loaded model shares: batch checks, the logged vector, the
    request body, and the train/holdout split read from an ``.npz`` (no pickles)."""

    spec: InputSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray

    def _load_split(self, path: Path) -> dict[str, np.ndarray]:
        """Set x/y train/holdout from ``path`` (arrays x, y, is_train); returns every array."""
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        is_train = arrays["is_train"].astype(bool)
        x, y = arrays["x"], arrays["y"]
        self.x_train, self.y_train = x[is_train], y[is_train]
        self.x_holdout, self.y_holdout = x[~is_train], y[~is_train]
        arrays["is_train"] = is_train
        return arrays

    def _batch(self, x: np.ndarray) -> np.ndarray:
        """``x`` as a float64 (n, n_features) batch, or ValueError."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        n = len(self.spec.names)
        if x.ndim != 2 or x.shape[1] != n:
            raise ValueError(f"expected (n, {n}) features, got {x.shape}")
        return x

    def log_vector(self, x: np.ndarray) -> list[float]:
        return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]

    def features(self, x: np.ndarray) -> dict[str, float]:
        """One feature vector as the ``features`` object of a ``POST /predict`` body."""
        values = np.asarray(x).ravel()
        return {n: float(v) for n, v in zip(self.spec.names, values, strict=True)}
