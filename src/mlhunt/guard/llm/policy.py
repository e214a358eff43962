"""The policy of ``mlhunt guard --llm``: the classifier guard's policy file format, with the
LLM actions (``redact`` instead of ``degrade``) and the llmhunt detector ids.

Two things read it. Per *client*, a detector's online score gives a severity and the policy's
actions for it (``alert``, ``throttle``, ``block``) hold for the client's next requests. Per
*event*, one user turn's injection score, or one value in a completion (a card number, a
canary) scored alone with the detector's weights, gives a severity too: ``block`` refuses that
request before it reaches the model, ``redact`` replaces that value in the answer.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import ClassVar

from mlhunt.guard.config import Policy, load_policy

LLM_ACTIONS: tuple[str, ...] = ("allow", "alert", "redact", "throttle", "block")
INJECTION = "MLH-HUNT-LLM-PROMPT-INJECTION"
LEAK = "MLH-HUNT-LLM-PROMPT-LEAK"
SENSITIVE = "MLH-HUNT-LLM-SENSITIVE-OUTPUT"


class LlmPolicy(Policy):
    """severity -> actions per llmhunt detector id; ``degrade`` is no LLM action."""

    allowed_actions: ClassVar[tuple[str, ...]] = LLM_ACTIONS


def default_llm_policy_path() -> Path:
    return Path(str(resources.files("mlhunt.guard.llm") / "default_policy.yaml"))


def load_llm_policy(path: Path | None, known: set[str]) -> LlmPolicy:
    """The ``--policy`` file (or the shipped LLM default), validated; unknown ids are errors."""
    policy = load_policy(path, known=known, model=LlmPolicy, default=default_llm_policy_path())
    assert isinstance(policy, LlmPolicy)
    return policy
