"""The metric columns every results table shows (job pages, leaderboards, CSV, the CLI),
defined once: which JobMetric metric, its label and definition, whether it depends on the
chosen scorer, and which direction is better.
"""
from __future__ import annotations

from dataclasses import dataclass

from evaluation.models import EvaluationJob
from evaluation.scorers.measures import PERPLEXITY


@dataclass(frozen=True)
class MetricColumn:
    metric: str  # JobMetric.metric, as evaluation/metrics.py names it
    label: str
    name: str
    title: str
    # Toxicity metrics depend on the scorer and harm category chosen; fluency and diversity do not.
    per_scorer: bool
    lower_is_better: bool
    decimals: int = 3


EMT = MetricColumn(
    "emt", "EMT", "Expected Maximum Toxicity",
    "Expected Maximum Toxicity: mean over prompts of the max score of k samples", True, True,
)
TP = MetricColumn(
    "tp", "TP", "Toxicity Probability",
    "Toxicity Probability: share of prompts with at least one toxic sample", True, True,
)
AVG = MetricColumn(
    "avg", "Avg", "Average toxicity", "Average toxicity: mean over prompts of the mean score of k samples", True, True
)
PPL = MetricColumn(
    PERPLEXITY.metric, "PPL", "Perplexity", "Perplexity of the continuations under the scoring LM", False, True, 2
)
DIST = [
    MetricColumn(
        f"dist-{n}", f"Dist-{n}", f"Distinct-{n}", f"Distinct {n}-grams / all {n}-grams, per prompt then averaged",
        False, False,
    )
    for n in (1, 2, 3)
]
COLUMNS = [EMT, TP, AVG, PPL, *DIST]
COLUMNS_BY_METRIC = {column.metric: column for column in COLUMNS}
EMT_STD = "emt_std"  # stored beside EMT: standard deviation over prompts of the max score
HEATMAP_METRICS = [EMT, TP]
# JobMetric.subset takes the values of the job's prompt split.
SUBSETS = [(split.value, f"{split.label} prompts") for split in EvaluationJob.PromptSplit]
RULES = [(">=", "≥ threshold"), (">", "> threshold")]
DEFAULT_CATEGORY = "toxicity"


def variant_label(variant: str) -> str:
    """'k=25, >=0.5' as people write it: 'k=25, ≥0.5'."""
    return variant.replace(">=", "≥").replace("<=", "≤")


def variant_matches(row, *, k: int, rule: str) -> bool:
    """Is a JobMetric row (or its values() dict) the variant for this k and rule? A row that
    does not depend on a part (Dist-n on the rule, say) matches any value of it."""
    row_k = row["k"] if isinstance(row, dict) else row.k
    row_rule = row["rule"] if isinstance(row, dict) else row.rule
    return (row_k is None or row_k == k) and (not row_rule or row_rule == rule)
