"""Pausing the cyclic garbage collector around bulk allocation."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC for the block, restoring its previous state afterwards.

    Building a large threat model allocates hundreds of thousands of long-lived, acyclic objects
    (validated models, findings); each generation-2 pass re-traverses all of them for nothing,
    which measured at ~40% of the run on 5,000 elements. Reference counting still frees garbage.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
