"""Celery tasks of the evaluation pipeline: thin wrappers that take primary keys and call services.

Policy (see DESIGN.md "Evaluation pipeline"):
- acks_late + reject_on_worker_lost: a chunk whose worker died is delivered again; the
  claim in the database makes that harmless, and the attempt cap lives there too
  (Chunk.attempts);
- retries with backoff only for TransientError (timeouts, HTTP 429 / 5xx);
- JSON arguments only (primary keys);
- soft and hard time limits on every task: CELERY_TASK_SOFT_TIME_LIMIT and
  CELERY_TASK_TIME_LIMIT in settings (Celery puts the sender's values in each message;
  apply_async(soft_time_limit=...) overrides them per call). The service records a soft
  time limit as the chunk's failure;
- queues are chosen where the tasks are sent (services: generate -> "generate", score and
  finalize -> "score", see toxplatform/queues.py).
"""
from celery import shared_task

from evaluation import services

PIPELINE_TASK = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(services.TransientError,),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    # The database cap (services.max_chunk_attempts) ends a chunk first; this is a backstop.
    max_retries=10,
    ignore_result=True,
)


@shared_task(name="evaluation.generate_chunk", **PIPELINE_TASK)
def generate_chunk(chunk_id: int) -> None:
    services.run_generate_chunk(chunk_id)


@shared_task(name="evaluation.score_chunk", **PIPELINE_TASK)
def score_chunk(chunk_id: int) -> None:
    services.run_score_chunk(chunk_id)


@shared_task(name="evaluation.finalize_job", **PIPELINE_TASK)
def finalize_job(job_id: int) -> None:
    services.finalize_job(job_id)


@shared_task(name="evaluation.resume_stale_jobs", **PIPELINE_TASK)
def resume_stale_jobs() -> None:
    """For celery beat: re-send chunks whose message was lost or whose worker died."""
    services.resume_stale_jobs()


# Scorer trust: training runs and scorer evaluations (their own module).
from evaluation.scorer_trust.tasks import evaluate_scorer, train_scorer  # noqa: E402,F401
