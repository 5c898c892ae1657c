"""A prepared detox method (aura) through a real Celery worker process on Redis and PostgreSQL."""
from __future__ import annotations

import pytest

from evaluation.models import DetoxArtifact, EvaluationJob
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import CeleryWorker, assert_complete, create_test_job, flush_broker, wait_until_finished

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def worker(django_db_setup, tmp_path):
    flush_broker()
    worker = CeleryWorker(log_path=tmp_path / "worker.log").start()
    yield worker
    worker.stop()
    flush_broker()


def test_an_aura_job_prepares_once_in_the_worker_and_runs_to_done(tmp_path, worker):
    model_dir = build_tiny_causal_lm(tmp_path / "llama", "llama")
    job = create_test_job(model_dir, per_language=4, method="aura", scorers=["lexicon"])
    job = wait_until_finished(job, worker)
    assert job.status == EvaluationJob.Status.DONE, job.error
    assert_complete(job, scores_per_generation=2)
    [artifact] = DetoxArtifact.objects.filter(method="aura")
    assert job.detox_notes["artifact"]["path"] == artifact.path
    assert job.detox_notes["artifact"]["data"]["toxic_texts"] == 4
    assert job.detox_notes["neurons_changed"] > 0
    assert worker.log().count("loading model tiny-llama with detox method aura") == 1
