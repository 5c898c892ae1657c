"""Running a training run or a scorer evaluation: claim, progress, cancel, end, and the
sweep that recovers runs from dead workers and lost messages.

As jobs do it (evaluation/services/claims.py, docs/architecture.md "Faults"): state lives
in the database; a run is claimed with a conditional UPDATE (queued -> running), so a task
delivered twice runs once; the claim is a lease its holder renews while it works, so one
whose holder died on any host (deadline passed), or whose process is gone from this host,
is queued again by the sweeper; a lost database or broker connection hands the run back
instead of failing it; every send is recorded and an overdue one is sent again. Attempts
are capped like a chunk's. Cancel is a flag checked between batches.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from django.db.models import F
from django.utils import timezone

from evaluation.scorer_trust.models import RunStatus, ScorerEvaluation, TrainingRun
from evaluation.services.claims import (  # one notion of who holds a claim, and for how long
    Lease,
    claim_is_stale,
    claim_lease,
    claim_token,
    claimable,
    hand_back,
    max_chunk_attempts,
)
from evaluation.services.dispatch import overdue, record_send, send
from toxplatform import queues
from toxplatform.errors import ApplicationError, is_infrastructure_outage

logger = logging.getLogger(__name__)
# Each kind of run and the task that runs it.
TASKS: dict[type, str] = {TrainingRun: queues.TRAIN_SCORER, ScorerEvaluation: queues.EVALUATE_SCORER}


class Cancelled(Exception):
    """The run's cancel flag was set; it ends CANCELLED."""


def claim(model, pk: int):
    """The row, now RUNNING for this process; None when it is finished or held by a live
    process. A run out of attempts (its worker died each time) fails."""
    row = model.objects.filter(pk=pk).first()
    if row is None or row.is_terminal:
        return None
    now = timezone.now()
    allowed = claimable(row, now, queued=RunStatus.QUEUED, running=RunStatus.RUNNING)
    if row.attempts >= max_chunk_attempts() and model.objects.filter(allowed, pk=pk).exists():
        fail(row, ApplicationError(f"Given up after {row.attempts} attempts (its worker stopped or ran out "
                                   "of time each time)"))
        return None
    won = model.objects.filter(allowed, pk=pk).update(
        status=RunStatus.RUNNING, worker=claim_token(), started_at=now, error="",
        deadline=now + claim_lease(), attempts=F("attempts") + 1,
    )
    if not won:
        return None
    row.refresh_from_db()
    return row


def execute(model, pk: int, work: Callable, progress=None):
    """Claim the run `pk` and do `work(row, step)` under a renewed lease; the row as it
    ended (None if there is no such run). step(stage, done, total) records progress, calls
    `progress` (the CLI's bar) and raises Cancelled when asked to stop. A failure is
    recorded on the row; a lost database or broker connection hands the run back (the
    attempt not counted) and raises TransientError for the task to retry."""
    row = claim(model, pk)
    if row is None:
        return model.objects.filter(pk=pk).first()

    def step(stage, done=0, total=0):
        record_progress(row, stage, done, total)
        if progress:
            progress(stage, done, total)

    mine = model.objects.filter(pk=row.pk, status=RunStatus.RUNNING, worker=row.worker)
    try:
        with Lease(mine, name=f"{model.__name__} {pk}"):
            work(row, step)
    except Cancelled as error:
        fail(row, error)
    except Exception as error:  # recorded on the run (a soft time limit too)
        if is_infrastructure_outage(error):
            raise hand_back(error, lambda message: mine.update(
                status=RunStatus.QUEUED, deadline=None, attempts=F("attempts") - 1, error=message)) from error
        if not isinstance(error, ApplicationError):
            logger.exception("%s %s failed", model.__name__, pk)
        fail(row, error)
    except BaseException as error:  # interrupted: recorded, then passed on
        fail(row, error)
        raise
    row.refresh_from_db()
    return row


def send_run(row) -> bool:
    """Queue a run for a worker; the send is recorded (the sweeper sends an unrecorded one)."""
    if send(TASKS[type(row)], row.pk):
        record_send(type(row).objects.filter(pk=row.pk))
        return True
    return False


def resume_stale_runs(now=None) -> int:
    """The sweeper's part for runs: a RUNNING run whose lease ran out or whose holder is gone
    from this host is queued again, and every QUEUED run whose message is overdue is sent
    again. Returns how many were sent."""
    now = now or timezone.now()
    sent = 0
    for model in TASKS:
        for row in model.objects.filter(status=RunStatus.RUNNING):
            if claim_is_stale(row, now):
                model.objects.filter(pk=row.pk, status=RunStatus.RUNNING, worker=row.worker).update(
                    status=RunStatus.QUEUED, deadline=None, sent_at=None)
        for row in model.objects.filter(status=RunStatus.QUEUED):
            if overdue(row.sent_at, row.sends, now) and send_run(row):
                sent += 1
    return sent


def record_progress(row, stage: str, done: int = 0, total: int = 0) -> None:
    """Record progress; raises Cancelled when someone asked to cancel."""
    row.stage, row.done, row.total = stage, done, total
    type(row).objects.filter(pk=row.pk).update(stage=stage, done=done, total=total)
    if type(row).objects.filter(pk=row.pk, cancel_requested=True).exists():
        raise Cancelled()


def finish(row, **fields) -> None:
    fields.update(status=RunStatus.DONE, finished_at=timezone.now(), stage="done")
    type(row).objects.filter(pk=row.pk).update(**fields)
    for name, value in fields.items():
        setattr(row, name, value)


def fail(row, error: BaseException | str) -> None:
    if isinstance(error, Cancelled):
        status, message = RunStatus.CANCELLED, "cancelled"
    else:
        status = RunStatus.FAILED
        message = error.message if isinstance(error, ApplicationError) else str(error) or type(error).__name__
        if isinstance(error, ApplicationError) and error.extra:
            message = str(error)
    type(row).objects.filter(pk=row.pk).update(status=status, error=message[:5000], finished_at=timezone.now())
    row.status, row.error = status, message


def cancel(model, pk: int):
    """Ask a run to stop: a queued one ends at once, a running one at its next batch."""
    row = model.objects.filter(pk=pk).first()
    if row is None:
        raise ApplicationError(f"No such run: {pk}")
    if row.is_terminal:
        return row
    model.objects.filter(pk=pk).update(cancel_requested=True)
    model.objects.filter(pk=pk, status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED, error="cancelled", finished_at=timezone.now()
    )
    row.refresh_from_db()
    return row
