"""What the engine can check of a condition without calling it: its guards.

A rule's condition is false wherever one of its top-level ``and`` terms is. Two kinds of term are
read when the rule compiles: a boolean attribute of the object the rule is about
(``flow.has_personal_data``, ``not flow.encrypted``) and a kind test against constants
(``target.kind in ('llm', 'agent_tool')``). The engine picks the objects where they hold up front
and evaluates the *residual*, the condition less those terms, only there.
"""

from __future__ import annotations

import ast
import enum
import typing
from collections.abc import Callable

from mlhunt.threatmodel.conditions import (
    as_function,
    attribute_type,
    checked_body,
    parse_condition,
)


def compile_guarded(expr: str, scope: dict[str, type], name: str, owner: type) -> Guarded:
    """The condition, its guards (see :func:`boolean_guards` and :func:`kind_guards`) and its
    residual, from one parse.

    The residual is the condition less its guard terms: what is left to check on an object known
    to satisfy every guard (dropping terms of an ``and`` known to hold keeps its truth). It is
    the condition itself when there are no guards.
    """
    body, constants = checked_body(expr, scope)
    condition = as_function(body, scope, constants)
    terms, found = _guard_terms(expr, name, owner)
    kinds, kind_terms = _kind_terms(terms, scope)
    if not found and not kind_terms:
        return Guarded(condition, condition, (), ())
    guards = tuple(g for g in (_guard(terms[i], name, owner) for i in found) if g is not None)
    dropped = {*found, *kind_terms}
    # The rewrite keeps the top-level terms in order; guards read plain attributes.
    values = (
        body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    )
    rest = [t for i, t in enumerate(values) if i not in dropped]
    if not rest:
        residual_body: ast.expr = ast.Constant(True)
    elif len(rest) == 1:
        residual_body = rest[0]
    else:
        residual_body = ast.BoolOp(op=ast.And(), values=rest)
    return Guarded(condition, as_function(residual_body, scope, constants), guards, kinds)


class Guarded(typing.NamedTuple):
    """A compiled condition with what the engine can check without calling it."""

    condition: Callable[..., bool]
    #: The condition less its guard terms.
    residual: Callable[..., bool]
    #: Boolean attributes of the object the rule is about that must hold: (name, value).
    guards: tuple[tuple[str, bool], ...]
    #: Kinds a scope name (``element``, ``source``, ``target``) must have: (name, kind values).
    kinds: tuple[tuple[str, frozenset[str]], ...]


def kind_guards(expr: str, scope: dict[str, type]) -> tuple[tuple[str, frozenset[str]], ...]:
    """The top-level ``and`` terms of a (valid) condition that test a kind against constants:
    ``target.kind in ('llm', 'agent_tool')`` gives ``("target", {"llm", "agent_tool"})``
    (``not in`` and ``!=`` give the other kinds). The engine picks objects by kind up front."""
    try:
        tree = parse_condition(expr)
    except SyntaxError:
        return ()
    body = tree.body
    terms = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    return _kind_terms(list(terms), scope)[0]


def _kind_terms(
    terms: list[ast.expr], scope: dict[str, type]
) -> tuple[tuple[tuple[str, frozenset[str]], ...], list[int]]:
    allowed: dict[str, frozenset[str]] = {}
    found: list[int] = []
    for i, term in enumerate(terms):
        if not (isinstance(term, ast.Compare) and len(term.ops) == 1):
            continue
        left, op, right = term.left, term.ops[0], term.comparators[0]
        if not (
            isinstance(left, ast.Attribute)
            and left.attr == "kind"
            and isinstance(left.value, ast.Name)
            and left.value.id in scope
        ):
            continue
        try:
            tp = attribute_type(scope[left.value.id], "kind")
        except KeyError:
            continue
        if not (isinstance(tp, type) and issubclass(tp, enum.Enum)):
            continue
        every = frozenset(m.value for m in tp)
        if isinstance(op, ast.In | ast.NotIn) and isinstance(right, ast.Tuple | ast.List):
            values = [e.value for e in right.elts if isinstance(e, ast.Constant)]
            if len(values) != len(right.elts):
                continue
        elif isinstance(op, ast.Eq | ast.NotEq) and isinstance(right, ast.Constant):
            values = [right.value]
        else:
            continue
        if not all(isinstance(v, str) and v in every for v in values):
            continue
        kinds = frozenset(values)
        if isinstance(op, ast.NotIn | ast.NotEq):
            kinds = every - kinds
        role = left.value.id
        allowed[role] = allowed.get(role, every) & kinds
        found.append(i)
    return tuple(sorted(allowed.items())), found


def _guard_terms(expr: str, name: str, owner: type) -> tuple[list[ast.expr], list[int]]:
    """The top-level ``and`` terms of ``expr`` and the indexes of those that are guards."""
    try:
        tree = parse_condition(expr)
    except SyntaxError:
        return [], []
    body = tree.body
    terms = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    found: list[int] = []
    for i, term in enumerate(terms):
        if _guard(term, name, owner) is not None:
            found.append(i)
    return list(terms), found


def _guard(term: ast.expr, name: str, owner: type) -> tuple[str, bool] | None:
    expected = True
    if isinstance(term, ast.UnaryOp) and isinstance(term.op, ast.Not):
        term, expected = term.operand, False
    if (
        isinstance(term, ast.Attribute)
        and isinstance(term.value, ast.Name)
        and term.value.id == name
    ):
        try:
            tp = attribute_type(owner, term.attr)
        except KeyError:
            return None
        if tp is bool:
            return term.attr, expected
    return None


def boolean_guards(expr: str, name: str, owner: type) -> tuple[tuple[str, bool], ...]:
    """The top-level ``and`` terms of a (valid) condition that read one boolean attribute of
    ``name``: ``flow.encrypted`` gives ``("encrypted", True)``, ``not flow.encrypted``
    ``("encrypted", False)``. The condition is false wherever one of them does not hold, so the
    engine may skip those objects without evaluating it."""
    terms, found = _guard_terms(expr, name, owner)
    out = (_guard(terms[i], name, owner) for i in found)
    return tuple(g for g in out if g is not None)
