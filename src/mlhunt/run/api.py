"""``run_project(project)``: model -> (simulate) -> assess, hunt, scan -> linked verdicts.

The threat model decides what is tested: an attack runs only when it validates an ML threat the
model found (for the target's element), so a threat with no matching attack stays *untested*
and says so. Hunts and scans run in worker threads while the attacks run (DuckDB and the
scanner's I/O release the GIL); everything lands under the project's output folder, each file
written atomically.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlhunt import __version__
from mlhunt.errors import InputError
from mlhunt.findings import summarize
from mlhunt.run.coverage import annotate_untested
from mlhunt.run.deploy_links import owned_files, scan_part_evidence
from mlhunt.run.project import LogConfig, Project, ScanConfig, TargetConfig
from mlhunt.run.validation import EvidenceSet, link

Progress = Callable[[str], None]


@dataclass
class RunResult:
    document: dict[str, Any]
    out_dir: Path
    parts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _quiet(_m: str) -> None:
    pass


def threat_model(project: Project) -> dict[str, Any]:
    from mlhunt.system.loader import parse_system, read_text
    from mlhunt.threatmodel import build_threat_model, default_catalog

    path = project.resolve(project.system)
    tm = build_threat_model(parse_system(read_text(path), str(path)), default_catalog())
    return tm.to_document()


def element_scope(model_doc: dict[str, Any], element: str | None) -> frozenset[str]:
    """What a model's evidence speaks to: its element and the flows into it (a poisoned record
    reaches a training job through its input flows, where the poisoning threats sit). Empty:
    no element, the whole system."""
    if element is None:
        return frozenset()
    into = (f["id"] for f in model_doc.get("flows", []) if f.get("target") == element)
    return frozenset({element, *into})


def ml_threats(model_doc: dict[str, Any], element: str | None) -> set[str]:
    """ML threat rule ids the model found (on ``element`` or a flow into it, or anywhere); an
    ML finding grouping several rules of one cause gives each rule that hits there."""
    from mlhunt.threatmodel.grouping import unfold

    scope = element_scope(model_doc, element)
    return {
        rule
        for f in model_doc["findings"]
        if f.get("framework") == "ML"
        for rule, target in unfold(f)
        if not scope or target in scope
    }


def check_elements(project: Project, model_doc: dict[str, Any]) -> None:
    """Every element the project names exists in the system (all problems in one error)."""
    ids = {e["id"] for e in model_doc["elements"]}
    problems = [
        InputError(
            f"unknown element {item.element!r} (the system has: {', '.join(sorted(ids))})",
            file=project.file,
            field=f"{kind}[{i}].element",
        )
        for kind, items in (
            ("models", project.models),
            ("logs", project.logs),
            ("scan", project.scan),
        )
        for i, item in enumerate(items)
        if item.element is not None and item.element not in ids
    ]
    problems += [
        InputError(
            f"unknown element {eid!r} (the system has: {', '.join(sorted(ids))})",
            file=project.file,
            field=f"scan[{i}].owners.{pattern}",
        )
        for i, cfg in enumerate(project.scan)
        for pattern, eid in cfg.owners.items()
        if eid not in ids
    ]
    if problems:
        raise InputError.collect(problems)


def artifact_paths(project: Project, model_doc: dict[str, Any]) -> dict[str, list[str]]:
    """Element id -> the artifact files, folders or globs the system description declares for
    it (an element's ``artifacts`` list, relative to the system file), as absolute paths: the
    scan findings on those files are that element's evidence."""
    base = project.resolve(project.system).resolve().parent
    out: dict[str, list[str]] = {}
    for e in model_doc.get("elements", []):
        declared = e.get("artifacts") or []
        if isinstance(declared, list) and declared:
            out[str(e["id"])] = [str(base / str(p)) for p in declared]
    return out


# --- the parts -----------------------------------------------------------------------------------


def scan_target(project: Project, cfg: ScanConfig) -> Path:
    """The file or folder a scan entry names: its path, or the artifact its scenario's build
    publishes (building the scenario first if needed)."""
    if cfg.scenario is not None:
        from mlhunt.scenarios import artifact_path

        return artifact_path(cfg.scenario, seed=0)  # the build the live API and assess use
    assert cfg.path is not None
    return project.resolve(cfg.path)


def stores_encrypted(model_doc: dict[str, Any], element: str | None) -> bool:
    """Whether the system description declares encryption at rest on ``element`` (its own
    ``encrypted_at_rest`` or a control of that type applied to it)."""
    return any(
        e.get("id") == element and "encryption_at_rest" in (e.get("controls") or ())
        for e in model_doc.get("elements", [])
    )


def run_scan(
    project: Project,
    cfg: ScanConfig,
    path: Path | None = None,
    model_doc: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Scan what a scan entry names (``path``: its :func:`scan_target`, when already known;
    ``model_doc``: the project's threat model, when already built)."""
    from mlhunt.findings import document
    from mlhunt.scan import scan_path

    path = path if path is not None else scan_target(project, cfg)
    if not path.exists():
        raise InputError("scan path not found", file=str(path), field="scan.path")
    r = scan_path(path)
    findings = list(r.findings)
    if cfg.scenario is not None:  # a model artifact: its format, its signature, its bytes at rest
        from mlhunt.scan.at_rest import at_rest_finding
        from mlhunt.scan.model_format import format_finding, unsigned_finding

        findings.append(format_finding(path))
        unsigned = unsigned_finding(path)
        if unsigned is not None:
            findings.append(unsigned)
        if cfg.element is not None and model_doc is None:
            model_doc = threat_model(project)
        declared = stores_encrypted(model_doc or {}, cfg.element)
        findings.append(at_rest_finding(path, cfg.element, declared))
    return document(
        "scan",
        findings,
        path=str(path),
        files_scanned=r.files,
        bytes_scanned=r.bytes,
        skipped=r.skipped,
    )


@contextlib.contextmanager
def live_api(scenario: str, log_path: Path, seed: int) -> Iterator[tuple[Any, str]]:
    """The scenario's REST API on 127.0.0.1 with practice-range keys (``sim-<client>``) and
    X-Forwarded-For trusted, so simulated clients and addresses reach the logs as sent."""
    from mlhunt.scenarios import ensure_built
    from mlhunt.scenarios.server import KeyStore, create_app, running

    _built, loaded = ensure_built(scenario, seed=seed)
    app = create_app(
        loaded, keys=KeyStore({}, prefix="sim-"), log_path=log_path, trust_forwarded=True
    )
    with running(app) as base:
        yield loaded, base


def simulate_logs(project: Project, cfg: LogConfig, progress: Progress) -> Path:
    """Benign and attacker traffic of a built-in scenario through its live API."""
    from mlhunt.scenarios.traffic import simulate

    assert cfg.simulate is not None
    path = Path(cfg.path)
    if not path.is_absolute():  # generated, so it lives with the run's other outputs
        path = project.resolve(project.output) / path
    out = path.parent
    out.mkdir(parents=True, exist_ok=True)
    from mlhunt.llmhunt.simulate import BENIGN_USERS, SCENARIO

    if cfg.simulate == SCENARIO:  # the LLM range: simulated completions, no API to run
        from mlhunt.llmhunt import simulate as simulate_llm

        users = max(1, round(BENIGN_USERS * cfg.scale))
        sim = simulate_llm(out, seed=project.seed, benign_users=users)
        if sim.gateway != path:
            sim.gateway.replace(path)
        progress(f"simulated {sim.calls:,} LLM calls of {len(sim.labels):,} clients")
        return path
    with live_api(cfg.simulate, out / "api-log.jsonl", 0) as (loaded, base):
        result = simulate(
            loaded, out, seed=project.seed, live_url=base, scale=cfg.scale, progress=progress
        )
    written = out / "logs.jsonl"
    if written != path:
        written.replace(path)
    progress(result.summary())
    return path


def _shilling(doc: dict[str, Any], cfg: LogConfig, path: Path, progress: Progress) -> None:
    """A recommender's API log: the shilling hunt over its sessions too, against the simulated
    scenario's own training events (the accounts that are not new; built for seed 0 by
    :func:`live_api`)."""
    from mlhunt.clickhunt import RECOMMENDER_API, add_shilling, click_kind

    if click_kind([path]) != RECOMMENDER_API:
        return
    events = None
    if cfg.simulate is not None:
        from mlhunt.scenarios import cache_dir
        from mlhunt.scenarios.base import BuiltScenario

        folder = cache_dir() / f"{cfg.simulate}-seed0"
        if (folder / "scenario.json").is_file():
            name = BuiltScenario.read(folder).files.get("events")
            events = folder / name if name and (folder / name).is_file() else None
    for note in add_shilling(doc, [path], reference=events):
        progress(f"shilling: {note}")


def run_hunt(project: Project, cfg: LogConfig, path: Path, progress: Progress) -> dict[str, Any]:
    from mlhunt.hunt.api import hunt
    from mlhunt.llmhunt import llm_kind

    if llm_kind([path]) is not None:  # gateway logs or OpenTelemetry GenAI traces
        return run_llm_hunt(project, cfg, path)
    ref = project.resolve(cfg.reference) if cfg.reference else None
    result = hunt([path], engine=cfg.engine, reference=ref, progress=progress)
    doc = result.document()
    _shilling(doc, cfg, path, progress)
    doc["logs"] = str(path)
    doc["engine"] = cfg.engine
    return doc


def run_llm_hunt(project: Project, cfg: LogConfig, path: Path) -> dict[str, Any]:
    """LLM logs are hunted by :mod:`mlhunt.llmhunt`; its findings ``validates`` the LLM
    threats (prompt injection, leakage, ...), which the linking marks observed."""
    from mlhunt.llmhunt import hunt as hunt_llm
    from mlhunt.llmhunt.api import load_tool_limits
    from mlhunt.llmhunt.simulate import SCENARIO
    from mlhunt.llmhunt.simworld import CANARY

    limits = load_tool_limits(project.resolve(cfg.tool_limits) if cfg.tool_limits else None)
    # the range plants its own canary in the helpdesk's system prompt
    canaries = [*cfg.canaries, *([CANARY] if cfg.simulate == SCENARIO else [])]
    result = hunt_llm([path], canaries=canaries, tool_limits=limits)
    doc = result.document()
    doc["logs"] = str(path)
    doc["engine"] = "llmhunt"
    return doc


def run_assess(
    project: Project, cfg: TargetConfig, model_doc: dict[str, Any], out: Path, progress: Progress
) -> dict[str, Any]:
    from mlhunt.assess.api import TargetOptions, assess, open_target
    from mlhunt.assess.catalog import default_attacks
    from mlhunt.assess.progress import LineObserver
    from mlhunt.assess.results import parse_thresholds
    from mlhunt.assess.runner import parse_params

    catalog = default_attacks()
    threats = ml_threats(model_doc, cfg.element)
    if cfg.attacks:
        select = list(cfg.attacks)
    else:
        # Only what the threat model says applies: the rest stays untested, with the reason.
        select = [a.id for a in catalog if set(a.spec.validates) & threats]
    params = parse_params([f"{k}={json.dumps(v)}" for k, v in cfg.params.items()], catalog)
    items = [
        f"{k}.{sev.value}={v}" for k, sevs in project.thresholds.items() for sev, v in sevs.items()
    ]
    limits = parse_thresholds(items, catalog, None)
    name = cfg.scenario or Path(cfg.path or cfg.url or cfg.factory or "model").stem
    if cfg.scenario and cfg.element and sum(m.scenario == cfg.scenario for m in project.models) > 1:
        name = f"{name}-{cfg.element}"  # one model, two elements (its API, its training job)
    state = out / "assess" / name
    opts = TargetOptions(
        target=cfg.url or cfg.path or (cfg.factory if cfg.kind == "callable" else None),
        scenario=cfg.scenario,
        kind=cfg.kind,
        factory=cfg.factory if cfg.kind == "torch" else None,
        spec=project.resolve(cfg.spec) if cfg.spec else None,
        data=project.resolve(cfg.data) if cfg.data else None,
        http_config=project.resolve(cfg.http_config) if cfg.http_config else None,
        api_key_env=cfg.api_key_env,
        trust=cfg.trust,
        in_process=not cfg.live,
        seed=project.seed,
        log_dir=state,
    )
    none = {
        "command": "assess",
        "findings": [],
        "target": name,
        "attacks": [],
        "element": cfg.element,
        "note": "no attack in the catalog tests this model's threats",
    }
    if not select:
        return none
    with open_target(opts) as (target, data):
        if not cfg.attacks:  # attacks for another input kind would only be skipped findings
            kinds = {a.id: a.spec.applies_to for a in catalog}
            select = [i for i in select if target.spec.kind in kinds[i]]
            if not select:
                return none
        report = assess(
            target,
            data,
            catalog=catalog,
            select=select,
            params=params,
            max_queries=cfg.max_queries,
            max_seconds=cfg.max_seconds,
            seed=project.seed,
            state_dir=state,
            resume=True,
            thresholds=limits,
            observer=LineObserver(progress),
        )
    doc = report.document()
    for f in doc["findings"]:  # plots relative to the report folder: the report embeds them
        plots = f.get("evidence", {}).get("plots")
        if plots:
            f["evidence"]["plots"] = [_relative(Path(p), out) for p in plots]
    doc["element"] = cfg.element
    return doc


def run_model(
    project: Project, cfg: TargetConfig, model_doc: dict[str, Any], out: Path, progress: Progress
) -> dict[str, Any]:
    """The attacks on one model, then the load test of its live API where the threat model
    says it can be denied service (:mod:`mlhunt.run.load_part`): one assess document."""
    from mlhunt.run.load_part import load_test_part, wants_load_test

    doc = run_assess(project, cfg, model_doc, out, progress)
    if wants_load_test(cfg, ml_threats(model_doc, cfg.element)):
        found = load_test_part(project, cfg, out, progress)
        if found is not None:
            doc["findings"] = [*doc["findings"], found]
    return doc


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


# --- the whole run -------------------------------------------------------------------------------


def _inputs(project: Project, *paths: str | None) -> list[Path | None]:
    return [project.resolve(p) if p else None for p in paths]


def run_project(
    project: Project, *, progress: Progress = _quiet, resume: bool = False
) -> RunResult:
    """Run every part the project names and link the evidence to the threat model. Each part's
    document is saved under ``<output>/parts/`` as it completes; ``resume`` reuses those whose
    project, system and input files are unchanged (:mod:`mlhunt.run.resume`)."""
    from mlhunt._native import preload_torch
    from mlhunt.run.resume import PartStore

    scenarios = any(c.simulate for c in project.logs) or any(c.scenario for c in project.scan)
    if project.models or project.harden or scenarios:
        preload_torch()  # before the scan threads load regopy: the other order aborts
    out = project.resolve(project.output)
    out.mkdir(parents=True, exist_ok=True)
    store = PartStore.for_project(project, out, resume, progress)
    progress("threat model")
    model_doc = threat_model(project)
    check_elements(project, model_doc)
    parts: dict[str, list[dict[str, Any]]] = {"assess": [], "hunt": [], "scan": []}
    evidence: list[EvidenceSet] = []

    def elements(e: str | None) -> frozenset[str]:
        return frozenset({e}) if e else frozenset()

    owners = [owned_files(project, cfg) for cfg in project.scan]  # a typo fails before work
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlhunt-run")
    try:
        scans: list[tuple[ScanConfig, Future[dict[str, Any]]]] = []
        # Scenario artifacts are built here, before any scan thread starts (and loads regopy).
        targets = [scan_target(project, cfg) for cfg in project.scan]
        for i, (cfg, target) in enumerate(zip(project.scan, targets, strict=True)):
            key = store.key("scan", i, cfg.model_dump(mode="json"), [target])
            fn = functools.partial(run_scan, project, cfg, target, model_doc)
            scans.append((cfg, pool.submit(store.part, "scan", i, key, fn)))
        hunts: list[tuple[LogConfig, Future[dict[str, Any]]]] = []
        for i, cfg in enumerate(project.logs):
            path = project.resolve(cfg.path)
            # Simulated logs are generated by the run itself: keyed by their settings alone.
            logs = [] if cfg.simulate else _inputs(project, cfg.path)
            key = store.key(
                "hunt", i, cfg.model_dump(mode="json"), [*logs, *_inputs(project, cfg.reference)]
            )
            saved = store.load("hunt", i, key)
            if saved is not None:  # nor is the simulation redone
                done: Future[dict[str, Any]] = Future()
                done.set_result(saved)
                hunts.append((cfg, done))
                continue
            if cfg.simulate:
                how = "" if cfg.simulate == "llm-helpdesk" else " through its live API"
                progress(f"simulating {cfg.simulate} traffic{how}")
                path = simulate_logs(project, cfg, progress)
            fn = functools.partial(run_hunt, project, cfg, path, progress)
            hunts.append((cfg, pool.submit(store.part, "hunt", i, key, fn)))
        for i, tcfg in enumerate(project.models):
            progress(f"assess {tcfg.scenario or tcfg.path or tcfg.url}")
            key = store.key(
                "assess",
                i,
                [tcfg.model_dump(mode="json"), project.thresholds],
                _inputs(project, tcfg.path, tcfg.spec, tcfg.data, tcfg.http_config),
            )
            fn = functools.partial(run_model, project, tcfg, model_doc, out, progress)
            doc = store.part("assess", i, key, fn)
            parts["assess"].append(doc)
            scope = element_scope(model_doc, tcfg.element)
            evidence.append(EvidenceSet("assess", doc["findings"], scope))
        for lcfg, fut in hunts:
            doc = fut.result()
            parts["hunt"].append(doc)
            evidence.append(EvidenceSet("hunt", doc["findings"], elements(lcfg.element)))
        for (scfg, sfut), owned in zip(scans, owners, strict=True):
            doc = sfut.result()
            declared = artifact_paths(project, model_doc)
            doc, sets, loose = scan_part_evidence(model_doc, scfg.element, doc, owned, declared)
            parts["scan"].append(doc)
            evidence.extend(sets)
            if loose:
                progress(
                    f"scan {scfg.path or scfg.scenario}: {len(loose)} finding(s) on files no "
                    "element declares (set scan[].element or owners): reported, linked to no threat"
                )
    except BaseException:
        # Ctrl-C or a failed part: start nothing new (what finished is already saved).
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    if project.harden:  # mitigation checks (their trained weights are cached by parameters)
        from mlhunt.run.harden_part import harden_part

        parts["harden"], proofs = harden_part(project, out, progress)
        evidence.extend(proofs)
    linked = link(copy.deepcopy(model_doc), evidence)
    annotate_untested(linked, [m.scenario for m in project.models if m.scenario])
    result = RunResult(_document(project, linked, parts, out), out, parts)
    if store.reused:
        result.document["resumed"] = sorted(store.reused)
    return result


def _document(
    project: Project, linked: dict[str, Any], parts: dict[str, list[dict[str, Any]]], out: Path
) -> dict[str, Any]:
    findings = list(linked["findings"])
    for docs in parts.values():
        for d in docs:
            findings.extend(d["findings"])
    summary = linked["summary"]
    counts = summarize([])["by_severity"]
    for f in findings:
        counts[f["severity"]] += 1
    summary = {**summary, "by_severity": counts, "total": len(findings)}
    return {
        "tool": "mlhunt",
        "version": __version__,
        "command": "run",
        "name": project.name or linked.get("system", {}).get("name"),
        "findings": findings,
        "summary": summary,
        "system": linked.get("system"),
        "elements": linked["elements"],
        "flows": linked["flows"],
        "trust_boundaries": linked["trust_boundaries"],
        "parts": {
            "assess": [{k: v for k, v in d.items() if k != "findings"} for d in parts["assess"]],
            "hunt": [{k: v for k, v in d.items() if k != "findings"} for d in parts["hunt"]],
            "scan": [{k: v for k, v in d.items() if k != "findings"} for d in parts["scan"]],
            **{
                k: [{x: v for x, v in d.items() if x != "findings"} for d in parts[k]]
                for k in ("harden",)
                if parts.get(k)
            },
        },
        "assets_dir": str(out),
    }


def compare_baseline(doc: dict[str, Any], baseline: dict[str, Any]) -> dict[str, list[str]]:
    """Mark findings new / unchanged against a previous run's JSON; list the fixed ones."""
    before = {f["id"] for f in baseline.get("findings", [])}
    now = {f["id"] for f in doc["findings"]}
    for f in doc["findings"]:
        f["baseline"] = "unchanged" if f["id"] in before else "new"
    out = {
        "new": sorted(now - before),
        "unchanged": sorted(now & before),
        "fixed": sorted(before - now),
    }
    doc["baseline"] = out
    return out


def write_outputs(result: RunResult) -> list[Path]:
    """report.html, run.md, run.json and run.sarif in the output folder, each atomically."""
    from mlhunt._io import write_atomic
    from mlhunt.report import render

    written = []
    for name, fmt in (
        ("run.json", "json"),
        ("run.sarif", "sarif"),
        ("run.md", "markdown"),
        ("report.html", "html"),
    ):
        path = result.out_dir / name
        write_atomic(path, render(result.document, fmt))
        written.append(path)
    return written
