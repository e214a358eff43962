"""Vectorised prefilters: RE2 patterns derived from the detectors' own patterns, run over whole
Arrow columns (``pyarrow.compute``) so that the detectors' Python scoring sees only the texts
that could score.

A prefilter is a *superset* of its detector: a text it does not mark cannot produce a signature,
a sensitive value, a secret, a probe or a prompt leak, so leaving it out changes no finding.
Each RE2 pattern is the Python pattern with its lookaround assertions removed and repetition
bounds over RE2's limit opened (both only widen what matches). The two engines agree on
printable ASCII text with tabs and newlines only; any other character (Unicode, other control
characters, ``\\r``) marks the text for the Python detectors, which also covers the
de-obfuscations that need them (NFKC, homoglyphs, invisible characters). Leetspeak is matched
through the detectors' own table (:func:`leet`) and a base64 run always marks the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

#: Characters both engines treat alike; any other character marks a text for Python.
UNUSUAL = r"[^\t\n\x20-\x7e]"
RE2_MAX_REPEAT = 1000
_LOOKAROUND = ("(?=", "(?!", "(?<=", "(?<!")
_BOUNDS = re.compile(r"\{(\d+),(\d+)\}")


def strip_lookarounds(pattern: str) -> str:
    """``pattern`` without its lookaround groups (a wider language: assertions only narrow)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif ch == "[":
            j = _class_end(pattern, i)
            out.append(pattern[i:j])
            i = j
        elif pattern.startswith(_LOOKAROUND, i):
            i = _group_end(pattern, i)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _class_end(p: str, i: int) -> int:
    """Index after the character class opening at ``p[i] == '['``."""
    j = i + 1
    if j < len(p) and p[j] == "^":
        j += 1
    if j < len(p) and p[j] == "]":
        j += 1
    while j < len(p) and p[j] != "]":
        j += 2 if p[j] == "\\" else 1
    return j + 1


def _group_end(p: str, i: int) -> int:
    """Index after the group opening at ``p[i] == '('``."""
    depth, j = 0, i
    while j < len(p):
        ch = p[j]
        if ch == "\\":
            j += 2
            continue
        if ch == "[":
            j = _class_end(p, j)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return j


def _open_bounds(pattern: str) -> str:
    def fix(m: re.Match[str]) -> str:
        lo, hi = int(m.group(1)), int(m.group(2))
        return m.group(0) if hi <= RE2_MAX_REPEAT else f"{{{min(lo, RE2_MAX_REPEAT)},}}"

    return _BOUNDS.sub(fix, pattern)


#: what a pattern RE2 cannot take becomes: any non-empty text (the Python detector decides)
ANY_TEXT = "(?s:.)"


def to_re2(rx: re.Pattern[str]) -> str:
    """An RE2 pattern matching (at least) wherever the Python pattern ``rx`` matches; for a
    pattern RE2 cannot compile (backreferences, atomic groups, verbose mode), any text."""
    if rx.flags & re.VERBOSE and any(ch.isspace() or ch == "#" for ch in rx.pattern):
        return ANY_TEXT  # (verbose mode changes nothing in a pattern without space or #)
    flags = ("i" if rx.flags & re.IGNORECASE else "") + ("s" if rx.flags & re.DOTALL else "")
    flags += "m" if rx.flags & re.MULTILINE else ""
    body = _open_bounds(strip_lookarounds(rx.pattern))
    out = f"(?{flags}:{body})" if flags else f"(?:{body})"
    return out if compiles(out) else ANY_TEXT


@lru_cache(maxsize=1024)
def compiles(pattern: str) -> bool:
    """Whether RE2 (through ``pyarrow.compute``) takes ``pattern``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def union(patterns: Iterable[re.Pattern[str]]) -> str:
    return "|".join(to_re2(p) for p in patterns)


@lru_cache(maxsize=1)
def injection_pattern() -> str:
    """Signatures (``text.SIGNATURES``) and the prompt-leak probes (``leak.PROBE``)."""
    from mlhunt.llmhunt.detectors.leak import PROBE
    from mlhunt.llmhunt.detectors.text import SIGNATURES

    return union([*SIGNATURES.values(), PROBE])


@lru_cache(maxsize=1)
def obfuscation_pattern() -> str:
    """What makes :func:`~.text.score_turn` look at a de-obfuscated view besides leetspeak."""
    from mlhunt.llmhunt.detectors.text import BASE64_RUN

    return f"{UNUSUAL}|{to_re2(BASE64_RUN)}"


@lru_cache(maxsize=1)
def sensitive_pattern() -> str:
    """Every pattern of ``sensitive.findings_in``: its own and detect-secrets' plugins'."""
    from mlhunt.llmhunt.detectors.sensitive import PATTERNS, secret_patterns

    return f"{UNUSUAL}|{union([*PATTERNS, *secret_patterns()])}"


def leak_words(
    systems: Iterable[str],
    n: int,
    share: float,
    sample: Sequence[str] = (),
    limit: int = 256,
) -> list[str] | None:
    """Words such that a completion sharing ``share`` of a system prompt's ``n``-word shingles
    must contain one of them: the words cover more than ``1 - share`` of each prompt's
    shingles, picked greedily by shingles covered over how many ``sample`` completions hold
    the word (rare words mark few answers). None when there are more than ``limit`` prompts."""
    from mlhunt.llmhunt.detectors.leak import shingles

    distinct = list(dict.fromkeys(systems))
    if len(distinct) > limit:
        return None
    lowered = [t.lower() for t in sample]
    df: dict[str, int] = {}

    def rarity(w: str) -> float:
        if w not in df:
            df[w] = sum(w in t for t in lowered)
        return 1.0 / (1 + df[w])

    out: set[str] = set()
    for system in distinct:
        left = shingles(system, n)
        if len(left) < 3:  # the detector skips such prompts
            continue
        need = share * len(left)  # uncovered shingles must stay below this
        left = {s for s in left if not out.intersection(s)}
        while len(left) >= need:
            count: dict[str, int] = {}
            for s in left:
                for w in set(s):
                    count[w] = count.get(w, 0) + 1
            best = max(count, key=lambda w: (count[w] * rarity(w), w))
            out.add(best)
            left = {s for s in left if best not in s}
    return sorted(out)


def literal_pattern(words: Sequence[str]) -> str | None:
    """Case-insensitive alternation of literal words (None for none)."""
    return "(?i:" + "|".join(re.escape(w) for w in words) + ")" if words else None


def marks(column: Any, pattern: str | None) -> Any:
    """Boolean numpy array: which strings of an Arrow string column match (nulls: False)."""
    import numpy as np
    import pyarrow.compute as pc

    if pattern is None or len(column) == 0:
        return np.zeros(len(column), bool)
    got = pc.match_substring_regex(column, pattern)
    return got.fill_null(False).to_numpy(zero_copy_only=False)


def leet(column: Any) -> Any:
    """The column through the leetspeak table of :mod:`.text`: one ``replace_substring`` per
    character, the same as ``str.translate`` (each maps a non-letter to a letter, so no
    replacement feeds another)."""
    import pyarrow.compute as pc

    from mlhunt.llmhunt.detectors.text import LEET

    for a, b in zip(*LEET, strict=True):
        column = pc.replace_substring(column, a, b)
    return column


def injection_marks(column: Any) -> Any:
    """Texts that may score as an injection or a probe (as sent, as leetspeak, or needing
    another de-obfuscation)."""
    pat = injection_pattern()
    return marks(column, pat) | marks(column, obfuscation_pattern()) | marks(leet(column), pat)
