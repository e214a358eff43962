"""Weights a mitigation trained, cached under ``$MLHUNT_CACHE/harden`` keyed by everything that
determines them (the mitigation, its training parameters, the seed, a hash of the scenario
model or data it started from, and the code that trains: mlhunt's version, a hash of the
training module's source, torch's version), so a second run (or the test suite) reuses them
instead of retraining, and a changed trainer or library never serves stale weights.
Only ``state_dict`` tensors are stored, loaded with ``weights_only=True`` (no pickle code)."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def cache_root() -> Path:
    from mlhunt.scenarios import cache_dir

    return cache_dir().parent / "harden"


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "none"


def array_digest(*arrays: Any) -> str:
    """sha256 of the arrays' bytes, shapes and dtypes: any change to the training data counts."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def code_parts(*modules: ModuleType) -> dict[str, str]:
    """Versions of what trains: mlhunt, torch, and a hash of each training module's source."""
    import torch

    import mlhunt

    parts = {"mlhunt": mlhunt.__version__, "torch": str(torch.__version__)}
    for module in modules:
        source = Path(inspect.getfile(module)).read_bytes()
        parts[f"source:{module.__name__}"] = hashlib.sha256(source).hexdigest()[:16]
    return parts


def key_of(parts: dict[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_module(
    kind: str,
    parts: dict[str, Any],
    build: Callable[[], Any],
    fresh: Callable[[], Any],
) -> tuple[Any, dict[str, Any], bool]:
    """(module, metadata, from_cache). ``build()`` returns (trained module, metadata dict);
    ``fresh()`` an untrained module of the same architecture to load cached weights into."""
    import torch

    folder = cache_root() / kind
    key = key_of(parts)
    weights, meta_path = folder / f"{key}.pt", folder / f"{key}.json"
    if weights.is_file() and meta_path.is_file():
        module = fresh()
        module.load_state_dict(torch.load(weights, weights_only=True))
        return module.eval(), json.loads(meta_path.read_text(encoding="utf-8")), True
    module, meta = build()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_suffix(f".tmp{os.getpid()}")
    torch.save(module.state_dict(), tmp)
    tmp.replace(weights)  # atomic: a concurrent reader never sees half a file
    tmp_meta = meta_path.with_suffix(f".tmp{os.getpid()}")
    tmp_meta.write_text(json.dumps({**meta, "key": parts}, default=str), encoding="utf-8")
    tmp_meta.replace(meta_path)  # last: its presence says the weights are complete
    return module.eval(), meta, False
