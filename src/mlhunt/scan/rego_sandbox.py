"""Which Rego built-ins a policy may reach: none that touch the network or the host.

rego-cpp (what regopy runs) has no ``http.send`` or ``net.lookup_ip_addr`` (they evaluate to
undefined and send nothing), but it does have ``opa.runtime()``, which hands the policy every
environment variable of the scanning process (CI tokens, cloud keys) to copy into a finding
message that ends up in a SARIF upload. OPA has all three. So a policy that names one of these
namespaces is refused at load time, whichever syntax it uses: ``opa.runtime()``,
``opa["runtime"]()``, ``opa . runtime()``, ``import opa as o`` ...

The check works on tokens, not text: comments and string literals are skipped, so a message
that merely mentions ``http.send`` is fine, and a reference such as ``input.spec.http`` (a
field, preceded by a dot) is not a built-in.
"""

from __future__ import annotations

import re

__all__ = ["REFUSED_NAMESPACES", "refused_builtin"]

#: Top-level names a policy may not reference at all (every built-in under them reaches the
#: network or the host), and, for ``net``, the members that do (``net.cidr_*`` stay allowed).
REFUSED_NAMESPACES = ("http", "opa", "providers")
_REFUSED_NET = ("lookup_ip_addr",)

# Compiled on first use (re's cache): only policies that are not the shipped, cached ones are
# tokenised, so most scans never need it.
_LEXICON = r"""(?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|`[^`]*`)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<space>\s+)
      | (?P<other>.)"""


def _tokens(source: str) -> list[tuple[str, str, int]]:
    """(kind, text, offset) for every significant token: identifiers, strings, punctuation."""
    out = []
    for m in re.finditer(_LEXICON, source, re.VERBOSE | re.DOTALL):
        kind = m.lastgroup or "other"
        if kind in ("comment", "space"):
            continue
        out.append((kind, m.group(), m.start()))
    return out


def refused_builtin(source: str) -> tuple[str, int] | None:
    """``(what, offset)`` of the first reference to a refused built-in namespace, or None."""
    toks = _tokens(source)
    for i, (kind, text, offset) in enumerate(toks):
        if kind != "ident":
            continue
        prev = toks[i - 1][1] if i else ""
        if prev == ".":  # a field of something else (input.spec.http), not the built-in
            continue
        if text in REFUSED_NAMESPACES:
            return _name(toks, i), offset
        if text == "net":
            member = _member(toks, i)
            if member is None and i + 1 < len(toks) and toks[i + 1][1] == "[":
                return "net[...]", offset  # a computed member: cannot tell, so refused
            if member in _REFUSED_NET:
                return f"net.{member}", offset
    return None


def _member(toks: list[tuple[str, str, int]], i: int) -> str | None:
    """The member named after ``toks[i]``: ``.name`` or ``["name"]``."""
    if i + 2 < len(toks) and toks[i + 1][1] == "." and toks[i + 2][0] == "ident":
        return toks[i + 2][1]
    if (
        i + 3 < len(toks)
        and toks[i + 1][1] == "["
        and toks[i + 2][0] == "string"
        and toks[i + 3][1] == "]"
    ):
        return toks[i + 2][1][1:-1]
    return None


def _name(toks: list[tuple[str, str, int]], i: int) -> str:
    member = _member(toks, i)
    return f"{toks[i][1]}.{member}" if member else toks[i][1]
