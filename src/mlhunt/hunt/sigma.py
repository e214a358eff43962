"""Sigma export of the hunt: ``mlhunt hunt LOGS --export-sigma DIR [--sigma-backend B]``.

The API the CLI calls (library first; pySigma is imported only inside these functions):

- ``export_sigma(detectors, out_dir, *, backend=None, field_map=None, thresholds=None,
  es_index="*") -> list[Path]``: writes one Sigma rule (YAML) per detector over mlhunt's own
  alert stream, plus the rules over raw inference logs (base rules and correlation rules), to
  ``out_dir``; with ``backend`` ("splunk" or "elasticsearch") also each rule's converted query
  beside it (``<name>.spl`` or ``<name>.esql``). Returns every path written.
- ``build_rules(detectors, *, thresholds=None) -> list[dict]``: the same rules in memory.
- ``convert(rules, backend="splunk", *, field_map=None, es_index="*") -> dict[str, list[str]]``:
  rule name -> queries, for rule dicts, rule files or a folder of them.

Conversion and writing: :mod:`mlhunt.sigmakit` (shared with the LLM and clickstream hunts).

``detectors``: the hunt's detector registry entries, as objects or mappings with ``id``,
``title``, ``description``, ``scope``, ``atlas``, ``owasp_ml``, ``false_positive_notes``, a
severity (``severity`` string, or a ``severity`` mapping / ``levels`` whose highest value is
used) and optional ``sigma`` hints: ``{<correlation name>: {gte: N, timespan: "1h"}}`` tunes the
raw-log correlation of that name (see ``sigma/inference.yaml``).

Tags: ``attack.<tactic>`` where the ATLAS tactic has an ATT&CK namesake (plus the ATT&CK
techniques named in ``inference.yaml``), ``atlas.aml.tXXXX.YYY`` for ATLAS ids and
``owasp-ml.mlNN`` for the OWASP ML Top 10. pySigma accepts any ``namespace.name`` tag that
matches its tag format (its optional namespace validator only knows attack/car/cve/d3fend/
detection/stp/tlp, so the atlas and owasp-ml tags are reported there and nowhere else).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlhunt.errors import InputError
from mlhunt.sigmakit import (
    LEVELS,
    SEVERITY_TO_LEVEL,
    convert,
    processing_pipeline,
    safe_name,
    write_rules,
)

BACKENDS = ("splunk", "elasticsearch")
# The date the rule templates were written: a fixed value keeps exports byte-identical across
# runs (Sigma's `date` is the rule's creation date, not the export's).
RULES_DATE = "2026-11-26"
AUTHOR = "mlhunt"
DOCS = "https://github.com/mlhunt/mlhunt/blob/main/docs/hunt.md"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/mlhunt/mlhunt/sigma")
# ATLAS tactics that share their name with an ATT&CK Enterprise tactic (slug = ATT&CK's tag).
# fmt: off
_ATTACK_TACTICS = {
    "Reconnaissance", "Resource Development", "Initial Access", "Execution", "Persistence",
    "Privilege Escalation", "Defense Evasion", "Credential Access", "Discovery",
    "Lateral Movement", "Collection", "Command and Control", "Exfiltration", "Impact",
}
# fmt: on
ALERT_FIELDS = ("rule_id", "detector", "severity", "target")


def rule_uuid(key: str) -> str:
    """Stable rule id: the same detector or template always gets the same UUID (uuid5)."""
    return str(uuid.uuid5(_NAMESPACE, key))


def _get(det: Any, key: str, default: Any = None) -> Any:
    det = getattr(det, "spec", det)  # a registry Detector carries its YAML half as .spec
    if isinstance(det, Mapping):
        return det.get(key, default)
    return getattr(det, key, default)


def _level(det: Any) -> str:
    """The highest severity a detector can emit (its ``severity`` floors' names), as a Sigma
    level; a plain severity string is taken as is."""
    value = _get(det, "severity")
    names = [value] if isinstance(value, str) else list(value or ())
    found = [
        SEVERITY_TO_LEVEL[n.lower()] for n in map(str, names) if n.lower() in SEVERITY_TO_LEVEL
    ]
    return max(found, key=LEVELS.index) if found else "medium"


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    return [str(v).strip() for v in value if str(v).strip()]


def _tags(atlas: Sequence[str], owasp: Sequence[str], attack: Sequence[str] = ()) -> list[str]:
    from mlhunt.threatmodel.catalog import load_taxonomy

    known = load_taxonomy().get("atlas", {})
    tactics = [t for a in atlas for t in known.get(a, {}).get("tactics", [])]
    out = [f"attack.{t.lower().replace(' ', '-')}" for t in tactics if t in _ATTACK_TACTICS]
    out += [f"attack.{a.lower()}" for a in attack]
    out += [f"atlas.{a.lower()}" for a in atlas] + [f"owasp-ml.{o.lower()}" for o in owasp]
    return list(dict.fromkeys(out))  # unique, in order


def _references(atlas: Sequence[str]) -> list[str]:
    return [f"https://atlas.mitre.org/techniques/{a}" for a in atlas] + [DOCS]


def alert_rule(det: Any) -> dict[str, Any]:
    """One Sigma rule matching a detector's alerts in mlhunt's alert stream.

    The stream is the hunt's findings, one event each (``mlhunt hunt --format json`` ->
    ``.findings[]``, with ``evidence.detector`` lifted to ``detector``).
    """
    det_id = str(_get(det, "id"))
    atlas = _as_list(_get(det, "atlas"))
    owasp = _as_list(_get(det, "owasp_ml"))
    scope = str(_get(det, "scope", "client") or "client")
    what = "source address" if scope == "source_ip" else "client"
    description = " ".join(str(_get(det, "description", "") or "").split())
    return {
        "title": f"mlhunt hunt alert: {_get(det, 'title', det_id)}",
        "id": rule_uuid(f"alert:{det_id}"),
        "name": "mlhunt_alert_" + safe_name(det_id),
        "status": "experimental",
        "description": (
            f"mlhunt's hunt raised {det_id} for a {what} (the alert's target). {description}"
        ).strip(),
        "references": _references(atlas),
        "author": AUTHOR,
        "date": RULES_DATE,
        "tags": _tags(atlas, owasp),
        "logsource": {"product": "mlhunt", "service": "hunt"},
        "detection": {
            "selection": {"source": "hunt", "rule_id": det_id},
            "condition": "selection",
        },
        "fields": list(ALERT_FIELDS),
        "falsepositives": _as_list(_get(det, "false_positive_notes")) or ["Unknown"],
        "level": _level(det),
    }


def _templates() -> dict[str, Any]:
    return yaml.safe_load((Path(__file__).parent / "sigma" / "inference.yaml").read_text("utf-8"))


def _tuning(detectors: Iterable[Any], thresholds: Mapping[str, Any] | None) -> dict[str, dict]:
    """Overrides per correlation name: detectors' ``sigma`` hints, then explicit thresholds."""
    out: dict[str, dict] = {}
    for det in detectors:
        for name, hint in (_get(det, "sigma") or {}).items():
            if hasattr(hint, "model_dump"):  # detectors.base.SigmaHint
                hint = hint.model_dump(exclude_none=True)
            if isinstance(hint, Mapping):
                out.setdefault(name, {}).update({k: v for k, v in hint.items() if v is not None})
    for name, value in (thresholds or {}).items():
        hint = dict(value) if isinstance(value, Mapping) else {"gte": value}
        out.setdefault(name, {}).update(hint)
    return out


def inference_rules(
    detectors: Iterable[Any] = (), *, thresholds: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Base rules and correlation rules over raw inference logs (``sigma/inference.yaml``)."""
    tpl = _templates()
    tuning = _tuning(detectors, thresholds)
    unknown = set(tuning) - {c["name"] for c in tpl["correlations"]}
    if unknown:
        raise InputError(
            f"unknown Sigma correlation(s): {', '.join(sorted(unknown))}", field="thresholds"
        )
    rules: list[dict[str, Any]] = []
    for base in tpl["base"]:
        rules.append(
            {
                "title": base["title"],
                "id": rule_uuid(f"inference:{base['name']}"),
                "name": base["name"],
                "status": "experimental",
                "description": base["description"],
                "references": [DOCS],
                "author": AUTHOR,
                "date": RULES_DATE,
                "logsource": {"product": "mlhunt", "category": "inference"},
                "detection": base["detection"],
                "falsepositives": ["Not an alert on its own: input to correlation rules"],
                "level": "informational",
            }
        )
    for c in tpl["correlations"]:
        tune = tuning.get(c["name"], {})
        gte = int(tune.get("gte", c["gte"]))
        if gte < 1:
            raise InputError(f"threshold must be >= 1, got {gte}", field=f"thresholds.{c['name']}")
        condition: dict[str, Any] = {"gte": gte}
        if c["type"] == "value_count":
            condition = {"field": c["field"], "gte": gte}
        rules.append(
            {
                "title": c["title"],
                "id": rule_uuid(f"correlation:{c['name']}"),
                "name": c["name"],
                "status": "experimental",
                "description": " ".join(c["description"].split()),
                "references": _references(c["atlas"]),
                "author": AUTHOR,
                "date": RULES_DATE,
                "tags": _tags(c["atlas"], c["owasp_ml"], c.get("attack", ())),
                "correlation": {
                    "type": c["type"],
                    "rules": list(c["rules"]),
                    "group-by": list(c["group_by"]),
                    "timespan": str(tune.get("timespan", c["timespan"])),
                    "condition": condition,
                },
                "falsepositives": list(c["falsepositives"]),
                "level": c["level"],
            }
        )
    return rules


def build_rules(
    detectors: Iterable[Any], *, thresholds: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every exported rule: one per detector over the alert stream, then the raw-log rules."""
    dets = list(detectors)
    return [alert_rule(d) for d in dets] + inference_rules(dets, thresholds=thresholds)


def export_sigma(
    detectors: Iterable[Any],
    out_dir: str | Path,
    *,
    backend: str | None = None,
    field_map: Mapping[str, str] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    es_index: str = "*",
) -> list[Path]:
    """Write the rules (``<name>.yml``) and, with ``backend``, their queries; return the paths."""
    rules = build_rules(detectors, thresholds=thresholds)
    return write_rules(rules, out_dir, backend=backend, field_map=field_map, es_index=es_index)


__all__ = [
    "BACKENDS",
    "build_rules",
    "convert",
    "export_sigma",
    "inference_rules",
    "processing_pipeline",
    "rule_uuid",
]
