"""Scorers behind one registry: `registry.get(name)(**params)`. Importing this package
registers every implementation; a new scorer is one file plus one import line here."""
from evaluation.scorers import hf_classifier, lexicon, perplexity  # noqa: F401  (registration)
from evaluation.scorers import azure_content_safety, llm_judge, trained  # noqa: F401  (registration)
from evaluation.scorers.base import Scorer, ScoreResult, ScoringInput, no_score, registry

# What a job scores with when it names no scorer (the form's initial choice too).
DEFAULT_SCORERS = ("lexicon",)

__all__ = ["DEFAULT_SCORERS", "Scorer", "ScoreResult", "ScoringInput", "no_score", "registry"]
