"""Direct prompt injection and jailbreak attempts, scored per client over time.

Each user turn gets a score from :func:`~mlhunt.llmhunt.detectors.text.score_turn`; the
client's score is their exponentially decayed sum (``half_life_s``), so one odd message stays
low and a campaign of attempts climbs to high.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from mlhunt.llmhunt.detectors.base import ClientScore, Context, LlmDetector, has_texts
from mlhunt.llmhunt.detectors.text import score_turn
from mlhunt.llmhunt.records import Call


class PromptInjection(LlmDetector):
    yaml_name = "prompt_injection.yaml"

    def score(
        self, by_client: Mapping[str, Sequence[Call]], ctx: Context
    ) -> dict[str, ClientScore]:
        half_life = float(self.param("half_life_s"))
        out: dict[str, ClientScore] = {}
        for client, calls in by_client.items():
            if not has_texts(calls):
                continue
            total, last_ts, online, flagged = 0.0, None, [], 0
            sigs: Counter[str] = Counter()
            evasions: Counter[str] = Counter()
            samples: list[dict[str, str]] = []
            seen: set[str] = set()
            for c in calls:
                text = c.last_user if c.kind == "chat" else ""
                turn = score_turn(text) if text and text not in seen else None
                seen.add(text)  # a conversation resends its turns: score each once
                if last_ts is not None:
                    total *= 0.5 ** (max(0.0, c.ts - last_ts) / half_life)
                last_ts = c.ts
                if turn is not None and turn.score > 0:
                    total += turn.score
                    flagged += 1
                    sigs.update(turn.signatures)
                    evasions.update(turn.evasions)
                    if len(samples) < 5:
                        samples.append({"where": c.where, "text": text[:200]})
                online.append(total)
            if sigs or evasions:
                out[client] = ClientScore(
                    online,
                    {
                        "signatures": dict(sigs),
                        "evasions": dict(evasions),
                        "flagged_turns": flagged,
                        "samples": samples,
                    },
                )
        return out
