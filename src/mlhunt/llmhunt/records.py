"""The normalised LLM call: what the gateway log and the OpenTelemetry GenAI reader both yield.

One :class:`Call` per model call (a chat completion, or an agent's tool execution span), with
the conversation it was sent, the tools it was offered, the tool calls it asked for, its
completion and usage. Detectors read only these, never the raw log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of the conversation sent to the model (``role``: system/user/assistant/tool)."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asked to run; ``arguments`` is the raw JSON text of its arguments."""

    name: str
    arguments: str
    call_id: str = ""


@dataclass(slots=True)
class Call:
    """One LLM call, normalised. ``where`` is ``file:line`` of the record it came from."""

    ts: float
    client: str
    session: str
    model: str = ""
    messages: tuple[Message, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    completion: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    status: int | None = None
    latency_ms: float | None = None
    simulated: bool = False
    label: str | None = None
    where: str = ""
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    kind: str = "chat"  # "chat" (a model call) or "tool" (a tool execution span)
    #: read by the fast reader, whose prefilters marked none of its texts: messages and
    #: completion are left out, and no text of it (tool arguments included) holds what a
    #: detector looks for
    prefiltered: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def turns(self, role: str) -> list[str]:
        return [m.content for m in self.messages if m.role == role]

    @property
    def last_user(self) -> str:
        """The newest user turn: what this call added to the conversation."""
        for m in reversed(self.messages):
            if m.role == "user":
                return m.content
        return ""


@dataclass(frozen=True, slots=True)
class Malformed:
    """A record that could not be read: where, and why (one line)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(slots=True)
class SpanNode:
    """One span of an agent run, for the run's tree (LLM call -> tool call -> LLM call)."""

    span_id: str
    parent_span_id: str
    name: str
    operation: str
    start: float
    children: list[SpanNode] = field(default_factory=list)


@dataclass(slots=True)
class AgentRun:
    """The spans of one trace as a tree; ``roots`` are spans whose parent is not in the file."""

    trace_id: str
    roots: list[SpanNode] = field(default_factory=list)

    def walk(self) -> list[tuple[int, SpanNode]]:
        """Depth-first (depth, span), children in start order."""
        out: list[tuple[int, SpanNode]] = []
        seen: set[int] = set()  # a parent cycle in a hostile file must not loop forever
        stack = [(0, r) for r in sorted(self.roots, key=lambda s: s.start, reverse=True)]
        while stack:
            depth, node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            out.append((depth, node))
            kids = sorted(node.children, key=lambda s: s.start, reverse=True)
            stack.extend((depth + 1, k) for k in kids)
        return out


@dataclass(slots=True)
class ReadResult:
    """What the readers produced: calls in time order, malformed records, agent runs by trace."""

    calls: list[Call] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    malformed_total: int = 0
    records: int = 0
    runs: dict[str, AgentRun] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # file -> detected log kind
