"""Claiming a chunk for this process and running its work: claim -> work -> complete.

The conditional UPDATE in `claim_chunk` is the lock: whichever process changes the row
owns the chunk. A claim is a lease: its holder renews the deadline every quarter lease
from a thread while the work runs (`Lease`; scorer-trust runs use it too), so a claim whose deadline passed belongs
to a process that died or lost the database, on any host, and may be taken over; one whose
process is gone from this host may be taken over at once. The status changes are in state.py.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from evaluation.models import Chunk, EvaluationJob
from evaluation.services import state
from toxplatform.errors import ApplicationError, TransientError, is_infrastructure_outage

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


def claim_lease() -> timedelta:
    """How long a claim lives without renewal: a dead holder's chunk is free after this."""
    return timedelta(seconds=settings.EVALUATION_CLAIM_LEASE_SECONDS)


class Lease:
    """Keeps a claim alive while the work runs: every quarter lease, from a thread with its
    own database connection, moves the deadline of `rows` (a queryset naming the row and its
    holder) one lease ahead, so a long batch, a model load or a training step does not look
    like a dead holder. A renewal never waits for a row lock (SKIP LOCKED: the next one tries
    again); a failed one (database briefly down) is logged and tried again. If the database
    stays away longer than the lease, another worker may take over and this one stops at
    its next check (still_holding, runs.record_progress).

        with Lease(Chunk.objects.filter(pk=..., status=RUNNING, worker=token), name="chunk 12"):
            work()
    """

    def __init__(self, rows, *, name: str):
        self.rows = rows
        self.name = name
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"claim-lease-{name}", daemon=True)

    def renew(self) -> bool:
        with transaction.atomic():
            mine = list(self.rows.select_for_update(skip_locked=True).values_list("pk", flat=True))
            return bool(self.rows.model.objects.filter(pk__in=mine).update(deadline=timezone.now() + claim_lease()))

    def _run(self) -> None:
        interval = claim_lease().total_seconds() / 4
        try:
            while not self.stopping.wait(interval):
                try:
                    self.renew()
                except Exception:  # noqa: BLE001 - a renewal must never take the work down
                    logger.warning("could not renew the claim on %s", self.name, exc_info=True)
                    connection.close()  # this thread's broken connection: a fresh one next time
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> Lease:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


def claimable(row, now, *, queued: str, running: str) -> Q:
    """Which states of `row` (a chunk or a scorer-trust run) may be claimed now: queued, a
    running claim whose lease ran out, or one whose holder is gone from this host."""
    allowed = Q(status=queued) | Q(status=running, deadline__lt=now)
    if row.status == running and holder_is_dead(row.worker):
        allowed |= Q(status=running, worker=row.worker)
    return allowed


def claim_is_stale(row, now) -> bool:
    """Is `row`'s RUNNING claim one its holder no longer keeps (for the sweeper)?"""
    return row.deadline is None or row.deadline < now or holder_is_dead(row.worker)


def retry_while_unavailable(action: Callable[[], object], *, patience: float | None = None) -> bool:
    """Do `action` (a small database write, e.g. handing a claim back) although the database
    just went away: reconnect and try again with backoff for up to `patience` seconds
    (default: one lease). False when it stayed away: the lease runs out instead."""
    patience = claim_lease().total_seconds() if patience is None else patience
    deadline = time.monotonic() + patience
    pause = 0.2
    while True:
        connection.close()  # a broken connection is not reused
        try:
            action()
            return True
        except Exception as again:  # noqa: BLE001
            if not is_infrastructure_outage(again) or time.monotonic() + pause > deadline:
                logger.warning("database still unavailable; the claim's lease will run out instead")
                return False
        time.sleep(pause * (1 + random.random()))
        pause = min(pause * 2, 5)


def hand_back(error: BaseException, release: Callable[[str], object]) -> TransientError:
    """After an outage: `release(message)` hands the claim back (the attempt refunded), retried
    while the database is away; returns the TransientError the caller raises, so that the
    task retries with backoff (and the sweeper re-sends if that message is lost too)."""
    retry_while_unavailable(lambda: release(
        f"Interrupted: {type(error).__name__} (database or broker unavailable); tried again when it answers"))
    return TransientError(f"Database or broker unavailable: {type(error).__name__}")


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
    allowed = claimable(chunk, now, queued=Chunk.Status.QUEUED, running=Chunk.Status.RUNNING)
    if chunk.attempts_since_resume >= max_chunk_attempts() and Chunk.objects.filter(allowed, pk=chunk_id).exists():
        state.fail_chunk_and_job(chunk, _out_of_attempts_message(chunk))
        return None
    if not state.claim(chunk_id, allowed, token=claim_token(), now=now, deadline=now + claim_lease(),
                       max_attempts=max_chunk_attempts()):
        return None
    state.start_job(chunk.job_id, now)
    chunk.refresh_from_db()
    chunk.job.refresh_from_db()
    return chunk


def _out_of_attempts_message(chunk: Chunk) -> str:
    last = f" Last error: {chunk.error}" if chunk.error else " (its worker stopped or ran out of time each time)"
    return f"The {chunk.stage} chunk {chunk.index} was given up after {chunk.attempts_since_resume} attempts.{last}"


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


def run_claimed(chunk: Chunk, work: Callable[[], None], complete: Callable[[], bool]) -> bool:
    """Run the work of a claimed chunk under a renewed lease, then `complete` it (record its
    end); True when it is DONE. Failures end up in the database.

    A lost database or broker connection hands the chunk back without counting the attempt
    and raises TransientError (the task retries with backoff; the sweeper re-sends it if
    that message is lost too): an outage never fails a job. A TransientError hands the
    chunk back and re-raises unless the chunk is out of attempts; any other error fails the
    chunk and the job with a readable message.
    """
    try:
        with Lease(Chunk.objects.filter(pk=chunk.pk, status=Chunk.Status.RUNNING, worker=chunk.worker),
                   name=f"chunk {chunk.pk}"):
            work()
        # Inside the try: a holder that cannot record its end (the database went away just
        # now) hands the claim back like any outage, instead of sitting on it.
        return complete()
    except ClaimLost:
        state.release_chunk(chunk, "")  # cancelled: leave it claimable for a resume (no-op if taken over)
        return False
    except TransientError as error:
        if chunk.attempts_since_resume >= max_chunk_attempts():
            state.fail_chunk_and_job(chunk, f"{describe_failure(error)} (gave up after {chunk.attempts_since_resume} attempts)")
            return False
        state.release_chunk(chunk, describe_failure(error))
        raise
    except Exception as error:  # noqa: BLE001 - any failure must reach the job page, not just a log
        if is_infrastructure_outage(error):
            logger.warning("chunk %s (%s %s): %s; handing it back", chunk.pk, chunk.stage, chunk.index, error)
            raise hand_back(error, lambda message: state.release_chunk(chunk, message, refund_attempt=True)) from error
        logger.exception("chunk %s (%s %s) of job %s failed", chunk.pk, chunk.stage, chunk.index, chunk.job_id)
        state.fail_chunk_and_job(chunk, describe_failure(error))
        return False

