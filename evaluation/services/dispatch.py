"""Queueing what follows a finished chunk. The only module here that talks to the broker."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from evaluation.models import Chunk, EvaluationJob
from toxplatform import queues

def send_generate(chunk_ids: Iterable[int]) -> None:
    from evaluation import tasks

    for chunk_id in chunk_ids:
        tasks.generate_chunk.apply_async((chunk_id,), queue=queues.GENERATE)


def send_score(chunk_ids: Iterable[int]) -> None:
    from evaluation import tasks

    for chunk_id in chunk_ids:
        tasks.score_chunk.apply_async((chunk_id,), queue=queues.SCORE)


def send_finalize(job_id: int) -> None:
    from evaluation import tasks

    tasks.finalize_job.apply_async((job_id,), queue=queues.SCORE)


def queue_score_of(generate_chunk: Chunk) -> None:
    score_id = Chunk.objects.filter(
        job_id=generate_chunk.job_id, stage=Chunk.Stage.SCORE, index=generate_chunk.index
    ).values_list("id", flat=True).first()
    if score_id is not None:
        transaction.on_commit(lambda: send_score([score_id]))


def all_scored(job_id: int) -> bool:
    return not Chunk.objects.filter(job_id=job_id, stage=Chunk.Stage.SCORE).exclude(status=Chunk.Status.DONE).exists()


def redelivered(chunk_id: int, dispatch: bool) -> None:
    """A message for a chunk we could not claim: if the chunk is already DONE, make sure what
    follows it was queued (the worker may have died between finishing and queueing)."""
    if not dispatch:
        return
    chunk = Chunk.objects.select_related("job").filter(pk=chunk_id, status=Chunk.Status.DONE).first()
    if chunk is None or chunk.job.status not in EvaluationJob.ACTIVE:
        return
    if chunk.stage == Chunk.Stage.GENERATE:
        if Chunk.objects.filter(job_id=chunk.job_id, stage=Chunk.Stage.SCORE, index=chunk.index,
                                status=Chunk.Status.QUEUED).exists():
            queue_score_of(chunk)
    elif all_scored(chunk.job_id):
        transaction.on_commit(lambda: send_finalize(chunk.job_id))
