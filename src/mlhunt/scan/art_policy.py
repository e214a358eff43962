"""The import policy of the artifact scanner: ``allowlist.yaml`` loaded, validated and matched.

``Policy.classify(module, name)`` answers ``allow``, ``deny`` (critical) or ``unknown`` (high)
for one import a pickle would perform. The order (deny, allow, dangerous names, unknown) is
documented at the top of ``allowlist.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlhunt.record import FrozenRecord

POLICY_FILE = Path(__file__).with_name("allowlist.yaml")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"^{_IDENT}(\.{_IDENT})*$")
_PATTERN = re.compile(rf"^{_IDENT}(\.{_IDENT})*(\.\*)?$")


class Verdict(FrozenRecord):
    __slots__ = ("level", "matched", "reason")
    level: str  # "allow" | "deny" | "unknown"
    reason: str
    matched: str | None

    def __init__(self, level: str, reason: str, matched: str | None = None) -> None:
        self.set_fields(level=level, reason=reason, matched=matched)


class _Pattern(FrozenRecord):
    __slots__ = ("exclude", "prefix", "reason", "regex")
    prefix: str
    regex: re.Pattern[str]
    exclude: tuple[str, ...]
    reason: str

    def __init__(
        self, prefix: str, regex: re.Pattern[str], exclude: tuple[str, ...], reason: str
    ) -> None:
        self.set_fields(prefix=prefix, regex=regex, exclude=exclude, reason=reason)


class PolicyError(ValueError):
    """allowlist.yaml (or a user allow entry) is malformed."""


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: expected a list of strings")
    return value


def _dotted(values: list[str], where: str) -> list[str]:
    for v in values:
        if not _DOTTED.match(v):
            raise PolicyError(f"{where}: {v!r} is not a dotted Python name")
    return values


def _expect_keys(obj: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise PolicyError(f"{where}: expected a mapping")
    unknown = set(obj) - allowed
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}")
    return obj


class Policy:
    def __init__(self, raw: dict[str, Any], source: str = "allowlist.yaml") -> None:
        raw = _expect_keys(raw, source, {"version", "allow", "deny"})
        if raw.get("version") != 1:
            raise PolicyError(f"{source}: version must be 1")
        allow = _expect_keys(
            raw.get("allow", {}),
            f"{source}: allow",
            {"exact", "modules", "names", "patterns", "torchscript"},
        )
        deny = _expect_keys(
            raw.get("deny", {}), f"{source}: deny", {"exact", "modules", "names", "name_regex"}
        )
        self.allow_exact: set[str] = set(
            _dotted(_strings(allow.get("exact", []), "allow.exact"), "allow.exact")
        )
        self.allow_modules: tuple[str, ...] = tuple(
            _dotted(_strings(allow.get("modules", []), "allow.modules"), "allow.modules")
        )
        names = allow.get("names", {})
        if not isinstance(names, dict):
            raise PolicyError(f"{source}: allow.names: expected a mapping of module to names")
        for module, listed in names.items():
            _dotted([str(module)], "allow.names")
            for n in _strings([str(x) for x in listed or []], f"allow.names.{module}"):
                if not re.fullmatch(_IDENT, n):
                    raise PolicyError(f"allow.names.{module}: {n!r} is not an identifier")
                self.allow_exact.add(f"{module}.{n}")
        self.patterns: list[_Pattern] = []
        for i, p in enumerate(allow.get("patterns", []) or []):
            where = f"allow.patterns[{i}]"
            p = _expect_keys(p, where, {"module_prefix", "name_regex", "exclude_modules", "reason"})
            prefix = p.get("module_prefix")
            if (
                not isinstance(prefix, str)
                or not prefix.endswith(".")
                or not _DOTTED.match(prefix[:-1])
            ):
                raise PolicyError(f"{where}: module_prefix must be a dotted name ending in '.'")
            try:
                regex = re.compile(str(p.get("name_regex", "")))
            except re.error as exc:
                raise PolicyError(f"{where}: bad name_regex: {exc}") from None
            if not p.get("name_regex"):
                raise PolicyError(f"{where}: name_regex is required")
            exclude = tuple(_dotted(_strings(p.get("exclude_modules", []), where), where))
            self.patterns.append(_Pattern(prefix, regex, exclude, str(p.get("reason", ""))))
        self.torchscript = tuple(_strings(allow.get("torchscript", []), "allow.torchscript"))
        for entry in self.torchscript:
            if not entry.endswith(".*"):
                raise PolicyError(f"allow.torchscript: {entry!r} must end in '.*'")
        self.deny_exact = set(_dotted(_strings(deny.get("exact", []), "deny.exact"), "deny.exact"))
        self.deny_modules = tuple(
            dict.fromkeys(
                _dotted(_strings(deny.get("modules", []), "deny.modules"), "deny.modules")
            )
        )
        self._deny_module_segs = [tuple(m.split(".")) for m in self.deny_modules]
        # Module lists as {entry: first position}: a module is matched by looking up its own
        # dotted prefixes (a few) rather than testing every entry (~100 per global).
        self._allow_module_rank = _ranks(self.allow_modules)
        self._deny_module_rank = _ranks(self.deny_modules)
        self.deny_names = set(_strings(deny.get("names", []), "deny.names"))
        try:
            self.deny_name_regex = [
                re.compile(r) for r in _strings(deny.get("name_regex", []), "deny.name_regex")
            ]
        except re.error as exc:
            raise PolicyError(f"deny.name_regex: {exc}") from None
        overlap = self.allow_exact & self.deny_exact
        if overlap:
            raise PolicyError(f"{source}: names both allowed and denied: {sorted(overlap)}")
        self.user_allow: tuple[str, ...] = ()

    # -- construction --------------------------------------------------------------------

    @classmethod
    def default(cls) -> Policy:
        return _default_policy()

    def with_allow(self, extra: Iterable[str]) -> Policy:
        """A copy that also allows the caller's ``module.name`` / ``module.*`` entries."""
        entries = tuple(extra)
        if not entries:
            return self
        for e in entries:
            if not isinstance(e, str) or not _PATTERN.match(e):
                raise PolicyError(f"allow entry {e!r}: expected 'module.name' or 'module.*'")
        clone = object.__new__(Policy)
        for slot in (
            "allow_exact",
            "allow_modules",
            "patterns",
            "torchscript",
            "deny_exact",
            "deny_modules",
            "_deny_module_segs",
            "_allow_module_rank",
            "_deny_module_rank",
            "deny_names",
            "deny_name_regex",
        ):
            setattr(clone, slot, getattr(self, slot))
        clone.user_allow = self.user_allow + entries
        return clone

    # -- matching ------------------------------------------------------------------------

    def classify(self, module: str, name: str, *, torchscript: bool = False) -> Verdict:
        full = f"{module}.{name}" if name else module
        if not _DOTTED.match(full):
            return Verdict("unknown", "not a valid Python name")
        hit = self._denied(module, name, full)
        if hit:
            return Verdict("deny", "known-dangerous callable or module", hit)
        allowed = self._allowed(module, name, full, torchscript)
        if allowed:
            return Verdict("allow", "allow-listed", allowed)
        last = full.rsplit(".", 1)[-1]
        if last in self.deny_names or any(r.match(last) for r in self.deny_name_regex):
            return Verdict("deny", "name of a code-execution, file or import primitive", last)
        return Verdict("unknown", "not on the allow-list")

    def _denied(self, module: str, name: str, full: str) -> str | None:
        segs = full.split(".")
        for k in range(len(segs)):
            suffix = ".".join(segs[k:])
            if suffix in self.deny_exact:
                return suffix
        m = _first_listed(module, self._deny_module_rank)
        if m is not None:
            return f"{m}.*"
        if "." in name:
            # Protocol 4 walks dotted names attribute by attribute: a harmless module can lead
            # to os.system through its own imports (numpy.testing._private.utils.os.system).
            nsegs = name.split(".")
            for mseg in self._deny_module_segs:
                n = len(mseg)
                for i in range(len(nsegs) - n + 1):
                    if tuple(nsegs[i : i + n]) == mseg:
                        return f"{'.'.join(mseg)}.* (reached through attribute path)"
        return None

    def _allowed(self, module: str, name: str, full: str, torchscript: bool) -> str | None:
        if full in self.allow_exact:
            return full
        simple = bool(name) and "." not in name
        for entry in self.user_allow:
            if entry.endswith(".*"):
                prefix = entry[:-2]
                if simple and (module == prefix or module.startswith(prefix + ".")):
                    return entry
            elif entry == full:
                return entry
        if not simple:
            return None
        m = _first_listed(module, self._allow_module_rank)
        if m is not None:
            return f"{m}.*"
        for p in self.patterns:
            if (module + ".").startswith(p.prefix) and p.regex.match(name):
                if any(module == x or module.startswith(x + ".") for x in p.exclude):
                    continue
                return f"{p.prefix}* ({p.regex.pattern})"
        if torchscript:
            for entry in self.torchscript:
                prefix = entry[:-2]
                if module == prefix or module.startswith(prefix + "."):
                    return entry
        return None


def _ranks(entries: Iterable[str]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for i, entry in enumerate(entries):
        ranks.setdefault(entry, i)
    return ranks


def _first_listed(module: str, ranks: dict[str, int]) -> str | None:
    """The entry listed first among those that are ``module`` or a dotted parent of it (what
    ``module == m or module.startswith(m + ".")`` over the list in order finds)."""
    parts = module.split(".")
    hits = [p for p in (".".join(parts[:k]) for k in range(1, len(parts) + 1)) if p in ranks]
    return min(hits, key=ranks.__getitem__) if hits else None


@lru_cache(maxsize=1)
def _default_policy() -> Policy:
    return Policy(_shipped_raw(), str(POLICY_FILE))


def _shipped_raw() -> Any:
    """allowlist.yaml as parsed data; PyYAML is a sixth of a checkpoint scan, so the parsed
    form is kept as JSON beside the bytecode (:func:`mlhunt.pycache.cached_json`)."""
    from mlhunt.pycache import cached_json
    from mlhunt.scan.pycache import cache_dir

    text = POLICY_FILE.read_bytes()
    return cached_json(cache_dir(), "allowlist", text, lambda: _parse_yaml(text))


def _parse_yaml(text: bytes) -> Any:
    import yaml

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
        return yaml.load(text.decode("utf-8"), Loader=loader)  # noqa: S506
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{POLICY_FILE}: {exc}") from None
