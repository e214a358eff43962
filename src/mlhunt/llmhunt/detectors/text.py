"""Prompt-injection signatures and the de-obfuscations they are matched through.

Every pattern is a :mod:`re` pattern compiled once at import. A user turn is matched as sent,
then after each de-obfuscation (invisible characters removed, Unicode tag characters decoded,
homoglyphs folded to Latin, leetspeak folded, base64 runs decoded); a signature that only
matches after one of them also counts as evasion.

The hunt's RE2 prefilter (:mod:`mlhunt.llmhunt.prefilter`) derives its patterns from
:data:`SIGNATURES` (add a signature there and it follows); a new de-obfuscation of ASCII text
(a view besides leetspeak and base64) must be mirrored in ``prefilter.injection_marks``.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_I = re.IGNORECASE | re.DOTALL

SIGNATURES: dict[str, re.Pattern[str]] = {
    "instruction_override": re.compile(
        r"\b(ignor(e|es|ed|ing)|disregard(s|ed|ing)?|forget|override|bypass|skip)\b.{0,40}?\b("
        r"previous|prior|above|earlier|preceding|initial|original|system|all)\b.{0,25}?\b("
        r"instructions?|prompts?|rules|directions|guidelines|constraints|programming)\b|\b(ignor"
        r"(e|es|ed|ing)|disregard(s|ed|ing)?|forget)\s+(all\s+)?(of\s+)?your\s+(\w+\s+){0,2}("
        r"instructions|rules|guidelines|programming|prompt)\b",
        _I,
    ),
    # "forget everything you were told"
    "forget_everything": re.compile(
        r"\b(forget|disregard|ignore)\s+(everything|all|anything)\b.{0,40}?\b(you (were|have "
        r"been|'ve been) (told|given|taught)|(your|the) (instructions|prompt|rules|training))\b",
        _I,
    ),
    # "previous instructions are obsolete" (weak alone: banks have payment instructions too)
    "instructions_revoked": re.compile(
        r"\b(previous|prior|earlier|old|original)\s+(instructions|rules|prompts?|directives)\s+("
        r"are|is|were|have been)\s+(now\s+)?(obsolete|void|cancell?ed|revoked|outdated|invalid|"
        r"no longer (valid|in effect|apply))\b",
        _I,
    ),
    # the same override in the languages attackers switch to (de, fr, es, it, pt, nl); not
    # after an apostrophe ("j'ignore" is French for "I don't know")
    "instruction_override_i18n": re.compile(
        r"(?<!['\u2019])\b(ignorier\w*|vergiss|missachte\w*|ignore[sz]?|oublie[sz]?|ignora|"
        r"olvida|dimentica|esque[cç]a|negeer|vergeet)\b.{0,40}?\b(alle[sn]?|vorherigen|"
        r"bisherigen|obigen|deine|ihre|toutes|tes|vos|pr[ée]c[ée]dentes|todas|tus|anteriores|"
        r"tutte|precedenti|tue|suas|vorige|eerdere|je)\b.{0,25}?\b(anweisungen|regeln|"
        r"instruktionen|vorgaben|instructions|r[èe]gles|consignes|instrucciones|reglas|"
        r"istruzioni|regole|instru[çc][õo]es|regras|instructies|regels)\b",
        _I,
    ),
    "new_instructions": re.compile(
        r"\b(new|updated|real) (instructions|rules|directives)\s*[:-]|"
        r"\bfrom now on,? you (will|are|must|shall)\b",
        _I,
    ),
    "roleplay_frame": re.compile(
        r"\b(you are now|act as|pretend (to be|you are|that you are)|role-?play as|imagine "
        r"you are|simulate)\b.{0,80}?\b(unfiltered|uncensored|unrestricted|without (any )?"
        r"(restrictions|limits|filters|rules|guidelines)|no (restrictions|limits|rules|filters)"
        r"|evil|jailbroken|developer mode|god ?mode)\b",
        _I,
    ),
    # "You are FreeBank, an AI with no rules"; the "late grandmother" jailbreak
    "unrestricted_persona": re.compile(
        r"\byou are (now )?[\w-]{1,30},? an? (ai|assistant|chatbot|model|bot)\b.{0,40}?\b(no|"
        r"without|free (of|from))\s+(any\s+)?(rules|limits|restrictions|filters|guidelines|"
        r"censorship)\b|\bpretend (to be|you are) my (late |dead |deceased )?(grand(ma|mother|"
        r"pa|father)|mother|father)\b",
        _I,
    ),
    "dan_persona": re.compile(
        r"\b(you are|you're|act as|become|pretend to be|as)( now)? DAN\b|\bDAN\b.{0,80}\b(mode|"
        r"persona|jailbreak|anything|restrictions|filters)\b|(?i:\bdo anything now\b|\b"
        r"developer mode (enabled|on)\b)",
        re.DOTALL,
    ),
    # "Enable developer mode." (weak alone: apps have developer settings)
    "mode_switch": re.compile(
        r"\b(enable|activate|enter|switch (on|to)|turn on)\s+(the\s+)?(developer|dev|god|"
        r"jailbreak|unrestricted) mode\b",
        _I,
    ),
    "fake_role_marker": re.compile(
        r"(^|\n)\s*(\[|<\|?|#{2,}\s*)(system|im_start|/?inst|admin|developer)\b", re.IGNORECASE
    ),
    "safety_off": re.compile(
        r"\b(disable|turn off|remove|without|ignor(e|ing)|bypass|override)\b.{0,20}\b(safety|"
        r"content|ethical|security)\b.{0,10}\b(filters?|guidelines|restrictions|polic(y|ies)|"
        r"guardrails|checks)\b",
        _I,
    ),
    "payload_split": re.compile(
        r"\b[a-z]\w{0,8}\s*=\s*['\"][^'\"\n]{1,120}['\"][\s;,.]*((and|then|let)\s+)?\w{1,9}\s*="
        r"\s*['\"][^'\"\n]{1,120}['\"].{0,200}?\b(concatenate|combine|join|append|\w\s*\+\s*\w)\b",
        _I,
    ),
    # the last step of a payload split over several turns: "concatenate a + b and follow it"
    "split_execute": re.compile(
        r"\b(concatenate|combine|join|put together)\b.{0,40}?\b(and|then)\s+(follow|execute|obey|"
        r"do what|act on)\b.{0,30}?\b(it|them|result|says|instructions?)\b|\b(execute|follow|obey)"
        r"\s+\w{1,9}\s*\+\s*\w{1,9}\b",
        _I,
    ),
    # text that addresses the model from inside a document: "Note to the AI assistant: ..."
    "ai_addressed": re.compile(
        r"\b(note|message|instructions?|attention|reminder) (to|for) (the )?(ai|assistant|llm|"
        r"language model|chatbot|bot|agent)\b|\b(ai|assistant|agent)\s*:\s*(new|updated|"
        r"important|ignore|disregard|you must)\b",
        _I,
    ),
}
WEIGHTS = {
    "instruction_override": 1.0,
    "new_instructions": 0.6,
    "roleplay_frame": 1.0,
    "dan_persona": 1.0,
    "fake_role_marker": 0.6,
    "safety_off": 0.8,
    "payload_split": 1.0,
    "forget_everything": 1.0,
    "instructions_revoked": 0.6,
    "mode_switch": 0.6,
    "instruction_override_i18n": 1.0,
    "unrestricted_persona": 1.0,
    "split_execute": 1.0,
    "ai_addressed": 0.6,
}
# Asking about an attack (a security-minded user) is not making one: halve the score.
DISCUSSION = re.compile(
    r"\b(what is|what's|what are|explain|how (do|can|should) (i|we) (prevent|detect|defend|"
    r"protect|mitigate|stop)|is it (safe|possible)|example of|training|awareness|does (that|this|"
    r"it) (really )?work|should i (be )?(worried|concerned)|just curious|(someone|somebody|a "
    r"friend|people) \w{0,12} ?(says|said|told me|posted|claims?)|my \w+ (says|said|told me)|is "
    r"(that|this) (real|legit|a scam|phishing))\b",
    re.IGNORECASE,
)
INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\U000e0000-\U000e007f]")
TAG_CHARS = re.compile("[\U000e0000-\U000e007f]")
MIXED_SCRIPT = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[\u0370-\u03ff\u0400-\u04ff])\w+\b")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")

_TAG_TO_ASCII = {0xE0000 + i: i for i in range(0x20, 0x7F)}
# Cyrillic and Greek letters that look like Latin ones (the usual homoglyph substitutions).
_HOMOGLYPHS = str.maketrans(
    "аеорсухіјѕԁԛԝһкмтвнАЕОРСУХІЈЅКМТВНαοερτυνικχΑΒΕΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdqwhkmtbhAEOPCYXIJSKMTBHaoeptuvikxABEHIKMNOPTYX",
)
#: leetspeak digits and signs -> the letters they stand for (also the prefilter's table)
LEET = ("0134578@$!|", "oieastbasil")
_LEET = str.maketrans(*LEET)


@dataclass(frozen=True)
class TurnScore:
    score: float
    signatures: tuple[str, ...]
    evasions: tuple[str, ...]


def _signatures(text: str) -> set[str]:
    return {name for name, rx in SIGNATURES.items() if rx.search(text)}


def _base64_texts(text: str) -> list[str]:
    out = []
    for m in BASE64_RUN.finditer(text[:65_536]):
        run = m.group(0)
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded.isprintable() or "\n" in decoded:
            out.append(decoded)
        if len(out) >= 8:
            break
    return out


def score_turn(text: str) -> TurnScore:
    """Score one user turn (remembered for short turns: conversations resend their turns and
    the online guard rescores a client's recent calls)."""
    return _score_short(text) if len(text) <= MEMO_CHARS else _score_turn(text)


MEMO_CHARS = 8192


@lru_cache(maxsize=8192)
def _score_short(text: str) -> TurnScore:
    return _score_turn(text)


def forget_scores() -> None:
    """Empty the remembered turn scores (benchmarks measure a cold hunt)."""
    _score_short.cache_clear()


def _score_turn(text: str) -> TurnScore:
    """Score one user turn: signatures found as sent and after de-obfuscation, evasions used."""
    text = unicodedata.normalize("NFKC", text[:65_536])
    found = _signatures(text)
    evasions: set[str] = set()
    views: dict[str, str] = {}
    if INVISIBLE.search(text):
        evasions.add("invisible_unicode")
        views["invisible_unicode"] = INVISIBLE.sub("", text)
        hidden = "".join(TAG_CHARS.findall(text))
        if hidden:
            views["unicode_tags"] = hidden.translate(_TAG_TO_ASCII)
    if MIXED_SCRIPT.search(text):
        views["homoglyphs"] = text.translate(_HOMOGLYPHS)
    views["leetspeak"] = text.translate(_LEET)
    for i, decoded in enumerate(_base64_texts(text)):
        views[f"base64#{i}"] = decoded
    for how, view in views.items():
        if view == text:  # nothing to undo (no leetspeak digit or sign): the same signatures
            continue
        extra = _signatures(view) - found
        if extra:
            found |= extra
            evasions.add(how.split("#")[0])
    score = min(2.0, sum(WEIGHTS[s] for s in found))
    if found and evasions:
        score += 0.5
    elif "invisible_unicode" in evasions and TAG_CHARS.search(text):
        score += 0.5  # hidden tag characters carry text no human sees
    if found and DISCUSSION.search(text) and not evasions:
        score *= 0.5
    return TurnScore(score, tuple(sorted(found)), tuple(sorted(evasions)))
