"""The hunt detectors, registered in one place (:data:`REGISTRY`: YAML file stem -> class).

Adding a detector is adding ``name.py`` (a :class:`~mlhunt.hunt.detectors.base.Detector`
subclass) and ``name.yaml`` (its :class:`~mlhunt.hunt.detectors.base.DetectorSpec`) here and one
line to :data:`REGISTRY`. :func:`load_detectors` validates every YAML (unknown keys, unknown
ATLAS / OWASP ML / threat-rule ids are errors naming the file).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlhunt.errors import CatalogError, InputError
from mlhunt.hunt.detectors.base import Detector, DetectorSpec

#: YAML stem -> "module:Class" (modules under mlhunt.hunt.detectors).
REGISTRY: dict[str, str] = {
    "extraction": "extraction:ExtractionDetector",
    "query_distance": "distance:QueryDistanceDetector",
    "evasion_probing": "probing:EvasionProbingDetector",
    "membership_probing": "probing:MembershipProbingDetector",
    "inversion_sweep": "inversion:InversionSweepDetector",
    "low_confidence": "lowconf:LowConfidenceDetector",
    "natural_extraction": "natural:NaturalExtractionDetector",
    "sybil_extraction": "extraction:SybilExtractionDetector",
    "credential_stuffing": "abuse:CredentialStuffingDetector",
    "request_flood": "abuse:RequestFloodDetector",
}


def _dir() -> Path:
    return Path(str(resources.files("mlhunt.hunt.detectors")))


@functools.cache
def _known_ids() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    # the threat model's files read by path: importing mlhunt.threatmodel (its catalog and
    # engine) would add a tenth of a second to every hunt
    import mlhunt

    tm = Path(mlhunt.__file__).parent / "threatmodel"
    tax = yaml.load((tm / "taxonomy.yaml").read_text("utf-8"), Loader=_loader())  # noqa: S506
    rules = {p.stem for p in (tm / "rules").rglob("MLH-*.yaml")}
    return frozenset(tax["atlas"]), frozenset(tax["owasp_ml"]), frozenset(rules)


def _loader() -> type:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[no-any-return]


def load_spec(path: Path) -> DetectorSpec:
    """One detector YAML, validated; errors are :class:`CatalogError` naming the file."""
    try:
        # libyaml when available: the pure-Python parser took 0.1 s of every hunt
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())  # noqa: S506 (safe)
        spec = DetectorSpec.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CatalogError(f"{path}: {where}: {first['msg']}") from None
    atlas, owasp, rules = _known_ids()
    for kind, ids, known in (
        ("atlas", spec.atlas, atlas),
        ("owasp_ml", spec.owasp_ml, owasp),
        ("validates", spec.validates, rules),
    ):
        bad = [i for i in ids if i not in known]
        if bad:
            raise CatalogError(f"{path}: {kind}: unknown id(s) {', '.join(bad)}")
    return spec


def _make(stem: str, spec: DetectorSpec) -> Detector:
    mod_name, cls_name = REGISTRY[stem].split(":")
    cls = getattr(importlib.import_module(f"mlhunt.hunt.detectors.{mod_name}"), cls_name)
    det: Detector = cls(spec)
    return det


def load_detectors(
    only: Iterable[str] | None = None, params: dict[str, dict[str, Any]] | None = None
) -> list[Detector]:
    """Every registered detector (or those whose id or YAML stem is in ``only``); ``params``
    overrides thresholds per detector id."""
    wanted = {w.strip() for w in only} if only is not None else None
    out = []
    seen: set[str] = set()
    for stem in REGISTRY:
        spec = load_spec(_dir() / f"{stem}.yaml")
        if spec.id in seen:
            raise CatalogError(f"{stem}.yaml: duplicate detector id {spec.id}")
        seen.add(spec.id)
        if wanted is not None and spec.id not in wanted and stem not in wanted:
            continue
        if params and spec.id in params:
            unknown = set(params[spec.id]) - set(spec.params)
            if unknown:
                raise InputError(f"{spec.id}: unknown parameter(s) {', '.join(sorted(unknown))}")
            spec = spec.model_copy(update={"params": {**spec.params, **params[spec.id]}})
        out.append(_make(stem, spec))
    if wanted is not None:
        missing = wanted - {d.spec.id for d in out} - {s for s in REGISTRY if s in wanted}
        if missing:
            raise InputError(f"--detector: unknown detector(s) {', '.join(sorted(missing))}")
    return out


__all__ = ["REGISTRY", "Detector", "DetectorSpec", "load_detectors", "load_spec"]
