"""Celery app. Policy lives here, in one place (see docs/architecture.md)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")

app = Celery("toxplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
