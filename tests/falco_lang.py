"""A small reader of Falco's condition language, for the tests of mlhunt's Falco rules.

Written from Falco's documentation (rules basics, condition syntax, supported fields): boolean
``and``/``or``/``not`` with parentheses, macro references, ``field OP value``, ``field exists``
and ``field in|intersects|pmatch (v, list_name, ...)``. ``parse`` rejects what Falco would
reject (unbalanced parentheses, a field of an unknown class, a missing operand); ``evaluate``
runs a parsed condition on one event (a dict of field -> value) so tests can show that a rule
fires on the behaviour it names and stays quiet on a normal serving process. A field absent
from the event cannot be extracted, and every comparison on it is false, as in Falco.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Field classes of the syscall source (`falco --list=syscall`).
FIELD_CLASSES = frozenset(
    {"evt", "proc", "thread", "fd", "fdlist", "fs", "container", "k8s", "user", "group", "syscall"}
)
# Falco fields (supported-fields reference); a typo in a rule fails the test, not the cluster.
_FIELDS = """evt.type evt.dir evt.num evt.res evt.rawres evt.is_open_write evt.is_open_read evt.arg
    evt.args evt.time evt.hostname proc.name proc.pname proc.aname proc.cmdline proc.pcmdline
    proc.exe proc.pexe proc.exepath proc.pexepath proc.args proc.tty proc.pid proc.ppid
    proc.duration proc.is_exe_upper_layer proc.is_container_healthcheck proc.vpgid.name
    fd.name fd.directory fd.filename fd.type fd.typechar fd.num fd.sip fd.cip fd.rip fd.lip
    fd.sport fd.cport fd.rport fd.lport fd.snet fd.cnet fd.rnet fd.lnet fd.net fd.ip fd.port
    fd.l4proto fd.sockfamily fd.connected fd.sip.name fd.rip.name fd.nameraw container.id
    container.name container.image container.image.repository container.image.tag
    container.image.digest container.privileged container.label k8s.pod.name k8s.pod.label
    k8s.pod.labels k8s.pod.uid k8s.ns.name user.name user.uid user.loginuid group.name"""
KNOWN_FIELDS = frozenset(_FIELDS.split())
_ARG_FIELDS = ("k8s.pod.label", "container.label", "evt.arg", "proc.aname")
CMP_OPS = frozenset(
    {
        "=",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "contains",
        "icontains",
        "bcontains",
        "startswith",
        "bstartswith",
        "endswith",
        "glob",
        "iglob",
        "regex",
    }
)
SET_OPS = frozenset({"in", "intersects", "pmatch"})
_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|==|<=|>=|=|<|>)"""
    r"""|(?P<punct>[(),])|(?P<word>[^\s(),=<>!"']+))"""
)
_FIELD = re.compile(r"^([a-z0-9_]+)\.([A-Za-z0-9_.]+)(\[[^\]]+\])?$")


class ConditionError(ValueError):
    """A condition Falco would not compile."""


@dataclass
class Parsed:
    ast: tuple[Any, ...]
    macros: set[str] = field(default_factory=set)  # macro names referenced
    lists: set[str] = field(default_factory=set)  # list names referenced (as values)
    fields: set[str] = field(default_factory=set)  # fields referenced, argument stripped


def tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ConditionError(f"cannot read {text[pos:][:20]!r}")
        tokens.append(m.group(m.lastgroup or "word"))
        pos = m.end()
    return tokens


def field_name(word: str) -> str | None:
    """The field a word names (argument stripped), None when it is not a field; a dotted word
    of an unknown class is an error (Falco would fail to compile the rule)."""
    m = _FIELD.match(word)
    if m is None:
        return None
    if m.group(1) not in FIELD_CLASSES:
        raise ConditionError(f"{word}: unknown field class {m.group(1)!r}")
    name = f"{m.group(1)}.{m.group(2)}"
    base = next((a for a in _ARG_FIELDS if name == a or name.startswith(a + ".")), name)
    if m.group(3) and base not in _ARG_FIELDS:
        raise ConditionError(f"{word}: field takes no argument")
    return base if m.group(3) or base in _ARG_FIELDS else name


def parse(text: str, lists: Mapping[str, Any] = ()) -> Parsed:  # type: ignore[assignment]
    """Parse one condition; ``lists`` names the defined lists (values that expand)."""
    tokens = tokenize(text)
    out = Parsed(ast=())
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ConditionError("condition ends too early")
        pos += 1
        return tokens[pos - 1]

    def expr() -> tuple[Any, ...]:
        node = conj()
        while peek() == "or":
            take()
            node = ("or", node, conj())
        return node

    def conj() -> tuple[Any, ...]:
        node = neg()
        while peek() == "and":
            take()
            node = ("and", node, neg())
        return node

    def neg() -> tuple[Any, ...]:
        if peek() == "not":
            take()
            return ("not", neg())
        return primary()

    def primary() -> tuple[Any, ...]:
        tok = take()
        if tok == "(":
            node = expr()
            if take() != ")":
                raise ConditionError("unbalanced parentheses")
            return node
        if tok in {")", ",", "and", "or"} or tok in CMP_OPS or tok in SET_OPS:
            raise ConditionError(f"unexpected {tok!r}")
        name = field_name(tok)
        if name is None:  # a bare word in boolean position is a macro
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", tok):
                raise ConditionError(f"{tok!r} is neither a field nor a macro name")
            out.macros.add(tok)
            return ("macro", tok)
        out.fields.add(name)
        op = take()
        if op == "exists":
            return ("exists", tok)
        if op in SET_OPS:
            if take() != "(":
                raise ConditionError(f"{op} needs a parenthesised list")
            values = []
            while True:
                v = take()
                if v == ")" and not values:
                    break
                values.append(v)
                if v in lists:
                    out.lists.add(v)
                sep = take()
                if sep == ")":
                    break
                if sep != ",":
                    raise ConditionError(f"expected , or ) in the {op} list, got {sep!r}")
            return ("set", tok, op, tuple(values))
        if op in CMP_OPS:
            value = take()
            if value in {"(", ")", ",", "and", "or", "not"}:
                raise ConditionError(f"{tok} {op} lacks a value")
            return ("cmp", tok, op, value)
        raise ConditionError(f"unknown operator {op!r} after {tok}")

    out.ast = expr()
    if pos != len(tokens):
        raise ConditionError(f"unexpected {tokens[pos]!r} (unbalanced parentheses?)")
    return out


def _unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


def expand(values: tuple[str, ...], lists: Mapping[str, list[Any]]) -> list[str]:
    """List names replaced by their items (recursively), quotes removed."""
    out: list[str] = []
    for v in values:
        if v in lists:
            out += expand(tuple(str(i) for i in lists[v]), lists)
        else:
            out.append(_unquote(v))
    return out


def _equal(actual: Any, value: str) -> bool:
    if isinstance(actual, bool):
        return str(actual).lower() == value.lower()
    try:
        return float(actual) == float(value)
    except (TypeError, ValueError):
        return str(actual) == value


def _in(actual: Any, value: str) -> bool:
    if "/" in value:  # a CIDR: the network fields match addresses inside it
        try:
            return ipaddress.ip_address(str(actual)) in ipaddress.ip_network(value, strict=False)
        except ValueError:
            pass
    return _equal(actual, value)


def _compare(actual: Any, op: str, value: str) -> bool:
    value = _unquote(value)
    s = str(actual)
    if op in {"=", "=="}:
        return _equal(actual, value)
    if op == "!=":
        return not _equal(actual, value)
    if op in {"<", "<=", ">", ">="}:
        a, b = float(actual), float(value)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in {"contains", "bcontains"}:
        return value in s
    if op == "icontains":
        return value.lower() in s.lower()
    if op in {"startswith", "bstartswith"}:
        return s.startswith(value)
    if op == "endswith":
        return s.endswith(value)
    if op in {"glob", "iglob"}:
        return fnmatch.fnmatchcase(s.lower() if op == "iglob" else s, value)
    if op == "regex":
        return re.search(value, s) is not None
    raise ConditionError(op)


def evaluate(
    node: tuple[Any, ...],
    event: Mapping[str, Any],
    macros: Mapping[str, tuple[Any, ...]],
    lists: Mapping[str, list[Any]],
) -> bool:
    """Does the event match? ``macros`` maps macro names to parsed conditions (ASTs)."""
    kind = node[0]
    if kind == "and":
        return evaluate(node[1], event, macros, lists) and evaluate(node[2], event, macros, lists)
    if kind == "or":
        return evaluate(node[1], event, macros, lists) or evaluate(node[2], event, macros, lists)
    if kind == "not":
        return not evaluate(node[1], event, macros, lists)
    if kind == "macro":
        return evaluate(macros[node[1]], event, macros, lists)
    if kind == "exists":
        return node[1] in event
    actual = event.get(node[1])
    if actual is None:  # the field cannot be extracted: no comparison holds
        return False
    if kind == "cmp":
        return _compare(actual, node[2], node[3])
    values = expand(node[3], lists)
    if node[2] == "pmatch":
        return any(str(actual) == v or str(actual).startswith(v.rstrip("/") + "/") for v in values)
    return any(_in(actual, v) for v in values)
