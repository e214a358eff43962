"""``mlhunt guard``: a reverse proxy in front of a model API that runs the hunt detectors online
(per client and per source address) and alerts, throttles, degrades or blocks by policy.

Library API: :func:`create_guard_app` (an ASGI app) from a :class:`GuardConfig`; :func:`serve`
runs it with uvicorn. See docs/guard.md.
"""

from __future__ import annotations

from mlhunt.guard.app import create_guard_app, serve
from mlhunt.guard.build import Guard, build_guard
from mlhunt.guard.config import GuardConfig, Policy, default_policy_path, load_policy

__all__ = [
    "Guard",
    "GuardConfig",
    "Policy",
    "build_guard",
    "create_guard_app",
    "default_policy_path",
    "load_policy",
    "serve",
]
