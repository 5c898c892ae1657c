"""Sending scorer-trust work to the broker by task name (toxplatform/queues.py), so the
services never import the tasks module that calls them."""
from celery import current_app

from toxplatform import queues


def _send(task: str, *args) -> None:
    current_app.send_task(task, args=args, queue=queues.ROUTES[task])


def send_training(run_id: int) -> None:
    _send(queues.TRAIN_SCORER, run_id)


def send_evaluation(evaluation_id: int) -> None:
    _send(queues.EVALUATE_SCORER, evaluation_id)
