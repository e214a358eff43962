"""Campaigns across clients: near-duplicate adversarial prompts from several API keys.

Turns carrying an injection signature are MinHashed over character n-grams (datasketch) and
grouped with locality-sensitive hashing; groups are joined transitively (a template filled in
per key drifts a little each time). A group sent by ``severity``'s floor of distinct clients
is one alert whose target is the campaign and whose evidence lists its members. The per-client
contract does not fit (the finding is one for many clients), so this detector overrides
:meth:`~mlhunt.llmhunt.detectors.base.LlmDetector.find`; it has no online score (the guard
skips it) and scores nobody alone.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from mlhunt.llmhunt.detectors.base import Alert, ClientScore, Context, LlmDetector, has_texts
from mlhunt.llmhunt.detectors.text import score_turn
from mlhunt.llmhunt.records import Call

SPACES = re.compile(r"\s+")
MAX_TURNS = 200_000  # adversarial turns hashed per hunt (bounded memory)


@dataclass(frozen=True, slots=True)
class Turn:
    client: str
    call: Call
    text: str
    signatures: tuple[str, ...]


def normalise(text: str, limit: int) -> str:
    return SPACES.sub(" ", unicodedata.normalize("NFKC", text[: limit * 2]).lower()).strip()[:limit]


@lru_cache(maxsize=16)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """The bands and rows datasketch chooses for ``threshold`` (it integrates to choose them:
    done once, not per hunt)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


class Campaigns(LlmDetector):
    yaml_name = "campaign.yaml"
    online = False  # a finding about many clients: hunt only

    def score(
        self, by_client: Mapping[str, Sequence[Call]], ctx: Context
    ) -> dict[str, ClientScore]:
        return {}

    def turns(self, by_client: Mapping[str, Sequence[Call]]) -> list[Turn]:
        """Each client's distinct adversarial user turns (a conversation resends its turns)."""
        floor = float(self.param("min_turn_score"))
        out: list[Turn] = []
        for client, calls in by_client.items():
            if not has_texts(calls):
                continue
            seen: set[str] = set()
            for c in calls:
                text = c.last_user if c.kind == "chat" else ""
                if not text or text in seen:
                    continue
                seen.add(text)
                turn = score_turn(text)
                if turn.score >= floor and len(out) < MAX_TURNS:
                    out.append(Turn(client, c, text, turn.signatures))
        return out

    def find(self, by_client: Mapping[str, Sequence[Call]], ctx: Context) -> list[Alert]:
        from datasketch import MinHash, MinHashLSH

        turns = self.turns(by_client)
        if not turns:
            return []
        perms, n = int(self.param("num_perm")), int(self.param("shingle_chars"))
        limit = int(self.param("max_chars"))
        jaccard = float(self.param("jaccard"))
        lsh = MinHashLSH(threshold=jaccard, num_perm=perms, params=lsh_params(jaccard, perms))
        base = MinHash(num_perm=perms, seed=1)
        perm, scheme = base.permutations, base.scheme  # drawn once, shared by every hash
        hashes = []
        for i, t in enumerate(turns):
            text = normalise(t.text, limit)
            grams = {text[j : j + n] for j in range(max(1, len(text) - n + 1))}
            m = MinHash(num_perm=perms, seed=1, permutations=perm, scheme=scheme)
            m.update_batch([g.encode("utf-8") for g in grams])
            lsh.insert(i, m)
            hashes.append(m)
        parent = list(range(len(turns)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, m in enumerate(hashes):
            for j in lsh.query(m):
                a, b = root(i), root(int(j))
                if a != b:
                    parent[max(a, b)] = min(a, b)
        groups: dict[int, list[Turn]] = {}
        for i, t in enumerate(turns):
            groups.setdefault(root(i), []).append(t)
        return [a for g in groups.values() if (a := self.alert(g)) is not None]

    def alert(self, group: list[Turn]) -> Alert | None:
        floor = self.spec.alert_at
        clients = {t.client for t in group}
        if len(clients) < floor:
            return None
        group.sort(key=lambda t: (t.call.ts, t.client))
        seen: set[str] = set()
        at = 0
        for i, t in enumerate(group):
            seen.add(t.client)
            if len(seen) >= floor:
                at = i
                break
        size = float(len(clients))
        first = group[0]
        digest = hashlib.sha256(normalise(first.text, 2000).encode()).hexdigest()[:10]
        members = sorted(clients)
        signatures = sorted({s for t in group for s in t.signatures})
        return Alert(
            detector=self.spec.id,
            target=f"campaign-{digest}",
            score=size,
            severity=self.spec.severity_for(size) or "info",
            detected_at_event=at + 1,
            events=len(group),
            first_event_ts=first.call.ts,
            detected_ts=group[at].call.ts,
            evidence={
                "members": members[:200],
                "clients": len(members),
                "prompts": len(group),
                "signatures": signatures,
                "samples": [
                    {"where": t.call.where, "client": t.client, "text": t.text[:200]}
                    for t in group[:5]
                ],
            },
        )
