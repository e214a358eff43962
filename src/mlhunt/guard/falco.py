"""Falco rules for model-serving pods: ``mlhunt guard --export-falco DIR``.

The guard watches the model's API; these rules watch the pods behind it, where a poisoned model
or an exfiltration shows up as process, network and file activity (a shell or package manager in
a serving container, a reverse shell, outbound connections, model files written outside
training). The rule definitions are data (``falco_rules.yaml`` beside this module, one
self-describing unit per rule with its ATLAS / OWASP ML mappings and tuning notes); this module
validates them and renders one Falco rules file.

API (library first; the CLI only wraps it):

- ``export_falco(out_dir) -> list[Path]``: writes ``mlhunt_falco_rules.yaml`` to ``out_dir``
  and returns the paths written.
- ``load_catalog() -> FalcoCatalog``: the validated rule units.
- ``build_items(catalog=None) -> list[dict]``: the Falco rules-file items (the top-level YAML
  list: ``required_engine_version``, lists, macros, rules), in load order.
- ``render(items) -> str``: the rules file text.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlhunt.errors import CatalogError, InputError

RULES_FILE = "mlhunt_falco_rules.yaml"
_DATA = "falco_rules.yaml"
_ID = re.compile(r"^MLH-FALCO-[A-Z0-9]+(-[A-Z0-9]+)*$")
_KINDS = ("rule", "macro", "list")


class RuleUnit(BaseModel):
    """One detection: its mapping and tuning notes, and the Falco items that implement it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID.pattern)
    title: str
    atlas: tuple[str, ...] = Field(min_length=1)
    owasp_ml: tuple[str, ...] = Field(min_length=1)
    description: str
    false_positive_notes: str
    falco: tuple[dict[str, Any], ...] = Field(min_length=1)

    @field_validator("falco")
    @classmethod
    def _one_rule_last(cls, items: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        kinds = [_kind(i) for i in items]
        if kinds.count("rule") != 1 or kinds[-1] != "rule":
            raise ValueError("a unit holds its lists and macros, then exactly one rule, last")
        rule = items[-1]
        missing = [k for k in ("condition", "output", "priority") if k not in rule]
        if missing:
            raise ValueError(f"rule {rule['rule']!r} lacks {', '.join(missing)}")
        if "desc" in rule:
            raise ValueError("the rule's desc is built from description and false_positive_notes")
        return items

    @property
    def rule(self) -> dict[str, Any]:
        return self.falco[-1]


class FalcoCatalog(BaseModel):
    """The whole data file: shared lists/macros, the scope macro and the rule units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    required_engine_version: int | str
    scope_macro: str
    output_context: str
    shared: tuple[dict[str, Any], ...]
    rules: tuple[RuleUnit, ...] = Field(min_length=1)


def _kind(item: dict[str, Any]) -> str:
    kinds = [k for k in _KINDS if k in item]
    if len(kinds) != 1:
        raise ValueError(f"a Falco item needs exactly one of rule/macro/list: {sorted(item)}")
    return kinds[0]


def _data_path() -> Path:
    return Path(str(resources.files("mlhunt.guard") / _DATA))


def load_catalog(path: Path | None = None) -> FalcoCatalog:
    """Read and validate the rule data (the packaged file by default).

    Problems are :class:`CatalogError` naming the file: the data ships with mlhunt, so a bad
    unit is a bug to report loudly, not user input.
    """
    path = path or _data_path()
    try:
        catalog = FalcoCatalog.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CatalogError(f"{path}: {where}: {first['msg']}") from None
    _check(catalog, path)
    return catalog


def _check(catalog: FalcoCatalog, path: Path) -> None:
    from mlhunt.threatmodel.catalog import load_taxonomy

    tax = load_taxonomy()
    seen_ids: set[str] = set()
    for unit in catalog.rules:
        if unit.id in seen_ids:
            raise CatalogError(f"{path}: duplicate id {unit.id}")
        seen_ids.add(unit.id)
        for key, ids in (("atlas", unit.atlas), ("owasp_ml", unit.owasp_ml)):
            bad = [i for i in ids if i not in tax.get(key, {})]
            if bad:
                raise CatalogError(f"{path}: {unit.id}: {key}: unknown id(s) {', '.join(bad)}")
        # Each rule must be scoped to serving containers (the macro users retarget).
        if not re.search(rf"\b{re.escape(catalog.scope_macro)}\b", unit.rule["condition"]):
            raise CatalogError(f"{path}: {unit.id}: condition misses {catalog.scope_macro}")
    names: dict[tuple[str, str], int] = {}
    for item in (*catalog.shared, *(i for u in catalog.rules for i in u.falco)):
        key = (_kind(item), str(item[_kind(item)]))
        names[key] = names.get(key, 0) + 1
    dupes = sorted(f"{k} {n}" for (k, n), count in names.items() if count > 1)
    if dupes:
        raise CatalogError(f"{path}: defined twice: {', '.join(dupes)}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _finish_rule(unit: RuleUnit, context: str) -> dict[str, Any]:
    """The unit's rule as Falco reads it: desc, output context and mapping tags filled in."""
    body = dict(unit.rule)
    what, tuning = _one_line(unit.description), _one_line(unit.false_positive_notes)
    desc = f"{what.rstrip('.')}. Tuning: {tuning.rstrip('.')}."
    out: dict[str, Any] = {"rule": body.pop("rule"), "desc": desc}
    out["condition"] = str(body.pop("condition")).strip()
    out["output"] = f"{_one_line(body.pop('output'))} | mlhunt_id={unit.id} {_one_line(context)}"
    out["priority"] = str(body.pop("priority")).upper()
    tags = [*body.pop("tags", []), "mlhunt", unit.id]
    tags += [*unit.atlas, *(f"OWASP_{o}" for o in unit.owasp_ml)]
    out["tags"] = list(dict.fromkeys(map(str, tags)))
    out["source"] = body.pop("source", "syscall")
    out.update(body)  # enabled, exceptions ... as authored
    return out


def _item(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    if "condition" in out:
        out["condition"] = str(out["condition"]).strip()
    return out


def build_items(catalog: FalcoCatalog | None = None) -> list[dict[str, Any]]:
    """The Falco rules-file items in load order: engine version, shared lists and macros, then
    each unit's own lists and macros followed by its rule (definitions precede their uses)."""
    catalog = catalog or load_catalog()
    items: list[dict[str, Any]] = [{"required_engine_version": catalog.required_engine_version}]
    items += [_item(i) for i in catalog.shared]
    for unit in catalog.rules:
        items += [_item(i) for i in unit.falco[:-1]]
        items.append(_finish_rule(unit, catalog.output_context))
    return items


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (conditions) as literal blocks, so the file reads like hand-written
    Falco rules; everything else as safe_dump writes it."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else ">" if len(value) > 80 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    # Lists of plain values (list items, tags, exception fields) in flow style, as Falco's own
    # rules files write them; lists of mappings (the file itself, exceptions) as blocks.
    flow = bool(value) and all(isinstance(v, str | int | float) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow or None)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)

_HEADER = """\
# mlhunt {version}: Falco rules for model-serving pods (`mlhunt guard --export-falco DIR`).
# Load after Falco's default rules, e.g. `falco -r falco_rules.yaml -r {name}`,
# or list the file in `rules_files` (falco.yaml) / the Helm chart's customRules.
#
# Scope: every rule requires the macro `{scope}` (the image repositories in
# `mlh_model_server_images`, KServe / ModelMesh / Seldon pod labels, or the pod label
# `mlhunt.io/model-serving: "true"`). Retarget it from a local rules file loaded after this one:
#
#   - list: mlh_model_server_images
#     items: [registry.example.com/fraud-scorer]
#     override: {{items: append}}
#   - macro: mlh_user_model_serving_containers
#     condition: (k8s.ns.name = models)
#     override: {{condition: replace}}
#
# Each rule carries its mlhunt id, ATLAS and OWASP ML ids as tags and `mlhunt_id=` in its output.
"""


def render(items: list[dict[str, Any]], *, scope_macro: str = "mlh_model_serving_container") -> str:
    """The rules file: a header comment, then the items as a top-level YAML list."""
    from mlhunt import __version__

    body = yaml.dump(
        items, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2
    )
    header = _HEADER.format(version=__version__, name=RULES_FILE, scope=scope_macro)
    # A blank line between items, like hand-written rules files.
    return header + "\n" + body.replace("\n- ", "\n\n- ")


def export_falco(out_dir: Path) -> list[Path]:
    """Write the Falco rules file for model-serving pods to ``out_dir``; return its path(s)."""
    catalog = load_catalog()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the Falco folder: {exc.strerror}", file=str(out)) from None
    path = out / RULES_FILE
    text = render(build_items(catalog), scope_macro=catalog.scope_macro)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the Falco rules: {exc.strerror}", file=str(path)) from None
    return [path]
