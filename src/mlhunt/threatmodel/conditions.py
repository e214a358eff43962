"""Threat conditions: small Python expressions over the typed system model, checked at load time.

A condition such as ``not flow.encrypted and flow.crosses_boundary`` is parsed, walked against an
AST whitelist (no calls, no subscripts, no private or dunder attributes), and every attribute
chain is resolved against the pydantic models' fields and properties. A name, attribute or enum
value that does not exist is a :class:`CatalogError` when the catalog loads: a typo can never
silently turn a rule off (the failure mode of pytm's ``except Exception: return False``).

Attributes reached through an optional field (``element.model.output``) are read null-safely:
``None.output`` is ``None``, so the comparison is simply false.
"""

from __future__ import annotations

import ast
import enum
import functools
import itertools
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from mlhunt.errors import CatalogError

_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Name,
    ast.Attribute,
    ast.Constant,
    ast.Tuple,
    ast.List,
    ast.Load,
)

_SCALARS = (str, int, float, bool, type(None))


class _Opt:
    """Marks a type reached through an Optional field (so reads must be null-safe)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Type of every public field and property of a model class."""
    out: dict[str, Any] = {}
    if issubclass(cls, BaseModel):
        hints = typing.get_type_hints(cls)
        for name in cls.model_fields:
            out[name] = hints[name]
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith(("pydantic", "builtins")):
            continue
        for name, value in vars(klass).items():
            if isinstance(value, property) and not name.startswith("_") and value.fget:
                out[name] = typing.get_type_hints(value.fget).get("return", Any)
    return out


def attribute_type(owner: Any, name: str) -> Any:
    """Type of ``owner.name`` or raise KeyError."""
    if not isinstance(owner, type) or not owner.__module__.startswith("mlhunt"):
        raise KeyError(name)
    hints = _hints(owner)
    if name not in hints:
        raise KeyError(name)
    return hints[name]


def _element_type(tp: Any) -> Any:
    """For collection types, their element type; else None."""
    origin = typing.get_origin(tp)
    if origin in (list, set, frozenset, tuple):
        args = typing.get_args(tp)
        return args[0] if args else None
    return None


def _describe(owner: Any) -> str:
    names = sorted(_hints(owner)) if isinstance(owner, type) else []
    return ", ".join(names)


class _Compiler(ast.NodeTransformer):
    def __init__(self, scope: dict[str, type]) -> None:
        self.scope = scope
        self.constants: dict[str, Any] = {}
        self.types: dict[int, Any] = {}  # id(node) -> static type

    # -- validation -----------------------------------------------------------------
    def check(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise CatalogError(f"{type(node).__name__} is not allowed in a condition")
            if isinstance(node, ast.Constant) and not isinstance(node.value, _SCALARS):
                raise CatalogError(f"constant {node.value!r} is not allowed in a condition")

    def type_of(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            if node.id not in self.scope:
                allowed = ", ".join(sorted(self.scope))
                raise CatalogError(f"unknown name {node.id!r} (available: {allowed})")
            return self.scope[node.id]
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                raise CatalogError(f"private attribute {node.attr!r} is not allowed")
            base = self.type_of(node.value)
            inner = base.inner if isinstance(base, _Opt) else base
            try:
                tp = attribute_type(inner, node.attr)
            except KeyError:
                owner = getattr(inner, "__name__", str(inner))
                raise CatalogError(
                    f"{owner} has no attribute {node.attr!r} (available: {_describe(inner)})"
                ) from None
            tp, optional = _strip_optional(tp)
            return _Opt(tp) if optional or isinstance(base, _Opt) else tp
        if isinstance(node, ast.Constant):
            return type(node.value)
        return None

    # -- transformation ---------------------------------------------------------------
    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        base = self.type_of(node.value)
        self.type_of(node)  # validates the attribute itself
        value = self.visit(node.value)
        if isinstance(base, _Opt):
            # Null-safe read: _nav(obj, 'attr') is None when obj is None.
            return ast.Call(
                func=ast.Name(id="_nav", ctx=ast.Load()),
                args=[value, ast.Constant(node.attr)],
                keywords=[],
            )
        return ast.Attribute(value=value, attr=node.attr, ctx=ast.Load())

    def visit_Name(self, node: ast.Name) -> ast.AST:
        self.type_of(node)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        operands = [node.left, *node.comparators]
        for (left, right), op in zip(itertools.pairwise(operands), node.ops, strict=True):
            self._check_enum_literals(left, right, op)
        return self.generic_visit(node)

    def _check_enum_literals(self, left: ast.AST, right: ast.AST, op: ast.cmpop) -> None:
        """String literals compared with an enum attribute must be values of that enum."""
        pairs: list[tuple[ast.AST, Any]] = []
        if isinstance(op, ast.In | ast.NotIn):
            container = _unwrap(self._static(right))
            item = _element_type(container) if container is not None else None
            if item is not None:
                pairs.append((left, item))
            elif isinstance(right, ast.Tuple | ast.List):
                tp = _unwrap(self._static(left))
                pairs.extend((elt, tp) for elt in right.elts)
        else:
            pairs.append((right, _unwrap(self._static(left))))
            pairs.append((left, _unwrap(self._static(right))))
        for lit, tp in pairs:
            if isinstance(lit, ast.Constant) and isinstance(lit.value, str):
                self._enum_constant(lit, tp)

    def _static(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name | ast.Attribute):
            return self.type_of(node)
        return None

    def _enum_constant(self, lit: ast.Constant, tp: Any) -> None:
        if not (isinstance(tp, type) and issubclass(tp, enum.Enum)):
            return
        try:
            member = tp(lit.value)
        except ValueError:
            allowed = ", ".join(m.value for m in tp)
            raise CatalogError(
                f"{lit.value!r} is not a {tp.__name__} (expected one of: {allowed})"
            ) from None
        # Replaced by the member itself: str-enums hash by name, so 'x' in {Enum.X} is false.
        name = f"_c{len(self.constants)}"
        self.constants[name] = member
        lit.value = _ConstRef(name)  # type: ignore[assignment]


class _ConstRef(str):
    """Placeholder for an enum member; turned into a global name when unparsed."""


def _unwrap(tp: Any) -> Any:
    return tp.inner if isinstance(tp, _Opt) else tp


class _Resolver(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, _ConstRef):
            return ast.Name(id=str(node.value), ctx=ast.Load())
        return node


def _nav(obj: Any, attr: str) -> Any:
    return None if obj is None else getattr(obj, attr)


def _parse(expr: str) -> ast.Expression:
    # Parenthesised so that YAML block scalars may break the expression across lines.
    return ast.parse(f"({expr.strip() or 'True'}\n)", mode="eval")


def _lambda(
    body: ast.expr, scope: dict[str, type], constants: dict[str, Any]
) -> Callable[..., bool]:
    source = f"lambda {', '.join(scope)}: bool({ast.unparse(body)})"
    env: dict[str, Any] = {"__builtins__": {"bool": bool}, "_nav": _nav, **constants}
    # The tree was validated by the caller: only whitelisted nodes over typed, public attributes.
    return eval(compile(source, "<condition>", "eval"), env)  # noqa: S307


def _transform(expr: str, scope: dict[str, type]) -> tuple[ast.expr, dict[str, Any]]:
    """The checked, rewritten body of ``expr`` (null-safe reads, enum constants) and its
    constants; raises :class:`CatalogError` on anything outside the whitelist or the model."""
    try:
        tree = _parse(expr)
    except SyntaxError as exc:
        raise CatalogError(f"syntax error in condition: {exc.msg}") from None
    compiler = _Compiler(scope)
    compiler.check(tree)
    tree = compiler.visit(tree)
    tree = _Resolver().visit(tree)
    return tree.body, compiler.constants


def compile_condition(expr: str, scope: dict[str, type]) -> Callable[..., bool]:
    """Compile ``expr`` into a function taking the scope's names as keyword-less positional args.

    Raises :class:`CatalogError` on anything outside the whitelist or the typed model.
    """
    body, constants = _transform(expr, scope)
    return _lambda(body, scope, constants)


def compile_guarded(expr: str, scope: dict[str, type], name: str, owner: type) -> Guarded:
    """The condition, its guards (see :func:`boolean_guards` and :func:`kind_guards`) and its
    residual, from one parse.

    The residual is the condition less its guard terms: what is left to check on an object known
    to satisfy every guard (dropping terms of an ``and`` known to hold keeps its truth). It is
    the condition itself when there are no guards.
    """
    body, constants = _transform(expr, scope)
    condition = _lambda(body, scope, constants)
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
    return Guarded(condition, _lambda(residual_body, scope, constants), guards, kinds)


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
        tree = _parse(expr)
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


@functools.cache
def condition_reads(expr: str) -> frozenset[tuple[str, str]]:
    """The ``(name, attribute)`` pairs a (valid) condition reads: ``element.authentication`` ..."""
    try:
        tree = ast.parse(f"({expr.strip() or 'True'}\n)", mode="eval")
    except SyntaxError:
        return frozenset()
    return frozenset(
        (node.value.id, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    )


def _guard_terms(expr: str, name: str, owner: type) -> tuple[list[ast.expr], list[int]]:
    """The top-level ``and`` terms of ``expr`` and the indexes of those that are guards."""
    try:
        tree = _parse(expr)
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
