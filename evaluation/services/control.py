"""Control of whole jobs: cancel, resume, the periodic resume of stale claims, the inline run."""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial

from django.db import connection, transaction
from django.utils import timezone

from evaluation.models import Chunk, EvaluationJob
from evaluation.services import state
from evaluation.services.claims import claim_is_stale, max_chunk_attempts
from evaluation.services.dispatch import overdue, send_finalize, send_generate, send_score
from evaluation.services.finalize import finalize_job
from evaluation.services.stages import run_chunk
from toxplatform.errors import ApplicationError, TransientError, is_infrastructure_outage

Status = EvaluationJob.Status
# (done, total, stage) -> None; stage is "generate", "score" or "finalize".
ProgressCallback = Callable[[int, int, str], None]


def cancel_job(job: EvaluationJob) -> EvaluationJob:
    """Stop a job: running chunks stop at their next batch, queued ones are skipped."""
    stopped = state.cancel_job(job.pk)
    job.refresh_from_db()
    if not stopped:
        raise ApplicationError(f"Job {job.pk} has already finished", {"status": job.status})
    return job


def resume_job(job: EvaluationJob, *, send: bool = True, by: str = "") -> list[int]:
    """Queue again everything a failure, a cancel, a dead worker or a lost message left undone.

    What a person asks for (job page, API, `manage.py resume_job`). Re-opens a FAILED or
    CANCELLED job with fresh attempts for its unfinished chunks, keeping its history: the
    count of attempts goes on, the first start stays, and `job.history` notes the resume
    with the status and error it cleared. Frees RUNNING claims that went stale; re-sends
    every QUEUED chunk (a duplicate of a message still in the broker is harmless: the claim
    decides). Returns the chunk ids sent.
    """
    with transaction.atomic():
        job = EvaluationJob.objects.select_for_update().get(pk=job.pk)
        if job.status == Status.DONE:
            raise ApplicationError(f"Job {job.pk} is already done")
        before = {"from": job.status, "error": job.error[:500]}
        state.reopen_job(job)  # FAILED, CANCELLED or PENDING: queued again with fresh attempts
        freed = _release_stale_claims(job)
        queued = list(job.chunks.filter(status=Chunk.Status.QUEUED))
        finalize = not job.chunks.exclude(status=Chunk.Status.DONE).exists()
        _note(job, "resumed", by=by, freed=len(freed), **before)
    return _resend(job, queued, finalize=finalize, send=send)


def resume_stale_jobs(now=None) -> int:
    """The sweeper (beat runs it every EVALUATION_SWEEP_SECONDS): for every unfinished job,
    free claims whose lease ran out or whose holder is gone from this host, send again every
    ready QUEUED chunk whose message is overdue (lost with a broker restart, never sent
    because the broker was down, or its worker died), and send finalize when every chunk
    is done and the last finalize message is overdue. Returns how many chunks were sent.
    """
    now = now or timezone.now()
    sent = 0
    for job in EvaluationJob.objects.filter(status__in=(*EvaluationJob.ACTIVE, Status.FINALIZING)):
        with transaction.atomic():
            freed = _release_stale_claims(job)
            late = [chunk for chunk in job.chunks.filter(status=Chunk.Status.QUEUED).exclude(pk__in=[c.pk for c in freed])
                    if overdue(chunk.sent_at, chunk.sends, now)]
            finalize = (not job.chunks.exclude(status=Chunk.Status.DONE).exists()
                        and overdue(job.finalize_sent_at, 1, now))
            resent = _resend(job, freed + late, finalize=finalize, send=True)
            if freed or resent or finalize:
                _note(job, "recovered", freed=len(freed), resent=len(resent), finalize=finalize)
        sent += len(resent)
    return sent


HISTORY_LENGTH = 50


def _note(job: EvaluationJob, event: str, **details) -> None:
    """Append to the job's history (kept short: the last HISTORY_LENGTH events)."""
    row = EvaluationJob.objects.select_for_update().only("history").get(pk=job.pk)
    history = [*(row.history or []), {"at": timezone.now().isoformat(), "event": event, **details}]
    EvaluationJob.objects.filter(pk=job.pk).update(history=history[-HISTORY_LENGTH:])


def _release_stale_claims(job: EvaluationJob) -> list[Chunk]:
    """RUNNING chunks whose holder is dead or past its deadline go back to QUEUED."""
    now = timezone.now()
    freed = []
    for chunk in job.chunks.filter(status=Chunk.Status.RUNNING):
        if claim_is_stale(chunk, now) and state.free_stale_chunk(chunk):
            chunk.status = Chunk.Status.QUEUED
            freed.append(chunk)
    return freed


def _resend(job: EvaluationJob, chunks: list[Chunk], *, finalize: bool, send: bool) -> list[int]:
    """Send generate chunks, and score chunks whose generation is done (the others are sent
    by their generate chunk); finalize when every chunk is done."""
    generated = set(
        job.chunks.filter(stage=Chunk.Stage.GENERATE, status=Chunk.Status.DONE).values_list("index", flat=True)
    )
    generate_ids = [c.pk for c in chunks if c.stage == Chunk.Stage.GENERATE]
    score_ids = [c.pk for c in chunks if c.stage == Chunk.Stage.SCORE and c.index in generated]
    if send:
        transaction.on_commit(lambda: send_generate(generate_ids))
        transaction.on_commit(lambda: send_score(score_ids))
        if finalize:
            transaction.on_commit(lambda: send_finalize(job.pk))
    return generate_ids + score_ids


def run_job_inline(job: EvaluationJob, *, progress: ProgressCallback | None = None) -> EvaluationJob:
    """Run a job in this process without a broker (CLI `manage.py evaluate`, the demo).

    The same claims and services as the workers: generate every chunk, score every chunk,
    finalize. progress(done, total, stage) is called after each batch, with counts of
    prompts (stage "generate" / "score") . Transient errors are retried here with backoff.
    Returns the job as it ended: DONE, FAILED (job.error says why), CANCELLED, or still
    RUNNING if another process holds some of its chunks.
    """
    state.queue_job(job.pk)  # a PENDING job (created with enqueue=False) starts here
    job.refresh_from_db()
    total = job.total_prompts
    done = {Chunk.Stage.GENERATE: job.generated_prompts, Chunk.Stage.SCORE: job.scored_prompts}

    def on_batch(stage: str, prompts: int) -> None:
        if stage == Chunk.Stage.SCORE:
            return  # score batches are generations, not prompts: counted per chunk below
        done[stage] = min(total, done[stage] + prompts)
        if progress:
            progress(done[stage], total, stage)

    for stage in (Chunk.Stage.GENERATE, Chunk.Stage.SCORE):
        for chunk_id in job.chunks.filter(stage=stage).order_by("index").values_list("id", flat=True):
            if not _run_with_retries(partial(run_chunk, chunk_id, on_batch=on_batch)):
                job.refresh_from_db()
                if job.is_terminal:
                    return job
                continue
            if stage == Chunk.Stage.SCORE:
                done[stage] = EvaluationJob.objects.values_list("scored_prompts", flat=True).get(pk=job.pk)
                if progress:
                    progress(done[stage], total, stage)
    if finalize_job(job.pk) and progress:
        progress(total, total, "finalize")
    job.refresh_from_db()
    return job


def _run_with_retries(step: Callable[[], bool]) -> bool:
    for attempt in range(max_chunk_attempts()):
        try:
            return step()
        except Exception as error:
            if is_infrastructure_outage(error):
                connection.close()  # reconnect on the next try
            elif not isinstance(error, TransientError):
                raise
            time.sleep(min(30, 0.5 * 2**attempt * (1 + random.random())))
    return False
