"""Leaderboards and per-job result tables: read-side queries over JobMetric (never raw
Generation or Score rows).

Which job stands for a leaderboard row: only DONE jobs count, and when several DONE jobs
share model + detox method + dataset, the one that finished last stands for all of them
(ties broken by the higher id). Older runs stay reachable from the job list. A row is
"model × method" within one dataset: numbers from different prompt sets are never put side
by side.

Metric variants: finalize stores each number with its k and, for TP, its threshold rule
(JobMetric.k / rule / threshold; the variant text such as "k=25, >=0.5" is for reading). A
table shows, per job, the variant with the job's own k and threshold rule unless the reader
picks a k or a rule; every page prints the variants it shows. The columns themselves are
defined in metric_columns.py.

Every function answers in a fixed number of queries, whatever the number of jobs,
languages or metrics.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db.models import OuterRef, Q, QuerySet, Subquery

from evaluation.metric_columns import (  # noqa: F401  (the column names callers use with boards)
    AVG,
    COLUMNS,
    COLUMNS_BY_METRIC,
    DEFAULT_CATEGORY,
    DIST,
    EMT,
    EMT_STD,
    HEATMAP_METRICS,
    PPL,
    RULES,
    SUBSETS,
    TP,
    MetricColumn,
    variant_label,
    variant_matches,
)
from evaluation.models import EvaluationJob, JobMetric
from evaluation.scorers.measures import QUALITY
from toxplatform.corpus.models import Dataset, HarmCategory, Language
from toxplatform.errors import ApplicationError
from toxplatform.validation import strict_int


# A number over fewer prompts than this is shown dimmed on heatmaps (its CI is wide).
FEW_PROMPTS = 30


@dataclass
class Cell:
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    std: float | None = None
    variant: str = ""
    best: bool = False  # the best value of its column, its CI apart from every other row's
    tied: bool = False  # the best value of its column, but its CI overlaps another row's

    @property
    def has_ci(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None

    @property
    def few(self) -> bool:
        """Resting on fewer than FEW_PROMPTS prompts: heatmaps dim it."""
        return self.value is not None and self.n < FEW_PROMPTS


@dataclass
class Entry:
    """One leaderboard row: a model × detox method (the job that stands for it)."""

    job: EvaluationJob
    cells: dict[str, Cell] = field(default_factory=dict)  # by metric, or by language code on heatmaps
    # Rank by EMT: 1 + the rows whose EMT is better with the CIs apart; rows that no CI
    # separates share a rank and are "tied".
    rank: int | None = None
    tied: bool = False

    @property
    def label(self) -> str:
        return f"{self.job.model.name} · {self.job.detox_method}"

    @property
    def cells_for_columns(self) -> list[tuple[MetricColumn, Cell]]:
        return [(column, self.cells.get(column.metric, Cell())) for column in COLUMNS]

    @property
    def toxicity_n(self) -> int:
        """Prompts behind the toxicity columns (EMT's n)."""
        return self.cells.get(EMT.metric, Cell()).n

    @property
    def mean(self) -> Cell:
        """Unweighted mean over the cells that have a value (heatmaps: over languages); n = how many."""
        values = [cell.value for cell in self.cells.values() if cell.value is not None]
        return Cell(sum(values) / len(values), n=len(values)) if values else Cell()


@dataclass(frozen=True)
class Variants:
    """The metric variants a table shows, and whether one metric shows several (rows not comparable)."""

    labels: list[str]
    mixed: bool


def variants_of(cells_by_metric: list[tuple[str, Cell]]) -> Variants:
    by_metric: dict[str, set[str]] = defaultdict(set)
    for metric, cell in cells_by_metric:
        if cell.variant and metric in COLUMNS_BY_METRIC and COLUMNS_BY_METRIC[metric].per_scorer:
            by_metric[metric].add(cell.variant)
    labels = sorted({variant_label(variant) for found in by_metric.values() for variant in found})
    return Variants(labels=labels, mixed=any(len(found) > 1 for found in by_metric.values()))


@dataclass(frozen=True)
class Selection:
    """What a leaderboard shows; built from query-string values by `resolve_selection`."""

    dataset: Dataset | None
    scorer: str
    category: str
    subset: str = "all"
    k: int | None = None  # None: each job's own k
    rule: str = ""  # "": each job's own threshold rule
    # The scorer key whose perplexity fills the PPL column (PPL under different LMs is not
    # comparable, so one column shows one LM's).
    fluency: str = ""

    def k_for(self, job: EvaluationJob) -> int:
        return self.k or job.k

    def rule_for(self, job: EvaluationJob) -> str:
        return self.rule or job.threshold_rule


@dataclass
class FilterOptions:
    datasets: list[Dataset]
    scorers: list[str]
    fluency_scorers: list[str]
    categories: list[HarmCategory]
    ks: list[int]
    subsets: list[tuple[str, str]] = field(default_factory=lambda: list(SUBSETS))
    rules: list[tuple[str, str]] = field(default_factory=lambda: list(RULES))


# --- which jobs ---------------------------------------------------------------------------------


def latest_done_jobs(*, dataset: Dataset | None = None) -> QuerySet[EvaluationJob]:
    """The DONE job standing for each (model, detox method, dataset): the one finished last."""
    newest_sibling = (
        EvaluationJob.objects.filter(
            status=EvaluationJob.Status.DONE,
            model=OuterRef("model"),
            detox_method=OuterRef("detox_method"),
            dataset=OuterRef("dataset"),
        )
        .order_by("-finished_at", "-id")
        .values("id")[:1]
    )
    # A correlated subquery rather than DISTINCT ON: the embedded SQLite default has no DISTINCT ON.
    jobs = EvaluationJob.objects.filter(status=EvaluationJob.Status.DONE, id=Subquery(newest_sibling))
    if dataset is not None:
        jobs = jobs.filter(dataset=dataset)
    return jobs.select_related("model", "dataset").order_by("model__name", "detox_method", "id")


def _toxicity_metrics(dataset: Dataset | None) -> QuerySet[JobMetric]:
    """EMT rows of the standing jobs: what tells which scorers, categories, k and languages have results."""
    return JobMetric.objects.filter(job__in=latest_done_jobs(dataset=dataset), metric=EMT.metric).order_by()


def _scorer_choices(dataset: Dataset | None) -> tuple[list[str], list[str]]:
    """(toxicity scorers by name, perplexity scorers with the one most standing jobs used
    first, then by name), from one query over the standing jobs' EMT and PPL rows: the
    scorers' declared measures (harm, quality) put them in one list or the other."""
    rows = (
        JobMetric.objects.filter(job__in=latest_done_jobs(dataset=dataset))
        .filter(Q(metric=EMT.metric) | Q(metric=PPL.metric, measure=QUALITY))
        .order_by().values_list("metric", "scorer", "job").distinct()
    )
    toxicity, fluency_jobs = set(), Counter()
    for metric, scorer, _ in rows:
        if metric == EMT.metric:
            toxicity.add(scorer)
        else:
            fluency_jobs[scorer] += 1
    return sorted(toxicity), sorted(fluency_jobs, key=lambda key: (-fluency_jobs[key], key))


def _category_slugs(metrics: QuerySet[JobMetric]) -> list[str]:
    """Categories with results, in the harm categories' own order."""
    slugs = set(metrics.values_list("category", flat=True).distinct())
    return list(HarmCategory.objects.filter(slug__in=slugs).values_list("slug", flat=True))


def resolve_selection(
    *, dataset: str = "", scorer: str = "", category: str = "", subset: str = "", k: str = "", rule: str = "",
    fluency: str = "",
) -> Selection:
    """Turn query-string values into a Selection; empty values take the defaults.

    Defaults: the dataset of the most recently finished DONE job, the first scorer (by name)
    with results, the `toxicity` category when it has results (else the first that has), all
    prompts, each job's own k and rule, the perplexity scorer most standing jobs used. A value
    that names nothing raises ApplicationError: a leaderboard under a filter that was not
    applied would mislead.
    """
    if dataset:
        dataset_row = Dataset.objects.filter(slug=dataset).first()
        if dataset_row is None:
            raise ApplicationError("Unknown dataset.", {"dataset": dataset})
    else:
        newest = EvaluationJob.objects.filter(status=EvaluationJob.Status.DONE).order_by("-finished_at", "-id")
        dataset_row = Dataset.objects.filter(pk__in=newest.values("dataset")[:1]).first()
    metrics = _toxicity_metrics(dataset_row)
    scorers, fluency_scorers = _scorer_choices(dataset_row)
    categories = _category_slugs(metrics)
    if scorer and scorer not in scorers:
        raise ApplicationError("No leaderboard results for this scorer.", {"scorer": scorer})
    if category and category not in categories:
        raise ApplicationError("No leaderboard results for this harm category.", {"category": category})
    if subset and subset not in dict(SUBSETS):
        raise ApplicationError("Unknown prompt subset.", {"subset": subset, "known": ", ".join(dict(SUBSETS))})
    if rule and rule not in dict(RULES):
        raise ApplicationError("Unknown threshold rule.", {"rule": rule, "known": ", ".join(dict(RULES))})
    if k:  # strict: "²" passes isdigit() and then fails int()
        k = strict_int(k, "k", minimum=1, maximum=2**31 - 1)
    if fluency and fluency not in fluency_scorers:
        raise ApplicationError("No perplexity results from this scorer.", {"fluency": fluency})
    if not category and categories:
        category = DEFAULT_CATEGORY if DEFAULT_CATEGORY in categories else categories[0]
    return Selection(
        dataset=dataset_row,
        scorer=scorer or (scorers[0] if scorers else ""),
        category=category,
        subset=subset or "all",
        k=k or None,
        rule=rule,
        fluency=fluency or (fluency_scorers[0] if fluency_scorers else ""),
    )


SELECTION_PARAMS = ("dataset", "scorer", "category", "subset", "k", "rule", "fluency")


def selection_from_query(params) -> Selection:
    """resolve_selection from a query string (a page's GET or the API's query_params)."""
    return resolve_selection(**{name: params.get(name, "") for name in SELECTION_PARAMS})


def filter_options(selection: Selection) -> FilterOptions:
    metrics = _toxicity_metrics(selection.dataset)
    ks = set(metrics.exclude(k=None).values_list("k", flat=True).distinct())
    scorers, fluency_scorers = _scorer_choices(selection.dataset)
    return FilterOptions(
        datasets=list(Dataset.objects.filter(jobs__status=EvaluationJob.Status.DONE).distinct().order_by("name", "id")),
        scorers=scorers,
        fluency_scorers=fluency_scorers,
        categories=list(HarmCategory.objects.filter(slug__in=_category_slugs(metrics))),
        ks=sorted(ks, reverse=True),
    )


def leaderboard_languages(selection: Selection) -> list[Language]:
    """Languages with results under the selection, in English-name order."""
    codes = _toxicity_metrics(selection.dataset).filter(
        scorer=selection.scorer, category=selection.category, subset=selection.subset
    )
    return list(Language.objects.filter(code__in=codes.values("language")).order_by("english_name"))


def category_summaries(selection: Selection) -> list[tuple[HarmCategory, int]]:
    """Harm categories with results under dataset / scorer / subset, with how many languages each covers."""
    pairs = (
        _toxicity_metrics(selection.dataset)
        .filter(scorer=selection.scorer, subset=selection.subset)
        .values_list("category", "language")
        .distinct()
    )
    languages = defaultdict(set)
    for category, language in pairs:
        languages[category].add(language)
    return [(category, len(languages[category.slug])) for category in HarmCategory.objects.filter(slug__in=languages)]


# --- metric cells -------------------------------------------------------------------------------


def _metric_cells(
    jobs: list[EvaluationJob], selection: Selection, *, metrics: list[str], languages: list[Language] | None = None
) -> dict[int, dict[str, dict[str, Cell]]]:
    """{job id: {language code: {metric: Cell}}} in one query.

    Toxicity metrics come from the selected scorer and category, perplexity from the selected
    fluency scorer; diversity depends on neither.
    Only the variant matching the selection's (or the job's own) k and rule is kept.
    """
    toxicity = [m for m in metrics if COLUMNS_BY_METRIC[m].per_scorer]
    if EMT.metric in metrics:
        toxicity.append(EMT_STD)
    quality = [m for m in metrics if not COLUMNS_BY_METRIC[m].per_scorer]
    wanted = Q(metric__in=toxicity, scorer=selection.scorer, category=selection.category) | Q(
        metric__in=[m for m in quality if m != PPL.metric]
    )
    if PPL.metric in quality:
        wanted |= Q(metric=PPL.metric, scorer=selection.fluency)
    rows = JobMetric.objects.filter(wanted, job__in=[job.id for job in jobs], subset=selection.subset)
    if languages is not None:
        rows = rows.filter(language__in=[language.code for language in languages])
    by_id = {job.id: job for job in jobs}
    found: dict[int, dict[str, dict[str, Cell]]] = defaultdict(lambda: defaultdict(dict))
    stds = []
    for row in rows.order_by("scorer", "category", "id").values(
        "job_id", "language_id", "metric", "value", "n", "ci_low", "ci_high", "variant", "k", "rule"
    ):
        job = by_id[row["job_id"]]
        if not variant_matches(row, k=selection.k_for(job), rule=selection.rule_for(job)):
            continue
        if row["metric"] == EMT_STD:
            stds.append(row)
            continue
        found[row["job_id"]][row["language_id"]].setdefault(  # one row per metric: set once
            row["metric"], Cell(row["value"], row["ci_low"], row["ci_high"], row["n"], variant=row["variant"])
        )
    for row in stds:
        emt = found[row["job_id"]][row["language_id"]].get(EMT.metric)
        if emt is not None:
            emt.std = row["value"]
    return found


def _best_first(metric: MetricColumn):
    def key(entry: Entry):
        value = entry.cells.get(metric.metric, Cell()).value
        # Missing values last whatever the direction; then by label so the order is stable.
        if value is None:
            return (1, 0.0, entry.label)
        return (0, value if metric.lower_is_better else -value, entry.label)

    return key


# --- per-language table ---------------------------------------------------------------------------


@dataclass
class LanguageLeaderboard:
    language: Language
    selection: Selection
    entries: list[Entry]
    columns: list[MetricColumn] = field(default_factory=lambda: list(COLUMNS))

    @property
    def variants(self) -> Variants:
        return variants_of([(metric, cell) for entry in self.entries for metric, cell in entry.cells.items()])


def better_apart(a: Cell, b: Cell, column: MetricColumn) -> bool:
    """Is `a` better than `b` with their 95% CIs apart (not overlapping)? Without both CIs
    nothing can be said: not better."""
    if not (a.has_ci and b.has_ci) or a.value is None or b.value is None:
        return False
    return a.ci_high < b.ci_low if column.lower_is_better else a.ci_low > b.ci_high


def _mark_best(entries: list[Entry]) -> None:
    """★ the best value of each column only where its CI is apart from every other row's;
    a best value whose CI overlaps another's is marked tied instead."""
    for column in COLUMNS:
        cells = [e.cells[column.metric] for e in entries if e.cells.get(column.metric, Cell()).value is not None]
        if len(cells) < 2:
            continue
        best = min(c.value for c in cells) if column.lower_is_better else max(c.value for c in cells)
        for cell in cells:
            if cell.value == best:
                apart = all(better_apart(cell, other, column) for other in cells if other is not cell)
                cell.best, cell.tied = apart, not apart


def _rank(entries: list[Entry], column: MetricColumn = EMT) -> None:
    """Competition ranks that CIs support: 1 + how many rows are better with the CIs apart."""
    cells = {id(entry): entry.cells.get(column.metric, Cell()) for entry in entries}
    for entry in entries:
        mine = cells[id(entry)]
        if mine.value is None:
            continue
        entry.rank = 1 + sum(better_apart(cells[id(other)], mine, column) for other in entries if other is not entry)
    shared = Counter(entry.rank for entry in entries if entry.rank is not None)
    for entry in entries:
        entry.tied = entry.rank is not None and shared[entry.rank] > 1


def language_leaderboard(*, language: Language, selection: Selection) -> LanguageLeaderboard:
    """Rows model × method with EMT (±std), TP, Avg, PPL, Dist-1/2/3 and their CIs; lowest EMT first.

    Only jobs with toxicity results in this language under the chosen scorer and category are
    listed (fluency and diversity alone do not make a row).
    """
    jobs = list(latest_done_jobs(dataset=selection.dataset))
    cells = _metric_cells(jobs, selection, metrics=[c.metric for c in COLUMNS], languages=[language])
    entries = [
        Entry(job=job, cells=dict(cells[job.id][language.code]))
        for job in jobs
        if any(column.metric in cells[job.id][language.code] for column in COLUMNS if column.per_scorer)
    ]
    entries.sort(key=_best_first(EMT))
    _mark_best(entries)
    _rank(entries)
    return LanguageLeaderboard(language=language, selection=selection, entries=entries)


# --- overview heatmap and per-category pages -------------------------------------------------------


@dataclass
class Heatmap:
    metric: MetricColumn
    selection: Selection
    languages: list[Language]
    entries: list[Entry]  # one per model × method; cells keyed by language code

    def rows_by_language(self) -> list[tuple[Language, list[tuple[Entry, Cell]]]]:
        """Languages down, entries across (the overview)."""
        return [
            (language, [(entry, entry.cells.get(language.code, Cell())) for entry in self.entries])
            for language in self.languages
        ]

    def rows_by_entry(self) -> list[tuple[Entry, list[tuple[Language, Cell]]]]:
        """Entries down, languages across (a harm category's page)."""
        return [
            (entry, [(language, entry.cells.get(language.code, Cell())) for language in self.languages])
            for entry in self.entries
        ]

    @property
    def variants(self) -> Variants:
        return variants_of([(self.metric.metric, cell) for entry in self.entries for cell in entry.cells.values()])


def heatmap(*, selection: Selection, metric: MetricColumn = EMT) -> Heatmap:
    """Language × (model · method), one toxicity metric per cell; entries with the best mean first."""
    if metric not in HEATMAP_METRICS:
        raise ApplicationError("This metric has no heatmap.", {"metric": metric.metric})
    jobs = list(latest_done_jobs(dataset=selection.dataset))
    cells = _metric_cells(jobs, selection, metrics=[metric.metric])
    entries = []
    for job in jobs:
        by_language = {code: found[metric.metric] for code, found in cells[job.id].items() if metric.metric in found}
        if by_language:
            entries.append(Entry(job=job, cells=by_language))
    codes = {code for entry in entries for code in entry.cells}
    languages = list(Language.objects.filter(code__in=codes).order_by("english_name"))
    entries.sort(key=lambda entry: (entry.mean.value is None, entry.mean.value or 0.0, entry.label))
    return Heatmap(metric=metric, selection=selection, languages=languages, entries=entries)
