"""Sensitive data in completions and in tool arguments sent out: secrets (detect-secrets),
card numbers (Luhn-checked), IBANs (ISO 13616 mod-97 checked), e-mail addresses, phone numbers
and US social security numbers. A value the caller sent itself, or that the system prompt
holds (a help desk's public address), is not a leak; each value counts once per client.

A pattern :func:`findings_in` matches with belongs in :data:`PATTERNS`: the hunt's RE2
prefilter (:mod:`mlhunt.llmhunt.prefilter`) is derived from it."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache

from mlhunt.llmhunt.detectors.base import ClientScore, Context, LlmDetector, has_texts
from mlhunt.llmhunt.records import Call

CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
EMAIL = re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+\b")
# A phone number stands alone: no digit group right before or after it (card numbers, ids).
PHONE = re.compile(
    r"(?<![\w.-])(?<!\d[ .-])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]\d{3,4}[ .-]\d{3,4}"
    r"(?![ .-]?\d)(?!\w)"
)
SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
#: every pattern :func:`findings_in` matches with (the prefilter derives its RE2 from these)
PATTERNS = (CARD, IBAN, EMAIL, PHONE, SSN)
NON_DIGIT = re.compile(r"\D")
SPACE = re.compile(r"\s")
SEPARATORS = re.compile(r"[\s().+-]")
MAX_CACHE = 20_000
# detect-secrets plugins that look for a known credential shape; the entropy plugins and the
# public-IP one fire on ordinary prose and are left out.
SECRET_PLUGINS = (
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "KeywordDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    v = SPACE.sub("", value)
    if not 15 <= len(v) <= 34:
        return False
    moved = v[4:] + v[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def secrets_in(text: str) -> list[tuple[str, str]]:
    """detect-secrets findings (call inside :func:`secret_settings`)."""
    from detect_secrets.core.scan import scan_line

    out = []
    for line in text[:65_536].splitlines()[:500]:
        out += [(s.type, str(s.secret_value)) for s in scan_line(line)]
    return out


def secret_patterns() -> list[re.Pattern[str]]:
    """Patterns one of which each :data:`SECRET_PLUGINS` plugin needs to match before it
    reports: its own ``denylist``, or for the keyword plugin its keywords."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.keyword import DENYLIST

    by_name = {c.__name__: c for c in get_mapping_from_secret_type_to_class().values()}
    out: list[re.Pattern[str]] = []
    for name in SECRET_PLUGINS:
        plugin = by_name[name]
        if name == "KeywordDetector":
            out.append(re.compile("|".join(DENYLIST), re.IGNORECASE))
        else:
            out += list(plugin.denylist)  # a plugin without one fails here, loudly
    return out


def secret_settings() -> AbstractContextManager[object]:
    """detect-secrets' settings for :data:`SECRET_PLUGINS` (restored on exit)."""
    from detect_secrets.settings import transient_settings

    return transient_settings({"plugins_used": [{"name": n} for n in SECRET_PLUGINS]})


MEMO_CHARS = 8192


def findings_of(text: str) -> list[tuple[str, str]]:
    """:func:`findings_in` as a list, remembered for short texts (answers repeat, and the online
    guard rescores a client's recent calls); call inside :func:`secret_settings`."""
    return _findings_short(text) if len(text) <= MEMO_CHARS else list(findings_in(text))


@lru_cache(maxsize=8192)
def _findings_short(text: str) -> list[tuple[str, str]]:
    return list(findings_in(text))


def forget_findings() -> None:
    """Empty the remembered findings (benchmarks measure a cold hunt)."""
    _findings_short.cache_clear()


def findings_in(text: str) -> Iterator[tuple[str, str]]:
    """(kind, value) for each piece of sensitive data in ``text``."""
    taken: list[tuple[int, int]] = []  # spans of IBANs and cards: not cards or phones as well
    for m in IBAN.finditer(text):
        if iban_ok(m.group(0)):
            taken.append(m.span())
            yield "iban", SPACE.sub("", m.group(0))
    for m in CARD.finditer(text):  # an IBAN's account digits can pass Luhn by chance
        digits = NON_DIGIT.sub("", m.group(0))
        if (
            13 <= len(digits) <= 19
            and luhn_ok(digits)
            and not any(a < m.end() and m.start() < b for a, b in taken)
        ):
            taken.append(m.span())
            yield "card_number", digits
    for m in SSN.finditer(text):
        yield "national_id", m.group(0)
    for m in EMAIL.finditer(text):
        yield "email", m.group(0).lower()
    for m in PHONE.finditer(text):
        if not any(a < m.end() and m.start() < b for a, b in taken):
            yield "phone", NON_DIGIT.sub("", m.group(0))
    for kind, value in secrets_in(text):
        yield f"secret:{kind}", value


def payload_of(arguments: str, destination: re.Pattern[str]) -> str:
    """A tool call's arguments without those naming where it goes (``to``, ``to_iban``,
    ``payee``...): a payment's or a message's recipient is its address, not data sent out."""
    try:
        args = json.loads(arguments)
    except (ValueError, RecursionError):
        return arguments
    if not isinstance(args, dict) or not any(destination.fullmatch(str(k)) for k in args):
        return arguments
    return json.dumps({k: v for k, v in args.items() if not destination.fullmatch(str(k))})


class SensitiveOutput(LlmDetector):
    yaml_name = "sensitive_output.yaml"

    def score(
        self, by_client: Mapping[str, Sequence[Call]], ctx: Context
    ) -> dict[str, ClientScore]:
        weights = {
            k.removeprefix("w_"): float(v) for k, v in self.spec.params.items() if k[:2] == "w_"
        }
        destination = re.compile(str(self.param("destination_args")), re.IGNORECASE)
        with secret_settings():
            return self._score(by_client, weights, destination)

    def _score(
        self,
        by_client: Mapping[str, Sequence[Call]],
        weights: Mapping[str, float],
        destination: re.Pattern[str],
    ) -> dict[str, ClientScore]:
        out: dict[str, ClientScore] = {}
        cache: dict[str, list[tuple[str, str]]] = {}  # text -> findings (answers repeat a lot)
        for client, calls in by_client.items():
            if not has_texts(calls):
                continue
            total, online, seen = 0.0, [], set()
            kinds: Counter[str] = Counter()
            where: list[dict[str, str]] = []
            for c in calls:
                if c.prefiltered:  # no text of it can hold a value (the reader's prefilter)
                    online.append(total)
                    continue
                texts = [("completion", c.completion)] + [
                    (f"tool:{tc.name}", payload_of(tc.arguments, destination))
                    for tc in c.tool_calls
                ]
                sent: str | None = None  # what the caller sent: read only when needed
                for place, text in texts:
                    if not text:
                        continue
                    found = cache.get(text)
                    if found is None:
                        found = findings_of(text)
                        if len(cache) < MAX_CACHE:
                            cache[text] = found
                    if found and sent is None:
                        sent = "\n".join(
                            m.content for m in c.messages if m.role in ("user", "system")
                        )
                        sent = SEPARATORS.sub("", sent.lower())  # compared without separators
                    for kind, value in found:
                        if (kind, value) in seen or SEPARATORS.sub("", value.lower()) in sent:
                            continue
                        seen.add((kind, value))
                        base = kind.split(":", 1)[0]
                        total += weights[base]
                        kinds[kind] += 1
                        if len(where) < 8:
                            where.append({"where": c.where, "in": place, "kind": kind})
                online.append(total)
            if total > 0:
                out[client] = ClientScore(
                    online,
                    {
                        "kinds": dict(kinds),
                        "sessions": len({c.session for c in calls}),
                        "samples": where,
                    },
                )
        return out
