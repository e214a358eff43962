"""Weights a mitigation trained, cached under ``$MLHUNT_CACHE/harden`` keyed by everything that
determines them (the mitigation, its training parameters, the seed and a hash of the scenario
model it started from), so a second run (or the test suite) reuses them instead of retraining.
Only ``state_dict`` tensors are stored, loaded with ``weights_only=True`` (no pickle code)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    from mlhunt.scenarios import cache_dir

    return cache_dir().parent / "harden"


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "none"


def key_of(parts: dict[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_module(
    kind: str, parts: dict[str, Any], build: Callable[[], Any], fresh: Callable[[], Any],
) -> tuple[Any, dict[str, Any], bool]:  # fmt: skip
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
