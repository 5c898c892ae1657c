"""Celery tasks of the evaluation pipeline: thin wrappers that take primary keys and call services.

Policy (see docs/architecture.md, "Pipeline"):
- acks_late + reject_on_worker_lost: a chunk whose worker died is delivered again; the
  claim in the database makes that harmless, and the attempt cap lives there too
  (Chunk.attempts);
- retries with backoff only for TransientError (timeouts, HTTP 429 / 5xx) and for a lost
  database or broker connection (infrastructure_outages: never the job's fault, never its
  failure); if the retry cannot be sent either, the sweeper (beat) sends the step again;
- JSON arguments only (primary keys);
- soft and hard time limits on every task: CELERY_TASK_SOFT_TIME_LIMIT and
  CELERY_TASK_TIME_LIMIT in settings (Celery puts the sender's values in each message;
  apply_async(soft_time_limit=...) overrides them per call). The service records a soft
  time limit as the chunk's failure;
- task names and their queues live in toxplatform/queues.py; services send tasks by those
  names and never import this module.
"""
import logging

from celery import shared_task

from evaluation import services
from evaluation.scorer_trust import runs
from toxplatform import queues
from toxplatform.errors import TransientError, infrastructure_outages

logger = logging.getLogger(__name__)

PIPELINE_TASK = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientError, *infrastructure_outages()),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    # The database cap (max_chunk_attempts) ends a chunk first; this is a backstop.
    max_retries=10,
    ignore_result=True,
)


@shared_task(name=queues.GENERATE_CHUNK, **PIPELINE_TASK)
def generate_chunk_task(chunk_id: int) -> None:
    services.process_chunk(chunk_id)


@shared_task(name=queues.SCORE_CHUNK, **PIPELINE_TASK)
def score_chunk_task(chunk_id: int) -> None:
    services.process_chunk(chunk_id)


@shared_task(name=queues.FINALIZE_JOB, **PIPELINE_TASK)
def finalize_job_task(job_id: int) -> None:
    services.finalize_job(job_id)


# Not retried: beat sends the next sweep in EVALUATION_SWEEP_SECONDS anyway, and a sweep
# that waited out an outage would only run beside the next one.
@shared_task(name=queues.RESUME_STALE_JOBS, ignore_result=True)
def resume_stale_jobs_task() -> None:
    """For celery beat: free claims of dead workers, re-send steps whose message is overdue
    (jobs' chunks and finalize, training runs and scorer evaluations)."""
    try:
        services.resume_stale_jobs()
        runs.resume_stale_runs()
    except infrastructure_outages() as error:
        logger.warning("sweep skipped, database or broker unavailable: %s", error)


# Scorer trust: training runs and scorer evaluations (their own module).
from evaluation.scorer_trust.tasks import evaluate_scorer_task, train_scorer_task  # noqa: E402,F401
