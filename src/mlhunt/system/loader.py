"""Load a system description from YAML with errors that name file, line and field.

Parsing uses libyaml when present (fast for large systems); line numbers are only recovered, by
composing the YAML node tree, when there is an error to report.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mlhunt._gc import gc_paused
from mlhunt.errors import InputError
from mlhunt.system.model import (
    CHILD_SUBJECTS,
    Authentication,
    Authorization,
    Classification,
    ControlType,
    Deidentification,
    Element,
    ElementKind,
    ElementLinks,
    Flow,
    FlowLinks,
    LawfulBasis,
    ModelOutput,
    SystemDescription,
)

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Loc = tuple[str | int, ...]


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader that refuses duplicate mapping keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!map [1]`: the base class reports it
            return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # `? [a]`: a list or mapping as a key
                raise yaml.constructor.ConstructorError(
                    None, None, f"unhashable key ({type(key).__name__})", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def parse_yaml(text: str, file: str) -> Any:
    """YAML text to Python data; a syntax error becomes an :class:`InputError` with its line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise InputError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file=file) from None
    except Exception as exc:
        # PyYAML's constructors raise plain exceptions for a value they cannot build:
        # ValueError (a 5,000-digit int, `2001-13-45`, `!!float x`), KeyError (`!!bool x`),
        # AttributeError (`!!timestamp x`) ... all of them a bad value in the file.
        reason = f"{type(exc).__name__}: {exc}"[:200]
        raise InputError(f"invalid YAML: a value cannot be read ({reason})", file=file) from None


def load_yaml_file(path: str | Path) -> Any:
    """A YAML file's data; every problem (missing, not UTF-8, bad YAML, duplicate keys) is an
    :class:`InputError` naming the file (and the line where the parser knows it)."""
    return parse_yaml(read_text(path), str(path))


def locate(text: str, loc: Loc, *, key: bool = False) -> int | None:
    """1-based line of the node at ``loc`` (or of its deepest existing ancestor).

    With ``key=True`` the line of the mapping key itself is returned (for unknown keys).
    """
    try:  # the C composer: the pure-Python one recurses once per nesting level
        node = yaml.compose(text, Loader=_BaseLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    child = k if key and part == loc[-1] else v
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _known_fields(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names allowed at ``loc`` (the parent of an unknown key), for a 'did you mean'."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if info is None:
            return []
        current = _model_of(info.annotation)
        if current is None:
            return []
    return list(current.model_fields) if hasattr(current, "model_fields") else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def pydantic_error(
    exc: ValidationError, model: type[BaseModel], text: str, file: str
) -> InputError:
    """Every validation error, each as one line with file, line and field path (the first
    is the error's own line; the rest ride along in ``also``)."""
    return InputError.collect([_one_error(err, model, text, file) for err in exc.errors()])


def _one_error(err: Any, model: type[BaseModel], text: str, file: str) -> InputError:
    loc: Loc = tuple(p for p in err["loc"] if isinstance(p, int | str))
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        allowed = _known_fields(model, loc[:-1])
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        msg = f"unknown field {name!r}{hint}; expected one of: {', '.join(allowed)}"
        return InputError(msg, file=file, line=locate(text, loc, key=True), field=format_loc(loc))
    if kind == "missing":
        msg = "required field is missing"
    else:
        got = err.get("input")
        msg = f"{err['msg']} (got {_shown(got)})"
        if kind == "enum" and isinstance(got, str):
            allowed = list((err.get("ctx") or {}).get("expected", "").replace("'", "").split(", "))
            close = difflib.get_close_matches(got, [a.replace(" or ", "") for a in allowed], n=1)
            if close:
                msg += f"; did you mean {close[0]!r}?"
    return InputError(msg, file=file, line=locate(text, loc), field=format_loc(loc))


def _shown(value: Any) -> str:
    """A short repr of a bad value (a huge int from ``0xfff...`` has no decimal repr)."""
    if isinstance(value, dict | list):
        return type(value).__name__
    try:
        text = repr(value)
    except ValueError:
        return f"a {value.bit_length()}-bit integer" if isinstance(value, int) else "?"
    return text if len(text) <= 80 else text[:77] + "..."


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a YAML file", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), file=str(path)) from None


def load_system(path: str | Path) -> SystemDescription:
    """Read, validate and link a system description file."""
    text = read_text(path)
    return parse_system(text, str(path))


def parse_system(text: str, file: str = "<system>") -> SystemDescription:
    data = parse_yaml(text, file)
    if data is None:
        raise InputError(
            "empty file; expected a mapping with 'name' and 'elements'", file=file, line=1
        )
    if not isinstance(data, dict):
        raise InputError(
            f"expected a mapping with 'name' and 'elements', got {type(data).__name__}",
            file=file,
            line=1,
        )
    return system_from_dict(data, file=file, text=text)


def system_from_dict(
    data: dict[str, Any], *, file: str = "<system>", text: str | None = None
) -> SystemDescription:
    """Validate already-parsed data (``text`` is only used to find line numbers for errors)."""
    with gc_paused():
        return _validate(data, file, text)


def _validate(data: dict[str, Any], file: str, text: str | None) -> SystemDescription:
    try:
        system = SystemDescription.model_validate(data)
    except ValidationError as exc:
        raise pydantic_error(exc, SystemDescription, text or "", file) from None
    problems = [
        InputError(msg, file=file, line=locate(text, loc) if text else None, field=format_loc(loc))
        for loc, msg in reference_problems(system)
    ]
    if problems:
        raise InputError.collect(problems)
    link(system)
    return system


def check_references(system: SystemDescription) -> tuple[Loc, str] | None:
    """First broken cross-reference or duplicate id, as (field path, message)."""
    return next(iter(reference_problems(system)), None)


def reference_problems(system: SystemDescription) -> Iterator[tuple[Loc, str]]:
    """Every broken cross-reference or duplicate id, as (field path, message), in file order
    of sections."""
    ids: dict[str, str] = {}
    sections: list[tuple[str, list[Any]]] = [
        ("data_assets", system.data_assets),
        ("trust_boundaries", system.trust_boundaries),
        ("elements", system.elements),
        ("flows", system.flows),
        ("controls", system.controls),
    ]
    for section, items in sections:
        for i, item in enumerate(items):
            if item.id in ids:
                yield (
                    (section, i, "id"),
                    f"duplicate id {item.id!r} (already used in {ids[item.id]})",
                )
                continue
            ids[item.id] = section

    def known(section: str, ref: str, loc: Loc, what: str) -> tuple[Loc, str] | None:
        if ids.get(ref) == section:
            return None
        candidates = [k for k, v in ids.items() if v == section]
        close = difflib.get_close_matches(ref, candidates, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return loc, f"unknown {what} {ref!r}{hint}"

    for i, b in enumerate(system.trust_boundaries):
        if b.parent is not None and (
            p := known(
                "trust_boundaries", b.parent, ("trust_boundaries", i, "parent"), "trust boundary"
            )
        ):
            yield p
    parents = {x.id: x.parent for x in system.trust_boundaries}
    in_cycles: set[str] = set()  # one problem per cycle, not one per boundary leading into it
    for i, b in enumerate(system.trust_boundaries):
        seen, cur = {b.id}, b.parent
        while cur is not None:
            if cur in seen:
                if cur not in in_cycles:
                    yield (
                        ("trust_boundaries", i, "parent"),
                        f"trust boundaries nest in a cycle through {cur!r}",
                    )
                in_cycles |= seen
                break
            seen.add(cur)
            cur = parents.get(cur)
    for i, e in enumerate(system.elements):
        if e.boundary is not None and (
            p := known(
                "trust_boundaries", e.boundary, ("elements", i, "boundary"), "trust boundary"
            )
        ):
            yield p
        for j, d in enumerate(e.data):
            if p := known("data_assets", d, ("elements", i, "data", j), "data asset"):
                yield p
    for i, f in enumerate(system.flows):
        for end in ("source", "target"):
            if p := known("elements", getattr(f, end), ("flows", i, end), "element"):
                yield p
        for j, d in enumerate(f.data):
            if p := known("data_assets", d, ("flows", i, "data", j), "data asset"):
                yield p
    for i, c in enumerate(system.controls):
        for j, ref in enumerate(c.applies_to):
            if ids.get(ref) not in ("elements", "flows", "trust_boundaries"):
                loc = ("controls", i, "applies_to", j)
                cands = [
                    k for k, v in ids.items() if v in ("elements", "flows", "trust_boundaries")
                ]
                close = difflib.get_close_matches(ref, cands, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                yield loc, f"unknown element, flow or trust boundary {ref!r}{hint}"


def _implied_controls(obj: Element | Flow) -> list[tuple[ControlType, str]]:
    """Controls that an element's or flow's own attributes provide (``api.rate_limit``), in a
    fixed order (plain tests and one pass: this runs for every element and flow)."""
    i = obj.id
    if isinstance(obj, Flow):
        out: list[tuple[ControlType, str]] = []
        if obj.encrypted:
            out.append((ControlType.ENCRYPTION_IN_TRANSIT, f"{i}.encrypted"))
        if obj.authenticated:
            out.append((ControlType.AUTHENTICATION, f"{i}.authentication"))  # _ATTR's name
        if obj.authorization in _STRONG_AUTHZ:
            out.append((ControlType.AUTHORIZATION_POLICY, f"{i}.authorization"))
        return out
    m = obj.model
    on = (
        has_rate_limit(obj.rate_limit) if obj.rate_limit else False,
        obj.audit_logging,
        obj.input_validation,
        obj.encrypted_at_rest,
        obj.resource_limits,
        obj.high_availability,
        obj.budget,
        obj.limits,
        obj.authentication != Authentication.NONE,
        obj.authentication == Authentication.MTLS,
        obj.authorization in _STRONG_AUTHZ or obj.acls,
        m is not None and m.human_review,
        m is not None and m.signed,
        m is not None and m.output in _HARDENED_OUTPUTS,
    )
    return [(ct, f"{i}.{attr}") for (ct, attr), yes in zip(_ELEMENT_REFS, on, strict=True) if yes]


#: The element attributes that imply a control, in the order _implied_controls reads them.
_ELEMENT_FLAGS = (
    ControlType.RATE_LIMITING,
    ControlType.AUDIT_LOGGING,
    ControlType.INPUT_VALIDATION,
    ControlType.ENCRYPTION_AT_REST,
    ControlType.RESOURCE_QUOTAS,
    ControlType.HIGH_AVAILABILITY,
    ControlType.QUOTA,
    ControlType.LEAST_PRIVILEGE,
    ControlType.AUTHENTICATION,
    ControlType.MTLS,
    ControlType.AUTHORIZATION_POLICY,
    ControlType.HUMAN_REVIEW,
    ControlType.MODEL_SIGNING,
    ControlType.OUTPUT_HARDENING,
)


def has_rate_limit(value: str | None) -> bool:
    """A stated limit ('100/minute'); empty, 'none' or '0' say there is none."""
    return bool(value) and str(value).strip().lower() not in ("none", "0", "no", "false")


_STRONG_AUTHZ = frozenset({Authorization.RBAC, Authorization.ABAC, Authorization.POLICY})
_HARDENED_OUTPUTS = frozenset({ModelOutput.LABEL, ModelOutput.TOP_K, ModelOutput.ROUNDED_SCORES})
_ATTR = {
    ControlType.ENCRYPTION_IN_TRANSIT: "encrypted",
    ControlType.AUTHENTICATION: "authentication",
    ControlType.AUTHORIZATION_POLICY: "authorization",
    ControlType.RATE_LIMITING: "rate_limit",
    ControlType.AUDIT_LOGGING: "audit_logging",
    ControlType.INPUT_VALIDATION: "input_validation",
    ControlType.ENCRYPTION_AT_REST: "encrypted_at_rest",
    ControlType.RESOURCE_QUOTAS: "resource_limits",
    ControlType.HIGH_AVAILABILITY: "high_availability",
    ControlType.QUOTA: "budget",
    ControlType.LEAST_PRIVILEGE: "limits",
    ControlType.MTLS: "authentication",
    ControlType.HUMAN_REVIEW: "model.human_review",
    ControlType.MODEL_SIGNING: "model.signed",
    ControlType.OUTPUT_HARDENING: "model.output",
}
#: (control type, attribute) for each of _ELEMENT_FLAGS.
_ELEMENT_REFS = tuple((ct, _ATTR[ct]) for ct in _ELEMENT_FLAGS)


def _control_sets(
    obj: Element | Flow, declared: list[tuple[ControlType, str]]
) -> tuple[frozenset[ControlType], dict[ControlType, tuple[str, ...]]]:
    implied = _implied_controls(obj)
    if not declared:  # the common case for flows: each implied type once, in order
        refs = {ct: (ref,) for ct, ref in implied}
        return frozenset(refs), refs
    lists: dict[ControlType, list[str]] = {}
    for ct, ref in [*declared, *implied]:
        got = lists.get(ct)
        if got is None:
            lists[ct] = [ref]
        else:
            got.append(ref)
    return frozenset(lists), {ct: tuple(v) for ct, v in lists.items()}


_DEID_CONTROL = {
    Deidentification.PSEUDONYMIZED: ControlType.PSEUDONYMIZATION,
    Deidentification.TOKENIZED: ControlType.TOKENIZATION,
    Deidentification.AGGREGATED: ControlType.DATA_MINIMIZATION,
    Deidentification.K_ANONYMITY: ControlType.PSEUDONYMIZATION,
    Deidentification.DIFFERENTIAL_PRIVACY: ControlType.DIFFERENTIAL_PRIVACY,
    Deidentification.SYNTHETIC: ControlType.DATA_MINIMIZATION,
}


def _deidentified(
    system: SystemDescription,
) -> Callable[[list[str]], list[tuple[ControlType, str]]] | None:
    """Controls implied by de-identified data: only when every personal asset carried is.
    None when nothing is de-identified (the common case, skipped)."""
    assets = {a.id: a for a in system.data_assets}
    if not any(_DEID_CONTROL.get(a.deidentification) for a in system.data_assets):
        return None

    def controls(data: list[str]) -> list[tuple[ControlType, str]]:
        personal = [assets[d] for d in data if assets[d].classification.is_personal]
        if not personal:
            return []
        kinds = {_DEID_CONTROL.get(a.deidentification) for a in personal}
        if len(kinds) != 1 or None in kinds:
            return []
        ct = kinds.pop()
        assert ct is not None
        return [(ct, f"{a.id}.deidentification") for a in personal]

    return controls


def _required_by_law(data: list[str], by_law: dict[str, bool]) -> bool:
    """Some personal data on it, and the law requires every piece of it."""
    personal = [by_law[d] for d in data if d in by_law]
    return bool(personal) and all(personal)


def link(system: SystemDescription) -> None:
    """Resolve references into the derived data the threat conditions read."""
    assets = {a.id: a.classification for a in system.data_assets}
    # Personal data assets and whether the law requires each (lawful_basis: legal_obligation).
    by_law = {
        a.id: a.lawful_basis == LawfulBasis.LEGAL_OBLIGATION
        for a in system.data_assets
        if a.classification.is_personal
    }
    needs = {
        a.id: (a.confidentiality.score, a.integrity.score, a.availability.score)
        for a in system.data_assets
    }

    def cia(data: list[str]) -> tuple[int, int, int]:
        if not data:
            return (2, 2, 2)
        if len(data) == 1:
            return needs[data[0]]
        c, i, a = needs[data[0]]
        for d in data[1:]:
            c2, i2, a2 = needs[d]
            c, i, a = max(c, c2), max(i, i2), max(a, a2)
        return (c, i, a)

    # Data assets about children (GDPR Recital 38 and 71; COPPA): decisions about them weigh more.
    childrens = {
        a.id
        for a in system.data_assets
        if CHILD_SUBJECTS.intersection(map(str.lower, a.data_subjects))
    }
    parents = {b.id: b.parent for b in system.trust_boundaries}
    elements = {e.id: e for e in system.elements}

    chains: dict[str | None, tuple[str, ...]] = {}

    def chain(boundary: str | None) -> tuple[str, ...]:
        found = chains.get(boundary)
        if found is None:
            out: list[str] = []
            b = boundary
            while b is not None:
                out.append(b)
                b = parents.get(b)
            found = chains[boundary] = tuple(out)
        return found

    declared: dict[str, list[tuple[ControlType, str]]] = {}
    for c in system.controls:
        for ref in c.applies_to:
            declared.setdefault(ref, []).append((c.type, c.id))

    deid = _deidentified(system)
    links: dict[str, ElementLinks] = {}
    # Controls declared on the boundaries around an element (per its boundary) or around both
    # ends of a flow (per pair of boundaries, innermost first): few distinct, so memoised.
    on_chain: dict[str | None, list[tuple[ControlType, str]]] = {}
    on_pair: dict[tuple[str | None, str | None], list[tuple[ControlType, str]]] = {}
    for e in system.elements:
        boundaries = chain(e.boundary)
        inherited = on_chain.get(e.boundary)
        if inherited is None:
            inherited = on_chain[e.boundary] = [d for b in boundaries for d in declared.get(b, ())]
        if deid is None:
            mine = [*declared.get(e.id, ()), *inherited]
        else:
            mine = [*declared.get(e.id, ()), *deid(e.data), *inherited]
        controls, refs = _control_sets(e, mine)
        # Written straight into the private dict: pydantic's __setattr__ is slow at this volume.
        links[e.id] = e.__pydantic_private__["_links"] = ElementLinks(  # type: ignore[index]
            classifications=frozenset(map(assets.__getitem__, e.data)),
            controls=controls,
            control_refs=refs,
            boundaries=boundaries,
            criticality=e.criticality or system.criticality,
            cia=cia(e.data),
            concerns_children=not childrens.isdisjoint(e.data),
        )

    inbound: dict[str, set[ElementKind]] = {}
    outbound: dict[str, set[ElementKind]] = {}
    to_own: set[str] = set()  # sources of a flow to an element not operated by a vendor
    touching: dict[str, set[Classification]] = {}
    for f in system.flows:
        src, dst = elements[f.source], elements[f.target]
        sl, dl = links[src.id], links[dst.id]
        pair = (src.boundary, dst.boundary)
        shared = on_pair.get(pair)
        if shared is None:
            # Boundaries around both ends, innermost first (a set's order would vary).
            around_target = set(dl.boundaries)
            shared = on_pair[pair] = [
                d for b in sl.boundaries if b in around_target for d in declared.get(b, ())
            ]
        if deid is None:
            mine = [*declared.get(f.id, ()), *shared]
        else:
            mine = [*declared.get(f.id, ()), *deid(f.data), *shared]
        controls, refs = _control_sets(f, mine)
        classifications = frozenset(map(assets.__getitem__, f.data))
        crosses = src.boundary != dst.boundary
        f.__pydantic_private__["_links"] = FlowLinks(  # type: ignore[index]
            classifications=classifications,
            controls=controls,
            control_refs=refs,
            source=src,
            target=dst,
            crosses_boundary=crosses,
            cia=cia(f.data),
            required_by_law=_required_by_law(f.data, by_law),
        )
        inbound.setdefault(dst.id, set()).add(src.kind)
        outbound.setdefault(src.id, set()).add(dst.kind)
        if not dst.is_vendor:
            to_own.add(src.id)
        if crosses:
            dl.receives_across_boundary = True
        if classifications:
            for end in (src.id, dst.id):
                touching.setdefault(end, set()).update(classifications)
    for e in system.elements:
        el = links[e.id]
        el.receives_from = frozenset(inbound.get(e.id, ()))
        el.sends_to = frozenset(outbound.get(e.id, ()))
        el.trains_at_vendor = (
            e.kind is ElementKind.TRAINING_JOB and e.id in outbound and e.id not in to_own
        )
        touched = touching.get(e.id)
        if touched and not touched <= el.classifications:
            el.set_classifications(el.classifications | touched)


def definition_lines(text: str) -> dict[str, int]:
    """Line where each element, flow, data asset and boundary is defined (for SARIF regions)."""
    try:
        root = yaml.compose(text, Loader=_BaseLoader)
    except (yaml.YAMLError, RecursionError):
        return {}
    lines: dict[str, int] = {}
    if not isinstance(root, yaml.MappingNode):
        return lines
    for _key, section in root.value:
        if not isinstance(section, yaml.SequenceNode):
            continue
        for item in section.value:
            if not isinstance(item, yaml.MappingNode):
                continue
            for k, v in item.value:
                if k.value == "id" and isinstance(v, yaml.ScalarNode):
                    lines.setdefault(v.value, item.start_mark.line + 1)
    return lines
