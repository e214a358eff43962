"""Which optional part (``pip install 'mlhunt[EXTRA]'``) provides which third-party module.

The base install runs ``model``, ``scan``, ``schema`` and ``init``; every other command needs an
extra. When a command fails to import a module listed here, the CLI says which extra to install
in one line instead of a traceback. Keep this table in step with pyproject.toml (a test checks).
"""

from __future__ import annotations

__all__ = ["COMMAND_EXTRAS", "MODULE_EXTRAS", "missing_extra_message"]

#: Top-level import name -> the extras that install it (the first is the smallest).
MODULE_EXTRAS: dict[str, tuple[str, ...]] = {
    "duckdb": ("hunt",),
    "pyarrow": ("hunt",),
    "numba": ("hunt",),
    "pandas": ("hunt",),
    "sigma": ("hunt",),
    "datasketch": ("hunt",),
    "pyspark": ("spark",),
    "art": ("assess", "harden"),
    "matplotlib": ("assess", "harden"),
    "torch": ("scenarios", "assess", "harden"),
    "sklearn": ("hunt", "scenarios", "assess", "harden"),
    "scipy": ("hunt", "scenarios", "assess", "harden"),
    "joblib": ("scenarios", "assess", "harden"),
    "threadpoolctl": ("scenarios", "assess", "harden"),
    "skops": ("scenarios", "assess", "harden"),
    "PIL": ("scenarios", "assess", "harden"),
    "fastapi": ("scenarios", "assess", "harden"),
    "sqlalchemy": ("scenarios", "assess", "harden"),
    "httpx": ("guard", "scenarios", "assess", "harden"),
    "uvicorn": ("guard", "scenarios", "assess", "harden"),
    "starlette": ("guard", "scenarios", "assess", "harden"),
    "redis": ("guard",),
    "httptools": ("guard",),
    "uvloop": ("guard",),
    "httpx_sse": ("guard",),
    "diffprivlib": ("privacy",),
    "opacus": ("privacy",),
}

#: Command -> the extra that makes it work; commands not listed need only the base install.
COMMAND_EXTRAS: dict[str, str] = {
    "hunt": "hunt",
    "assess": "assess",
    "harden": "harden",
    "simulate": "scenarios",
    "build": "scenarios",
    "serve": "scenarios",
    "guard": "guard",
    "demo": "all",
    "run": "all",
}


def missing_extra_message(exc: ImportError, command: str) -> str | None:
    """``error: mlhunt CMD needs the X extra: pip install 'mlhunt[X]'`` when ``exc`` is a module
    of an extra that is not installed; None for any other import error (a real bug)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    extras = MODULE_EXTRAS.get(exc.name.split(".")[0])
    if extras is None:
        return None
    wanted = COMMAND_EXTRAS.get(command)
    # The command's own extra when it provides the module (hunt -> hunt), else the smallest one
    # that does (hunt --engine spark -> spark).
    extra = wanted if wanted in extras or wanted == "all" else extras[0]
    return f"error: mlhunt {command} needs the {extra} extra: pip install 'mlhunt[{extra}]'"
