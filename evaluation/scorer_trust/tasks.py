"""Celery tasks of scorer trust: thin wrappers that take primary keys and call services.

Both are idempotent (a run is claimed in the database; a second delivery finds it running
or done and returns), so they are acks_late + reject_on_worker_lost like the job tasks; the
sweeper (beat) queues again a run whose worker died and sends again a lost message (runs.py).
They run on the default queue (CPU work: embedding, fitting, scoring prompts). Training all
28 RTP-LX languages from a cold embedding cache takes longer than a job chunk, hence their
own time limits (below the broker's 4 h visibility timeout). Names: toxplatform/queues.py.
"""
from celery import shared_task

from evaluation.scorer_trust.scorer_evaluation import run_scorer_evaluation
from evaluation.scorer_trust.training import run_training
from toxplatform import queues
from toxplatform.errors import TransientError, infrastructure_outages

# Retried like the job tasks when the database or the broker went away (the run was handed
# back, not failed); if the retry is lost too, the sweeper sends the run again.
RUN_TASK = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True,
                autoretry_for=(TransientError, *infrastructure_outages()), retry_backoff=5,
                retry_backoff_max=300, retry_jitter=True, max_retries=10,
                soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300)


@shared_task(name=queues.TRAIN_SCORER, **RUN_TASK)
def train_scorer_task(run_id: int) -> None:
    run_training(run_id)


@shared_task(name=queues.EVALUATE_SCORER, **RUN_TASK)
def evaluate_scorer_task(evaluation_id: int) -> None:
    run_scorer_evaluation(evaluation_id)
