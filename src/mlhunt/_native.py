"""Load order of native libraries that clash.

regopy (rego-cpp, the manifest scanner's Rego engine) loaded *before* PyTorch makes the process
abort inside ``import torch`` ("double free or corruption"); torch first is fine. A process that
may use both (``run``, ``demo``, the test suite) calls :func:`preload_torch` before anything can
import regopy. ``mlhunt scan`` alone never imports torch, so it does not pay the 1.5 s.
"""

from __future__ import annotations

import importlib.util
import sys


def preload_torch() -> bool:
    """Import torch now if it is installed and not yet loaded; True when torch is loaded."""
    if "torch" in sys.modules:
        return True
    if "regopy" in sys.modules or importlib.util.find_spec("torch") is None:
        return False  # too late (see above) or nothing to load
    import torch  # noqa: F401

    return True
