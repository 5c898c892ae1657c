"""Celery app. Policy lives here, in one place (see docs/architecture.md)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")

app = Celery("toxplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Workers leave a heartbeat in the database (evaluation/workers.py): pages say when no worker
# consumes the queue a job waits on. Imported when the signal fires: Django is set up by then.
from celery.signals import worker_ready, worker_shutdown  # noqa: E402


@worker_ready.connect
def _start_heartbeat(sender, **kwargs):
    from evaluation import workers

    workers.on_worker_ready(sender)


@worker_shutdown.connect
def _stop_heartbeat(sender, **kwargs):
    from evaluation import workers

    workers.on_worker_shutdown(sender)
