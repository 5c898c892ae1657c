"""Every status change of a job and of its chunks, and nothing else.

The allowed transitions, at a glance:

    job    PENDING ──queue──> QUEUED ──first claim──> RUNNING ──last score chunk──> FINALIZING ──> DONE
              │                 │                        │                              │
              └────── cancel / fail (any unfinished) ──> CANCELLED / FAILED <───────────┘
                                  ^                            │
                                  └──────── reopen (resume) ───┘   (FAILED, CANCELLED, PENDING -> QUEUED)

    chunk  QUEUED ──claim──> RUNNING ──complete──> DONE
              ^                 │  └──fail──> FAILED ──reopen──> QUEUED
              └──release/stale──┘

Each function is one conditional UPDATE whose WHERE clause holds the states it may leave,
so a transition that is not in the tables below cannot happen, and two processes racing
for the same transition cannot both win (the count of changed rows says who did).
"""
from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from evaluation.models import Chunk, EvaluationJob

Job = EvaluationJob.Status
Part = Chunk.Status

JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    Job.PENDING: frozenset({Job.QUEUED, Job.FAILED, Job.CANCELLED}),
    Job.QUEUED: frozenset({Job.RUNNING, Job.FINALIZING, Job.FAILED, Job.CANCELLED}),
    Job.RUNNING: frozenset({Job.FINALIZING, Job.FAILED, Job.CANCELLED}),
    Job.FINALIZING: frozenset({Job.DONE, Job.FAILED, Job.CANCELLED}),
    Job.FAILED: frozenset({Job.QUEUED}),
    Job.CANCELLED: frozenset({Job.QUEUED}),
    Job.DONE: frozenset(),
}
CHUNK_TRANSITIONS: dict[str, frozenset[str]] = {
    Part.QUEUED: frozenset({Part.RUNNING, Part.FAILED}),
    Part.RUNNING: frozenset({Part.DONE, Part.QUEUED, Part.FAILED}),
    Part.FAILED: frozenset({Part.QUEUED}),
    Part.DONE: frozenset(),
}


def _sources(table: dict[str, frozenset[str]], to: str, wanted: tuple[str, ...] | None = None) -> list[str]:
    """The states `to` may be reached from (limited to `wanted`); a wanted state that the
    table does not allow is a programming error, caught on first use."""
    allowed = [state for state, targets in table.items() if to in targets]
    if wanted is None:
        return allowed
    bad = [state for state in wanted if state not in allowed]
    if bad:
        raise ValueError(f"transition {bad} -> {to} is not in the state table")
    return list(wanted)


def _job(job_id: int, to: str, *, wanted: tuple[str, ...] | None = None, **fields) -> bool:
    rows = EvaluationJob.objects.filter(pk=job_id, status__in=_sources(JOB_TRANSITIONS, to, wanted))
    return bool(rows.update(status=to, **fields))


# --- jobs ------------------------------------------------------------------------------------


def queue_job(job_id: int) -> bool:
    """PENDING -> QUEUED: planned and about to be sent (or run inline)."""
    return _job(job_id, Job.QUEUED, wanted=(Job.PENDING,))


def start_job(job_id: int, now: datetime) -> bool:
    """QUEUED -> RUNNING when its first chunk is claimed (after a resume too: the first
    start is kept)."""
    return _job(job_id, Job.RUNNING, wanted=(Job.QUEUED,), started_at=Coalesce(F("started_at"), now))


def begin_finalizing(job_id: int) -> bool:
    """QUEUED / RUNNING -> FINALIZING: every chunk is scored; metrics are being computed."""
    return _job(job_id, Job.FINALIZING, wanted=tuple(EvaluationJob.ACTIVE))


def finish_job(job: EvaluationJob) -> bool:
    """FINALIZING (or still ACTIVE) -> DONE, with the counters at their totals. Called under
    the row lock finalize takes, so `job` is current."""
    return _job(
        job.pk, Job.DONE, wanted=(Job.FINALIZING,), finished_at=timezone.now(),
        generated_prompts=F("total_prompts"), scored_prompts=F("total_prompts"),
    )


def fail_job(job_id: int, message: str) -> bool:
    """Any unfinished state -> FAILED with a message a user can read; a finished job is left alone."""
    return _job(job_id, Job.FAILED, error=message[:5000], finished_at=timezone.now())


def cancel_job(job_id: int) -> bool:
    """Any unfinished state -> CANCELLED; running chunks stop at their next batch."""
    return _job(job_id, Job.CANCELLED, cancel_requested=True, finished_at=timezone.now())


def reopen_job(job: EvaluationJob) -> bool:
    """FAILED / CANCELLED / PENDING -> QUEUED with fresh attempts for every unfinished chunk
    (the count of attempts goes on; the cap counts from here). A holder still running stops
    at its next batch: its claim is gone. Call inside a transaction holding the job's row lock."""
    if not _job(job.pk, Job.QUEUED, wanted=(Job.FAILED, Job.CANCELLED, Job.PENDING),
                cancel_requested=False, error="", finished_at=None):
        return False
    Chunk.objects.filter(job=job).exclude(status=Part.DONE).update(
        status=Part.QUEUED, attempts_before_resume=F("attempts"), error="", finished_at=None, deadline=None,
        worker="", sent_at=None, sends=0,
    )
    job.refresh_from_db(fields=["status", "cancel_requested", "error", "finished_at"])
    return True


# --- chunks ----------------------------------------------------------------------------------


def claim(chunk_id: int, claimable: Q, *, token: str, now: datetime, deadline: datetime, max_attempts: int) -> bool:
    """QUEUED (or a stale RUNNING, as `claimable` says) -> RUNNING for the process `token`."""
    won = Chunk.objects.filter(claimable, pk=chunk_id, attempts__lt=F("attempts_before_resume") + max_attempts).update(
        status=Part.RUNNING, claimed_at=now, deadline=deadline, worker=token, attempts=F("attempts") + 1,
    )
    return bool(won)


def complete_chunk(chunk: Chunk, **job_counters) -> bool:
    """RUNNING (our claim) -> DONE, with job counters bumped in the same transaction; False if
    the claim was lost meanwhile."""
    with transaction.atomic():
        done = Chunk.objects.filter(pk=chunk.pk, status=Part.RUNNING, worker=chunk.worker).update(
            status=Part.DONE, finished_at=timezone.now(), deadline=None, error=""
        )
        if done and job_counters:
            EvaluationJob.objects.filter(pk=chunk.job_id).update(**job_counters)
    return bool(done)


def release_chunk(chunk: Chunk, error: str, *, refund_attempt: bool = False) -> bool:
    """RUNNING (our claim) -> QUEUED, so that a retry can claim it. `refund_attempt`: the
    attempt does not count (the database or the broker went away, not the work failing)."""
    fields = {"attempts": F("attempts") - 1} if refund_attempt else {}
    return bool(Chunk.objects.filter(pk=chunk.pk, status=Part.RUNNING, worker=chunk.worker).update(
        status=Part.QUEUED, deadline=None, error=error[:2000], **fields
    ))


def free_stale_chunk(chunk: Chunk) -> bool:
    """RUNNING (a dead or late holder's claim) -> QUEUED."""
    return bool(Chunk.objects.filter(pk=chunk.pk, status=Part.RUNNING, worker=chunk.worker).update(
        status=Part.QUEUED, deadline=None
    ))


def fail_chunk_and_job(chunk: Chunk, message: str) -> None:
    """QUEUED / RUNNING -> FAILED, and its job FAILED with the same message."""
    with transaction.atomic():
        Chunk.objects.filter(pk=chunk.pk, status__in=_sources(CHUNK_TRANSITIONS, Part.FAILED)).update(
            status=Part.FAILED, error=message[:2000], finished_at=timezone.now(), deadline=None
        )
        fail_job(chunk.job_id, message)
