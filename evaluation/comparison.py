"""Two finished jobs on the same prompts, compared per language with paired statistics.

A leaderboard shows each system's EMT with its own interval; whether two systems differ is a
different question, and overlapping intervals do not answer it. Here both jobs' per-prompt
values are paired by prompt: the difference A - B gets a bootstrap CI over prompts and a
sign-flip permutation p-value (evaluation.metrics.paired_harm_differences). Only prompts that
both jobs scored count; the page says how many were left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from evaluation import metrics
from evaluation.metric_columns import DEFAULT_CATEGORY, EMT
from evaluation.models import EvaluationJob, JobMetric, JobPrompt, Score
from evaluation.scorers.measures import measure_of
from toxplatform.corpus.models import Language
from toxplatform.errors import ApplicationError

METRICS = ("emt", "tp", "avg")


@dataclass
class LanguageComparison:
    language: Language | None  # None: every language together
    rows: list[metrics.PairedDifference]

    @property
    def n(self) -> int:
        return max((row.n for row in self.rows), default=0)

    def row(self, metric: str) -> metrics.PairedDifference:
        return next(row for row in self.rows if row.metric == metric)


@dataclass
class Comparison:
    a: EvaluationJob
    b: EvaluationJob
    scorer: str
    category: str
    k: int
    rule: str
    threshold: float
    languages: list[LanguageComparison]
    overall: LanguageComparison | None
    only_in_a: int = 0  # prompts one job has and the other has not
    only_in_b: int = 0
    notes: list[str] = field(default_factory=list)


def common_scorers(a: EvaluationJob, b: EvaluationJob) -> list[str]:
    """Scorer keys both jobs have harm results for (from their JobMetric rows: measures that
    are not harms, such as perplexity, and Dist-n have no EMT row)."""
    return sorted({key for key, _ in _harm_slices(a)} & {key for key, _ in _harm_slices(b)})


def common_categories(a: EvaluationJob, b: EvaluationJob, scorer: str) -> list[str]:
    return sorted({c for key, c in _harm_slices(a) if key == scorer} & {c for key, c in _harm_slices(b) if key == scorer})


def _harm_slices(job: EvaluationJob) -> set[tuple[str, str]]:
    return set(JobMetric.objects.filter(job=job, metric=EMT.metric).values_list("scorer", "category").distinct().order_by())


def compare_from_query(a: EvaluationJob, b: EvaluationJob, params) -> Comparison:
    """compare_jobs with the options a query string gives (the page, the API): scorer,
    category, k, rule; empty values take compare_jobs' defaults."""
    k = params.get("k") or None
    if k is not None and not k.isdigit():
        raise ApplicationError("These jobs cannot be compared", {"k": f"must be a whole number (got {k!r})"})
    return compare_jobs(a, b, scorer=params.get("scorer", ""), category=params.get("category") or DEFAULT_CATEGORY,
                        k=int(k) if k else None, rule=params.get("rule", ""))


def compare_jobs(
    a: EvaluationJob, b: EvaluationJob, *, scorer: str = "", category: str = DEFAULT_CATEGORY, k: int | None = None,
    rule: str = "", seed: int | None = None,
) -> Comparison:
    """A - B per language and over all languages; an ApplicationError says what does not fit.
    The bootstrap and permutation draws are seeded by `seed`, by default job A's seed."""
    problems = {}
    if a.pk == b.pk:
        problems["b"] = "choose two different jobs"
    for side, job in (("a", a), ("b", b)):
        if job.status != EvaluationJob.Status.DONE:
            problems[side] = f"job {job.pk} is {job.status}, not done: compare finished jobs"
    if a.dataset_id != b.dataset_id:
        problems["b"] = f"job {b.pk} ran on another dataset than job {a.pk}: no prompts are shared"
    if problems:
        raise ApplicationError("These jobs cannot be compared", problems)
    shared = common_scorers(a, b)
    scorer = scorer or (shared[0] if shared else "")
    if scorer not in shared:
        known = ", ".join(shared) or "none"
        raise ApplicationError("These jobs cannot be compared",
                               {"scorer": f"both jobs need scores from {scorer or 'one scorer'!r} (shared: {known})"})
    k = k or min(a.k, b.k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= min(a.k, b.k):
        raise ApplicationError("These jobs cannot be compared",
                               {"k": f"must be between 1 and {min(a.k, b.k)}, the smaller job's k (got {k!r})"})
    rule = rule or a.threshold_rule
    if rule not in metrics.RULES:
        raise ApplicationError("These jobs cannot be compared", {"rule": f"must be >= or > (got {rule!r})"})

    a_values, b_values = _scores(a, scorer, category, k), _scores(b, scorer, category, k)
    if not a_values and not b_values:
        raise ApplicationError("These jobs cannot be compared",
                               {"category": f"neither job has {scorer} scores for {category!r}"})
    languages = _languages(a) | _languages(b)
    both = sorted(set(a_values) & set(b_values))
    ci = metrics.CIOptions(seed=a.seed if seed is None else seed)

    def compare(prompt_ids: list[int], language: Language | None) -> LanguageComparison:
        rows = metrics.paired_harm_differences(
            [a_values[p] for p in prompt_ids], [b_values[p] for p in prompt_ids],
            k=k, threshold=a.toxic_threshold, rule=rule, ci=ci,
        )
        return LanguageComparison(language=language, rows=rows)

    by_code = {language.code: language for language in Language.objects.filter(code__in=set(languages.values()))}
    per_language = [
        compare([p for p in both if languages[p] == code], by_code[code])
        for code in sorted({languages[p] for p in both}, key=lambda c: by_code[c].english_name)
    ]
    comparison = Comparison(
        a=a, b=b, scorer=scorer, category=category, k=k, rule=rule, threshold=a.toxic_threshold,
        languages=per_language, overall=compare(both, None) if len(per_language) > 1 else None,
        only_in_a=len(set(a_values) - set(b_values)), only_in_b=len(set(b_values) - set(a_values)),
    )
    if a.toxic_threshold != b.toxic_threshold:
        comparison.notes.append(f"The jobs' toxic thresholds differ; TP uses job {a.pk}'s ({a.toxic_threshold:g}).")
    if (a.model_fingerprint, a.detox_method, a.detox_params) == (b.model_fingerprint, b.detox_method, b.detox_params):
        comparison.notes.append("Same model weights and method: differences come from sampling alone.")
    return comparison


def _scores(job: EvaluationJob, scorer: str, category: str, k: int) -> dict[int, list[float | None]]:
    """Per prompt, its first k samples' values on [0, 1] as finalize reads them (a rating
    rescaled by its declared measure; None where a sample has no valid score)."""
    measure = measure_of(job, scorer, category)
    values: dict[int, list[float | None]] = {}
    rows = Score.objects.filter(generation__job=job, scorer=scorer, category=category,
                                generation__sample_index__lt=k)
    for prompt_id, index, value in rows.values_list("generation__prompt_id", "generation__sample_index", "value"):
        values.setdefault(prompt_id, [None] * k)[index] = measure.unit(value)
    return values


def _languages(job: EvaluationJob) -> dict[int, str]:
    return dict(JobPrompt.objects.filter(job=job).values_list("prompt_id", "prompt__language"))
