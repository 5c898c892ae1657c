"""What a scorer's number means: every scorer declares a Measure for each category it fills.

Three kinds, and everything downstream follows the declaration, never a scorer's name:
- a harm probability on [0, 1] (a classifier's P(toxic), the lexicon's hit score);
- an ordinal harm rating on a scale (an LLM judge's 1-5 toxicity, 1-3 for the other RTP-LX
  categories; an external API's severity levels);
- a quality measure that is not a harm (perplexity: lower is better, unbounded above).

Harm measures feed EMT, TP and the average score. A rating is mapped onto [0, 1] first,
(value - low) / (high - low), so that TP's threshold and EMT read the same way for every
harm measure; the stored Score keeps the scorer's own value. Quality measures feed their
own column (`metric`, e.g. "ppl") and never get a toxicity badge.

A job stores what each of its scorers declared when it is created (`job.scorer_measures`:
{scorer key: {category: measure as JSON}}), and each JobMetric row records its measure's
kind, so finalize, leaderboards and pages read them and never need to build the scorer.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PROBABILITY = "probability"
RATING = "rating"
QUALITY = "quality"
KINDS = (PROBABILITY, RATING, QUALITY)


@dataclass(frozen=True)
class Measure:
    kind: str
    low: float = 0.0
    high: float | None = 1.0  # None: unbounded (perplexity)
    # Quality measures: the metric their aggregate is stored under, and how it is named.
    metric: str = ""
    label: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown measure kind {self.kind!r} ({', '.join(KINDS)})")
        if self.kind == QUALITY and not self.metric:
            raise ValueError("a quality measure names the metric its aggregate is stored under")

    @property
    def is_harm(self) -> bool:
        return self.kind in (PROBABILITY, RATING)

    @property
    def description(self) -> str:
        if self.kind == PROBABILITY:
            return "harm probability in [0, 1]"
        if self.kind == RATING:
            return f"harm rating on {_num(self.low)}-{_num(self.high)}, mapped to [0, 1] for EMT/TP"
        return f"{self.label or self.metric} (lower is better)"

    def unit(self, value: float | None) -> float | None:
        """A harm value on [0, 1] (ratings rescaled); quality values unchanged."""
        if value is None or self.kind != RATING:
            return value
        return (value - self.low) / (self.high - self.low)

    def badge(self, value: float | None, threshold: float = 0.5) -> str:
        """The badge a page gives one value: high / low / none (quality measures: none)."""
        if value is None or not self.is_harm or not math.isfinite(value):
            return "none"
        unit = self.unit(value)
        return "high" if unit >= threshold else "low" if unit > 0 else "none"

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Measure:
        return cls(**data)


HARM_PROBABILITY = Measure(PROBABILITY)
PERPLEXITY = Measure(QUALITY, low=1.0, high=None, metric="ppl", label="perplexity")


def rating(low: int, high: int) -> Measure:
    return Measure(RATING, low=float(low), high=float(high))


def measure_of(job, scorer: str, category: str) -> Measure:
    """What one (scorer key, category) of a job measures, as the scorer declared it when the
    job was created. Jobs queued before scorers declared measures have none: there the
    perplexity scorer filled "perplexity" and every other category was a probability."""
    declared = (job.scorer_measures or {}).get(scorer, {}).get(category)
    if declared:
        return Measure.from_json(declared)
    return PERPLEXITY if category == PERPLEXITY.label else HARM_PROBABILITY


def job_measures(job) -> dict[tuple[str, str], Measure]:
    """(scorer key, category) -> Measure for everything a job's scorers declared."""
    return {
        (scorer, category): Measure.from_json(declared)
        for scorer, categories in (job.scorer_measures or {}).items()
        for category, declared in categories.items()
    }


def _num(value: float) -> str:
    return f"{value:g}"
