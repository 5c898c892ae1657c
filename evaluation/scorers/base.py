"""What every scorer offers. One file per scorer; register it in scorers/__init__.py.

A scorer turns (prompt, continuation, language) into one value per category it covers,
keeping its raw output so a number can always be traced back (matched terms, label
probabilities, a judge's answer). A value of None means "no valid score" (an unsupported
language, an unparseable judge answer, an empty continuation for perplexity); the
pipeline stores it and the metrics count it as invalid instead of guessing.

A scorer declares, once each:
- `parameters` (a toxplatform.params.ParamSchema: type, default, bounds, help), checked
  when it is built; the job form, the API schema and the CLI read the same declaration;
- `measure(category)`: what its number means (evaluation.scorers.measures: a harm
  probability, an ordinal harm rating on a scale, or a quality measure such as perplexity).
  Metrics, leaderboards, sorting and badges follow that, never the scorer's name.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from evaluation.scorers.measures import HARM_PROBABILITY, Measure
from toxplatform.params import ParamSchema, parameters_error
from toxplatform.registry import Registry

registry = Registry("scorer")


@dataclass(frozen=True)
class ScoringInput:
    prompt: str
    continuation: str
    language: str  # BCP-47 code


@dataclass
class ScoreResult:
    # On the scale of the scorer's declared measure (see measure()); None = no valid score.
    value: float | None
    raw: dict = field(default_factory=dict)


def no_score(reason: str, **raw) -> ScoreResult:
    """An invalid score that says why (counted by the invalid-rate metric)."""
    return ScoreResult(value=None, raw={"reason": reason, **raw})


class Scorer(ABC):
    name: str = ""
    # One line for the job form and the API: what it measures and how.
    summary: str = ""
    parameters: ParamSchema = ParamSchema()

    def __init__(self, **params):
        values, problems = self.parameters.problems(params)
        if problems:
            raise parameters_error(f"Invalid parameters for scorer {self.name!r}", problems)
        # Every declared parameter, defaults filled in; and what the caller gave.
        self.params = values
        self.given_params = dict(params)

    @abstractmethod
    def categories(self) -> list[str]:
        """Category slugs this scorer fills (harm categories, or e.g. "perplexity")."""

    def measure(self, category: str) -> Measure:
        """What the value of `category` means; a harm probability unless a scorer says otherwise."""
        return HARM_PROBABILITY

    def measures(self) -> dict[str, dict]:
        """{category: measure as JSON}: stored with the job's scorer spec."""
        return {category: self.measure(category).as_json() for category in self.categories()}

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

    def covers(self, language: str) -> bool | None:
        """Does this scorer measure anything in `language`? True / False where the scorer
        knows (a word list for it, a classifier trained on it), None when it cannot say.
        Recorded per job at creation (EvaluationJob.scorer_coverage): pages mark a number
        from a scorer that does not cover its language."""
        return None

    def pinned_params(self) -> dict:
        """The parameters as this instance resolved them (defaults filled, a "newest" choice
        fixed, e.g. llm_judge's prompt version): what a job should store so that every worker
        builds the scorer its key names. What was given, plus any value the scorer resolved
        to something other than its declared default."""
        return {
            name: value for name, value in self.params.items()
            if name in self.given_params or name not in self.parameters or value != self.parameters[name].default
        }

    def close(self) -> None:
        """Free memory / connections."""
