"""Celery tasks of scorer trust: thin wrappers that take primary keys and call services.

Both are idempotent (a run is claimed in the database; a second delivery finds it running
or done and returns), so they are acks_late + reject_on_worker_lost like the job tasks.
They run on the default queue (CPU work: embedding, fitting, scoring prompts). Training all
28 RTP-LX languages from a cold embedding cache takes longer than a job chunk, hence its
own time limits (below the broker's 4 h visibility timeout).
"""
from celery import shared_task

from toxplatform import queues

RUN_TASK = dict(acks_late=True, reject_on_worker_lost=True, ignore_result=True, queue=queues.DEFAULT)


@shared_task(name="evaluation.train_scorer", soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300, **RUN_TASK)
def train_scorer(run_id: int) -> None:
    from evaluation.scorer_trust.training import run_training

    run_training(run_id)


@shared_task(name="evaluation.evaluate_scorer", soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300, **RUN_TASK)
def evaluate_scorer(evaluation_id: int) -> None:
    from evaluation.scorer_trust.scorer_evaluation import run_scorer_evaluation

    run_scorer_evaluation(evaluation_id)
