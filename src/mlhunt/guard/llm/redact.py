"""Redaction of completions: secrets, card numbers, IBANs, national ids, e-mails, phones and
canaries replaced by ``[REDACTED:kind]``, in whole answers and across streamed chunks.

The patterns and checks are the sensitive-output detector's (Luhn, mod-97), secrets come from
detect-secrets' credential-shape plugins called directly (``analyze_string``: no global
settings, so the request path and the scoring thread never share detect-secrets' state, and
no plugin ever verifies a secret over the network). Values the caller sent itself are kept.

:class:`StreamRedactor` holds back the trailing run of characters that could still be the
start of a value (``4111 1111`` before the rest of a card number, ``jane.doe@`` before the
domain, a canary's prefix) and releases everything before it, redacted: a value split over
chunks is redacted whole. Prose is released word by word (a word is held until the character
after it arrives), and at most ``MAX_HOLD`` characters are ever held.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from mlhunt.llmhunt.detectors.sensitive import (
    CARD,
    EMAIL,
    IBAN,
    NON_DIGIT,
    PHONE,
    SECRET_PLUGINS,
    SEPARATORS,
    SSN,
    iban_ok,
    luhn_ok,
)

MAX_HOLD = 256  # characters a stream may hold back; a longer run is released (redacted so far)
MAX_SCAN = 65_536  # characters of one answer scanned for secrets at once
# The run a value can still grow from: value characters, and single spaces between digits or
# capitals (cards, IBANs and phones are written in groups).
_TAIL = re.compile(r"(?:[\w@.+\-/=:()]|(?<=[\dA-Z)]) (?=[\dA-Z(+]|\Z))*\Z")
_TOKEN = re.compile(r"[\w\-+/=.:]+")
# Where a credential-shape plugin can match at all: a long run of token characters (keys,
# tokens, hashes: 12 or more), a PEM header, credentials in a URL, or an assignment keyword
# (detect-secrets' keyword plugin). Lines without any skip the 24 plugins (the common case).
_MAYBE_SECRET = re.compile(
    r"[A-Za-z0-9+/=_\-.]{12,}|-----BEGIN|://|pass|pwd|secret|token|key|auth|cred|contrase",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")

#: kind -> its single-value weight's name in the detectors' YAML (how severe one value is)
Decide = Callable[[str], bool]  # kind -> redact it?


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    kind: str  # card_number, iban, national_id, email, phone, secret, canary


@cache
def _plugins() -> tuple[Any, ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    classes = get_mapping_from_secret_type_to_class().values()
    return tuple(c() for c in classes if c.__name__ in SECRET_PLUGINS)


def _secret_values(text: str) -> list[str]:
    from detect_secrets.plugins.keyword import (
        QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        KeywordDetector,
    )

    out: list[str] = []
    for line in text[:MAX_SCAN].splitlines()[:500]:
        if not _MAYBE_SECRET.search(line):
            continue
        for p in _plugins():
            kw = (
                {"denylist_regex_to_group": QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP}
                if isinstance(p, KeywordDetector)
                else {}
            )
            out += [str(v) for v in p.analyze_string(line, **kw) if v and len(str(v)) >= 4]
    return out


def spans_in(text: str, canaries: Iterable[str] = (), sent: str = "") -> list[Span]:
    """Every sensitive value in ``text`` with its position; ``sent``: what the caller sent
    (lower case, separators removed; its values are not redacted)."""
    out: list[Span] = []

    def add(a: int, b: int, kind: str, value: str) -> None:
        if kind == "canary" or not sent or SEPARATORS.sub("", value.lower()) not in sent:
            out.append(Span(a, b, kind))

    low = text.lower()
    for c in canaries:
        k, i = c.lower(), 0
        while (i := low.find(k, i)) >= 0:
            add(i, i + len(k), "canary", c)
            i += len(k)
    if _DIGIT.search(text):
        for m in CARD.finditer(text):
            digits = NON_DIGIT.sub("", m.group(0))
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                add(*m.span(), "card_number", digits)
        for m in IBAN.finditer(text):
            if iban_ok(m.group(0)):
                add(*m.span(), "iban", m.group(0))
        for m in SSN.finditer(text):
            add(*m.span(), "national_id", m.group(0))
        taken = [(s.start, s.end) for s in out]
        for m in PHONE.finditer(text):
            if not any(a < m.end() and m.start() < b for a, b in taken):
                add(*m.span(), "phone", m.group(0))
    if "@" in text:
        for m in EMAIL.finditer(text):
            add(*m.span(), "email", m.group(0))
    for value in _secret_values(text):
        i = 0
        while (i := text.find(value, i)) >= 0:
            # a plugin may yield part of the secret (a prefix group): redact the whole token
            a, b = i, i + len(value)
            for m in _TOKEN.finditer(text, max(0, a - 128), min(len(text), b + 256)):
                if m.start() <= a and m.end() >= b:
                    a, b = m.span()
                    break
            add(a, b, "secret", text[a:b])
            i = b
    return out


def apply(text: str, spans: Iterable[Span], decide: Decide) -> tuple[str, list[str]]:
    """``text`` with the spans ``decide`` keeps redacted (overlaps merged); the kinds redacted."""
    chosen = sorted((s for s in spans if decide(s.kind)), key=lambda s: (s.start, -s.end))
    parts: list[str] = []
    kinds: list[str] = []
    at = 0
    for s in chosen:
        if s.end <= at:
            continue
        start = max(s.start, at)
        parts += [text[at:start], f"[REDACTED:{s.kind}]"]
        kinds.append(s.kind)
        at = s.end
    parts.append(text[at:])
    return "".join(parts), kinds


def redact(
    text: str, decide: Decide, canaries: Iterable[str] = (), sent: str = ""
) -> tuple[str, list[str]]:
    """A whole completion, redacted; the kinds redacted (empty: unchanged)."""
    return apply(text, spans_in(text, canaries, sent), decide)


def sent_text(messages: Iterable[Any]) -> str:
    """What the caller sent (user and system turns), lower case without separators."""
    return SEPARATORS.sub(
        "", "\n".join(m.content for m in messages if m.role in ("user", "system")).lower()
    )


@dataclass
class StreamRedactor:
    """Redacts one streamed completion: :meth:`feed` each delta, then :meth:`finish`."""

    decide: Decide
    canaries: tuple[str, ...] = ()
    sent: str = ""
    held: str = ""
    kinds: list[str] = field(default_factory=list)

    def _hold_from(self, buf: str) -> int:
        """Where the part of ``buf`` that could still grow into a value starts."""
        floor = max(0, len(buf) - MAX_HOLD)
        m = _TAIL.search(buf, floor)
        at = m.start() if m else len(buf)
        low = buf.lower()
        for c in self.canaries:  # a canary's prefix at the end (canaries may hold spaces)
            k = c.lower()
            for n in range(min(len(k) - 1, len(buf)), 0, -1):
                if low.endswith(k[:n]):
                    at = min(at, len(buf) - n)
                    break
        return max(at, floor)

    def feed(self, text: str) -> str:
        """The part of the stream so far that can be released, redacted."""
        buf = self.held + text
        cut = self._hold_from(buf)
        if cut == 0:
            self.held = buf
            return ""
        spans = spans_in(buf, self.canaries, self.sent)
        for s in spans:  # a value across the cut is held whole (it may still grow)
            if s.start < cut < s.end and self.decide(s.kind):
                cut = s.start
        done = [s for s in spans if s.end <= cut]
        out, kinds = apply(buf[:cut], done, self.decide)
        self.kinds += kinds
        self.held = buf[cut:]
        return out

    def finish(self) -> str:
        """What is still held, redacted (the stream ended)."""
        out, kinds = redact(self.held, self.decide, self.canaries, self.sent)
        self.kinds += kinds
        self.held = ""
        return out
