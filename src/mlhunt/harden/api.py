"""``harden``: apply mitigations to a built-in scenario and turn each measured variant into a
finding (source ``harden``, rule id = mitigation id, target = the scenario's model)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlhunt._units import parse_assignment
from mlhunt.errors import InputError
from mlhunt.findings import Finding, Severity, document
from mlhunt.harden.base import HardenContext, Outcome, Progress, plain
from mlhunt.harden.catalog import CatalogMitigation, MitigationSpec, default_mitigations


def _quiet(_msg: str) -> None:
    return None


def resolve(catalog: Sequence[CatalogMitigation], name: str, what: str) -> CatalogMitigation:
    """A mitigation by id or short name (``dp-logreg`` for ``MLH-HARDEN-DP-LOGREG``)."""
    key = name.strip().upper()
    for m in catalog:
        if m.id in (key, f"MLH-HARDEN-{key}"):
            return m
    known = ", ".join(m.id for m in catalog)
    raise InputError(f"{what}: unknown mitigation {name!r} (known: {known})")


def parse_params(
    items: Iterable[str], catalog: Sequence[CatalogMitigation] | None = None
) -> dict[str, dict[str, Any]]:
    """``ID.key=value`` overrides (value parsed as YAML); ``ID.key.sub=value`` sets one entry
    of a mapping parameter (e.g. ``dp-logreg.membership.shadow_models=2``)."""
    catalog = catalog if catalog is not None else default_mitigations()
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        lhs, parsed = parse_assignment(item)
        name, _, key = lhs.partition(".")
        m = resolve(catalog, name, "--param")
        top, _, sub = key.partition(".")
        if top not in m.spec.params:  # a typo would otherwise be silently ignored
            raise InputError(
                f"--param: {m.id} has no parameter {top!r} "
                f"(known: {', '.join(m.spec.params) or 'none'})"
            )
        params = out.setdefault(m.id, {})
        if sub:
            base = params.get(top, m.spec.params[top])
            if not isinstance(base, dict):
                raise InputError(f"--param: {m.id}.{top} is not a mapping")
            params[top] = {**base, sub: parsed}
        else:
            params[top] = parsed
    return out


@dataclass
class HardenReport:
    scenario: str
    model: str
    findings: list[Finding] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return document("harden", self.findings, scenario=self.scenario, model=self.model)


def finding_for(
    spec: MitigationSpec,
    outcome: Outcome,
    target: str,
    params: dict[str, Any],
    plot_dir: Path,
    seconds: float,
) -> Finding:
    from mlhunt.assess.results import finding_id

    variant = ",".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in outcome.variant.items()
    )
    verdict = "effective" if outcome.effective else "not effective"
    extra = dict(outcome.extra)
    # Proven: effective *and* the attack measurably weaker after it (a mitigation of an attack
    # that already failed is effective but proves nothing about the risk).
    proven = bool(outcome.effective and extra.pop("improved", True))
    evidence: dict[str, Any] = {
        "mitigation": spec.id,
        "variant": outcome.variant,
        "parameters": {**params, **outcome.variant},
        "utility_before": outcome.utility_before,
        "utility_after": outcome.utility_after,
        "attack_before": outcome.attack_before,
        "attack_after": outcome.attack_after,
        "effective": outcome.effective,
        "proven": proven,
        "summary": outcome.summary,
        "addresses": list(spec.addresses),
        "attacks": list(spec.attacks),
        **extra,
        "plots": [str(plot_dir / p) for p in outcome.plots],
        "seconds": round(seconds, 2),
    }
    return Finding(
        id=finding_id(spec.id, f"{target}#{variant}"),
        rule_id=spec.id,
        title=f"{spec.title} [{variant}]: {verdict}",
        severity=Severity.INFO if outcome.effective else spec.severity_if_ineffective,
        source="harden",
        target=target,
        description=f"{spec.description.strip()} Result: {outcome.summary}",
        atlas=list(spec.atlas),
        owasp_ml=list(spec.owasp_ml),
        evidence=plain(evidence),
    )


def harden(
    scenario: str,
    *,
    select: Sequence[str] = (),
    params: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    scenario_seed: int = 0,
    out_dir: Path | None = None,
    progress: Progress = _quiet,
    catalog: Sequence[CatalogMitigation] | None = None,
) -> HardenReport:
    """Apply the selected mitigations (default: every one that applies) to ``scenario``."""
    from mlhunt.assess.runner import slug
    from mlhunt.assess.scenario import scenario_data
    from mlhunt.scenarios import ensure_built, get

    catalog = catalog if catalog is not None else default_mitigations()
    get(scenario)  # unknown name: one clear line before any work
    chosen = [resolve(catalog, s, "--mitigation") for s in select]
    for m in chosen:
        if scenario not in m.spec.applies_to:
            raise InputError(
                f"--mitigation: {m.id} does not apply to {scenario} "
                f"(applies to: {', '.join(m.spec.applies_to)})"
            )
    if not chosen:
        chosen = [m for m in catalog if scenario in m.spec.applies_to]
    if not chosen:
        raise InputError(f"no mitigation in the catalog applies to {scenario}")
    _built, loaded = ensure_built(scenario, seed=scenario_seed)
    data = scenario_data(loaded, seed=seed)
    root = out_dir or Path(".mlhunt-harden") / slug(loaded.model_name)
    report = HardenReport(scenario, loaded.model_name)
    for m in chosen:
        merged = {**m.spec.params, **(params or {}).get(m.id, {})}
        folder = root / slug(m.id)
        ctx = HardenContext(
            loaded, data, merged, seed, folder, lambda msg, m=m: progress(f"{m.id}: {msg}"), m.id
        )
        started = time.perf_counter()
        outcomes = m.load()(ctx)
        seconds = time.perf_counter() - started
        report.findings.extend(
            finding_for(m.spec, o, loaded.model_name, merged, folder, seconds) for o in outcomes
        )
    return report
