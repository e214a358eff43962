"""The LLM detectors, registered in one place (order = report order)."""

from __future__ import annotations

from mlhunt.llmhunt.detectors.agency import ExcessiveAgency
from mlhunt.llmhunt.detectors.base import (
    Alert,
    ClientScore,
    Context,
    LlmDetector,
    LlmDetectorSpec,
    alerts,
)
from mlhunt.llmhunt.detectors.campaign import Campaigns
from mlhunt.llmhunt.detectors.consumption import UnboundedConsumption
from mlhunt.llmhunt.detectors.indirect import IndirectInjection
from mlhunt.llmhunt.detectors.injection import PromptInjection
from mlhunt.llmhunt.detectors.leak import PromptLeak
from mlhunt.llmhunt.detectors.sensitive import SensitiveOutput

DETECTOR_CLASSES: tuple[type[LlmDetector], ...] = (
    PromptInjection,
    IndirectInjection,
    PromptLeak,
    SensitiveOutput,
    UnboundedConsumption,
    ExcessiveAgency,
    Campaigns,
)


def registry() -> list[LlmDetector]:
    """Fresh detector instances (their YAML loaded and validated)."""
    return [cls.load() for cls in DETECTOR_CLASSES]


__all__ = [
    "DETECTOR_CLASSES",
    "Alert",
    "ClientScore",
    "Context",
    "LlmDetector",
    "LlmDetectorSpec",
    "alerts",
    "registry",
]
