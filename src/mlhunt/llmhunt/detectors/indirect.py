"""Indirect prompt injection: instructions inside content the model reads (tool results,
retrieved documents) rather than typed by the user, and the model acting right after them.

Only content that entered the conversation since the last user turn is scored (the agent's
current step), each text once per session. Instructions seen score low; a tool call in the
very answer that read them (an action the user did not type) scores medium.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlhunt.llmhunt.detectors.base import ClientScore, Context, LlmDetector, has_texts
from mlhunt.llmhunt.detectors.text import score_turn
from mlhunt.llmhunt.records import Call


def fresh_content(call: Call) -> list[str]:
    """Tool results that arrived after the newest user turn."""
    out: list[str] = []
    for m in reversed(call.messages):
        if m.role == "user":
            break
        if m.role == "tool" and m.content:
            out.append(m.content)
    return out


class IndirectInjection(LlmDetector):
    yaml_name = "indirect_injection.yaml"

    def score(
        self, by_client: Mapping[str, Sequence[Call]], ctx: Context
    ) -> dict[str, ClientScore]:
        seen_w = float(self.param("seen_weight"))
        acted_w = float(self.param("acted_weight"))
        out: dict[str, ClientScore] = {}
        for client, calls in by_client.items():
            if not has_texts(calls):
                continue
            total, online, samples = 0.0, [], []
            seen: set[tuple[str, str]] = set()
            for c in calls:
                for text in fresh_content(c) if c.kind == "chat" else ():
                    if (c.session, text) in seen:
                        continue
                    seen.add((c.session, text))
                    turn = score_turn(text)
                    if turn.score < 1.0:
                        continue
                    acted = bool(c.tool_calls)
                    total += acted_w if acted else seen_w
                    if len(samples) < 5:
                        samples.append(
                            {
                                "where": c.where,
                                "content": text[:200],
                                "signatures": list(turn.signatures),
                                "then_called": [tc.name for tc in c.tool_calls],
                            }
                        )
                online.append(total)
            if total > 0:
                out[client] = ClientScore(online, {"samples": samples})
        return out
