"""Signals that a piece of text speaks to the model rather than about the data: hidden
instructions (override, secrecy, exfiltration, tool-order hijack) and invisible Unicode.

Shared by the chat template and the MCP scanners. A *strong* signal is enough on its own; weak
ones (a URL, a word like "password") count only beside a request to put data into a call,
because ordinary tool descriptions mention API keys and web addresses.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Signal", "escape", "instruction_signals", "invisible_chars", "quote"]

_I = re.IGNORECASE | re.DOTALL
_STRONG: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "override",
        re.compile(
            r"\b(ignore|disregard|forget|override)\b.{0,40}?\b(previous|prior|above|earlier|"
            r"all|any|system|your|other)\b.{0,25}?\b(instructions?|prompts?|rules|guidelines|"
            r"directives)\b",
            _I,
        ),
    ),
    (
        "secrecy",
        re.compile(
            r"\b(do not|don't|never|without)\b.{0,30}?\b(tell|inform|mention|reveal|notify|"
            r"show|alert|disclose)\w*\b.{0,40}?\b(user|human|anyone|them)\b|\bsecretly\b|"
            r"\bcovertly\b|\bthe user (must|should|will) not (know|see|notice)",
            _I,
        ),
    ),
    (
        "sensitive-file",
        re.compile(
            r"~/\.ssh|\bid_rsa\b|\bid_ed25519\b|\.aws/credentials|/etc/(passwd|shadow)|"
            r"\.netrc\b|\.npmrc\b|\.pypirc\b|\.kube/config|\bmcp\.json\b|"
            r"claude_desktop_config|\.env\b(?!ironment)",
            _I,
        ),
    ),
    (
        "hidden-tag",
        re.compile(r"<\s*/?\s*(important|secret|hidden|instructions?|system_override)\s*>", _I),
    ),
    (
        "tool-hijack",
        re.compile(
            r"\bbefore (using|calling|you use|you call|invoking|running)\b.{0,40}?"
            r"\b(this|any|the|other)\b.{0,20}?\b(tool|function)s?\b|"
            r"\b(instead of|rather than)\b.{0,20}?\bthe\b.{0,30}?\btool\b",
            _I,
        ),
    ),
    (
        "persona",
        re.compile(
            r"\byou are now\b|\bfrom now on\b|\bnew (system )?instructions\b|"
            r"\bdeveloper mode\b|\bjailbr(ea|o)k",
            _I,
        ),
    ),
    (
        "exfiltration",
        re.compile(
            r"\b(send|forward|post|upload|transmit|exfiltrate|leak|copy|bcc)\b.{0,60}?"
            r"\b(to|at)\b.{0,12}?(https?://|[\w.+-]+@[\w-]+\.\w)|!\[[^\]]{0,80}\]\(https?://",
            _I,
        ),
    ),
    (
        "concealment",
        re.compile(
            r"\b(hide|conceal|mask)\b.{0,30}?\b(this|these|instructions?|from the user)\b", _I
        ),
    ),
)
_WEAK: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "credential-word",
        re.compile(
            r"\b(passwords?|private keys?|access tokens?|secret keys?|credentials|"
            r"session cookies?|api[_ -]?keys?)\b",
            _I,
        ),
    ),
    ("url", re.compile(r"https?://[^\s\"'<>)]+", _I)),
    (
        "smuggle",
        re.compile(
            r"\b(pass|include|put|add|append|embed)\b.{0,40}?\b(as|in|into)\b.{0,15}?"
            r"\b(the\s+)?(parameter|argument|field|sidenote|notes?|query)\b",
            _I,
        ),
    ),
)

#: Code points that render as nothing (or reorder text) in most viewers.
_INVISIBLE_RANGES = (
    (0x200B, 0x200F),  # zero-width space/joiners, LRM/RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x2069),  # bidi isolates
    (0x180E, 0x180E),  # Mongolian vowel separator
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul fillers
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),  # variation selectors
    (0xE0000, 0xE007F),  # tag characters (can spell ASCII text no one sees)
    (0xE0100, 0xE01EF),  # variation selectors supplement
)


@dataclass(frozen=True, slots=True)
class Signal:
    kind: str
    strong: bool
    quote: str  # the matching text with some context, invisible characters escaped


def escape(text: str) -> str:
    """Text with invisible and control characters shown as ``\\u200b`` / ``\\U000e0041``."""
    out = []
    for ch in text:
        cp = ord(ch)
        if _is_invisible(cp) or (unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t"):
            out.append(f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")
        else:
            out.append(ch)
    return "".join(out)


def quote(text: str, start: int, end: int, context: int = 60) -> str:
    """``text[start:end]`` with ``context`` characters either side, escaped and on one line."""
    a, b = max(0, start - context), min(len(text), end + context)
    snippet = ("…" if a else "") + text[a:b] + ("…" if b < len(text) else "")
    return escape(snippet).replace("\n", "\\n")[:400]


def _is_invisible(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _INVISIBLE_RANGES)


def invisible_chars(text: str) -> list[str]:
    """The distinct invisible code points in ``text`` (escaped, in order of appearance)."""
    seen: list[str] = []
    for ch in text:
        if _is_invisible(ord(ch)):
            esc = escape(ch)
            if esc not in seen:
                seen.append(esc)
    return seen


def decode_tags(text: str) -> str:
    """What Unicode tag characters spell (each maps to the ASCII character 0xE0000 below it)."""
    return "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0020 <= ord(c) <= 0xE007E)


def instruction_signals(text: str, *, max_chars: int = 200_000) -> list[Signal]:
    """Strong signals, or weak ones when at least two kinds meet; empty for ordinary text."""
    text = text[:max_chars]
    hidden = decode_tags(text)
    if hidden:  # text spelled in tag characters is read by the model: judge it as well
        text = text + "\n" + hidden
    found: list[Signal] = []
    for kind, pattern in _STRONG:
        m = pattern.search(text)
        if m:
            found.append(Signal(kind, True, quote(text, m.start(), m.end())))
    weak = []
    for kind, pattern in _WEAK:
        m = pattern.search(text)
        if m:
            weak.append(Signal(kind, False, quote(text, m.start(), m.end())))
    # Weak signals count only around a request to smuggle data into a call ("include the key
    # in the notes parameter"): a URL beside "API key" is an ordinary tool description.
    if found or (len(weak) >= 2 and any(s.kind == "smuggle" for s in weak)):
        found.extend(weak)
    return found
