"""A built-in scenario as an assess target plus the data its attacks need.

White-box access comes from the loaded model itself (the CNN, or the loan pipeline); every
``predict_proba`` call is charged to the budget like any black-box query.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlhunt.assess.base import AssessData, QueryBudget
from mlhunt.scenarios.base import LoadedScenario

# The feature attribute inference tries to recover, per scenario (personal data: where the
# applicant lives is a proxy for protected characteristics).
SENSITIVE = {"loan-approval": "postcode_district", "fraud-detection": "country_mismatch"}
POOL_SIZE = 5_000


class ScenarioTarget:
    """A loaded scenario's model behind the :class:`~mlhunt.assess.base.Target` protocol."""

    def __init__(self, loaded: LoadedScenario, budget: QueryBudget | None = None) -> None:
        self.loaded = loaded
        self.name = loaded.model_name
        self.spec = loaded.spec
        self.classes = tuple(loaded.classes)
        self.budget = budget or QueryBudget()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self.budget.charge(len(x))
        return self.loaded.predict_proba(x)

    def torch_module(self) -> Any | None:
        fn = getattr(self.loaded, "torch_model", None)
        if fn is not None:
            return fn()
        if self.loaded.name == "loan-approval":
            return loan_torch_module(self.loaded)
        return None

    def sklearn_estimator(self) -> Any | None:
        fn = getattr(self.loaded, "pipeline", None)
        return fn() if fn is not None else None


def loan_torch_module(loaded: LoadedScenario) -> Any:
    """The loan pipeline (scaler + logistic regression) as a torch module returning the logits
    of both classes, ``[0, w . (x - mean) / scale + b]``, so softmax gives predict_proba exactly.
    Computed in float64 (raw incomes reach 4e5; float32 would cost ~1e-6 in probability) and
    returned in the input's dtype, so float32 gradient attacks run on it unchanged."""
    import torch

    pipe = loaded.pipeline()  # type: ignore[attr-defined]
    scaler, clf = pipe.named_steps["scale"], pipe.named_steps["logreg"]

    class LoanLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            f64 = torch.float64
            self.register_buffer("mean", torch.as_tensor(scaler.mean_, dtype=f64))
            self.register_buffer("scale", torch.as_tensor(scaler.scale_, dtype=f64))
            self.register_buffer("coef", torch.as_tensor(clf.coef_.reshape(-1), dtype=f64))
            self.register_buffer("intercept", torch.as_tensor(clf.intercept_, dtype=f64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = ((x.to(torch.float64) - self.mean) / self.scale) @ self.coef + self.intercept
            out = torch.stack([torch.zeros_like(z), z], dim=-1)
            return out.to(x.dtype) if x.is_floating_point() else out

    return LoanLogits().eval()


def scenario_data(loaded: LoadedScenario, seed: int = 0, n_eval: int = 1_000) -> AssessData:
    """Holdout rows to attack, the exact train/holdout split as members/non-members, a pool of
    fresh realistic inputs (what an attacker could collect), and a trainer for poisoning."""
    rng = np.random.default_rng(seed)
    n = min(n_eval, len(loaded.x_holdout))
    idx = rng.permutation(len(loaded.x_holdout))[:n]
    sensitive = SENSITIVE.get(loaded.name)
    names = list(loaded.spec.names)
    extra: dict[str, Any] = {}
    boxes = getattr(loaded, "boxes_holdout", None)
    if boxes is not None:
        extra["boxes_eval"] = np.asarray(boxes)[idx]
        extra["positive_class"] = 1  # "prohibited"
    return AssessData(
        x_eval=np.asarray(loaded.x_holdout)[idx],
        y_eval=np.asarray(loaded.y_holdout)[idx],
        x_members=np.asarray(loaded.x_train),
        y_members=np.asarray(loaded.y_train),
        x_nonmembers=np.asarray(loaded.x_holdout),
        y_nonmembers=np.asarray(loaded.y_holdout),
        x_pool=loaded.sample_benign(POOL_SIZE, np.random.default_rng(seed + 1)),
        sensitive_feature=names.index(sensitive) if sensitive in names else None,
        trainer=trainer_for(loaded, seed),
        extra=extra,
    )


def trainer_for(loaded: LoadedScenario, seed: int = 0) -> Any:
    """Fits a fresh model of the scenario's kind on (x, y); returns its predict_proba. Lazy:
    only poisoning attacks call it (retraining the CNN takes most of a minute). Keyword
    ``options`` override the CNN's training defaults (epochs, batch_size, lr, widths, hidden,
    augment) so an attack can retrain on a subset within its time budget."""

    def train(x: np.ndarray, y: np.ndarray, **options: Any) -> Any:
        if options and loaded.name != "image-moderation":
            raise TypeError(f"the {loaded.name} trainer takes no options: {sorted(options)}")
        if loaded.name == "loan-approval":
            from mlhunt.scenarios.loan import new_pipeline

            return new_pipeline().fit(x, y).predict_proba
        if loaded.name == "fraud-detection":
            from mlhunt.scenarios.fraud import new_model

            return new_model(seed).fit(x, y).predict_proba
        if loaded.name == "image-moderation":
            from mlhunt.scenarios.image import DEFAULTS, cnn_logits, softmax, train_cnn

            keys = ("epochs", "batch_size", "lr", "widths", "hidden", "augment")
            if set(options) - set(keys):
                raise TypeError(f"unknown CNN training options: {sorted(set(options) - set(keys))}")
            opts = {k: DEFAULTS[k] for k in keys if k != "augment"} | options
            model = train_cnn(x.astype(np.float32), y.astype(np.int64), seed=seed, **opts)
            return lambda q: softmax(cnn_logits(model, np.asarray(q, dtype=np.float32)))
        raise ValueError(f"no trainer for scenario {loaded.name!r}")

    return train
