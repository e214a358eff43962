"""Targets described once: a scikit-learn file, a PyTorch factory + state dict, a Python
callable, plus the input spec (``--spec``) and the data (``--data``) for non-scenario targets.

Every target charges its budget per row *before* the model sees the rows (``QueryBudget.charge``
raises first), so a budget is never overrun. The HTTP target lives in :mod:`mlhunt.assess.http`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlhunt.assess.base import AssessData, QueryBudget
from mlhunt.errors import InputError
from mlhunt.scenarios.base import InputSpec

# Modules whose types a skops file may hold without --trust: plain estimators and arrays.
SAFE_SKOPS_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureSpec(_Strict):
    name: str
    lower: float | None = None
    upper: float | None = None
    integer: bool = False
    mutable: bool = Field(True, description="False: attacks never perturb this feature.")


class SpecFile(_Strict):
    """The ``--spec`` YAML: what the model reads and what an attacker may change."""

    kind: Literal["tabular", "image"]
    features: list[FeatureSpec | str] = Field(default_factory=list)
    shape: list[int] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list)
    sensitive: str | None = Field(None, description="Feature attribute inference recovers.")


def _where(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"] if not str(p).startswith(("FeatureSpec", "str")))


def load_spec(
    path: Path, x: np.ndarray | None = None
) -> tuple[InputSpec, tuple[str, ...], str | None]:
    """(spec, classes, sensitive feature) from a spec YAML. Missing tabular bounds come from the
    data ``x`` when given (its observed range), else they are an error."""
    from mlhunt.system.loader import load_yaml_file

    raw = load_yaml_file(path)
    try:
        spec = SpecFile.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise InputError(exc.errors()[0]["msg"], file=str(path), field=_where(exc)) from None
    if spec.kind == "image":
        if len(spec.shape) != 3 or min(spec.shape) < 1:
            raise InputError("expected [channels, height, width]", file=str(path), field="shape")
        return InputSpec("image", shape=tuple(spec.shape)), tuple(spec.classes), None
    if not spec.features:
        raise InputError("a tabular spec needs its features", file=str(path), field="features")
    feats = [FeatureSpec(name=f) if isinstance(f, str) else f for f in spec.features]
    if x is not None and (x.ndim != 2 or x.shape[1] != len(feats)):
        raise InputError(
            f"{len(feats)} features, but the data has shape {list(x.shape)}",
            file=str(path),
            field="features",
        )
    lower, upper = [], []
    for i, f in enumerate(feats):
        for bound, out, pick in (("lower", lower, np.min), ("upper", upper, np.max)):
            value = getattr(f, bound)
            if value is None:
                if x is None:
                    raise InputError(
                        "missing (or pass --data to take it from the data)",
                        file=str(path),
                        field=f"features.{i}.{bound}",
                    )
                value = float(pick(x[:, i]))
            out.append(float(value))
        if lower[-1] > upper[-1]:
            raise InputError("lower is above upper", file=str(path), field=f"features.{i}")
    names = [f.name for f in feats]
    if spec.sensitive is not None and spec.sensitive not in names:
        raise InputError(f"not a feature: {spec.sensitive!r}", file=str(path), field="sensitive")
    return (
        InputSpec(
            "tabular",
            names=tuple(names),
            lower=tuple(lower),
            upper=tuple(upper),
            integer=tuple(f.integer for f in feats),
            mutable=tuple(f.mutable for f in feats),
        ),
        tuple(spec.classes),
        spec.sensitive,
    )


def spec_from_data(x: np.ndarray, names: list[str] | None = None) -> InputSpec:
    """A spec guessed from the data when no ``--spec`` is given: images for (n, C, H, W), else
    tabular with the observed ranges, integers where every value is whole, all mutable."""
    if x.ndim == 4:
        return InputSpec("image", shape=tuple(int(s) for s in x.shape[1:]))
    if x.ndim != 2:
        raise InputError(f"x: expected (n, features) or (n, C, H, W), got {list(x.shape)}")
    d = x.shape[1]
    return InputSpec(
        "tabular",
        names=tuple(names or [f"x{i}" for i in range(d)]),
        lower=tuple(float(v) for v in x.min(axis=0)),
        upper=tuple(float(v) for v in x.max(axis=0)),
        integer=tuple(bool(np.all(np.mod(x[:, i], 1) == 0)) for i in range(d)),
        mutable=(True,) * d,
    )


_ARRAYS = ("x_members", "y_members", "x_nonmembers", "y_nonmembers", "x_pool")


def load_data(path: Path) -> AssessData:
    """``--data FILE.npz``: ``x``, ``y`` (evaluation set) and optional ``x_members``/
    ``y_members``, ``x_nonmembers``/``y_nonmembers``, ``x_pool``. Never unpickles."""
    from mlhunt._arrays import load_arrays, numeric

    arrays = load_arrays(path, "--data")
    if "" in arrays:
        raise InputError("expected an .npz with arrays x and y, got one .npy array", file=str(path))
    for key in ("x", "y"):
        if key not in arrays:
            raise InputError("missing array (expected x and y)", file=str(path), field=key)
    unknown = sorted(set(arrays) - {"x", "y", *_ARRAYS})
    if unknown:
        raise InputError(
            f"unknown arrays {unknown} (known: x, y, {', '.join(_ARRAYS)})", file=str(path)
        )
    # every array must hold real numbers (y too: it is cast to int class labels below)
    checked = {k: numeric(v, k, path) for k, v in arrays.items()}
    x, y = checked["x"], checked["y"]
    if len(x) != len(y) or len(x) == 0:
        raise InputError(
            f"x and y must be non-empty and of equal length ({len(x)} vs {len(y)})", file=str(path)
        )
    for k, v in checked.items():
        if not np.all(np.isfinite(v)):
            raise InputError(f"{k} holds NaN or infinite values", file=str(path), field=k)
    extra = {k: arrays[k] for k in _ARRAYS if k in arrays}
    for k in ("x_members", "x_nonmembers"):
        yk = "y" + k[1:]
        if (k in extra) != (yk in extra):
            raise InputError(f"{k} and {yk} go together", file=str(path), field=k)
    return AssessData(x_eval=x, y_eval=y.astype(np.int64), **extra)


def resolve_entry(entry: str, what: str) -> Any:
    """``module:name`` imported (runs that module's code: the user named it)."""
    module, sep, name = entry.partition(":")
    if not sep or not module or not name:
        raise InputError(f"{what}: expected module:function, got {entry!r}")
    try:
        obj = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise InputError(f"{what}: cannot import {module!r}: {exc}") from None
    except AttributeError:
        raise InputError(f"{what}: {module!r} has no {name!r}") from None
    if not callable(obj):
        raise InputError(f"{what}: {entry!r} is not callable")
    return obj


class _Budgeted:
    """Shared by the local targets: charge the budget, then ask the model."""

    name: str
    spec: InputSpec
    classes: tuple[str, ...]

    def __init__(self) -> None:
        self.budget = QueryBudget()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.budget.charge(len(x))
        return np.asarray(self._predict(x), dtype=np.float64)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def torch_module(self) -> Any | None:
        return None

    def sklearn_estimator(self) -> Any | None:
        return None


def _refuse_unsafe(path: Path) -> None:
    """Run the never-execute scanner; a high/critical finding refuses the file."""
    from mlhunt.findings import Severity
    from mlhunt.scan import scan_path

    for f in scan_path(path, secrets=False).findings:
        if f.severity.rank >= Severity.HIGH.rank:
            raise InputError(
                f"refusing to load: the scanner reports {f.rule_id} ({f.severity.value}): "
                f"{f.title}; pass --trust only if you trust its author",
                file=str(path),
            )


def _is_zip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


class SklearnTarget(_Budgeted):
    """A fitted estimator from a file. skops files load without ``--trust`` when every type
    they hold is scikit-learn/NumPy/SciPy (``skops.io.get_untrusted_types``); pickle and joblib
    run code when loaded, so they need ``trust`` even when the scan is clean."""

    def __init__(
        self, path: Path, spec: InputSpec, *, trust: bool = False, classes: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        if not path.is_file():
            raise InputError("no such file", file=str(path))
        if not trust:
            _refuse_unsafe(path)
        self.model = self._load(path, trust)
        if not hasattr(self.model, "predict_proba"):
            raise InputError("the estimator has no predict_proba", file=str(path))
        self.name = path.name
        self.spec = spec
        labels = getattr(self.model, "classes_", None)
        self.classes = classes or tuple(str(c) for c in (labels if labels is not None else []))

    @staticmethod
    def _load(path: Path, trust: bool) -> Any:
        if _is_zip(path) and path.suffix != ".joblib":
            import skops.io as sio

            try:
                untrusted = sio.get_untrusted_types(file=path)
            except Exception as exc:  # not a skops archive: a zip of something else
                raise InputError(f"not a skops file: {exc}", file=str(path)) from None
            unsafe = [t for t in untrusted if not t.startswith(SAFE_SKOPS_PREFIXES)]
            if unsafe and not trust:
                raise InputError(
                    f"skops file holds non-sklearn types {unsafe}; pass --trust "
                    "only if you trust its author",
                    file=str(path),
                )
            return sio.load(path, trusted=untrusted)
        if not trust:
            raise InputError(
                "pickle/joblib files run code when loaded; save the model with "
                "skops, or pass --trust if you trust its author",
                file=str(path),
            )
        import joblib

        return joblib.load(path)  # only with --trust, after the scan

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x.reshape(len(x), -1))  # type: ignore[no-any-return]

    def sklearn_estimator(self) -> Any | None:
        return self.model


class TorchTarget(_Budgeted):
    """``module:factory`` builds the module; the state dict loads with ``weights_only=True``
    (tensors only, nothing executed). ``predict_proba`` is the softmax of its logits."""

    def __init__(
        self, weights: Path, factory: str, spec: InputSpec, classes: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        import torch

        if not weights.is_file():
            raise InputError("no such file", file=str(weights))
        module = resolve_entry(factory, "--factory")()
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except (RuntimeError, OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot load the state dict: {first}", file=str(weights)) from None
        self.module = module.eval()
        self.name = weights.name
        self.spec = spec
        if not classes:  # the output width, from one local forward pass (not a query)
            classes = tuple(str(i) for i in range(self._logits(np.zeros((1, spec.size))).shape[1]))
        self.classes = classes

    def _logits(self, x: np.ndarray) -> Any:
        import torch

        shape = self.spec.shape if self.spec.kind == "image" else (self.spec.size,)
        t = torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(len(x), *shape))
        with torch.no_grad():
            return self.module(t)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        return torch.softmax(self._logits(x), dim=1).double().numpy()  # type: ignore[no-any-return]

    def torch_module(self) -> Any | None:
        return self.module


class CallableTarget(_Budgeted):
    """A black box in-process: ``module:predict_fn`` mapping a batch to class probabilities."""

    def __init__(self, entry: str, spec: InputSpec, classes: tuple[str, ...]) -> None:
        super().__init__()
        self.fn = resolve_entry(entry, "TARGET")
        self.name = entry
        self.spec = spec
        self.classes = classes

    def _predict(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(self.fn(x), dtype=np.float64)
        if (
            out.ndim != 2
            or len(out) != len(x)
            or (self.classes and out.shape[1] != len(self.classes))
        ):
            raise ValueError(
                f"{self.name} returned shape {list(out.shape)}, expected "
                f"({len(x)}, {len(self.classes) or 'n_classes'})"
            )
        return out


def classes_from_labels(y: np.ndarray) -> tuple[str, ...]:
    """Class names when nothing else names them: 0..max(y)."""
    top = int(np.max(y)) if len(y) else 1
    return tuple(str(i) for i in range(max(2, top + 1)))
