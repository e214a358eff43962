"""Small value classes without dataclasses' per-class cost (:class:`mlhunt.findings.Finding`
and the scanner's).

A dataclass generates and compiles its methods when its class is created, and importing
``dataclasses`` brings ``inspect``: a measurable share of a short ``mlhunt scan`` (numbers in
bench/README.md). These bases give the same equality, repr and (frozen) immutability and hash
over the fields named in ``__slots__``, with no code generated; a subclass names its fields in
``__slots__`` and writes its ``__init__``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FrozenRecord", "Record"]


class Record:
    """Equality and repr over ``__slots__``, as a ``@dataclass(slots=True)`` has them."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value: unhashable

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__qualname__}({fields})"


class FrozenRecord(Record):
    """A :class:`Record` that cannot be changed once made and hashes by value, as a
    ``@dataclass(frozen=True, slots=True)``; its ``__init__`` sets the fields with
    :meth:`set_fields`."""

    __slots__ = ()

    def set_fields(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__qualname__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__qualname__}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    # pickle and copy restore the fields through these, not through __setattr__
    def __getstate__(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.set_fields(**state)
