"""What every scorer offers. One file per scorer; register it in scorers/__init__.py.

A scorer turns (prompt, continuation, language) into one value per category it covers,
keeping its raw output so a number can always be traced back (matched terms, label
probabilities, a judge's answer). A value of None means "no valid score" (an unsupported
language, an unparseable judge answer, an empty continuation for perplexity); the
pipeline stores it and the metrics count it as invalid instead of guessing.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from toxplatform.registry import Registry
from toxplatform.errors import ApplicationError

registry = Registry("scorer")


@dataclass(frozen=True)
class ScoringInput:
    prompt: str
    continuation: str
    language: str  # BCP-47 code


@dataclass
class ScoreResult:
    # In [0, 1] for harm categories (perplexity: a positive number); None = no valid score.
    value: float | None
    raw: dict = field(default_factory=dict)


def no_score(reason: str, **raw) -> ScoreResult:
    """An invalid score that says why (counted by the invalid-rate metric)."""
    return ScoreResult(value=None, raw={"reason": reason, **raw})


class Scorer(ABC):
    name: str = ""
    # Parameter names the scorer accepts; None accepts anything (e.g. a pass-through API).
    allowed_params: frozenset[str] | None = None

    def __init__(self, **params):
        if self.allowed_params is not None:
            unknown = sorted(set(params) - self.allowed_params)
            if unknown:
                raise ApplicationError(
                    f"Unknown parameter(s) for scorer {self.name!r}: {', '.join(unknown)}",
                    {"allowed": ", ".join(sorted(self.allowed_params))},
                )
        self.params = params

    @abstractmethod
    def categories(self) -> list[str]:
        """Category slugs this scorer fills (harm categories, or e.g. "perplexity")."""

    @abstractmethod
    def score(self, items: list[ScoringInput]) -> list[dict[str, ScoreResult]]:
        """One {category: ScoreResult} per item, in order, with every category present."""

    def key(self) -> str:
        """The name its scores and metrics are stored under: the scorer's name plus what
        changes its values (the model it scores with, ...), so that results of two different
        classifiers, or perplexity under two LMs, never share a leaderboard column. Options
        that change only speed (batch size, device) stay out. A job may set its own key."""
        return self.name

    def supports_language(self, language: str) -> bool:
        return True

    def close(self) -> None:
        """Free memory / connections."""
