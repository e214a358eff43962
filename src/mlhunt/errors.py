"""Errors that reach the user as one line (``FILE:LINE: field: expected``) and exit code 2."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user: a file, a field, or an option.

    ``str()`` is the single line shown on stderr, in the form ``FILE:LINE: field.path: message``
    (parts that are unknown are left out).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        # Further problems found in the same pass (a file with three mistakes reports all
        # three at once); ``str()`` stays the first one's line, ``lines()`` gives them all.
        self.also: list[InputError] = []

    def lines(self) -> list[str]:
        """One line per problem, the first one first."""
        return [str(self), *(str(e) for e in self.also)]

    @classmethod
    def collect(cls, errors: list[InputError]) -> InputError:
        """One error carrying every problem of ``errors`` (non-empty), in order."""
        first = errors[0]
        first.also = [*first.also, *errors[1:]]
        return first

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        field = f"{self.field}: " if self.field else ""
        # One line, always: messages from parsers may carry newlines.
        return " ".join(f"{where}{field}{self.message}".split())


class CatalogError(Exception):
    """A threat rule that does not validate: a bug in the catalog, reported loudly at load time."""
