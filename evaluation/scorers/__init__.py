"""Scorers behind one registry: `registry.get(name)(**params)`. Importing this package
registers every implementation; a new scorer is one file plus one import line here."""
from evaluation.scorers import hf_classifier, lexicon, perplexity, trained  # noqa: F401  (registration)
from evaluation.scorers.base import Scorer, ScoreResult, ScoringInput, no_score, registry

__all__ = ["Scorer", "ScoreResult", "ScoringInput", "no_score", "registry"]
