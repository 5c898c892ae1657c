"""Claiming a chunk for this process and running its work: claim -> work -> complete.

The conditional UPDATE in `claim_chunk` is the lock: whichever process changes the row
owns the chunk. A claim whose deadline passed, or whose process is gone from this host,
may be taken over. The status changes themselves are in state.py.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from evaluation.models import Chunk, EvaluationJob
from evaluation.services import state
from toxplatform.errors import ApplicationError, TransientError

logger = logging.getLogger(__name__)


class ClaimLost(Exception):
    """This process no longer holds the chunk (taken over, or the job was cancelled / failed)."""


def max_chunk_attempts() -> int:
    return getattr(settings, "EVALUATION_CHUNK_MAX_ATTEMPTS", 3)


def claim_token() -> str:
    """Who holds a claim: host and pid (to spot a dead holder on this host) plus a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def holder_is_dead(token: str) -> bool:
    """A claim made on this host by a process that no longer exists can be taken over at once."""
    try:
        host, pid, _ = token.rsplit(":", 2)
        pid = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed process nobody has reaped yet still answers kill(pid, 0) (Linux: state Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _claim_lease() -> timedelta:
    # No chunk task outlives its hard time limit, so a claim older than that is dead.
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)


def claim_chunk(chunk_id: int) -> Chunk | None:
    """Take the chunk for this process, or None when it is done, held by a live claim, or its job stopped.

    The conditional UPDATE is the lock: whichever process changes the row owns the chunk.
    A chunk out of attempts fails, and so does its job.
    """
    chunk = Chunk.objects.select_related("job").filter(pk=chunk_id).first()
    if chunk is None or chunk.status in (Chunk.Status.DONE, Chunk.Status.FAILED):
        return None
    if chunk.job.status not in EvaluationJob.ACTIVE or chunk.job.cancel_requested:
        return None
    now = timezone.now()
    claimable = Q(status=Chunk.Status.QUEUED) | Q(status=Chunk.Status.RUNNING, deadline__lt=now)
    if chunk.status == Chunk.Status.RUNNING and holder_is_dead(chunk.worker):
        claimable |= Q(status=Chunk.Status.RUNNING, worker=chunk.worker)
    if chunk.attempts >= max_chunk_attempts() and Chunk.objects.filter(claimable, pk=chunk_id).exists():
        state.fail_chunk_and_job(chunk, _out_of_attempts_message(chunk))
        return None
    if not state.claim(chunk_id, claimable, token=claim_token(), now=now, deadline=now + _claim_lease(),
                       max_attempts=max_chunk_attempts()):
        return None
    state.start_job(chunk.job_id, now)
    chunk.refresh_from_db()
    chunk.job.refresh_from_db()
    return chunk


def _out_of_attempts_message(chunk: Chunk) -> str:
    last = f" Last error: {chunk.error}" if chunk.error else " (its worker stopped or ran out of time each time)"
    return f"The {chunk.stage} chunk {chunk.index} was given up after {chunk.attempts} attempts.{last}"


def still_holding(chunk: Chunk) -> None:
    """Between batches: stop if the claim was taken over or the job was cancelled or failed."""
    row = Chunk.objects.filter(pk=chunk.pk).values("status", "worker", "job__status", "job__cancel_requested").first()
    if (
        row is None
        or row["status"] != Chunk.Status.RUNNING
        or row["worker"] != chunk.worker
        or row["job__cancel_requested"]
        or row["job__status"] not in EvaluationJob.ACTIVE
    ):
        raise ClaimLost


def describe_failure(error: BaseException) -> str:
    if isinstance(error, SoftTimeLimitExceeded):
        return (
            "The task ran past its time limit (CELERY_TASK_SOFT_TIME_LIMIT): "
            "use a smaller chunk_size or batch_size, or fewer samples (k)."
        )
    if isinstance(error, ApplicationError):
        return str(error)
    return f"Internal error: {type(error).__name__}: {error}"


def run_claimed(chunk: Chunk, work: Callable[[], None]) -> bool:
    """Run the work of a claimed chunk; True when it finished. Failures end up in the database.

    A TransientError hands the chunk back and re-raises (the task retries with backoff)
    unless the chunk is out of attempts; any other error fails the chunk and the job with
    a readable message.
    """
    try:
        work()
        return True
    except ClaimLost:
        state.release_chunk(chunk, "")  # cancelled: leave it claimable for a resume (no-op if taken over)
        return False
    except TransientError as error:
        if chunk.attempts >= max_chunk_attempts():
            state.fail_chunk_and_job(chunk, f"{describe_failure(error)} (gave up after {chunk.attempts} attempts)")
            return False
        state.release_chunk(chunk, describe_failure(error))
        raise
    except Exception as error:  # noqa: BLE001 - any failure must reach the job page, not just a log
        logger.exception("chunk %s (%s %s) of job %s failed", chunk.pk, chunk.stage, chunk.index, chunk.job_id)
        state.fail_chunk_and_job(chunk, describe_failure(error))
        return False
