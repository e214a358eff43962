"""Sigma rules for the clickstream detectors (pySigma imported only when converting).

Per detector: one rule over mlhunt's alert stream (``source: hunt``, ``rule_id``), and the
part of the shilling hunt a SIEM can run on raw clickstream events: carts and purchases of one
item by many distinct accounts within a few hours (a value_count correlation grouped by
``item``). The SIEM cannot tell new accounts or compare sessions, so that rule also fires on a
marketing burst; mlhunt's finding is the one to act on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlhunt.clickhunt.detectors import ClickDetector, load_detectors
from mlhunt.sigmakit import safe_name, top_level, write_rules

RULES_DATE = "2026-12-07"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/mlhunt/mlhunt/sigma/clickstream")
#: The clickstream event fields the raw-event rules name (map them to a SIEM's with pySigma).
EVENT_FIELDS = ("ts", "user", "item", "event", "source_ip", "referrer")
BASE_RULE = "mlhunt_click_engagement"


def _common(det: ClickDetector, key: str, level: str | None = None) -> dict[str, Any]:
    spec = det.spec
    return {
        "id": str(uuid.uuid5(_NAMESPACE, f"{key}:{spec.id}")),
        "status": "experimental",
        "description": " ".join(spec.description.split()),
        "references": ["docs/hunt.md"],
        "author": "mlhunt",
        "date": RULES_DATE,
        "tags": [f"atlas.{a.lower()}" for a in spec.atlas]
        + [f"owasp-ml.{o.lower()}" for o in spec.owasp_ml],
        "falsepositives": [" ".join(spec.false_positive_notes.split())],
        "level": level or top_level(spec.severity),
    }


def detector_rules(det: ClickDetector) -> list[dict[str, Any]]:
    """The alert-stream rule of a detector, then its raw-event rules (if it has hints)."""
    spec = det.spec
    name = safe_name(spec.id)
    out: list[dict[str, Any]] = [
        {
            "title": f"mlhunt hunt alert: {spec.title}",
            "name": f"mlhunt_alert_{name}",
            **_common(det, "alert"),
            "logsource": {"product": "mlhunt", "service": "hunt"},
            "detection": {
                "selection": {"source": "hunt", "rule_id": spec.id},
                "condition": "selection",
            },
        }
    ]
    for corr_name, hint in spec.sigma.items():
        out.append(
            {
                "title": "Clickstream: carts and purchases of one item by many accounts",
                "name": corr_name,
                **_common(det, f"corr:{corr_name}", "medium"),
                "correlation": {
                    "type": "value_count",
                    "rules": [BASE_RULE],
                    "group-by": ["item"],
                    "timespan": hint.timespan or "6h",
                    "condition": {"gte": hint.gte or 20, "field": "user"},
                },
            }
        )
    return out


def build_rules(detectors: Iterable[ClickDetector] | None = None) -> list[dict[str, Any]]:
    """Every rule: the raw-event base rule, then each detector's rules."""
    dets = list(load_detectors() if detectors is None else detectors)
    base = {
        "title": "Clickstream add-to-cart or purchase",
        "name": BASE_RULE,
        "id": str(uuid.uuid5(_NAMESPACE, BASE_RULE)),
        "status": "experimental",
        "description": "A shop event that weighs on the recommender's training (cart, purchase).",
        "author": "mlhunt",
        "date": RULES_DATE,
        "logsource": {"product": "mlhunt", "category": "clickstream"},
        "detection": {"selection": {"event": ["cart", "purchase"]}, "condition": "selection"},
        "level": "informational",
    }
    return [base] + [r for d in dets for r in detector_rules(d)]


def export_sigma(out_dir: str | Path, *, backend: str | None = None) -> list[Path]:
    """Write every rule (``<name>.yml``) and, with ``backend`` (splunk or elasticsearch), its
    queries beside it; return the paths."""
    return write_rules(build_rules(), out_dir, backend=backend)
