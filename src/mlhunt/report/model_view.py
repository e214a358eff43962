"""What a threat-model report shows beyond a finding list: the elements each grouped finding
affects, the open questions (unknown facts), and the attack paths hop by hop.

Shared by the table, Markdown and HTML formats; works on the JSON document only.
"""

from __future__ import annotations

from typing import Any

from mlhunt.report._common import text

#: How many affected elements a one-line view names before "+N more".
SHOWN_AFFECTED = 3


def affected_ids(finding: dict[str, Any]) -> list[str]:
    """The elements and flows a (grouped) finding applies to, worst first."""
    values = finding.get("affected")
    if isinstance(values, list) and values:
        return [text(v) for v in values]
    target = text(finding.get("target"))
    return [target] if target else []


def affected_line(finding: dict[str, Any], names: dict[str, str], *, limit: int = 0) -> str:
    ids = affected_ids(finding)
    shown = ids[:limit] if limit else ids
    out = ", ".join(names.get(i, i) for i in shown)
    if limit and len(ids) > limit:
        out += f" +{len(ids) - limit} more"
    return out


def owasp_ids(finding: dict[str, Any]) -> str:
    """OWASP ML and LLM Top 10 ids (the LLM ones sit under ``references``)."""
    ids = [text(v) for v in finding.get("owasp_ml") or []]
    refs = finding.get("references")
    if isinstance(refs, dict):
        ids += [text(v) for v in refs.get("owasp_llm") or []]
    return ", ".join(dict.fromkeys(ids))


def questions_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [q for q in doc.get("questions") or [] if isinstance(q, dict)]


def paths_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in doc.get("attack_paths") or [] if isinstance(p, dict)]


def hop_text(hop: dict[str, Any]) -> str:
    """One hop: the element, why it is a source, and the controls on the way in."""
    name = text(hop.get("name") or hop.get("element"))
    out = name
    if hop.get("source"):
        out += f" [{text(hop['source'])}]"
    ctl = [text(c) for c in hop.get("flow_controls") or []]
    if hop.get("via_flow"):
        via = text(hop["via_flow"])
        prefix = f"--{via}" + (f" ({', '.join(ctl)})" if ctl else " (no controls)") + "--> "
        out = prefix + out
    return out


def path_text(path: list[dict[str, Any]]) -> str:
    return " ".join(hop_text(h) for h in path if isinstance(h, dict))


def evidence_of(finding: dict[str, Any]) -> dict[str, Any]:
    ev = finding.get("evidence")
    return ev if isinstance(ev, dict) else {}


def md_questions(doc: dict[str, Any], esc: Any) -> list[str]:
    """The open-questions section (Markdown lines)."""
    qs = questions_of(doc)
    assumed = text(doc.get("assume")) == "absent"
    out = [
        "Security facts the description does not state. "
        + (
            "They were assumed absent (`--assume absent`): the findings below include them."
            if assumed
            else "Each answer 'absent' would add the findings listed; until then they are "
            "not reported."
        ),
        "",
    ]
    if not qs:
        return [*out, "None: every fact the rules needed is stated.", ""]
    for q in qs:
        adds = ", ".join(f"`{esc(a)}`" for a in q.get("would_add") or [])
        out.append(f"- **{esc(q.get('question'))}** (`{esc(q.get('id'))}`) — would add: {adds}")
    out.append("")
    return out


def md_attack_paths(doc: dict[str, Any], esc: Any) -> list[str]:
    ps = paths_of(doc)
    if not ps:
        return [
            "No untrusted source reaches an LLM, a training job, a tool or a crown-jewel store.",
            "",
        ]
    out = [
        "Shortest routes from an untrusted source to what an attacker wants, ranked by the "
        "worst risk on the sink. Each arrow names the flow and its controls.",
        "",
    ]
    for i, p in enumerate(ps, 1):
        store = ", through a store" if p.get("via_store") else ""
        out.append(
            f"{i}. **{esc(p.get('source'))} → {esc(p.get('sink'))}** "
            f"({text(p.get('hops'))} hops{store}; worst risk on the sink "
            f"{text(p.get('risk'))}): {esc(path_text(p.get('path') or []))}"
        )
    out.append("")
    return out


def md_finding_extra(f: dict[str, Any], names: dict[str, str], esc: Any) -> list[str]:
    """Affected elements with their own risk, the stated facts, the attack path."""
    out: list[str] = []
    ev = evidence_of(f)
    per = ev.get("per_target") if isinstance(ev.get("per_target"), dict) else {}
    ids = affected_ids(f)
    if len(ids) > 1:
        out += ["Affected (worst first):", ""]
        for i in ids:
            d = per.get(i) if isinstance(per.get(i), dict) else {}
            risk = d.get("risk")
            status = text(d.get("status") or "open")
            out.append(
                f"- {esc(names.get(i, i))} (`{esc(i)}`): risk {text(risk)}, {status}"
                + (
                    f"; rests on: {esc('; '.join(map(text, d['rests_on'])))}"
                    if d.get("rests_on")
                    else ""
                )
            )
        out.append("")
    threats = ev.get("threats") if isinstance(ev.get("threats"), dict) else {}
    if len(threats) > 1:  # rules of one cause: each threat with where it applies
        out += ["Threats of this cause:", ""]
        for rule, t in threats.items():
            t = t if isinstance(t, dict) else {}
            where = ", ".join(text(i) for i in t.get("targets") or [])
            out.append(f"- {esc(text(t.get('title')))} (`{esc(rule)}`): {esc(where)}")
        out.append("")
    rests = [text(r) for r in ev.get("rests_on") or []]
    if rests and len(ids) <= 1:
        out += [f"Rests on (stated): {esc('; '.join(rests))}", ""]
    assumed = [text(a) for a in ev.get("assumed_absent") or []]
    if assumed:
        out += [f"Assumed absent (not stated): {esc(', '.join(assumed))}", ""]
    path = ev.get("attack_path")
    if isinstance(path, list) and path:
        out += ["Attack path:", ""]
        for n, hop in enumerate(path, 1):
            if isinstance(hop, dict):
                out.append(f"{n}. {esc(hop_text(hop))}")
        out.append("")
    return out


# --- HTML --------------------------------------------------------------------------------------

#: Rows of the "top risks" table at the head of the HTML report.
TOP_RISKS = 10


def path_ids(path: list[dict[str, Any]]) -> str:
    """The SVG ids (``dfd-e-*`` nodes, ``dfd-f-*`` edges) of a path, space-separated."""
    ids: list[str] = []
    for hop in path:
        if not isinstance(hop, dict):
            continue
        if hop.get("via_flow"):
            ids.append(f"dfd-f-{text(hop['via_flow'])}")
        ids.append(f"dfd-e-{text(hop.get('element'))}")
    return " ".join(ids)


def finding_extras(f: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Per-finding context for the HTML template: affected rows, facts, the attack path."""
    ev = evidence_of(f)
    per = ev.get("per_target") if isinstance(ev.get("per_target"), dict) else {}
    affected = []
    for i in affected_ids(f):
        d = per.get(i) if isinstance(per.get(i), dict) else {}
        affected.append(
            {
                "id": i,
                "name": names.get(i, i),
                "risk": text(d.get("risk", f.get("risk"))),
                "status": text(d.get("status") or f.get("status") or "open"),
                "rests_on": "; ".join(text(r) for r in d.get("rests_on") or []),
            }
        )
    path = ev.get("attack_path") if isinstance(ev.get("attack_path"), list) else []
    return {
        "affected": affected,
        "affected_short": affected_line(f, names, limit=SHOWN_AFFECTED),
        "owasp": owasp_ids(f),
        "rests_on": "; ".join(text(r) for r in ev.get("rests_on") or []),
        "assumed_absent": ", ".join(text(a) for a in ev.get("assumed_absent") or []),
        "attack_path": [hop_text(h) for h in path if isinstance(h, dict)],
        "attack_path_ids": path_ids(path),
    }


def model_context(doc: dict[str, Any], findings: list[dict[str, Any]]) -> dict[str, Any]:
    """Top risks, ranked attack paths and open questions, for the head of the HTML report."""
    if doc.get("command") != "model":
        return {
            "top_risks": [],
            "attack_paths": [],
            "questions": [],
            "is_model": False,
            "assumed_absent": False,
        }
    paths = [
        {
            "source": text(p.get("source")),
            "sink": text(p.get("sink")),
            "hops": text(p.get("hops")),
            "via_store": bool(p.get("via_store")),
            "risk": text(p.get("risk")),
            "text": path_text(p.get("path") or []),
            "ids": path_ids(p.get("path") or []),
        }
        for p in paths_of(doc)
    ]
    questions = [
        {
            "id": text(q.get("id")),
            "question": text(q.get("question")),
            "would_add": [text(a) for a in q.get("would_add") or []],
            "risk": text(q.get("max_risk")),
        }
        for q in questions_of(doc)
    ]
    return {
        "top_risks": findings[:TOP_RISKS],
        "attack_paths": paths,
        "questions": questions,
        "is_model": True,
        "assumed_absent": text(doc.get("assume")) == "absent",
    }
