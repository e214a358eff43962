"""Thread caps for the scikit-learn and NumPy work inside attacks and mitigations."""

from __future__ import annotations

from typing import Any


def few_threads(n: int = 1) -> Any:
    """OpenMP/BLAS threads capped for the attack (scikit-learn's default of one thread per host
    CPU was measured 20x slower on 2 shared cores: 4.2 s against 0.2 s for one small fit)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)
