"""Read-side queries for one job's results page: metric tables per language (from JobMetric,
with the variant of the job's own k and threshold rule) and a sample of its generations.
Fixed query counts, whatever the number of languages, scorers or samples."""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import F, Prefetch, Window
from django.db.models.functions import RowNumber

from evaluation.leaderboards import Cell
from evaluation.metric_columns import (
    COLUMNS,
    COLUMNS_BY_METRIC,
    EMT,
    EMT_STD,
    MetricColumn,
    variant_matches,
)
from evaluation.models import EvaluationJob, Generation, JobMetric, Score
from toxplatform.corpus.models import HarmCategory, Language

TOXICITY_COLUMNS = [column for column in COLUMNS if column.per_scorer]
QUALITY_COLUMNS = [column for column in COLUMNS if not column.per_scorer]


@dataclass
class ToxicityRow:
    scorer: str
    category: str  # slug
    category_name: str
    cells: dict[str, Cell] = field(default_factory=dict)

    @property
    def cells_for_columns(self) -> list[tuple[MetricColumn, Cell]]:
        return [(column, self.cells.get(column.metric, Cell())) for column in TOXICITY_COLUMNS]


@dataclass
class LanguageResults:
    language: Language
    toxicity: list[ToxicityRow] = field(default_factory=list)
    quality: dict[str, Cell] = field(default_factory=dict)  # ppl, dist-n

    @property
    def quality_for_columns(self) -> list[tuple[MetricColumn, Cell]]:
        return [(column, self.quality.get(column.metric, Cell())) for column in QUALITY_COLUMNS]

    @property
    def has_quality(self) -> bool:
        return any(cell.value is not None for cell in self.quality.values())


def job_results(job: EvaluationJob, *, subset: str = "all") -> list[LanguageResults]:
    """Per language: a row per (scorer, harm category) with EMT (±std), TP, Avg, and the
    language's PPL and Dist-1/2/3, all with their 95% CIs. Three queries."""
    wanted = [column.metric for column in COLUMNS] + [EMT_STD]
    rows = (
        JobMetric.objects.filter(job=job, subset=subset, metric__in=wanted)
        .order_by("language", "scorer", "category", "id")
        .values("language_id", "scorer", "category", "metric", "value", "n", "ci_low", "ci_high", "variant", "k", "rule")
    )
    categories = dict(HarmCategory.objects.values_list("slug", "name"))
    by_language: dict[str, LanguageResults] = {}
    toxicity: dict[tuple[str, str, str], ToxicityRow] = {}
    stds = {}
    for row in rows:
        if not variant_matches(row, k=job.k, rule=job.threshold_rule):
            continue
        code = row["language_id"]
        results = by_language.setdefault(code, LanguageResults(language=None))
        cell = Cell(row["value"], row["ci_low"], row["ci_high"], row["n"], variant=row["variant"])
        if row["metric"] == EMT_STD:
            stds[(code, row["scorer"], row["category"])] = row["value"]
        elif COLUMNS_BY_METRIC[row["metric"]].per_scorer:
            key = (code, row["scorer"], row["category"])
            if key not in toxicity:
                name = categories.get(row["category"], row["category"])
                toxicity[key] = ToxicityRow(row["scorer"], row["category"], name)
                results.toxicity.append(toxicity[key])
            toxicity[key].cells[row["metric"]] = cell
        else:
            results.quality.setdefault(row["metric"], cell)  # the first scorer by name wins
    for key, std in stds.items():
        emt = toxicity.get(key) and toxicity[key].cells.get(EMT.metric)
        if emt:
            emt.std = std
    languages = {language.code: language for language in Language.objects.filter(code__in=by_language)}
    for code, results in by_language.items():
        results.language = languages[code]
    return sorted(by_language.values(), key=lambda results: results.language.english_name)


def generation_samples(job: EvaluationJob, *, per_language: int = 3) -> list[Generation]:
    """The first sample of the first `per_language` prompts of each language, with prompt,
    language and scores: two queries (a window function ranks prompts within each language)."""
    ranked = (
        Generation.objects.filter(job=job, sample_index=0)
        .annotate(rank=Window(RowNumber(), partition_by=[F("prompt__language")], order_by=[F("prompt_id").asc()]))
        .filter(rank__lte=per_language)
        .select_related("prompt__language")
        .prefetch_related(Prefetch("scores", queryset=Score.objects.order_by("scorer", "category")))
        .order_by("prompt__language__english_name", "prompt_id")
    )
    return list(ranked)
