"""Read-side queries for one job's results page: metric tables per language (from JobMetric,
with the variant of the job's own k and threshold rule) and a sample of its generations.
Fixed query counts, whatever the number of languages, scorers or samples."""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import F, Prefetch, Window
from django.db.models.functions import RowNumber

from evaluation.leaderboards import Cell
from evaluation.metric_columns import (
    AVG,
    COLUMNS,
    COLUMNS_BY_METRIC,
    DEFAULT_CATEGORY,
    EMT,
    EMT_STD,
    SUBSETS,
    TP,
    MetricColumn,
    variant_matches,
)
from evaluation.scorers.measures import measure_of
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
    merged: list[str] = field(default_factory=list)  # categories with the very same numbers

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
        results.toxicity = collapse_identical(results.toxicity)
    return sorted(by_language.values(), key=lambda results: results.language.english_name)


def _same_numbers(a: ToxicityRow, b: ToxicityRow) -> bool:
    def numbers(row):
        return {metric: (cell.value, cell.ci_low, cell.ci_high, cell.n, cell.std) for metric, cell in row.cells.items()}

    return a.scorer == b.scorer and numbers(a) == numbers(b)


def collapse_identical(rows: list[ToxicityRow]) -> list[ToxicityRow]:
    """One row per value a scorer really measures: a scorer's categories whose every number is
    identical in a language (a word list that fills two categories from the same hits) are
    shown once, named together ("Toxicity = Profanity")."""
    kept: list[ToxicityRow] = []
    for row in rows:
        twin = next((other for other in kept if _same_numbers(other, row)), None)
        if twin is None:
            kept.append(row)
        else:
            twin.category_name = f"{twin.category_name} = {row.category_name}"
            twin.merged.append(row.category)
    return kept


# --- the summary across languages (the job page's first table and chart) ------------------------

SUMMARY_COLUMNS = [EMT, TP, AVG]
LEGEND_COLUMNS = COLUMNS  # every metric a job page shows, defined once in metric_columns.py


@dataclass
class SummaryRow:
    language: Language
    cells: list[tuple[str, MetricColumn, Cell]]  # (subset, column, cell) in the table's order


@dataclass
class JobSummary:
    scorer: str
    category: str
    category_name: str
    subsets: list[tuple[str, str]]
    rows: list[SummaryRow]
    columns = SUMMARY_COLUMNS

    def emt_bars(self) -> list[tuple[str, float | None, float | None, float | None]]:
        bars = []
        for row in self.rows:
            cell = next((cell for subset, column, cell in row.cells if (subset, column) == ("all", EMT)), Cell())
            bars.append((f"{row.language.english_name} ({row.language.code})", cell.value, cell.ci_low, cell.ci_high))
        return bars


def summary_slice(job: EvaluationJob) -> tuple[str, str] | None:
    """The (scorer, category) the summary shows: the job's first harm scorer, on toxicity
    when it measures it (else its first harm category)."""
    for key in job.scorer_keys:
        harms = [category for category in (job.scorer_measures or {}).get(key, {})
                 if measure_of(job, key, category).is_harm]
        if harms:
            return key, DEFAULT_CATEGORY if DEFAULT_CATEGORY in harms else harms[0]
    row = (JobMetric.objects.filter(job=job, metric=EMT.metric).order_by("scorer", "category")
           .values_list("scorer", "category").first())
    return tuple(row) if row else None


def job_summary(job: EvaluationJob) -> JobSummary | None:
    """Every language in one table: EMT, TP and Avg with CIs and n, on all, toxic and
    non-toxic prompts, under the summary's scorer and category (the job's own k and rule).
    Two queries."""
    chosen = summary_slice(job)
    if chosen is None:
        return None
    scorer, category = chosen
    rows = (JobMetric.objects.filter(job=job, scorer=scorer, category=category,
                                     metric__in=[column.metric for column in SUMMARY_COLUMNS])
            .values("language_id", "metric", "subset", "value", "n", "ci_low", "ci_high", "variant", "k", "rule"))
    by_language: dict[str, dict] = {}
    present = set()
    for row in rows:
        if variant_matches(row, k=job.k, rule=job.threshold_rule):
            by_language.setdefault(row["language_id"], {})[(row["subset"], row["metric"])] = Cell(
                row["value"], row["ci_low"], row["ci_high"], row["n"], variant=row["variant"])
            present.add(row["subset"])
    if not by_language:
        return None
    languages = Language.objects.filter(code__in=by_language).order_by("english_name")
    name = HarmCategory.objects.filter(slug=category).values_list("name", flat=True).first() or category
    subsets = [(value, label) for value, label in SUBSETS if value in present]
    return JobSummary(
        scorer=scorer, category=category, category_name=name, subsets=subsets,
        rows=[SummaryRow(language, [(subset, column, by_language[language.code].get((subset, column.metric), Cell()))
                                    for subset, _ in subsets for column in SUMMARY_COLUMNS])
              for language in languages],
    )


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
