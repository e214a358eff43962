"""System-prompt and context extraction: completions that reproduce the system prompt or a
canary planted in it, and the probing turns that lead there."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

from mlhunt.llmhunt.detectors.base import ClientScore, Context, LlmDetector, has_texts
from mlhunt.llmhunt.records import Call

WORD = re.compile(r"\w+")
PROBE = re.compile(
    r"\b(repeat|print|show|reveal|output|display|tell me|what (is|are|were)|copy|echo|"
    r"summari[sz]e|translate|write (out|down)|give me|share|list)\b.{0,40}\b(system prompt|your "
    r"(instructions|rules|prompt|guidelines|configuration)|initial (prompt|instructions)|(the )?"
    r"(text|words|everything|instructions) (above|before)|hidden (prompt|instructions)|"
    r"(instructions|rules|prompt|reference|configuration) you (were|have been) given)\b|"
    r"\bverbatim\b|\bstarting with ['\"]you are\b",
    re.IGNORECASE | re.DOTALL,
)


def shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower()[:65_536])
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


MEMO_CHARS = 4096  # texts this short have their shared share remembered (the guard rescores
# a client's window at each pass: the same answers again and again)


def shared(system: set[tuple[str, ...]], system_text: str, completion: str, n: int) -> float:
    """The share of the system prompt's shingles (``system``, of ``system_text``) found in
    ``completion``."""
    if len(system_text) <= MEMO_CHARS and len(completion) <= MEMO_CHARS:
        return _shared_short(system_text, completion, n)
    return len(system & shingles(completion, n)) / len(system)


def probes(user: str) -> bool:
    """The user turn asks for the system prompt or the instructions (remembered when short)."""
    return _probes_short(user) if len(user) <= MEMO_CHARS else bool(PROBE.search(user[:65_536]))


@lru_cache(maxsize=4096)
def _probes_short(user: str) -> bool:
    return bool(PROBE.search(user))


@lru_cache(maxsize=4096)
def _shared_short(system_text: str, completion: str, n: int) -> float:
    sh = shingles(system_text, n)
    return len(sh & shingles(completion, n)) / len(sh)


class PromptLeak(LlmDetector):
    yaml_name = "prompt_leak.yaml"

    def score(
        self, by_client: Mapping[str, Sequence[Call]], ctx: Context
    ) -> dict[str, ClientScore]:
        n = int(self.param("shingle_words"))
        share = float(self.param("min_share"))
        canaries = [c.lower() for c in ctx.canaries if c]
        cache: dict[str, set[tuple[str, ...]]] = {}  # system prompt -> its shingles
        out: dict[str, ClientScore] = {}
        for client, calls in by_client.items():
            if not has_texts(calls):
                continue
            total, online = 0.0, []
            ev: dict[str, list] = {"canary_leaks": [], "prompt_leaks": [], "probes": []}
            for c in calls:
                low = c.completion.lower()
                hit = next((k for k in canaries if k in low), None)
                if hit is not None:
                    total += float(self.param("canary_weight"))
                    ev["canary_leaks"].append(c.where)
                elif c.completion:
                    for system in c.turns("system"):
                        sh = cache.get(system)
                        if sh is None:  # (setdefault would shingle it again at every call)
                            sh = cache[system] = shingles(system, n)
                        if len(sh) >= 3:
                            common = shared(sh, system, c.completion, n)
                            if common >= share:
                                total += float(self.param("leak_weight"))
                                ev["prompt_leaks"].append({"where": c.where, "share": common})
                                break
                user = c.last_user
                if user and probes(user):
                    total += float(self.param("probe_weight"))
                    if len(ev["probes"]) < 5:
                        ev["probes"].append({"where": c.where, "text": user[:200]})
                online.append(total)
            if total > 0:
                ev["canary_leaks"] = ev["canary_leaks"][:5]
                ev["prompt_leaks"] = ev["prompt_leaks"][:5]
                out[client] = ClientScore(online, ev)
        return out
