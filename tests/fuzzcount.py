"""Fuzz bookkeeping for issue #9: how many generated inputs each parser was given, and the one
check every fuzz test makes (a result or an :class:`~mlhunt.errors.InputError`, within a time
limit).

Counts are written to ``test-artifacts/fuzz-counts-<parser>.json`` (one entry per test and
profile, merged under a file lock so ``pytest -n 2`` workers do not lose each other's entries;
``inputs`` sums them per profile), so the numbers in ``docs/security.md`` ("inputs tried per
parser") come from a real run, not a guess.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from mlhunt.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test-artifacts"
#: Wall-clock seconds one input may take before it counts as a hang. Inputs take milliseconds;
#: the bound is generous so that a busy machine (a second job beside `make test`) never trips
#: it, and it costs nothing unless something really hangs.
HANG_S = 60.0

T = TypeVar("T")


class Hang(Exception):
    """A parser took longer than :data:`HANG_S` on one input."""


class Tally:
    """Outcomes per (parser, test) in this worker; :meth:`flush` merges them into the files."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], dict[str, int]] = {}
        self.flushed = time.monotonic()

    def add(self, parser: str, outcome: str) -> None:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
        per = self.counts.setdefault((parser, test), {})
        per[outcome] = per.get(outcome, 0) + 1
        if time.monotonic() - self.flushed > 30:  # a long run cut short still leaves its counts
            self.flush()

    def flush(self) -> None:
        """Write this worker's counts: per test and per profile ("ci" for `make test`, "full"
        for `make fuzz`), so a quick run never overwrites the numbers of a full one. Counts
        are cumulative per test in this process, so rewriting an entry is harmless."""
        self.flushed = time.monotonic()
        OUT.mkdir(exist_ok=True)
        profile = "full" if os.environ.get("MLHUNT_FUZZ", "") == "full" else "ci"
        for (parser, test), outcomes in self.counts.items():
            path = OUT / f"fuzz-counts-{parser}.json"
            with (OUT / ".fuzz-counts.lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                doc: dict[str, Any] = {"parser": parser, "tests": {}}
                with contextlib.suppress(OSError, ValueError):
                    doc = json.loads(path.read_text("utf-8"))
                entry = doc["tests"].setdefault(test, {})
                if "profile" in entry:  # the first format: one run per test
                    entry = doc["tests"][test] = {entry.pop("profile"): entry}
                entry[profile] = {"inputs": sum(outcomes.values()), "outcomes": outcomes}
                # readable by the first format's writer too (a run started before this one)
                entry["inputs"] = max(entry[p]["inputs"] for p in ("ci", "full") if p in entry)
                entry.pop("outcomes", None)
                doc["inputs"] = {
                    p: sum(t[p]["inputs"] for t in doc["tests"].values() if p in t)
                    for p in ("ci", "full")
                }
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(doc, indent=1, sort_keys=True), "utf-8")
                tmp.replace(path)


@contextlib.contextmanager
def time_limit(seconds: float = HANG_S) -> Iterator[None]:
    """Raise :class:`Hang` when the block runs longer than ``seconds`` (main thread only)."""

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(tally: Tally, parser: str, fn: Callable[..., T], *args: Any, **kw: Any) -> T | None:
    """Call the parser: its result, or None after a clean one-line :class:`InputError`. Any
    other exception (or a hang) propagates and fails the test with the input hypothesis found."""
    try:
        with time_limit():
            result = fn(*args, **kw)
    except InputError as exc:
        text = str(exc)
        assert text and "\n" not in text, f"InputError is not one line: {text!r}"
        tally.add(parser, "input-error")
        return None
    tally.add(parser, "ok")
    return result


def scaled(divisor: int, floor: int = 50) -> Any:
    """The loaded hypothesis profile with fewer examples (at least ``floor``), for targets that
    cost more per input."""
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=max(floor, settings().max_examples // divisor),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


def ci_scaled(divisor: int, floor: int = 50) -> Any:
    """Like :func:`scaled`, but only `make test`'s budget is divided: `make fuzz`
    (MLHUNT_FUZZ=full) keeps the whole one. For targets whose every input pays a fixed cost
    (a DuckDB connection per log file), where the CI budget is the suite's time."""
    from hypothesis import settings

    if os.environ.get("MLHUNT_FUZZ", "") == "full":
        return settings(settings())
    return scaled(divisor, floor)


def flush_after_module(tally: Tally) -> Any:
    """A module-scoped autouse fixture writing ``tally``'s counts when the module's tests end;
    assign it to a module-level name in the test file."""
    import pytest

    @pytest.fixture(scope="module", autouse=True)
    def _write_counts() -> Iterator[None]:
        yield
        tally.flush()

    return _write_counts
