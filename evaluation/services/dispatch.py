"""Sending the next step of a job to the broker: the only module here that talks to it.

Tasks are sent by name (toxplatform/queues.py), so this module never imports the tasks
module that calls back into the services.
"""
from __future__ import annotations

from collections.abc import Iterable

from celery import current_app
from django.db import transaction

from evaluation.models import Chunk, EvaluationJob
from toxplatform import queues


def _send(task: str, *args) -> None:
    current_app.send_task(task, args=args, queue=queues.ROUTES[task])


def send_generate(chunk_ids: Iterable[int]) -> None:
    for chunk_id in chunk_ids:
        _send(queues.GENERATE_CHUNK, chunk_id)


def send_score(chunk_ids: Iterable[int]) -> None:
    for chunk_id in chunk_ids:
        _send(queues.SCORE_CHUNK, chunk_id)


def send_finalize(job_id: int) -> None:
    _send(queues.FINALIZE_JOB, job_id)


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
