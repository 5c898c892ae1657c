"""Planning a job: which prompts, in which chunks; queueing its first step."""
from __future__ import annotations

import hashlib

from django.db import transaction
from django.db.models import F

from evaluation.job_parameters import large_job_work, max_job_work
from evaluation.models import Chunk, EvaluationJob, JobPrompt
from evaluation.services import state
from evaluation.services.dispatch import send_generate
from toxplatform.corpus.models import Prompt
from toxplatform.errors import ApplicationError


def select_prompts(job: EvaluationJob) -> dict[str, list[int]]:
    """Prompt ids per language, in a seeded order.

    The order is a hash of (seed, transcreation group), so with a sample size the same
    groups are picked in every language that has them: languages stay comparable.
    A harm-category filter keeps prompts whose gold label in one of the categories is at
    or above the middle of the category's scale.
    """
    prompts = Prompt.objects.filter(dataset=job.dataset)
    if job.languages:
        prompts = prompts.filter(language__in=job.languages)
    if job.prompt_split == EvaluationJob.PromptSplit.TOXIC:
        prompts = prompts.filter(is_toxic=True)
    elif job.prompt_split == EvaluationJob.PromptSplit.NONTOXIC:
        prompts = prompts.filter(is_toxic=False)
    if job.categories:
        midpoint = (F("labels__scale_min") + F("labels__scale_max")) / 2.0
        prompts = prompts.filter(labels__category__in=job.categories, labels__value__gte=midpoint).distinct()

    by_language: dict[str, list[tuple[bytes, int]]] = {}
    for prompt_id, language, group_id, external_id in prompts.values_list("id", "language", "group_id", "external_id"):
        rank = hashlib.sha256(f"{job.seed}\x1f{group_id or external_id}".encode()).digest()
        by_language.setdefault(language, []).append((rank, prompt_id))
    selected = {}
    for language in sorted(by_language):
        ranked = [prompt_id for _, prompt_id in sorted(by_language[language])]
        selected[language] = ranked[: job.prompts_per_language] if job.prompts_per_language else ranked
    return selected


def plan_job(job: EvaluationJob, *, confirm_large: bool = True) -> None:
    """Write the job's prompts and its chunk rows (one generate and one score chunk per index).
    A job above JOB_CONFIRM_WORK needs `confirm_large` (the form's and the API's confirmation)."""
    selected = select_prompts(job)
    empty = [code for code in job.languages if not selected.get(code)]
    if empty or not selected:
        where = f" in {', '.join(map(repr, empty))}" if empty else ""
        raise ApplicationError(
            "Invalid evaluation job", {"prompts": f"no prompt{where} matches the split and harm categories chosen"}
        )

    ordered = [prompt_id for language in sorted(selected) for prompt_id in selected[language]]
    _check_size(job, len(ordered), confirm_large)
    JobPrompt.objects.bulk_create(
        (JobPrompt(job=job, prompt_id=prompt_id, chunk_index=position // job.chunk_size)
         for position, prompt_id in enumerate(ordered)),
        batch_size=5000,
    )
    chunk_count = (len(ordered) + job.chunk_size - 1) // job.chunk_size
    Chunk.objects.bulk_create(
        (Chunk(job=job, stage=stage, index=index) for index in range(chunk_count) for stage in Chunk.Stage.values),
        batch_size=5000,
    )
    job.total_prompts = len(ordered)
    job.save(update_fields=["total_prompts"])


def _check_size(job: EvaluationJob, prompts: int, confirm_large: bool) -> None:
    """A job's total work is bounded (settings.JOB_MAX_WORK), whatever each parameter allows;
    above JOB_CONFIRM_WORK it must be confirmed."""
    work, limit = prompts * job.k * job.max_new_tokens, max_job_work()
    if work <= limit and work > large_job_work() and not confirm_large:
        raise ApplicationError("Invalid evaluation job", {"confirm_large": (
            f"{prompts:,} prompts x k={job.k} x {job.max_new_tokens} new tokens = {work:,} tokens is a large job "
            f"(above {large_job_work():,}): confirm that you want to queue it"
        )})
    if work > limit:
        raise ApplicationError("Invalid evaluation job", {"size": (
            f"{prompts:,} prompts x k={job.k} x {job.max_new_tokens} new tokens = {work:,} tokens, more than "
            f"the {limit:,} one job may generate here: choose fewer prompts or languages, a smaller k, or fewer tokens"
        )})


def enqueue_job(job: EvaluationJob) -> None:
    """Mark the job QUEUED and, once the transaction commits, queue its generate chunks."""
    state.queue_job(job.pk)
    job.refresh_from_db(fields=["status"])
    chunk_ids = list(job.chunks.filter(stage=Chunk.Stage.GENERATE).values_list("id", flat=True))
    transaction.on_commit(lambda: send_generate(chunk_ids))
