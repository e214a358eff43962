"""Kubernetes / Kubeflow / KServe / Seldon / Istio manifests checked against Rego policies.

Policies are plain ``.rego`` files (Rego v1, conftest's ``deny contains msg if`` convention,
``package main``), shipped in ``mlhunt/scan/policies`` and extended with ``--policy DIR``. They
are evaluated in-process with regopy (rego-cpp); the same files run unchanged under
``conftest test --policy src/mlhunt/scan/policies FILES`` (add ``--combine`` for the
cross-resource rules).

One policy per file. The file's ``# METADATA`` block (rule-scoped, above its first ``deny``
rule: package-scoped blocks would collide across files of ``package main`` in OPA) describes it::

    # METADATA
    # title: Container image not pinned by digest
    # description: ...
    # custom:
    #   id: MLH-K8S-IMAGE-DIGEST        (required)
    #   severity: medium                (required: info|low|medium|high|critical)
    #   input: document                 (document, the default, or combined)
    #   cwe: [CWE-494]                  stride, atlas, owasp_ml: lists as well
    #   mitigations: [...]              (or mitigation: one string)

``.rego`` files without ``deny``/``violation``/``warn`` rules are libraries (``lib/``), loaded
beside every policy; ``*_test.rego`` files are skipped (conftest verify tests).

Two input modes, mirroring conftest:

* ``document`` policies see one Kubernetes object as ``input`` (conftest's default, where a
  multi-document YAML is evaluated one document at a time);
* ``combined`` policies see every scanned file at once, ``input`` being a list of
  ``{"path": file, "contents": document-or-list-of-documents}`` (conftest ``--combine``). They
  carry the cross-resource rules ("an AuthorizationPolicy for every inference service", "mTLS
  STRICT where models are served"); under plain conftest they stay silent because ``input`` is
  not a list, and document policies stay silent under ``--combine`` because ``input.kind`` is
  undefined. :func:`scan_manifest` combines the documents of one file; :func:`scan_manifests`
  combines several files (use it for a folder, where the PeerAuthentication usually lives in
  another file than the InferenceService).

A rule yields a message string, or an object ``{"msg": ..., "field": [path ...]}`` (conftest
keeps the extra keys as metadata); ``field`` points mlhunt at the offending field's line, and
combined rules add ``"path"`` and ``"index"`` to name the file and document. An optional
``"severity"`` key overrides the policy's severity for that result.

Sandbox: policies cannot reach the network or the host. rego-cpp has no ``http.send`` or
``net.lookup_ip_addr``; mlhunt also refuses, at load time, any policy that references them or
``opa.runtime`` (the process environment), in any syntax (:mod:`mlhunt.scan.rego_sandbox`), so a
policy behaves the same under mlhunt and under OPA/conftest.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlhunt.errors import InputError
from mlhunt.findings import Finding, Severity
from mlhunt.record import Record
from mlhunt.scan.rego_sandbox import refused_builtin
from mlhunt.scan.yamlsafe import YamlBomb, to_plain

__all__ = [
    "SHIPPED_POLICY_DIR",
    "Policy",
    "PolicyError",
    "is_manifest",
    "load_policies",
    "scan_manifest",
    "scan_manifests",
]

SHIPPED_POLICY_DIR = Path(__file__).with_name("policies")

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_MANIFEST_BYTES = 20 * 1024 * 1024

# conftest's rule names: deny, violation, warn, optionally suffixed (deny_foo, warn_bar_baz).
# Patterns that only parsing a policy file needs are compiled on first use (re's cache): the
# shipped policies come parsed from a cache (see rego_cache), and a scan starts faster.
_RULE_RE = r"(?m)^(?P<name>(?:deny|violation|warn)(?:_[A-Za-z0-9]+)*)\s+contains\b"
_OLD_SET_RULE_RE = r"(?m)^\s*(?:deny|violation|warn)(?:_[A-Za-z0-9]+)*\s*\["
_OLD_BODY_RE = r"(?m)^[A-Za-z_][A-Za-z0-9_]*(?:\([^)]*\))?\s*\{"
_PACKAGE_RE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_METADATA_RE = r"(?m)^# METADATA\s*$"
# Built-ins that reach the network or the host (or sign requests for them). Refused in every
# policy, whatever the syntax (see rego_sandbox).
NETWORK_BUILTINS = ("http.send", "net.lookup_ip_addr", "providers.aws.sign_req", "opa.runtime")
_ID_RE = r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+$"
INPUT_MODES = ("document", "combined")
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PolicyError(InputError):
    """A policy file that cannot be used: bad syntax, missing metadata, network built-ins."""


class Policy(Record):
    """One ``.rego`` policy file and what its METADATA says about it."""

    __slots__ = (
        "atlas",
        "cwe",
        "description",
        "id",
        "input",
        "mitigations",
        "owasp_ml",
        "package",
        "path",
        "rules",
        "severity",
        "shipped",
        "source",
        "stride",
        "title",
    )

    def __init__(
        self,
        id: str,  # METADATA's custom.id
        title: str,
        severity: Severity,
        path: Path,
        package: str,
        rules: tuple[str, ...],
        input: str = "document",  # METADATA's custom.input
        description: str = "",
        cwe: list[str] | None = None,
        stride: list[str] | None = None,
        atlas: list[str] | None = None,
        owasp_ml: list[str] | None = None,
        mitigations: list[str] | None = None,
        shipped: bool = False,
        source: str = "",
    ) -> None:
        self.id = id
        self.title = title
        self.severity = severity
        self.path = path
        self.package = package
        self.rules = rules
        self.input = input
        self.description = description
        self.cwe: list[str] = [] if cwe is None else cwe
        self.stride: list[str] = [] if stride is None else stride
        self.atlas: list[str] = [] if atlas is None else atlas
        self.owasp_ml: list[str] = [] if owasp_ml is None else owasp_ml
        self.mitigations: list[str] = [] if mitigations is None else mitigations
        self.shipped = shipped
        self.source = source

    def __repr__(self) -> str:  # without the source text
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__ if n != "source")
        return f"Policy({fields})"


# ------------------------------------------------------------------------------------------
# Policy loading
# ------------------------------------------------------------------------------------------


def _strip_comments(source: str) -> str:
    """The source with ``#`` comments blanked (strings containing '#' are rare in policies)."""
    out = []
    for line in source.splitlines():
        in_str: str | None = None
        cut = len(line)
        for i, ch in enumerate(line):
            if in_str:
                if ch == in_str and (in_str == "`" or line[i - 1] != "\\"):
                    in_str = None
            elif ch in '"`':
                in_str = ch
            elif ch == "#":
                cut = i
                break
        out.append(line[:cut])
    return "\n".join(out)


def _line_of(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def _metadata_blocks(source: str, *, shipped: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """Every ``# METADATA`` block as (line, parsed YAML). The shipped policies' metadata is
    parsed with libyaml when available (~8x faster); a user's with PyYAML's Python parser,
    whose depth is bounded by Python's recursion limit."""
    loader = _FAST_LOADER if shipped else yaml.SafeLoader
    lines = source.splitlines()
    blocks = []
    for m in re.finditer(_METADATA_RE, source):
        start = _line_of(source, m.start())
        body = []
        for line in lines[start:]:
            if not line.startswith("#"):
                break
            body.append(line[2:] if line.startswith("# ") else line[1:])
        try:
            data = yaml.load("\n".join(body), Loader=loader) or {}  # noqa: S506 (safe loaders)
        except yaml.YAMLError as exc:
            raise PolicyError(f"METADATA is not valid YAML: {exc}", line=start) from None
        if not isinstance(data, dict):
            raise PolicyError("METADATA must be a YAML mapping", line=start)
        blocks.append((start, data))
    return blocks


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int | float):
        return [str(value)]
    if isinstance(value, list):
        # An unquoted "Set x: y" item parses as a mapping and would render as a dict: refuse.
        if any(isinstance(v, dict | list) for v in value):
            raise ValueError("expected a list of strings (quote items that contain ': ')")
        return [str(v) for v in value if v is not None]
    raise ValueError("expected a string or a list of strings")


def _check_syntax(source: str) -> None:
    code = _strip_comments(source)
    m = re.search(_OLD_SET_RULE_RE, code)
    if m:
        raise PolicyError(
            "old Rego syntax: write `deny contains msg if { ... }`, not `deny[msg] { ... }`",
            line=_line_of(code, m.start()),
        )
    for m in re.finditer(_OLD_BODY_RE, code):
        head = m.group(0)
        if not head.startswith(("package", "import", "default")):
            raise PolicyError(
                "old Rego syntax: a rule body needs the `if` keyword (Rego v1)",
                line=_line_of(code, m.start()),
            )
    refused = refused_builtin(source)
    if refused:
        raise PolicyError(
            f"policy uses {refused[0]}: network and host built-ins (http, net.lookup_ip_addr, "
            "opa.runtime, providers) are not allowed in mlhunt policies",
            line=_line_of(source, refused[1]),
        )


def _parse_policy(path: Path, source: str, *, shipped: bool) -> Policy | None:
    """The Policy a file defines, or None for a library (no deny/violation/warn rule)."""
    display = str(path)
    try:
        _check_syntax(source)
        pkg = _PACKAGE_RE.search(_strip_comments(source))
        if not pkg:
            raise PolicyError("no `package` declaration")
        rules = tuple(dict.fromkeys(m.group("name") for m in re.finditer(_RULE_RE, source)))
        if not rules:
            return None
        blocks = [
            (ln, b)
            for ln, b in _metadata_blocks(source, shipped=shipped)
            if isinstance(b.get("custom"), dict)
        ]
        ids = {str(b["custom"].get("id")) for _, b in blocks if b["custom"].get("id")}
        if not blocks or not ids:
            raise PolicyError(
                "policy has no METADATA block with custom.id (and custom.severity): every policy "
                "file must describe itself"
            )
        if len(ids) > 1:
            raise PolicyError(f"one policy per file: METADATA declares several ids {sorted(ids)}")
        line, meta = next((ln, b) for ln, b in blocks if b["custom"].get("id"))
        custom = meta["custom"]
        pid = str(custom["id"])
        if not re.match(_ID_RE, pid):
            raise PolicyError(f"custom.id {pid!r} must look like MLH-K8S-NAME", line=line)
        if "severity" not in custom:
            raise PolicyError("METADATA custom.severity is missing", line=line)
        try:
            severity = Severity.parse(str(custom["severity"]))
        except ValueError as exc:
            raise PolicyError(f"custom.severity: {exc}", line=line) from None
        mode = str(custom.get("input", "document"))
        if mode not in INPUT_MODES:
            raise PolicyError(f"custom.input must be one of {', '.join(INPUT_MODES)}", line=line)
        try:
            mitigations = _str_list(custom.get("mitigations")) + _str_list(custom.get("mitigation"))
            lists = {k: _str_list(custom.get(k)) for k in ("cwe", "stride", "atlas", "owasp_ml")}
        except ValueError as exc:
            raise PolicyError(f"METADATA custom: {exc}", line=line) from None
        return Policy(
            id=pid,
            title=str(meta.get("title") or pid),
            severity=severity,
            path=path,
            package=pkg.group(1),
            rules=rules,
            input=mode,
            description=" ".join(str(meta.get("description") or "").split()),
            mitigations=mitigations,
            shipped=shipped,
            source=source,
            **lists,
        )
    except PolicyError as exc:
        exc.file = exc.file or display
        raise


def _rego_files(directory: Path) -> list[Path]:
    if directory.is_file():
        return [directory] if directory.suffix == ".rego" else []
    if not directory.is_dir():
        raise PolicyError("policy directory not found", file=str(directory))
    return sorted(p for p in directory.rglob("*.rego") if not p.name.endswith("_test.rego"))


class _PolicySet(Record):
    __slots__ = ("alias", "bundle", "engine", "libraries", "policies")

    def __init__(self, policies: list[Policy], libraries: list[tuple[str, str]]) -> None:
        self.policies = policies
        self.libraries = libraries  # (name, source)
        self.engine: Any = None  # one regopy Interpreter holding every library and policy
        self.bundle: Any = None  # every policy rule compiled once (None: each query compiles)
        self.alias: dict[str, str] = {}  # policy path -> package it runs in


_CACHE: dict[tuple, _PolicySet] = {}
_RUN_PACKAGE = "mlhunt_policies"


def _signature(dirs: tuple[Path, ...]) -> tuple:
    sig = []
    for d in dirs:
        for p in _rego_files(d):
            st = p.stat()
            sig.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(sig)


def _policy_set(policy_dirs: Iterable[Path]) -> _PolicySet:
    dirs = (SHIPPED_POLICY_DIR, *(Path(d).resolve() for d in policy_dirs))
    key = (dirs, _signature(dirs))
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    policies: list[Policy] = []
    libraries: list[tuple[str, str]] = []
    seen: dict[str, Path] = {}
    for d in dirs:
        for p, source, pol in _parse_dir(d, shipped=d == SHIPPED_POLICY_DIR):
            if pol is None:
                libraries.append((str(p), source))
                continue
            if pol.id in seen:
                raise PolicyError(
                    f"policy id {pol.id} is already defined by {seen[pol.id]}", file=str(p)
                )
            seen[pol.id] = p
            policies.append(pol)
    pset = _PolicySet(policies, libraries)
    _compile(pset)
    if len(_CACHE) > 8:
        _CACHE.clear()
    _CACHE[key] = pset
    return pset


def _parse_dir(directory: Path, *, shipped: bool) -> list[tuple[Path, str, Policy | None]]:
    """(file, source, policy or None for a library) for every ``.rego`` file of a folder. The
    shipped policies' parsed form is kept beside the bytecode (see rego_cache)."""
    files = _rego_files(directory)
    sources = []
    for p in files:
        try:
            sources.append(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read policy: {exc}", file=str(p)) from None
    pairs = list(zip(files, sources, strict=True))
    if not shipped:
        return [(p, src, _parse_policy(p, src, shipped=False)) for p, src in pairs]
    from mlhunt.scan import rego_cache

    key = rego_cache.source_key((str(p), src) for p, src in pairs)
    kept = rego_cache.load_parsed(key)
    if kept is not None and len(kept) == len(pairs):
        try:
            return [
                (p, src, _policy_from(p, src, doc))
                for (p, src), doc in zip(pairs, kept, strict=True)
            ]
        except (KeyError, TypeError, ValueError):  # a damaged copy: parse again
            pass
    parsed = [(p, src, _parse_policy(p, src, shipped=True)) for p, src in pairs]
    rego_cache.save_parsed(key, [_policy_doc(pol) for _, _, pol in parsed])
    return parsed


_KEPT_FIELDS = ("id", "title", "package", "input", "description")
_KEPT_LISTS = ("cwe", "stride", "atlas", "owasp_ml", "mitigations")


def _policy_doc(policy: Policy | None) -> dict[str, Any] | None:
    """What :func:`_parse_policy` found in a shipped file, as JSON (None: a library)."""
    if policy is None:
        return None
    doc: dict[str, Any] = {k: getattr(policy, k) for k in (*_KEPT_FIELDS, *_KEPT_LISTS)}
    return {**doc, "severity": policy.severity.value, "rules": list(policy.rules)}


def _policy_from(path: Path, source: str, doc: Any) -> Policy | None:
    if doc is None:
        return None
    lists = {k: [str(v) for v in doc[k]] for k in _KEPT_LISTS}
    return Policy(
        **{k: str(doc[k]) for k in _KEPT_FIELDS},
        severity=Severity(doc["severity"]),
        path=path,
        rules=tuple(str(r) for r in doc["rules"]),
        shipped=True,
        source=source,
        **lists,
    )


def _compile(pset: _PolicySet) -> None:
    """Load every library and policy into one interpreter: rego-cpp compiles the program on
    each query, so one query per document for all policies is much cheaper than one per
    policy. Each policy file runs in its own package (``mlhunt_policies.pN``), so files that
    all say ``package main`` (as conftest wants) keep their results apart; helpers shared
    between files belong in a library package (``package lib.x``, conftest's convention)."""
    from regopy import Interpreter

    from mlhunt.scan import rego_cache

    interp = Interpreter()
    modules = list(pset.libraries)
    for n, policy in enumerate(pset.policies):
        pset.alias[str(policy.path)] = f"{_RUN_PACKAGE}.p{n}"
        source = _PACKAGE_RE.sub(f"package {pset.alias[str(policy.path)]}", policy.source, count=1)
        modules.append((str(policy.path), source))
    entrypoints = [_entrypoint(pset, pol, rule) for pol, rule in _slots(pset)]
    shipped = SHIPPED_POLICY_DIR.resolve()
    only_shipped = all(Path(name).resolve().is_relative_to(shipped) for name, _ in modules)
    key = rego_cache.bundle_key(modules, entrypoints) if only_shipped else None
    if key is not None:
        pset.bundle = rego_cache.load_bundle(interp, key)
        if pset.bundle is not None:
            pset.engine = interp
            return
    for name, source in pset.libraries:
        try:
            interp.add_module(name, source)
        except Exception as exc:
            raise PolicyError(f"Rego error: {_short(exc)}", file=name) from None
    for policy, (name, source) in zip(pset.policies, modules[len(pset.libraries) :], strict=True):
        try:
            interp.add_module(name, source)
        except Exception as exc:
            raise PolicyError(f"Rego error: {_short(exc)}", file=str(policy.path)) from None
    pset.engine = interp
    # rego-cpp reports some errors (unknown functions, bad refs) only when evaluating: probe the
    # user's policies once so a mistake names its file. The shipped ones are probed by the tests;
    # skipping them saves ~0.4 s of start-up (each query recompiles the program).
    for policy in pset.policies:
        if Path(policy.path).resolve().is_relative_to(shipped):
            continue
        interp.set_input([] if policy.input == "combined" else {})
        for rule in policy.rules:
            _query(interp, f"data.{pset.alias[str(policy.path)]}.{rule}", str(policy.path))
    # Compiled once into a bundle with one entry point per rule: a query then runs the plan
    # without recompiling the program (~0.03 s per query otherwise, for every document).
    try:
        bundle = interp.build(None, entrypoints)
    except Exception:  # rego-cpp could not build it: queries compile the program each time
        bundle = None
    pset.bundle = bundle if bundle is not None and bundle.ok() else None
    if key is not None and pset.bundle is not None:
        rego_cache.save_bundle(interp, pset.bundle, key)


def _slots(pset: _PolicySet) -> list[tuple[Policy, str]]:
    return [(pol, rule) for pol in pset.policies for rule in pol.rules]


def _entrypoint(pset: _PolicySet, policy: Policy, rule: str) -> str:
    return f"{pset.alias[str(policy.path)]}.{rule}".replace(".", "/")


def _evaluate(
    pset: _PolicySet, policies: list[Policy], value: Any
) -> list[tuple[Policy, str, Any]]:
    """(policy, rule, result) for every result of ``policies`` on input ``value``."""
    if not policies:
        return []
    interp = pset.engine
    interp.set_input(value)
    slots = [(pol, rule) for pol in policies for rule in pol.rules]
    if pset.bundle is not None:
        values = [_entry_results(pset, pol, rule) for pol, rule in slots]
    else:
        refs = [f"data.{pset.alias[str(pol.path)]}.{rule}" for pol, rule in slots]
        values = _evaluate_split(interp, refs, [str(pol.path) for pol, _ in slots])
    out = []
    for (pol, rule), results in zip(slots, values, strict=True):
        for result in results if isinstance(results, list) else [results]:
            out.append((pol, rule, result))
    return out


def _evaluate_split(interp: Any, refs: list[str], files: list[str]) -> list[Any]:
    """Results of ``refs`` in one query; when it fails, of each half, down to the rule at
    fault (a few queries instead of one per rule: each query recompiles the program).

    An error on this input (a built-in given a number where a manifest should hold a string:
    OPA's non-strict mode makes it undefined) becomes an MLH-K8S-POLICY-ERROR finding, so that
    one odd document neither hides the other rules' results nor passes unremarked."""
    try:
        if len(refs) == 1:
            return [_query(interp, refs[0], files[0])]
        values = _query(interp, "[" + ", ".join(refs) + "]", "")
        if len(values) != len(refs):
            raise PolicyError("unexpected result shape")
        return values
    except PolicyError as exc:
        if len(refs) == 1:
            return [[_EvalError(" ".join(exc.message.split())[:300])]]
    mid = len(refs) // 2
    return _evaluate_split(interp, refs[:mid], files[:mid]) + _evaluate_split(
        interp, refs[mid:], files[mid:]
    )


def _entry_results(pset: _PolicySet, policy: Policy, rule: str) -> Any:
    """The results of one rule from the compiled bundle, or the error it gave on this input
    (as :func:`_evaluate_split` reports it)."""
    from regopy.rego_shared import rego_bundle_query_entrypoint

    try:
        out = rego_bundle_query_entrypoint(
            pset.engine._impl, pset.bundle._impl, _entrypoint(pset, policy, rule)
        )
    except Exception as exc:
        return [_EvalError(" ".join(f"Rego evaluation failed: {_short(exc)}".split())[:300])]
    try:
        return _output(out, str(policy.path))
    except PolicyError as exc:
        return [_EvalError(" ".join(exc.message.split())[:300])]


class _EvalError(str):
    """A policy's evaluation error on one input, carried where its results would be."""


def _short(exc: Exception) -> str:
    text = str(exc)
    msgs = re.findall(r"\(errormsg \d+:([^)\n]*)", text)
    if msgs:
        return "; ".join(dict.fromkeys(m.strip() for m in msgs))
    return " ".join(text.split())[:300]


def load_policies(policy_dirs: Iterable[Path] = ()) -> list[Policy]:
    """The shipped policies plus those in ``policy_dirs``, validated and compiled.

    Raises :class:`PolicyError` (an :class:`~mlhunt.errors.InputError`) naming the file for a
    policy that does not parse, lacks ``custom.id``/``custom.severity`` METADATA, uses old
    (pre-v1) syntax or calls a network built-in.
    """
    return list(_policy_set(policy_dirs).policies)


# ------------------------------------------------------------------------------------------
# Rego evaluation (regopy's Output parses rego-cpp's JSON text, which is not escaped: results
# are read from the node tree instead)
# ------------------------------------------------------------------------------------------


def _node_value(node: Any) -> Any:
    from regopy.rego_shared import NodeKind as K
    from regopy.rego_shared import (
        rego_node_get,
        rego_node_json,
        rego_node_size,
        rego_node_type,
        rego_node_value,
    )

    kind = rego_node_type(node)
    if kind in (K.Term, K.Scalar):
        return _node_value(rego_node_get(node, 0))
    if kind in (K.Array, K.Set, K.Terms):
        return [_node_value(rego_node_get(node, i)) for i in range(rego_node_size(node))]
    if kind == K.Object:
        out: dict[str, Any] = {}
        for i in range(rego_node_size(node)):
            item = rego_node_get(node, i)
            key = _node_value(rego_node_get(item, 0))
            out[key if isinstance(key, str) else json.dumps(key)] = _node_value(
                rego_node_get(item, 1)
            )
        return out
    if kind == K.String:
        # rego-cpp 1.5 hands back strings made by built-ins (concat, lower, object.get ...)
        # wrapped in one pair of unescaped double quotes; strings from input or literals come raw.
        text = rego_node_value(node)
        if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
            text = text[1:-1]
        return text
    if kind == K.Int:
        return int(rego_node_value(node))
    if kind == K.Float:
        return float(rego_node_value(node))
    if kind in (K.True_, K.False_, K.Boolean):
        return rego_node_value(node) == "true"
    if kind == K.Null:
        return None
    if kind == K.Undefined:
        return None
    raise ValueError(f"unexpected Rego value {rego_node_json(node)[:80]}")


def _query(interp: Any, query: str, policy_file: str) -> list[Any]:
    from regopy.rego_shared import rego_query

    try:
        out = rego_query(interp._impl, query)
    except Exception as exc:
        raise PolicyError(f"Rego evaluation failed: {_short(exc)}", file=policy_file) from None
    return _output(out, policy_file)


def _output(out: Any, policy_file: str) -> list[Any]:
    """The values of a query's (or an entry point's) output, which is freed here."""
    from regopy.rego_shared import (
        rego_free_output,
        rego_output_expressions_at_index,
        rego_output_ok,
        rego_output_string,
    )

    try:
        text = rego_output_string(out)
        if not rego_output_ok(out) or text.lstrip().startswith("(error"):
            raise PolicyError(
                f"Rego evaluation failed: {_short(Exception(text))}", file=policy_file
            )
        if text.strip() == "undefined":
            return []
        try:
            terms = _node_value(rego_output_expressions_at_index(out, 0))
        except ValueError as exc:  # an error term inside the result
            raise PolicyError(f"Rego evaluation failed: {exc}", file=policy_file) from None
    finally:
        rego_free_output(out)
    value = terms[0] if isinstance(terms, list) and terms else terms
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


# ------------------------------------------------------------------------------------------
# Manifest loading with line numbers
# ------------------------------------------------------------------------------------------


class _Doc(Record):
    __slots__ = ("file", "index", "line", "node", "obj")

    def __init__(
        self,
        file: str,  # display path
        index: int,  # 0-based position in the file (after expanding kind: List)
        obj: dict[str, Any],
        node: yaml.Node | None,
        line: int,
    ) -> None:
        self.file = file
        self.index = index
        self.obj = obj
        self.node = node
        self.line = line


def _jsonable(value: Any, display: str, line: int) -> Any:
    try:
        return to_plain(value)
    except YamlBomb as exc:
        raise InputError(str(exc), file=display, line=line) from None


def _compose(text: str) -> Iterator[tuple[yaml.Node | None, Any]]:
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            yield node, loader.construct_document(node)
    finally:
        loader.dispose()


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if len(data) > MAX_MANIFEST_BYTES:
        raise InputError(f"manifest larger than {MAX_MANIFEST_BYTES} bytes", file=str(path))
    return data.decode("utf-8-sig")


def _is_resource(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("apiVersion"), str)
        and isinstance(obj.get("kind"), str)
    )


def _map_get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _load_docs(path: Path, display: str) -> list[_Doc]:
    try:
        text = _read_text(path)
    except UnicodeDecodeError:
        raise InputError("manifest is not UTF-8 text", file=display) from None
    except OSError as exc:
        raise InputError(f"cannot read manifest: {exc.strerror or exc}", file=display) from None
    docs: list[_Doc] = []
    try:
        pairs = list(_compose(text))
    except RecursionError:
        raise InputError("YAML nested too deeply", file=display) from None
    except (ValueError, OverflowError) as exc:  # PyYAML: chr() of an escape past U+10FFFF
        raise InputError(f"invalid YAML: {exc}", file=display) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"invalid YAML: {problem}", file=display, line=line) from None
    for node, obj in pairs:
        if _is_resource(obj) and obj["kind"] == "List" and isinstance(obj.get("items"), list):
            items_node = _map_get(node, "items")
            for i, item in enumerate(obj["items"]):
                inode = (
                    items_node.value[i]
                    if isinstance(items_node, yaml.SequenceNode) and i < len(items_node.value)
                    else None
                )
                if _is_resource(item):
                    line = inode.start_mark.line + 1 if inode is not None else 1
                    item = _jsonable(item, display, line)
                    docs.append(_Doc(display, len(docs), item, inode, line))
            continue
        if _is_resource(obj):
            line = node.start_mark.line + 1 if node is not None else 1
            docs.append(_Doc(display, len(docs), _jsonable(obj, display, line), node, line))
    return docs


def _field_line(doc: _Doc, path: list[Any]) -> int:
    """The 1-based line of the deepest part of ``path`` present in the document."""
    node = doc.node
    line = doc.line
    for seg in path:
        if isinstance(node, yaml.MappingNode):
            hit = None
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(seg):
                    hit = (k, v)
                    break
            if hit is None:
                return line
            line = hit[0].start_mark.line + 1
            node = hit[1]
        elif isinstance(node, yaml.SequenceNode):
            if not isinstance(seg, int) or not 0 <= seg < len(node.value):
                return line
            node = node.value[seg]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def is_manifest(path: Path) -> bool:
    """True for a YAML or JSON file holding at least one Kubernetes-style object (a document
    with string ``apiVersion`` and ``kind``). Unreadable or unparsable files are not manifests."""
    path = Path(path)
    if path.suffix.lower() not in MANIFEST_SUFFIXES or not path.is_file():
        return False
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            return False
        text = _read_text(path)
        if "apiVersion" not in text or "kind" not in text:
            return False
        return any(_is_resource(obj) for _, obj in _compose(text))
    except (
        OSError,
        UnicodeDecodeError,
        yaml.YAMLError,
        InputError,
        RecursionError,
        ValueError,
        OverflowError,
    ):
        return False


# ------------------------------------------------------------------------------------------
# Scanning
# ------------------------------------------------------------------------------------------


def _dotted(path: list[Any]) -> str:
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            seg = str(seg)
            out += ("." if out else "") + (seg if re.fullmatch(r"[\w-]+", seg) else f"[{seg!r}]")
    return out


def _as_path(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [v if isinstance(v, int | str) else str(v) for v in value]
    if isinstance(value, str) and value:
        return [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", value) if p]
    return []


def _finding(
    policy: Policy, rule: str, result: Any, doc: _Doc | None, target: str
) -> Finding | None:
    if isinstance(result, _EvalError):
        return _error_finding(policy, rule, result, doc, target)
    if isinstance(result, str):
        msg, extra = result, {}
    elif isinstance(result, dict) and isinstance(result.get("msg"), str):
        msg, extra = result["msg"], result
    else:
        return None
    severity = policy.severity
    if rule.startswith("warn"):
        severity = Severity.LOW
    if isinstance(extra.get("severity"), str):
        with contextlib.suppress(ValueError):
            severity = Severity.parse(extra["severity"])
    fpath = _as_path(extra.get("field"))
    evidence: dict[str, Any] = {"message": msg}
    if doc is not None:
        meta = doc.obj.get("metadata") if isinstance(doc.obj.get("metadata"), dict) else {}
        evidence.update(
            line=_field_line(doc, fpath) if fpath else doc.line,
            document=doc.index + 1,
            kind=doc.obj.get("kind"),
            name=meta.get("name"),
            namespace=meta.get("namespace"),
        )
    if fpath:
        evidence["field"] = _dotted(fpath)
    evidence["policy"] = policy.path.name if policy.shipped else str(policy.path)
    evidence["rule"] = rule
    where = ""
    if doc is not None:
        where = f"#{evidence.get('kind')}/{evidence.get('namespace') or ''}/{evidence.get('name')}"
        if fpath:
            where += f":{evidence['field']}"
    return Finding(
        id=f"{policy.id}@{target}{where}",
        rule_id=policy.id,
        title=policy.title,
        severity=severity,
        source="scan",
        target=target,
        description=policy.description or msg,
        atlas=list(policy.atlas),
        owasp_ml=list(policy.owasp_ml),
        stride=list(policy.stride),
        cwe=list(policy.cwe),
        evidence=evidence,
        mitigations=list(policy.mitigations),
    )


def _error_finding(
    policy: Policy, rule: str, error: str, doc: _Doc | None, target: str
) -> Finding | None:
    base = _finding(policy, rule, {"msg": error}, doc, target)
    if base is None:
        return None
    return base.replace(
        id=base.id.replace(policy.id, "MLH-K8S-POLICY-ERROR", 1) + f"#{policy.id}",
        rule_id="MLH-K8S-POLICY-ERROR",
        title="A policy could not evaluate this manifest",
        severity=Severity.LOW,
        description=f"Policy {policy.id} failed on this document, usually because a field has "
        "an unexpected type (a number where a name belongs); the document was not checked by it.",
        mitigations=["Fix the field's type; then rescan so that the policy can judge it."],
    )


def scan_manifests(
    paths: Iterable[Path],
    *,
    displays: Mapping[Path, str] | None = None,
    policy_dirs: Iterable[Path] = (),
) -> list[Finding]:
    """Check several manifest files as one deployment.

    Document policies run on every object of every file; combined policies run once over all
    files together (conftest ``--combine``), so a PeerAuthentication or AuthorizationPolicy in
    one file covers the InferenceService in another. ``displays`` maps a path to the name used
    as the finding target (default: the path as given). Files that hold no Kubernetes object
    contribute nothing. Raises :class:`~mlhunt.errors.InputError` for unparsable YAML and
    :class:`PolicyError` for unusable policies.
    """
    pset = _policy_set(policy_dirs)
    displays = displays or {}
    files: list[tuple[str, list[_Doc]]] = []
    for p in paths:
        p = Path(p)
        display = displays.get(p) or str(p)
        files.append((display, _load_docs(p, display)))

    findings: list[Finding] = []
    document_policies = [pol for pol in pset.policies if pol.input == "document"]
    combined_policies = [pol for pol in pset.policies if pol.input == "combined"]

    for display, docs in files:
        for doc in docs:
            for pol, rule, result in _evaluate(pset, document_policies, doc.obj):
                f = _finding(pol, rule, result, doc, display)
                if f is not None:
                    findings.append(f)

    if combined_policies and any(docs for _, docs in files):
        combined = []
        by_key: dict[tuple[str, int], _Doc] = {}
        for display, docs in files:
            if not docs:
                continue
            contents: Any = docs[0].obj if len(docs) == 1 else [d.obj for d in docs]
            combined.append({"path": display, "contents": contents})
            for d in docs:
                by_key[(display, d.index)] = d
        first = next(d for _, docs in files for d in docs)
        for pol, rule, result in _evaluate(pset, combined_policies, combined):
            doc = first
            if isinstance(result, dict):
                idx = result.get("index", 0)
                key = (str(result.get("path", first.file)), idx if isinstance(idx, int) else 0)
                doc = by_key.get(key, first)
            f = _finding(pol, rule, result, doc, doc.file)
            if f is not None:
                findings.append(f)

    return _dedupe(findings)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    out: list[Finding] = []
    seen: dict[str, int] = {}
    messages: set[tuple[str, str]] = set()
    for f in findings:
        key = (f.id, str(f.evidence.get("message")))
        if key in messages:
            continue
        messages.add(key)
        n = seen.get(f.id, 0)
        seen[f.id] = n + 1
        if n:
            f.id = f"{f.id}~{n + 1}"
        out.append(f)
    out.sort(key=lambda f: (f.target, f.evidence.get("line") or 0, f.rule_id, f.id))
    return out


def scan_manifest(
    path: Path, *, display: str | None = None, policy_dirs: Iterable[Path] = ()
) -> list[Finding]:
    """Check one manifest file (all its documents) against the shipped policies and the
    ``.rego`` files in ``policy_dirs``. Combined policies see this file alone; use
    :func:`scan_manifests` to judge a folder's files together."""
    path = Path(path)
    return scan_manifests(
        [path], displays={path: display} if display else None, policy_dirs=policy_dirs
    )
