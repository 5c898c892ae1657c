"""What every scorer offers. One file per scorer; register it in scorers/__init__.py."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from evaluation.registry import Registry

registry = Registry("scorer")


@dataclass(frozen=True)
class ScoringInput:
    prompt: str
    continuation: str
    language: str


@dataclass
class ScoreResult:
    # In [0, 1] for harm categories (perplexity: a positive number); None = no valid score.
    value: float | None
    raw: dict = field(default_factory=dict)


class Scorer(ABC):
    name: str = ""

    def __init__(self, **params):
        self.params = params

    @abstractmethod
    def categories(self) -> list[str]:
        """Category slugs this scorer fills (harm categories, or e.g. "perplexity")."""

    @abstractmethod
    def score(self, items: list[ScoringInput]) -> list[dict[str, ScoreResult]]:
        """One {category: ScoreResult} per item, in order."""

    def supports_language(self, language: str) -> bool:
        return True

    def close(self) -> None:
        """Free memory / connections."""
