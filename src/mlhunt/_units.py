"""What every catalog of self-describing units (attacks, mitigations) shares: one YAML file per
unit validated against its pydantic model, and ``ID.key=value`` overrides from the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mlhunt.errors import CatalogError, InputError
from mlhunt.system.loader import parse_yaml, read_text

S = TypeVar("S", bound=BaseModel)


def load_units(
    folder: Path, model: type[S], check: Callable[[S], None], what: str
) -> list[tuple[S, str]]:
    """Every ``*.yaml`` in ``folder`` as ``(spec, path)``, sorted by file name. A YAML error, a
    validation error, a failed ``check`` or a duplicate ``id`` is a :class:`CatalogError` that
    names the file."""
    out: list[tuple[S, str]] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            spec = model.model_validate(parse_yaml(read_text(path), str(path)))
            check(spec)
        except InputError as exc:  # not UTF-8, invalid YAML, a duplicate key: names the file
            raise CatalogError(str(exc)) from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise CatalogError(f"{path}: {where}: {err['msg']}") from None
        except CatalogError as exc:
            raise CatalogError(f"{path}: {exc}") from None
        uid = str(getattr(spec, "id"))  # noqa: B009 - every unit model has an id
        if uid in seen:
            raise CatalogError(f"{path}: duplicate {what} id {uid} (also in {seen[uid]})")
        seen[uid] = str(path)
        out.append((spec, str(path)))
    return out


def parse_assignment(item: str, what: str = "--param") -> tuple[str, Any]:
    """``NAME.key=value`` as ``("NAME.key", value parsed as YAML)``; one-line InputError else."""
    lhs, sep, value = item.partition("=")
    if not sep or "." not in lhs.strip(".") or lhs.startswith(".") or lhs.endswith("."):
        raise InputError(f"{what}: expected ID.key=value, got {item!r}")
    try:
        return lhs, yaml.safe_load(value)
    except Exception:  # YAMLError, or a value PyYAML cannot build (a 5,000-digit int, deep [[[)
        raise InputError(f"{what} {item[:200]!r}: value is not valid YAML") from None
