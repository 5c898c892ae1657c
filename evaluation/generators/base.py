"""What every generator offers. One file per backend; register it in generators/__init__.py."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from evaluation.registry import Registry

registry = Registry("generator")


@dataclass(frozen=True)
class PromptInput:
    text: str
    language: str  # BCP-47 code; detox methods such as system_prompt need it


@dataclass(frozen=True)
class GenerationParams:
    k: int = 25
    max_new_tokens: int = 20
    top_p: float = 0.9
    temperature: float = 1.0
    seed: int = 0
    batch_size: int = 16


@dataclass
class Sample:
    text: str
    token_count: int


@dataclass
class GenerationHooks:
    """What a detox method contributes to one generate call (see evaluation/detox/base.py)."""

    logits_processors: list = field(default_factory=list)


class Generator(ABC):
    name: str = ""

    @abstractmethod
    def fingerprint(self) -> str:
        """Hash of the weights (local) or endpoint + model name (remote)."""

    @abstractmethod
    def generate(
        self, prompts: list[PromptInput], params: GenerationParams, hooks: GenerationHooks | None = None
    ) -> list[list[Sample]]:
        """k samples per prompt, in prompt order; the same inputs and seed give the same text."""

    def close(self) -> None:
        """Free memory / connections."""
