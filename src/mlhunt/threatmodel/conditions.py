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


def parse_condition(expr: str) -> ast.Expression:
    # Parenthesised so that YAML block scalars may break the expression across lines.
    return ast.parse(f"({expr.strip() or 'True'}\n)", mode="eval")


def as_function(
    body: ast.expr, scope: dict[str, type], constants: dict[str, Any]
) -> Callable[..., bool]:
    # ``lambda <scope names>: bool(<body>)``, compiled from the tree (no unparse and re-parse).
    args = ast.arguments(
        posonlyargs=[], args=[ast.arg(n) for n in scope], kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    call = ast.Call(ast.Name("bool", ast.Load()), [body], [])
    tree = ast.fix_missing_locations(ast.Expression(ast.Lambda(args, call)))
    env: dict[str, Any] = {"__builtins__": {"bool": bool}, "_nav": _nav, **constants}
    # The tree was validated by the caller: only whitelisted nodes over typed, public attributes.
    return eval(compile(tree, "<condition>", "eval"), env)  # noqa: S307


def checked_body(expr: str, scope: dict[str, type]) -> tuple[ast.expr, dict[str, Any]]:
    """The checked, rewritten body of ``expr`` (null-safe reads, enum constants) and its
    constants; raises :class:`CatalogError` on anything outside the whitelist or the model."""
    try:
        tree = parse_condition(expr)
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
    body, constants = checked_body(expr, scope)
    return as_function(body, scope, constants)


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
