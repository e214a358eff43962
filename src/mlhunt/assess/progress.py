"""Progress of an assess run: rich bars on a terminal's stderr, plain lines otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from mlhunt.assess.base import AttackResult
from mlhunt.assess.runner import Observer, PlanItem


class LineObserver:
    """One plain line per event through ``write`` (stderr when not a terminal, or a logger)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def begin(self, plan: list[PlanItem]) -> None:
        self.write(f"assess: {len(plan)} attacks planned")

    def start(self, item: PlanItem) -> None:
        self.write(f"assess: {item.id} ...")

    def message(self, text: str) -> None:
        self.write(f"assess:   {text}")

    def done(self, result: AttackResult, resumed: bool) -> None:
        how = "resumed" if resumed else f"{result.seconds:.1f}s, {result.queries} queries"
        self.write(f"assess: {result.attack_id}: {result.verdict} ({how}) {result.summary}")


class RichObserver:
    """An overall bar (attacks done) and the running attack's latest message."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.task = bar.add_task("assess", total=None)

    def begin(self, plan: list[PlanItem]) -> None:
        self.bar.update(self.task, total=len(plan))

    def start(self, item: PlanItem) -> None:
        self.bar.update(self.task, description=item.id)

    def message(self, text: str) -> None:
        self.bar.update(self.task, description=text[:70])

    def done(self, result: AttackResult, resumed: bool) -> None:
        note = "resumed" if resumed else f"{result.seconds:.1f}s"
        self.bar.console.print(f"{result.attack_id}: {result.verdict} ({note})", markup=False)
        self.bar.advance(self.task)


@contextmanager
def observer_for(stream: IO[str], write: Callable[[str], None]) -> Iterator[Observer]:
    """Bars when ``stream`` is a terminal, else plain lines through ``write``."""
    if not stream.isatty():
        yield LineObserver(write)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=True,
    ) as bar:
        yield RichObserver(bar)
