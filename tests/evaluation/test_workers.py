"""Worker heartbeats (evaluation/workers.py): a real Celery worker writes one on start and
marks it stopped on a warm shutdown; pages say when nothing consumes a queue a job waits on
(and since when, and the command that starts a worker); `/healthz?workers=1` counts them."""
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evaluation import workers
from evaluation.models import EvaluationJob, WorkerHeartbeat
from evaluation.selectors import JobProgress
from tests.evaluation.results_data import make_job
from tests.worker_utils import CeleryWorker, wait_for

pytestmark = pytest.mark.django_db

QUEUED = EvaluationJob.Status.QUEUED


def beat(name="celery@a", queue_names=("generate", "score", "celery"), *, ago=0, pid=1):
    return workers.record_beat(name=name, queue_names=queue_names, pid=pid, host="a",
                               now=timezone.now() - timedelta(seconds=ago))


def queued_job(dataset, **fields):
    return make_job("alpha", "none", dataset, status=QUEUED, total_prompts=4, **fields)


def test_a_fresh_beat_is_alive_an_old_or_stopped_one_is_not(db):
    beat("celery@fresh", ("score",), pid=1)
    beat("celery@old", ("generate",), ago=10 * workers.heartbeat_seconds(), pid=2)
    beat("celery@gone", ("generate",), pid=3)
    workers.record_stop(name="celery@gone", pid=3)
    report = workers.queue_report()
    assert [row.name for row in report["score"].alive] == ["celery@fresh"]
    assert report["generate"].alive == []
    assert report["generate"].last_seen is not None  # seen before: pages say since when
    assert report["celery"].last_seen is None  # never seen


def test_beats_update_one_row_per_worker_process(db):
    first = beat(pid=7)
    again = beat(pid=7)
    assert again.pk == first.pk and WorkerHeartbeat.objects.count() == 1
    assert again.started_at == first.started_at and again.last_seen >= first.last_seen


def test_a_queued_job_without_workers_names_its_queues_and_the_command(dataset):
    job = queued_job(dataset)
    missing = workers.missing_workers(job, workers.queue_report())
    assert missing.queue_names == ["generate", "score"]
    assert missing.never_seen and missing.waiting_since == job.created_at
    assert missing.command == "celery -A toxplatform worker -Q generate,score --loglevel=INFO"
    # A worker on both queues: nothing missing; one on `score` only: generation waits.
    beat(queue_names=("score",))
    assert workers.missing_workers(job, workers.queue_report()).queue_names == ["generate"]
    beat(queue_names=("generate", "score"), pid=2)
    assert workers.missing_workers(job, workers.queue_report()) is None
    # Generation finished: only scoring is waited on. A finished job waits on nothing.
    job.generated_prompts = 4
    assert workers.queues_needed(job) == ["score"]
    assert workers.queues_needed(make_job("alpha", "none", dataset)) == []


def test_the_stage_matches_the_status():
    def stage(status, generated=0, scored=0):
        return JobProgress(status=status, total_prompts=4, generated_prompts=generated, scored_prompts=scored,
                           k=1).stage

    assert stage("queued") == "waiting for a worker"
    assert stage("running") == "generating"
    assert stage("running", generated=4) == "scoring"
    assert stage("queued", generated=2) == "generating"  # resumed: work was done before
    assert stage("finalizing", 4, 4) == "computing metrics"
    assert stage("done", 4, 4) == "done"


def test_job_page_and_list_say_no_worker_and_how_to_start_one(researcher_client, dataset):
    job = queued_job(dataset)
    detail = researcher_client.get(reverse("evaluation:job-detail", args=[job.pk])).content.decode()
    assert "No worker is running for this job." in detail
    assert "celery -A toxplatform worker -Q generate,score --loglevel=INFO" in detail
    assert "has been seen\n  yet" in detail and "waiting for a worker" in detail
    listing = researcher_client.get(reverse("evaluation:job-list")).content.decode()
    assert "No worker for <code>generate, score</code>" in listing
    progress = researcher_client.get(reverse("evaluation:job-progress", args=[job.pk])).json()
    assert progress["workers_missing"] == ["generate", "score"] and progress["stage"] == "waiting for a worker"

    beat(queue_names=("generate", "score", "celery"))
    assert "No worker is running" not in researcher_client.get(
        reverse("evaluation:job-detail", args=[job.pk])).content.decode()
    assert "No worker for" not in researcher_client.get(reverse("evaluation:job-list")).content.decode()
    assert researcher_client.get(reverse("evaluation:job-progress", args=[job.pk])).json()["workers_missing"] == []


def test_a_worker_seen_before_is_shown_with_when(researcher_client, dataset):
    job = queued_job(dataset)
    beat(ago=20 * workers.heartbeat_seconds())
    detail = researcher_client.get(reverse("evaluation:job-detail", args=[job.pk])).content.decode()
    assert "has been seen\n  since <time datetime=" in detail


def test_healthz_reports_workers_only_when_asked(db):
    beat("celery@a", ("score", "celery"))
    plain = Client().get("/healthz")
    assert plain.content == b"ok" and plain["Content-Type"].startswith("text/plain")
    report = Client().get("/healthz?workers=1").json()
    assert report["database"] == "ok"
    assert report["queues"]["score"]["workers"] == 1 and report["queues"]["generate"] == {
        "workers": 0, "last_seen": None}
    assert "celery@a" not in str(report)  # no host names to anonymous callers


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_beats_on_start_and_says_when_it_stops(tmp_path):
    worker = CeleryWorker(log_path=tmp_path / "worker.log", queue_names=("score",),
                          env={"TOXPLATFORM_WORKER_HEARTBEAT_SECONDS": "1"})
    with worker:
        row = wait_for(lambda: WorkerHeartbeat.objects.filter(stopped_at=None).first(), timeout=60, worker=worker,
                       message="a heartbeat row")
        assert row.queues == ["score"] and row.pid == worker.process.pid
        first = row.last_seen
        wait_for(lambda: WorkerHeartbeat.objects.get(pk=row.pk).last_seen > first, timeout=60, worker=worker,
                 message="a second beat from the thread")
        assert workers.queue_report()["score"].has_worker
    row.refresh_from_db()
    assert row.stopped_at is not None
    assert not workers.queue_report()["score"].has_worker
