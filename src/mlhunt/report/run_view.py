"""What the report of a run says, shared by the HTML and Markdown renderers.

The run document (``mlhunt run --format json``; the input of :mod:`mlhunt.report.run_html`,
:mod:`mlhunt.report.run_markdown` and :mod:`mlhunt.report.run_index`)::

    {"tool": "mlhunt", "version": "...", "command": "run",
     "system": {"name", "description"},              # from the model document
     "elements": [...], "flows": [...], "trust_boundaries": [...],
     "findings": [
        # model findings (source "model", framework STRIDE|LINDDUN|ML, likelihood, impact, risk);
        # ML ones carry "validation": {"status", "statuses": [validated|observed|refuted|
        #   untested], "evidence": [finding ids], "reason", "risk_before", "severity_before"}
        # assess findings: evidence {verdict, validates, summary, queries, seconds, and the
        #   measured numbers: clean_accuracy, adversarial_accuracy, epsilon, success_rate,
        #   agreement, auc, tpr_at_fpr {"0.001": ..}, hide_rate, patch_area, advantage,
        #   curves {...}, plots: [PNG paths relative to assets_dir]}
        # hunt alerts: target = client id or source address; evidence {detector,
        #   first_event_ts, detected_at_event, score, validates, counts, sample_queries,
        #   series (optional per-event scores: [score, ...] with event = index + 1, or
        #   [[event, score], ...], or [{"event", "score"}, ...]), threshold (optional)}
        # scan findings: target = file path; evidence {message, line, ...}
     ],
     "summary": {"by_severity": {...}, "total": N, "by_validation": {status: count}},
     "parts": {"assess": [{"target", "element", "queries", "seconds", "attacks": [ids]}],
               "hunt": [{"logs", "engine", "read": {"records", "malformed", "errors"},
                         "events_per_second"}],
               "scan": [{"path", "files_scanned"}]},
     "assets_dir": "folder the plot paths are relative to",
     "baseline": {"new": [ids], "unchanged": [ids], "fixed": [ids]}}   # optional

Everything here works on that dict and tolerates missing parts (a run without hunt, a model
document without evidence). Strings are returned raw: each renderer escapes for its format.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from mlhunt.report._common import (
    SEVERITY_RANK,
    findings_of,
    number,
    severity_of,
    sort_key,
    split_mitigation,
    text,
)

EVIDENCE_SOURCES = ("assess", "hunt", "scan", "harden")
#: Display order of validation statuses; "modelled" marks threats no test applies to (STRIDE,
#: LINDDUN: design-level threats); "mitigated": harden proved a mitigation of it.
STATUS_ORDER = ("validated", "observed", "mitigated", "refuted", "untested", "modelled")
TOP_RISKS = 5
FIX_FIRST = 6


def statuses(finding: dict[str, Any]) -> list[str]:
    v = finding.get("validation")
    if isinstance(v, dict):
        got = [text(s) for s in v.get("statuses") or [v.get("status")] if s]
        return got or ["untested"]
    return ["modelled"]


def threats(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Model findings (the threats), highest risk first."""
    out = [f for f in findings_of(doc) if text(f.get("source") or "model") == "model"]
    return sorted(out, key=sort_key)


def evidence_findings(doc: dict[str, Any], source: str | None = None) -> list[dict[str, Any]]:
    srcs = (source,) if source else EVIDENCE_SOURCES
    return sorted((f for f in findings_of(doc) if f.get("source") in srcs), key=sort_key)


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {text(f.get("id")): f for f in findings_of(doc)}


def linked_evidence(finding: dict[str, Any], index: dict[str, dict[str, Any]]) -> list[Any]:
    v = finding.get("validation")
    ids = v.get("evidence") if isinstance(v, dict) else None
    return [index[text(i)] for i in ids or [] if text(i) in index]


def num(value: Any) -> str:
    """A measured number for reading: 2,000 / 0.97 / 0.0042 / 12.5."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return text(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return f"{int(value):,}"
    v = float(value)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if v != 0 and abs(v) < 0.1:
        return f"{v:.2g}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


def attack_name(finding: dict[str, Any]) -> str:
    """'Model extraction' from 'Model extraction: validated'."""
    return text(finding.get("title")).split(":", 1)[0].strip() or text(finding.get("rule_id"))


def _tpr(ev: dict[str, Any]) -> str:
    tpr = ev.get("tpr_at_fpr")
    if not isinstance(tpr, dict) or not tpr:
        return ""
    fpr = min(tpr, key=lambda k: number(k))
    return f"TPR {num(tpr[fpr])} at FPR {text(fpr)}"


def measured(ev: dict[str, Any]) -> str:
    """The headline numbers of an attack, most telling first."""
    parts: list[str] = []
    q = ev.get("queries")
    if isinstance(ev.get("agreement"), int | float):
        s = f"{num(ev['agreement'])} agreement"
        parts.append(s + (f" after {num(q)} queries" if q else ""))
        q = None
    if isinstance(ev.get("hide_rate"), int | float):
        s = f"object hidden in {ev['hide_rate']:.0%} of images"
        if isinstance(ev.get("patch_area"), int | float):
            s += f" with a patch of {ev['patch_area']:.0%} of the image"
        parts.append(s)
    clean, adv = ev.get("clean_accuracy"), ev.get("adversarial_accuracy")
    if isinstance(clean, int | float) and isinstance(adv, int | float):
        s = f"accuracy {num(clean)} → {num(adv)}"
        parts.append(s + (f" at ε={num(ev['epsilon'])}" if ev.get("epsilon") is not None else ""))
    elif isinstance(ev.get("success_rate"), int | float):
        s = f"{ev['success_rate']:.0%} of inputs flipped"
        parts.append(s + (f" at ε={num(ev['epsilon'])}" if ev.get("epsilon") is not None else ""))
    if isinstance(ev.get("auc"), int | float):
        parts.append(f"AUC {num(ev['auc'])}")
    if tpr := _tpr(ev):
        parts.append(tpr)
    if isinstance(ev.get("advantage"), int | float):
        parts.append(f"advantage {num(ev['advantage'])}")
    if q and parts:
        parts.append(f"{num(q)} queries")
    if not parts:
        return text(ev.get("summary") or ev.get("reason") or ev.get("verdict"))
    return ", ".join(parts)


def headline(f: dict[str, Any]) -> str:
    """One line a reviewer can quote: what an evidence finding measured or saw."""
    ev = f.get("evidence") if isinstance(f.get("evidence"), dict) else {}
    src = f.get("source")
    if src == "assess":
        return f"{attack_name(f)}: {measured(ev)}"
    if src == "harden":  # the mitigation, its verdict and the before/after numbers
        return f"{text(f.get('title'))}: {text(ev.get('summary'))}"
    if src == "hunt":
        s = f"{text(ev.get('detector') or f.get('rule_id'))} on {text(f.get('target'))}"
        if ev.get("detected_at_event") is not None:
            s += f": alert at event {num(ev['detected_at_event'])}"
        if ev.get("score") is not None:
            s += f" (score {num(ev['score'])})"
        return s
    if src == "scan" and ev.get("refutes"):  # manifests checked clean (run.deploy_links)
        return f"{text(f.get('title'))}: {text(ev.get('summary'))}"
    line = f":{text(ev['line'])}" if ev.get("line") is not None else ""
    found = f"{text(f.get('title'))} in {text(f.get('target'))}{line}"
    return f"a scan found: {found}" if src == "scan" else found


def metrics(ev: Any) -> list[tuple[str, str]]:
    """Scalar numbers and short strings of an evidence dict, for a facts table."""
    if not isinstance(ev, dict):
        return []
    skip = {
        "summary",
        "params",
        "validates",
        "plots",
        "curves",
        "series",
        "traceback",
        "sample_queries",
        "risk_explanation",
        "message",
        "verdict",
        "severity_metric",
        "detector",
    }
    out: list[tuple[str, str]] = []
    for k, v in ev.items():
        if k in skip or v is None or isinstance(v, bool):
            continue
        if isinstance(v, int | float | str) and len(text(v)) <= 120:
            out.append((text(k).replace("_", " "), num(v) if not isinstance(v, str) else v))
        elif k == "tpr_at_fpr" and isinstance(v, dict):
            out += [(f"TPR at FPR {text(x)}", num(y)) for x, y in v.items()]
        elif k == "counts" and isinstance(v, dict):
            out += [(f"{text(x)}".replace("_", " "), num(y)) for x, y in v.items()]
    return out


@dataclass
class Observed:
    alerts: int = 0
    targets: list[str] = field(default_factory=list)  # clients or source addresses
    detectors: list[str] = field(default_factory=list)
    threats: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Summary:
    top: list[dict[str, Any]]  # threats with the highest post-evidence risk
    proven: list[tuple[dict[str, Any], list[str]]]  # (threat, headlines of what proved it)
    refuted: list[tuple[dict[str, Any], list[str]]]
    observed: Observed
    fix_first: list[tuple[str, list[dict[str, Any]]]]  # (mitigation, threats it addresses)
    untested: int


def _headlines(threat: dict[str, Any], index: dict[str, Any], sources: tuple[str, ...]) -> Any:
    return list(
        dict.fromkeys(
            headline(e) for e in linked_evidence(threat, index) if e.get("source") in sources
        )
    )


def summarize(doc: dict[str, Any]) -> Summary:
    index = by_id(doc)
    ts = threats(doc)
    proven = [
        (t, _headlines(t, index, ("assess", "scan"))) for t in ts if "validated" in statuses(t)
    ]
    refuted = [(t, _headlines(t, index, ("assess",))) for t in ts if statuses(t) == ["refuted"]]
    alerts = evidence_findings(doc, "hunt")
    observed = Observed(
        alerts=len(alerts),
        targets=list(dict.fromkeys(text(a.get("target")) for a in alerts)),
        detectors=list(
            dict.fromkeys(
                text((a.get("evidence") or {}).get("detector") or a.get("rule_id")) for a in alerts
            )
        ),
        threats=[t for t in ts if "observed" in statuses(t)],
    )
    urgent = [t for t in ts if {"validated", "observed"} & set(statuses(t))]
    # Round robin over the proven/observed threats (highest risk first): every one of them gets
    # its first action in before any gets its second.
    todo = [
        [m.action for m in map(split_mitigation, t.get("mitigations") or []) if not m.done]
        for t in urgent
    ]
    fix: dict[str, list[dict[str, Any]]] = {}
    for rank in range(max(map(len, todo), default=0)):
        for t, actions in zip(urgent, todo, strict=True):
            if rank < len(actions):
                fix.setdefault(actions[rank], []).append(t)
    # Equal risk: what evidence proved or saw ranks above what is only modelled.
    top = sorted(ts, key=lambda t: (-number(t.get("risk")), t not in urgent, *sort_key(t)[1:]))
    return Summary(
        top=top[:TOP_RISKS],
        proven=proven,
        refuted=refuted,
        observed=observed,
        fix_first=list(fix.items())[:FIX_FIRST],
        untested=sum(1 for t in ts if statuses(t) == ["untested"]),
    )


def worst_by_element(doc: dict[str, Any]) -> dict[str, tuple[str, set[str]]]:
    """target -> (worst post-evidence severity, statuses of its threats)."""
    out: dict[str, tuple[str, set[str]]] = {}
    for t in threats(doc):
        if text(t.get("status")) in ("mitigated", "false-positive"):
            continue
        target, sev = text(t.get("target")), severity_of(t)
        old, sts = out.get(target, (sev, set()))
        worse = sev if SEVERITY_RANK[sev] > SEVERITY_RANK[old] else old
        out[target] = (worse, sts | set(statuses(t)))
    return out


# ---------------------------------------------------------------------------------------------
# ATLAS view and mitigation checklist
# ---------------------------------------------------------------------------------------------


@functools.cache
def _atlas() -> tuple[dict[str, Any], tuple[str, ...]]:
    from mlhunt.threatmodel.catalog import load_taxonomy

    tax = load_taxonomy()
    return tax.get("atlas") or {}, tuple((tax.get("atlas_tactics") or {}).values())


@dataclass
class AtlasCell:
    technique: str
    name: str
    threats: list[dict[str, Any]] = field(default_factory=list)
    statuses: set[str] = field(default_factory=set)

    @property
    def status(self) -> str:
        """The strongest status: what a reviewer should see first."""
        return next((s for s in STATUS_ORDER if s in self.statuses), "modelled")


def atlas_matrix(doc: dict[str, Any]) -> list[tuple[str, list[AtlasCell]]]:
    """(tactic, techniques touched under it) in ATLAS tactic order; only touched tactics."""
    techniques, tactic_order = _atlas()
    cells: dict[str, AtlasCell] = {}

    def cell(tid: str) -> AtlasCell:
        name = text((techniques.get(tid) or {}).get("name") or tid)
        return cells.setdefault(tid, AtlasCell(tid, name))

    for t in threats(doc):
        for tid in dict.fromkeys(text(a) for a in t.get("atlas") or []):
            c = cell(tid)
            c.threats.append(t)
            c.statuses |= set(statuses(t))
    linked = {text(e.get("id")) for t in threats(doc) for e in linked_evidence(t, by_id(doc))}
    for e in evidence_findings(doc):
        if text(e.get("id")) not in linked:
            continue  # a scan finding about a manifest proves no ML technique
        ev = e.get("evidence") if isinstance(e.get("evidence"), dict) else {}
        status = {"hunt": "observed", "scan": "validated"}.get(text(e.get("source")))
        if e.get("source") == "assess" and ev.get("verdict") in ("validated", "refuted"):
            status = ev["verdict"]
        for tid in e.get("atlas") or []:
            if status:
                cell(text(tid)).statuses.add(status)
    columns: dict[str, list[AtlasCell]] = {}
    for tid in sorted(cells):
        tactics = (techniques.get(tid) or {}).get("tactics") or ["Other"]
        for tactic in tactics:
            columns.setdefault(text(tactic), []).append(cells[tid])
    order = {t: i for i, t in enumerate(tactic_order)}
    return sorted(columns.items(), key=lambda kv: order.get(kv[0], len(order)))


@functools.cache
def _controls() -> dict[str, str]:
    """Mitigation action -> control type, from the threat catalog (the document keeps only the
    action text)."""
    from mlhunt.errors import CatalogError
    from mlhunt.threatmodel import default_catalog

    try:
        catalog = default_catalog()
    except CatalogError:
        return {}
    return {m.action: m.control.value for r in catalog.rules for m in r.rule.mitigations}


@dataclass
class CheckItem:
    action: str
    threats: list[dict[str, Any]] = field(default_factory=list)  # still needing it
    done: bool = True
    in_place: str = ""
    urgent: bool = False  # addresses a validated or observed threat


def checklist(doc: dict[str, Any]) -> list[tuple[str, list[CheckItem]]]:
    """Mitigations once each, grouped by the control that implements them; groups holding the
    most urgent work (validated/observed threats, then highest risk) first."""
    controls = _controls()
    items: dict[str, CheckItem] = {}
    for f in [*threats(doc), *evidence_findings(doc)]:
        resolved = text(f.get("status")) in ("mitigated", "false-positive")
        for raw in f.get("mitigations") or []:
            m = split_mitigation(raw)
            item = items.setdefault(m.action, CheckItem(m.action))
            if m.done or resolved:
                item.in_place = item.in_place or m.in_place
                continue
            item.done = False
            if f not in item.threats:
                item.threats.append(f)
            item.urgent |= bool({"validated", "observed"} & set(statuses(f)))
    groups: dict[str, list[CheckItem]] = {}
    for item in items.values():
        control = controls.get(item.action)
        if control is None:
            src = {text(t.get("source")) for t in item.threats}
            control = "deployment and artifacts" if src == {"scan"} else "other"
        label = control.replace("_", " ")
        groups.setdefault(label[:1].upper() + label[1:], []).append(item)

    def urgency(kv: tuple[str, list[CheckItem]]) -> tuple[int, int, float, str]:
        found = [t for i in kv[1] for t in i.threats]
        rank = max((SEVERITY_RANK[severity_of(t)] for t in found), default=-1)
        risk = max((number(t.get("risk")) for t in found), default=0.0)
        return (-sum(i.urgent for i in kv[1]), -rank, -risk, kv[0])

    return sorted(groups.items(), key=urgency)


def baseline_mark(doc: dict[str, Any]) -> dict[str, str]:
    """finding id -> 'new' | 'unchanged' from the optional baseline comparison."""
    base = doc.get("baseline") if isinstance(doc.get("baseline"), dict) else {}
    out: dict[str, str] = {}
    for key in ("unchanged", "new"):
        for fid in base.get(key) or []:
            out[text(fid)] = key
    return out


def evidence_line(summary: dict[str, Any]) -> str:
    """'ML threats with evidence: 9 of 11 (82%)' for the run summary ('' when none)."""
    m = summary.get("ml_evidence") if isinstance(summary, dict) else None
    if not isinstance(m, dict) or not m.get("threats"):
        return ""
    return (
        f"ML threats with evidence: {m['with_evidence']} of {m['threats']} "
        f"({m['with_evidence'] / m['threats']:.0%})"
    )
