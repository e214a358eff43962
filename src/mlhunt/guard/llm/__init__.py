"""``mlhunt guard --llm``: the guard in front of an OpenAI-compatible LLM API (docs/guard.md,
"LLM mode"): the llmhunt detectors online, per-answer redaction, per-client alert, throttle
and block by policy; and a stand-in LLM API for tests and benchmarks."""

from __future__ import annotations

from mlhunt.guard.llm.app import LlmGuard, build_llm_guard, create_llm_guard_app
from mlhunt.guard.llm.policy import LlmPolicy, default_llm_policy_path, load_llm_policy
from mlhunt.guard.llm.redact import StreamRedactor, redact, spans_in
from mlhunt.guard.llm.standin import StandinOptions, create_standin_app, running

__all__ = [
    "LlmGuard",
    "LlmPolicy",
    "StandinOptions",
    "StreamRedactor",
    "build_llm_guard",
    "create_llm_guard_app",
    "create_standin_app",
    "default_llm_policy_path",
    "load_llm_policy",
    "redact",
    "running",
    "spans_in",
]
