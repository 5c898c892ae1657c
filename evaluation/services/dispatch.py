"""Sending the next step of a job to the broker: the only module here that talks to it.

Tasks are sent by name (toxplatform/queues.py), so this module never imports the tasks
module that calls back into the services.

A job's progress never depends on a message surviving: every send is recorded on the chunk
(`sent_at`, `sends`) or the job (`finalize_sent_at`), a send that fails (broker down) is
logged and left unrecorded, and the sweeper (control.resume_stale_jobs, run by beat) sends
again whatever is ready and overdue. Sending twice is harmless: the claim decides.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from evaluation.models import Chunk, EvaluationJob
from toxplatform import queues
from toxplatform.errors import is_infrastructure_outage

logger = logging.getLogger(__name__)


def send(task: str, *args) -> bool:
    """True when the broker took the message; False (logged) when it could not be reached."""
    try:
        current_app.send_task(task, args=args, queue=queues.ROUTES[task])
        return True
    except Exception as error:  # noqa: BLE001
        if not is_infrastructure_outage(error):
            raise
        logger.warning("could not send %s%s: %s; the sweeper sends it again", task, args, error)
        return False


def _send_chunks(task: str, chunk_ids: Iterable[int]) -> list[int]:
    sent = [chunk_id for chunk_id in chunk_ids if send(task, chunk_id)]
    if sent:
        record_send(Chunk.objects.filter(pk__in=sent))
    return sent


def send_generate(chunk_ids: Iterable[int]) -> list[int]:
    return _send_chunks(queues.GENERATE_CHUNK, chunk_ids)


def send_score(chunk_ids: Iterable[int]) -> list[int]:
    return _send_chunks(queues.SCORE_CHUNK, chunk_ids)


def send_finalize(job_id: int) -> bool:
    if not send(queues.FINALIZE_JOB, job_id):
        return False
    record_send(EvaluationJob.objects.filter(pk=job_id), finalize_sent_at=timezone.now())
    return True


def record_send(rows, **fields) -> None:
    """Note a send on the rows (default: their `sent_at` and `sends`). The message is out
    already: if the database is away now, the note is lost and the sweeper sends once more,
    which is harmless."""
    fields = fields or {"sent_at": timezone.now(), "sends": F("sends") + 1}
    try:
        rows.update(**fields)
    except Exception as error:  # noqa: BLE001
        if not is_infrastructure_outage(error):
            raise
        logger.warning("could not record a send: %s", error)


def resend_after(sends: int) -> timedelta:
    """How long a sent message may go unanswered before it is sent again: the setting, then
    doubling with each send (work waiting behind a long queue is not sent over and over)."""
    base = settings.EVALUATION_RESEND_AFTER_SECONDS
    return timedelta(seconds=base * 2 ** min(max(sends - 1, 0), 6))


def overdue(sent_at, sends: int, now) -> bool:
    """Should the sweeper send this again? Never sent (or the send failed), or unanswered
    for longer than resend_after."""
    return sent_at is None or sent_at < now - resend_after(sends)


def all_scored(job_id: int) -> bool:
    return not Chunk.objects.filter(job_id=job_id, stage=Chunk.Stage.SCORE).exclude(status=Chunk.Status.DONE).exists()


def follow_up(chunk_id: int) -> None:
    """Queue what follows a DONE chunk: its score chunk after generation, finalize after the
    last score chunk. Also right when a redelivered message finds its chunk already DONE
    (the worker may have died between finishing and queueing): sending twice is harmless,
    the claim decides."""
    chunk = Chunk.objects.select_related("job").filter(pk=chunk_id, status=Chunk.Status.DONE).first()
    if chunk is None or chunk.job.status not in EvaluationJob.ACTIVE:
        return
    if chunk.stage == Chunk.Stage.GENERATE:
        score_ids = list(Chunk.objects.filter(
            job_id=chunk.job_id, stage=Chunk.Stage.SCORE, index=chunk.index, status=Chunk.Status.QUEUED
        ).values_list("id", flat=True))
        if score_ids:
            transaction.on_commit(lambda: send_score(score_ids))
    elif all_scored(chunk.job_id):
        transaction.on_commit(lambda: send_finalize(chunk.job_id))
