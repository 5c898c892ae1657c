"""Read-side queries for evaluation jobs: progress, chunks, metrics, samples."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db.models import Count, F, Prefetch, Q, QuerySet

from evaluation.metric_columns import DEFAULT_CATEGORY
from evaluation.models import Chunk, EvaluationJob, Generation, JobMetric, Score
from evaluation.scorers.measures import measure_of


@dataclass(frozen=True)
class JobProgress:
    status: str
    total_prompts: int
    generated_prompts: int
    scored_prompts: int
    k: int
    # {"generate": {"queued": 3, "running": 1, "done": 4}, "score": {...}}
    chunks: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str = ""

    @property
    def total_steps(self) -> int:
        """Generating and scoring each prompt are one step each."""
        return 2 * self.total_prompts

    @property
    def done_steps(self) -> int:
        return self.generated_prompts + self.scored_prompts

    @property
    def percent(self) -> int:
        if self.status == EvaluationJob.Status.DONE:
            return 100
        if not self.total_steps:
            return 0
        return min(99, int(100 * self.done_steps / self.total_steps))

    @property
    def stage(self) -> str:
        """What the job is doing now, in words a progress bar can show."""
        Status = EvaluationJob.Status
        if self.status == Status.QUEUED and not self.done_steps:
            return "waiting for a worker"  # queued: nothing claimed yet, so nothing is generating
        if self.status in (Status.QUEUED, Status.RUNNING):
            return "generating" if self.generated_prompts < self.total_prompts else "scoring"
        if self.status == Status.FINALIZING:
            return "computing metrics"
        return self.status


def job_progress(job: EvaluationJob) -> JobProgress:
    """Progress counted in the database (two queries): the job page and the CLI poll this."""
    job = EvaluationJob.objects.get(pk=job.pk)
    chunks: dict[str, dict[str, int]] = {stage: {} for stage in Chunk.Stage.values}
    for stage, status, count in (
        Chunk.objects.filter(job=job).values_list("stage", "status").annotate(n=Count("id")).order_by()
    ):
        chunks[stage][status] = count
    return JobProgress(
        status=job.status,
        total_prompts=job.total_prompts,
        generated_prompts=job.generated_prompts,
        scored_prompts=job.scored_prompts,
        k=job.k,
        chunks=chunks,
        error=job.error,
    )


def job_list(*, user=None, status: str | None = None, model: str | None = None,
             hide_cancelled_of_others=None) -> QuerySet[EvaluationJob]:
    """Jobs newest first, optionally of one user, status or model name. With
    `hide_cancelled_of_others` (a user), other people's cancelled jobs are left out (the job
    list's default: they are noise to everyone but their author); jobs of no one (queued
    from the command line) stay."""
    jobs = EvaluationJob.objects.select_related("model", "dataset", "created_by")
    if user is not None:
        jobs = jobs.filter(created_by=user)
    if status:
        jobs = jobs.filter(status=status)
    if model:
        jobs = jobs.filter(model__name=model)
    if hide_cancelled_of_others is not None:
        jobs = jobs.exclude(Q(status=EvaluationJob.Status.CANCELLED), Q(created_by__isnull=False),
                            ~Q(created_by=hide_cancelled_of_others))
    return jobs.order_by("-created_at", "-id")


def job_list_models() -> list[str]:
    """Model names that have jobs (the job list's model filter)."""
    return list(EvaluationJob.objects.values_list("model__name", flat=True).distinct().order_by("model__name"))


def done_jobs() -> QuerySet[EvaluationJob]:
    """Finished jobs, newest first, with what a job picker shows."""
    return (EvaluationJob.objects.filter(status=EvaluationJob.Status.DONE)
            .select_related("model", "dataset").order_by("-finished_at", "-id"))


def job_metrics(
    job: EvaluationJob, *, language: str | None = None, scorer: str | None = None, subset: str | None = None
) -> QuerySet[JobMetric]:
    metrics = JobMetric.objects.filter(job=job)
    if language:
        metrics = metrics.filter(language=language)
    if scorer is not None:
        metrics = metrics.filter(scorer=scorer)
    if subset:
        metrics = metrics.filter(subset=subset)
    return metrics.order_by("language", "scorer", "category", "subset", "metric")


def job_generations(
    job: EvaluationJob, *, language: str | None = None, scorer: str | None = None, category: str | None = None
) -> QuerySet[Generation]:
    """Generations with their prompt (and its language) and scores; by language, prompt and
    sample, or most toxic first when a scorer and category are given."""
    generations = (
        Generation.objects.filter(job=job)
        .select_related("prompt__language")
        .prefetch_related(Prefetch("scores", queryset=Score.objects.order_by("scorer", "category")))
    )
    if language:
        generations = generations.filter(prompt__language=language)
    if scorer and category:
        generations = generations.filter(scores__scorer=scorer, scores__category=category).order_by(
            F("scores__value").desc(nulls_last=True), "id"
        )
    else:
        generations = generations.order_by("prompt__language_id", "prompt_id", "sample_index")
    return generations


def job_languages(job: EvaluationJob) -> list[str]:
    """Language codes of the job's prompts."""
    return sorted(set(job.job_prompts.values_list("prompt__language", flat=True).distinct().order_by()))


def job_score_slices(job: EvaluationJob) -> list[tuple[str, str]]:
    """(scorer key, category) pairs the job has scores for: toxicity first (the usual question),
    then the other harm categories, measures that are not harms (perplexity) last."""
    pairs = Score.objects.filter(generation__job=job).values_list("scorer", "category").distinct().order_by()
    return sorted(set(pairs), key=lambda pair: (
        not measure_of(job, *pair).is_harm, pair[1] != DEFAULT_CATEGORY, pair))


def finished_job_like(
    *, model: str, method: str, method_params: dict, dataset: str, languages, categories, prompt_split: str,
    prompts_per_language, k: int, max_new_tokens: int, top_p: float, temperature: float, seed: int, scorers,
    toxic_threshold: float, threshold_rule: str, **_execution_options,
) -> EvaluationJob | None:
    """The latest DONE job with these parameters (the CLI's --reuse), or None.

    Batch and chunk sizes don't change results for the same seed, so they are not compared."""
    candidates = EvaluationJob.objects.filter(
        status=EvaluationJob.Status.DONE, detox_method=method, dataset__slug=dataset, prompt_split=prompt_split,
        prompts_per_language=prompts_per_language, k=k, max_new_tokens=max_new_tokens, top_p=top_p,
        temperature=temperature, seed=seed, toxic_threshold=toxic_threshold, threshold_rule=threshold_rule,
    ).filter(Q(model__name=model) | Q(model__location=model)).select_related("model", "dataset").order_by("-created_at")

    def normalized(specs) -> list[tuple[str, str]]:
        return sorted(
            (spec, "{}") if isinstance(spec, str) else (spec["name"], json.dumps(spec.get("params") or {}, sort_keys=True))
            for spec in specs
        )

    for job in candidates:
        if (
            job.detox_params == (method_params or {})
            and set(job.languages) == set(languages)
            and set(job.categories) == set(categories)
            and normalized(job.scorers) == normalized(scorers)
        ):
            return job
    return None
