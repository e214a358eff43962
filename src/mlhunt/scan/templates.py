"""Chat template analysis: Jinja2's own parser, then rules over the syntax tree.

A chat template (GGUF ``tokenizer.chat_template``, ``chat_template`` in a Hugging Face
``tokenizer_config.json``) runs on every request an inference server answers. Nothing here
renders it: :func:`analyze_template` parses it and inspects the AST; the optional rendering pass
(:mod:`mlhunt.scan.template_render`) runs in a child process, in Jinja2's
``ImmutableSandboxedEnvironment``, with bounded memory, time and output.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateSyntaxError, nodes

from mlhunt.findings import Finding
from mlhunt.scan.jinja_sandbox import sandbox_env
from mlhunt.scan.llm_rules import llm_finding
from mlhunt.scan.textsignals import escape, instruction_signals, invisible_chars, quote

__all__ = ["MAX_TEMPLATE_CHARS", "analyze_template", "family_of", "parse_template", "sandbox_env"]

MAX_TEMPLATE_CHARS = 1 << 20  # published chat templates are a few kB
#: Jinja globals that reach Python objects (classic server-side template injection gadgets).
_GADGET_NAMES = frozenset(
    {"cycler", "joiner", "lipsum", "self", "config", "request", "url_for", "__builtins__"}
)
_GADGET_ATTRS = frozenset(
    {
        *("mro", "func_globals", "f_globals", "f_locals", "f_builtins", "gi_frame", "gi_code"),
        *("cr_frame", "tb_frame", "co_code", "im_func", "format", "format_map"),
    }
)
_CONTENT_KEYS = frozenset({"content", "text"})


def parse_template(source: str) -> nodes.Template:
    """The AST of a template (raises ``TemplateSyntaxError``); parsing runs nothing."""
    return sandbox_env().parse(source)


@functools.cache
def _families() -> dict[str, dict[str, Any]]:
    path = Path(str(resources.files("mlhunt.scan") / "chat_families.yaml"))
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def family_of(source: str) -> str | None:
    """The template family whose markers the template uses (None when it matches none)."""
    for name, fam in _families().items():
        if all(m in source for m in fam["markers"][:2]):
            return name
    return None


def _claimed(hint: str) -> set[str]:
    hint = hint.lower()
    return {n for n, fam in _families().items() if any(a in hint for a in fam["names"])}


def _literals(tree: nodes.Template) -> Iterator[tuple[str, int]]:
    """Every literal string of the template (text between tags and string constants)."""
    for node in tree.find_all((nodes.TemplateData, nodes.Const)):
        value = node.data if isinstance(node, nodes.TemplateData) else node.value
        if isinstance(value, str) and value:
            yield value, node.lineno


def _mentions_content(node: nodes.Node) -> bool:
    for sub in node.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if isinstance(sub, nodes.Getattr) and sub.attr in _CONTENT_KEYS:
            return True
        if (
            isinstance(sub, nodes.Getitem)
            and isinstance(sub.arg, nodes.Const)
            and sub.arg.value in _CONTENT_KEYS
        ):
            return True
        if isinstance(sub, nodes.Name) and "content" in sub.name:
            return True
    return False


def _wordy(text: str, words: int = 3) -> bool:
    return sum(1 for w in text.split() if any(c.isalpha() for c in w)) >= words


def _test_literals(test: nodes.Node) -> list[str]:
    return [
        c.value for c in test.find_all(nodes.Const) if isinstance(c.value, str) and c.value.strip()
    ]


def _emitted(body: list[nodes.Node]) -> list[str]:
    out: list[str] = []
    for stmt in body:
        for node in stmt.find_all(nodes.Output) if not isinstance(stmt, nodes.Output) else [stmt]:
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    out.append(child.data)
                elif isinstance(child, nodes.Const) and isinstance(child.value, str):
                    out.append(child.value)
    return [t for t in out if _wordy(t)]


def _triggers(tree: nodes.Template) -> Iterator[tuple[nodes.Node, list[str], list[str]]]:
    """(node, trigger literals, text switched in) for conditions on message content."""
    for node in tree.find_all(nodes.If):
        if _mentions_content(node.test):
            lits = _test_literals(node.test)
            text = _emitted(node.body)
            if lits and text:
                yield node, lits, text
    for node in tree.find_all(nodes.CondExpr):
        if _mentions_content(node.test):
            lits = _test_literals(node.test)
            consts = [node.expr1, *node.expr1.find_all(nodes.Const)]  # find_all skips the node
            text = [
                c.value
                for c in consts
                if isinstance(c, nodes.Const) and isinstance(c.value, str) and _wordy(c.value)
            ]
            if lits and text:
                yield node, lits, text


def _ssti(tree: nodes.Template) -> Iterator[tuple[str, int, bool]]:
    """(what, line, critical) for every reach into Python internals."""
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Name)):
        if isinstance(node, nodes.Getattr):
            if node.attr.startswith("_"):
                yield f"attribute .{node.attr}", node.lineno, True
            elif node.attr in _GADGET_ATTRS:
                yield f"attribute .{node.attr}", node.lineno, False
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and str(node.arg.value).startswith("_"):
                yield f"item [{node.arg.value!r}]", node.lineno, True
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            arg = node.args[0] if node.args else None
            name = arg.value if isinstance(arg, nodes.Const) else None
            critical = name is None or str(name).startswith("_")
            yield f"filter attr({name!r})", node.lineno, critical
        elif (
            isinstance(node, nodes.Name)
            and node.ctx == "load"
            and node.name in _GADGET_NAMES
            and node.name not in assigned
        ):
            yield f"global {node.name}", node.lineno, False


def analyze_template(
    source: str, target: str, *, where: str, hint: str = "", render: bool = True
) -> list[Finding]:
    """Findings for one chat template. ``where`` names the field it came from (part of each
    finding id); ``hint`` is what the model says it is (architecture, model name), compared with
    the template's family; ``render`` adds the sandboxed rendering pass."""
    base = {"field": where}
    if len(source) > MAX_TEMPLATE_CHARS:
        return [
            llm_finding(
                "MLH-SCAN-TEMPLATE-SYNTAX",
                target,
                f"{where}:size",
                f"The template is {len(source)} characters long; not analysed (limit "
                f"{MAX_TEMPLATE_CHARS}).",
                {**base, "chars": len(source)},
                "medium",
            )
        ]
    findings: list[Finding] = []
    invisible = invisible_chars(source)
    if invisible:
        findings.append(
            llm_finding(
                "MLH-SCAN-TEMPLATE-INVISIBLE",
                target,
                f"{where}:invisible",
                f"The template holds invisible characters {', '.join(invisible[:8])}.",
                {**base, "characters": invisible[:20], "quote": _first_invisible(source)},
            )
        )
    try:
        tree = parse_template(source)
    except TemplateSyntaxError as exc:
        findings.append(
            llm_finding(
                "MLH-SCAN-TEMPLATE-SYNTAX",
                target,
                f"{where}:syntax",
                f"Jinja2 cannot parse the template (line {exc.lineno}): {exc.message}",
                {**base, "line": exc.lineno, "error": str(exc.message)[:300]},
            )
        )
        return findings
    except RecursionError:
        findings.append(
            llm_finding(
                "MLH-SCAN-TEMPLATE-SYNTAX",
                target,
                f"{where}:depth",
                "The template nests too deeply to parse.",
                base,
                "medium",
            )
        )
        return findings
    findings.extend(_static(tree, source, target, where, hint))
    if render and not any(f.severity.rank >= 3 for f in findings):
        from mlhunt.scan.template_render import render_findings

        findings.extend(render_findings(source, target, where, tree))
    return findings


def _first_invisible(source: str) -> str:
    for i, ch in enumerate(source):
        if invisible_chars(ch):
            return quote(source, i, i + 1, 40)
    return ""


def _static(
    tree: nodes.Template, source: str, target: str, where: str, hint: str
) -> Iterator[Finding]:
    base = {"field": where}
    for what, line, critical in _ssti(tree):
        yield llm_finding(
            "MLH-SCAN-TEMPLATE-SSTI",
            target,
            f"{where}:{what}",
            f"Line {line} uses {what}: a template has no reason to reach Python objects; "
            "outside a sandbox this runs code on the inference server.",
            {**base, "line": line, "construct": what},
            None if critical else "high",
        )
    for node in tree.find_all((nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
        kind = type(node).__name__.lower()
        yield llm_finding(
            "MLH-SCAN-TEMPLATE-IMPORT",
            target,
            f"{where}:{kind}:{node.lineno}",
            f"Line {node.lineno}: {kind} pulls another template in; chat templates are one file.",
            {**base, "line": node.lineno, "statement": kind},
        )
    for node, lits, text in _triggers(tree):
        yield llm_finding(
            "MLH-SCAN-TEMPLATE-TRIGGER",
            target,
            f"{where}:trigger:{node.lineno}",
            f"Line {node.lineno}: when a message contains {escape(lits[0])!r}, the template "
            "adds text no message wrote.",
            {
                **base,
                "line": node.lineno,
                "trigger": [escape(x)[:200] for x in lits[:5]],
                "inserted": [escape(x)[:300] for x in text[:5]],
            },
        )
    literal_text = "\n".join(t for t, _ in _literals(tree))
    signals = instruction_signals(literal_text)
    if signals:
        yield llm_finding(
            "MLH-SCAN-TEMPLATE-INSTRUCTIONS",
            target,
            f"{where}:instructions",
            f"The template's own text speaks to the model ({', '.join(s.kind for s in signals)}).",
            {**base, "signals": [{"kind": s.kind, "quote": s.quote} for s in signals[:8]]},
        )
    drift = _drift(tree, source, hint)
    if drift:
        family, extra = drift
        yield llm_finding(
            "MLH-SCAN-TEMPLATE-FAMILY-DRIFT",
            target,
            f"{where}:drift",
            f"The template is a {family} template with text that no {family} template has.",
            {**base, "family": family, "hint": hint[:200], "extra_text": extra[:5]},
        )


def _drift(tree: nodes.Template, source: str, hint: str) -> tuple[str, list[str]] | None:
    family = family_of(source)
    if family is None:
        return None
    claimed = _claimed(hint) if hint else set()
    if claimed and family not in claimed:
        return family, [f"metadata says {sorted(claimed)}, markers say {family}"]
    extra = [
        escape(t.strip())[:300] for t, _ in _literals(tree) if _wordy(_unknown_part(t, family), 4)
    ]
    return (family, extra) if extra else None


def _unknown_part(text: str, family: str) -> str:
    """``text`` without the family's markers and published sentences."""
    fam = _families()[family]
    for known in sorted([*fam["markers"], *fam["phrases"]], key=len, reverse=True):
        text = text.replace(known, " ")
    return text
