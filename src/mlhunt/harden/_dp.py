"""diffprivlib 0.6.6 against scikit-learn >= 1.8: two narrow compatibility shims.

* ``diffprivlib/__init__`` imports its forest module, which imports ``DOUBLE`` and ``DTYPE`` from
  ``sklearn.tree._tree``; scikit-learn 1.8 dropped those aliases (they were ``np.float64`` and
  ``np.float32``). They are put back, only when missing, before diffprivlib is imported.
* ``diffprivlib.models.LogisticRegression.__init__`` passes ``multi_class='ovr'`` to scikit-learn's
  constructor, which no longer takes it. :class:`DPLogisticRegression` keeps diffprivlib's ``fit``
  (row clipping to ``data_norm``, objective perturbation with the Vector mechanism, budget
  accounting) and only replaces that constructor. Binary targets only (what diffprivlib's OvR
  would do for two classes anyway).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def import_diffprivlib() -> Any:
    import sklearn.tree._tree as tree

    for name, value in (("DOUBLE", np.float64), ("DTYPE", np.float32)):
        if not hasattr(tree, name):
            setattr(tree, name, value)
    import diffprivlib

    return diffprivlib


def dp_classes() -> tuple[type, type, type]:
    """(DPLogisticRegression, diffprivlib StandardScaler, BudgetAccountant)."""
    import_diffprivlib()
    from diffprivlib.accountant import BudgetAccountant
    from diffprivlib.models import LogisticRegression, StandardScaler
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    class DPLogisticRegression(LogisticRegression):  # type: ignore[misc]
        def __init__(
            self,
            *,
            epsilon: float = 1.0,
            data_norm: float | None = None,
            tol: float = 1e-4,
            C: float = 1.0,  # scikit-learn's name
            fit_intercept: bool = True,
            max_iter: int = 100,
            random_state: Any = None,
            accountant: Any = None,
        ) -> None:
            SkLogisticRegression.__init__(
                self,
                C=C,
                tol=tol,
                fit_intercept=fit_intercept,
                random_state=random_state,
                max_iter=max_iter,
            )
            self.epsilon = epsilon
            self.data_norm = data_norm
            self.accountant = BudgetAccountant.load_default(accountant)

    return DPLogisticRegression, StandardScaler, BudgetAccountant
