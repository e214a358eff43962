"""Hunting LLM applications: gateway logs (chat-completions shape) and OpenTelemetry GenAI
traces, read into normalised calls and run through registered detectors (docs/llmhunt.md).

Public API::

    from mlhunt.llmhunt import hunt, detect_log_kind, simulate
    result = hunt(["gateway.jsonl"], canaries=["CANARY-7f3a"], tool_limits={...})
    result.findings            # list[mlhunt.findings.Finding], worst first
    result.read.malformed      # Malformed(file, line, reason), first 100; malformed_total
"""

from __future__ import annotations

from mlhunt.llmhunt.api import HuntResult, hunt, hunt_calls
from mlhunt.llmhunt.detectors import registry
from mlhunt.llmhunt.readers import LLM_KINDS, detect_log_kind, llm_kind, read
from mlhunt.llmhunt.records import AgentRun, Call, Malformed, Message, ReadResult, ToolCall
from mlhunt.llmhunt.simulate import SimulationResult, simulate

__all__ = [
    "LLM_KINDS",
    "AgentRun",
    "Call",
    "HuntResult",
    "Malformed",
    "Message",
    "ReadResult",
    "SimulationResult",
    "ToolCall",
    "detect_log_kind",
    "hunt",
    "hunt_calls",
    "llm_kind",
    "read",
    "registry",
    "simulate",
]
