"""Running a training run or a scorer evaluation: claim, progress, cancel, end.

As jobs do it: state lives in the database; a run is claimed with a conditional UPDATE
(queued -> running), so a task delivered twice runs once; a running claim whose process is
gone from this host can be taken over (a worker killed mid-run: Celery's acks_late delivers
the task again). Cancel is a flag checked between batches.
"""
from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from evaluation.scorer_trust.models import RunStatus
from evaluation.services.claims import (  # one notion of who holds a claim
    claim_token,
    holder_is_dead,
)
from toxplatform.errors import ApplicationError


class Cancelled(Exception):
    """The run's cancel flag was set; it ends CANCELLED."""


def claim(model, pk: int):
    """The row, now RUNNING for this process; None when it is finished or held by a live process."""
    row = model.objects.filter(pk=pk).first()
    if row is None or row.is_terminal:
        return None
    token = claim_token()
    allowed = Q(status=RunStatus.QUEUED)
    if row.status == RunStatus.RUNNING and holder_is_dead(row.worker):
        allowed |= Q(status=RunStatus.RUNNING, worker=row.worker)
    won = model.objects.filter(Q(pk=pk) & allowed).update(
        status=RunStatus.RUNNING, worker=token, started_at=timezone.now(), error=""
    )
    if not won:
        return None
    row.refresh_from_db()
    return row


def progress(row, stage: str, done: int = 0, total: int = 0) -> None:
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
