"""Sigma plumbing shared by the hunts (inference logs, LLM gateway, clickstream).

Each hunt builds its own rules (dicts in Sigma's layout); this module names them, converts them
with pySigma (imported only inside the functions) and writes them:

- :func:`convert`: rule dicts, a rule file or a folder of them -> {rule name: [query, ...]} in
  Splunk SPL (``SplunkBackend``) or ES|QL (``ESQLBackend``: of the
  pySigma-backend-elasticsearch 2.1 backends only ES|QL, EQL and ElastAlert convert correlation
  rules, and ES|QL converts both kinds of rule to one query language);
- :func:`processing_pipeline`: log field -> SIEM field (identity unless mapped);
- :func:`write_rules`: ``<name>.yml`` per rule and, with a backend, ``<name>.spl``/``.esql``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlhunt._io import write_atomic
from mlhunt.errors import InputError

#: Backend name -> suffix of the query files written beside the rules.
BACKENDS = {"splunk": ".spl", "elasticsearch": ".esql"}
#: Sigma's levels, lowest first, and mlhunt's severity names mapped to them.
LEVELS = ("informational", "low", "medium", "high", "critical")
SEVERITY_TO_LEVEL = {"info": "informational"} | {lv: lv for lv in LEVELS}
_NAME_SAFE = re.compile(r"[^a-z0-9]+")


def safe_name(text: str) -> str:
    """``text`` lower-cased with every run of other characters than ``[a-z0-9]`` as ``_``."""
    return _NAME_SAFE.sub("_", str(text).lower()).strip("_")


def top_level(severity: Mapping[str, float]) -> str:
    """The Sigma level of the severity with the highest floor (a detector's worst alert)."""
    return SEVERITY_TO_LEVEL[max(severity, key=severity.__getitem__)]


def processing_pipeline(
    field_map: Mapping[str, str] | None = None, *, es_index: str | None = None
) -> Any:
    """pySigma pipeline: log field -> SIEM field (identity unless mapped)."""
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import (
        FieldMappingTransformation,
        SetStateTransformation,
    )

    items = [
        ProcessingItem(
            identifier="mlhunt_field_mapping",
            transformation=FieldMappingTransformation(dict(field_map or {})),
        )
    ]
    if es_index:  # the ES|QL backend reads the index pattern from this state key
        items.append(
            ProcessingItem(
                identifier="mlhunt_es_index",
                transformation=SetStateTransformation("index", es_index),
            )
        )
    return ProcessingPipeline(name="mlhunt log schema", priority=20, items=items)


def get_backend(name: str, field_map: Mapping[str, str] | None = None, es_index: str = "*") -> Any:
    """The pySigma backend called ``name``; an unknown name is one :class:`InputError` line."""
    if name == "splunk":
        from sigma.backends.splunk import SplunkBackend

        return SplunkBackend(processing_pipeline(field_map))
    if name == "elasticsearch":
        from sigma.backends.elasticsearch import ESQLBackend

        return ESQLBackend(processing_pipeline(field_map, es_index=es_index))
    raise InputError(
        f"unknown Sigma backend {name!r} (expected one of: {', '.join(BACKENDS)})",
        field="sigma-backend",
    )


def load(rules: Sequence[Mapping[str, Any]] | str | Path) -> list[dict[str, Any]]:
    """Rule dicts as given, or read from a rule file or a folder of ``*.yml`` rules."""
    if not isinstance(rules, str | Path):
        return [dict(r) for r in rules]
    path = Path(rules)
    docs: list[dict[str, Any]] = []
    for f in sorted(path.glob("*.yml")) if path.is_dir() else [path]:
        try:
            docs += [d for d in yaml.safe_load_all(f.read_text("utf-8")) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read Sigma rule: {exc}", file=str(f)) from None
    return docs


def convert(
    rules: Sequence[Mapping[str, Any]] | str | Path,
    backend: str = "splunk",
    *,
    field_map: Mapping[str, str] | None = None,
    es_index: str = "*",
) -> dict[str, list[str]]:
    """Convert rules to queries: {rule file name: [query, ...]} for every rule that is output.

    Base rules referenced by a correlation are folded into its query and not listed alone.
    """
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError

    docs = load(rules)
    conv = get_backend(backend, field_map, es_index)
    try:
        collection = SigmaCollection.from_dicts(docs)
        collection.resolve_rule_references()
        conv.init_processing_pipeline(None)
        out: dict[str, list[str]] = {}
        names = {str(doc.get("id")): safe_name(doc["name"]) for doc in docs}
        for rule in collection.rules:  # pySigma may reorder (referenced rules first)
            if isinstance(rule, SigmaCorrelationRule):
                queries = conv.convert_correlation_rule(rule)
            else:
                queries = conv.convert_rule(rule)
            if queries:
                out[names[str(rule.id)]] = [str(q) for q in queries]
    except SigmaError as exc:
        raise InputError(f"Sigma conversion ({backend}) failed: {exc}") from None
    return out


def write_rules(
    rules: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    backend: str | None = None,
    field_map: Mapping[str, str] | None = None,
    es_index: str = "*",
) -> list[Path]:
    """Write the rules (``<name>.yml``) and, with ``backend``, their queries; return the paths.
    Each file is written whole or not at all."""
    if backend is not None and backend not in BACKENDS:
        get_backend(backend)  # raises the one-line InputError
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the Sigma folder: {exc.strerror}", file=str(out)) from None
    written: list[Path] = []
    for rule in rules:
        path = out / f"{safe_name(rule['name'])}.yml"
        write_atomic(path, yaml.safe_dump(dict(rule), sort_keys=False, allow_unicode=True))
        written.append(path)
    if backend is not None:
        queries = convert(rules, backend, field_map=field_map, es_index=es_index)
        for name, qs in queries.items():
            path = out / f"{name}{BACKENDS[backend]}"
            write_atomic(path, "\n\n".join(qs) + "\n")
            written.append(path)
    return written
