"""The evaluation pipeline through a real Celery worker process on Redis and PostgreSQL.

One `celery -A toxplatform worker -Q generate,score,celery -c 1 -P prefork` process
serves the tests of this module, on the test database (transactional tests: the rows are
committed, so the worker sees them) and on this run's Redis database, flushed between
tests. test_pipeline_recovery.py kills workers, so it starts its own.
"""
from __future__ import annotations

import time

import pytest

from evaluation import services, tasks
from evaluation.models import (
    Chunk,
    EvaluationJob,
    Generation,
    JobMetric,
    ModelSpec,
    Score,
)
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import (
    JOB_TIMEOUT,
    CeleryWorker,
    assert_complete,
    closed_port,
    create_test_job,
    flush_broker,
    job_status,
    queue_lengths,
    wait_for,
    wait_until_finished,
)
from toxplatform import queues

# serialized_rollback: the flush after a transactional test would otherwise erase the
# languages and harm categories that migrations seed.
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "llama", arch="llama")


@pytest.fixture(scope="module")
def shared_worker(django_db_setup, tmp_path_factory):
    """One worker process for the tests of this module (starting one costs seconds)."""
    flush_broker()
    worker = CeleryWorker(log_path=tmp_path_factory.mktemp("worker") / "worker.log").start()
    yield worker
    worker.stop()
    flush_broker()


@pytest.fixture
def worker(shared_worker):
    flush_broker()
    shared_worker.mark()
    yield shared_worker
    # Leave the worker idle before the database is flushed for the next test.
    wait_for(lambda: queue_lengths() == {name: 0 for name in queues.ALL}
             and not Chunk.objects.filter(status=Chunk.Status.RUNNING).exists()
             and not EvaluationJob.objects.filter(status=EvaluationJob.Status.FINALIZING).exists(),
             timeout=60, worker=shared_worker, message="the worker to be idle")
    flush_broker()


def test_a_job_runs_to_done_through_the_worker(tiny_llama, worker):
    job = create_test_job(tiny_llama)
    job = wait_until_finished(job, worker)

    assert job.status == EvaluationJob.Status.DONE, job.error
    assert job.generated_prompts == job.scored_prompts == job.total_prompts == 6
    assert_complete(job)
    assert set(job.chunks.values_list("attempts", flat=True)) == {1}
    for language in ("en", "de"):
        rows = JobMetric.objects.filter(job=job, language=language, subset="all")
        assert rows.filter(scorer="lexicon", category="toxicity", metric="emt", n=3).exists()
        assert rows.filter(scorer=f"perplexity:{tiny_llama.name}", category="perplexity", metric="ppl").exists()
        assert rows.filter(scorer="", category="", metric="dist-1").exists()
    assert queue_lengths() == {name: 0 for name in queues.ALL}
    # The model and each scorer were loaded once in the worker process, not once per chunk.
    log = worker.log()
    assert log.count("loading model tiny-llama") == 1, log
    assert log.count("loading scorer perplexity") == 1 and log.count("loading scorer lexicon") == 1
    # Three generate chunks ran on the "generate" queue, three score chunks and finalize on "score".
    assert log.count("Task evaluation.generate_chunk[") >= 3
    assert log.count("Task evaluation.finalize_job[") >= 1


def test_duplicate_deliveries_change_nothing(tiny_llama, worker):
    job = create_test_job(tiny_llama)
    generate_ids = list(job.chunks.filter(stage="generate").values_list("id", flat=True))
    for chunk_id in generate_ids:  # every chunk is delivered twice from the start
        tasks.generate_chunk_task.apply_async((chunk_id,), queue=queues.GENERATE)
    job = wait_until_finished(job, worker)
    assert job.status == EvaluationJob.Status.DONE, job.error
    assert_complete(job)
    assert set(job.chunks.values_list("attempts", flat=True)) == {1}

    generations = list(Generation.objects.filter(job=job).order_by("id").values_list("id", "text"))
    scores = list(Score.objects.filter(generation__job=job).order_by("id").values_list("id", "value"))
    metrics = list(JobMetric.objects.filter(job=job).order_by("id").values_list("id", "value"))
    chunks = list(job.chunks.order_by("id").values_list("id", "status", "attempts", "finished_at"))
    finished_at = job.finished_at

    # ...and once more after the job is done: every chunk, and finalize.
    before = worker.log().count(" succeeded in ")
    for chunk in job.chunks.all():
        if chunk.stage == "generate":
            tasks.generate_chunk_task.apply_async((chunk.id,), queue=queues.GENERATE)
        else:
            tasks.score_chunk_task.apply_async((chunk.id,), queue=queues.SCORE)
    tasks.finalize_job_task.apply_async((job.id,), queue=queues.SCORE)
    sent = job.chunks.count() + 1
    wait_for(lambda: worker.log().count(" succeeded in ") >= before + sent, timeout=60, worker=worker,
             message="the repeated deliveries to be processed")

    assert list(Generation.objects.filter(job=job).order_by("id").values_list("id", "text")) == generations
    assert list(Score.objects.filter(generation__job=job).order_by("id").values_list("id", "value")) == scores
    assert list(JobMetric.objects.filter(job=job).order_by("id").values_list("id", "value")) == metrics
    assert list(job.chunks.order_by("id").values_list("id", "status", "attempts", "finished_at")) == chunks
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.DONE and job.finished_at == finished_at
    assert queue_lengths() == {name: 0 for name in queues.ALL}


def test_a_lost_broker_is_recovered_by_resume(tiny_llama, worker):
    job = create_test_job(tiny_llama, per_language=6, max_new_tokens=32, batch_size=1, chunk_size=2)
    wait_for(lambda: Generation.objects.filter(job=job).exists(), timeout=JOB_TIMEOUT, interval=0.02,
             worker=worker, message="the first generations")
    flush_broker()  # Redis restarted without persistence: every queued message is gone
    wait_for(lambda: not job.chunks.filter(status=Chunk.Status.RUNNING).exists(), timeout=JOB_TIMEOUT,
             worker=worker, message="the running chunk to finish")
    time.sleep(1)  # what that chunk queued (its score chunk, maybe finalize) runs; the rest is lost
    assert job_status(job) == EvaluationJob.Status.RUNNING
    assert job.chunks.filter(status=Chunk.Status.QUEUED).exists()

    resent = services.resume_job(job)
    assert resent
    job = wait_until_finished(job, worker)
    assert job.status == EvaluationJob.Status.DONE, job.error
    assert_complete(job)


def test_an_unreachable_endpoint_fails_the_job_with_a_readable_error(tiny_llama, worker):
    port = closed_port()
    remote = ModelSpec.objects.create(name="down", backend="openai", location=f"http://127.0.0.1:{port}/v1",
                                      remote_model="served-model", params={"max_retries": 1, "backoff_s": 0.1})
    job = create_test_job(tiny_llama, model=remote, scorers=["lexicon"])
    job = wait_until_finished(job, worker)

    assert job.status == EvaluationJob.Status.FAILED
    assert job.error.startswith(f"cannot reach http://127.0.0.1:{port}/v1/completions: ConnectionError")
    assert "attempts=2" in job.error and "served-model" in job.error
    assert not Generation.objects.filter(job=job).exists()
    assert not JobMetric.objects.filter(job=job).exists()
    # The chunks still queued behind the failed one were delivered and did nothing.
    wait_for(lambda: queue_lengths() == {name: 0 for name in queues.ALL}, timeout=30, worker=worker,
             message="the queue to drain")
    assert job.chunks.filter(status=Chunk.Status.FAILED).count() == 1
    assert set(job.chunks.exclude(status=Chunk.Status.FAILED).values_list("status", flat=True)) == {"queued"}


def test_cancel_stops_the_job_between_batches(tiny_llama, worker):
    job = create_test_job(tiny_llama, per_language=8, max_new_tokens=32, batch_size=1, chunk_size=8)
    wait_for(lambda: Generation.objects.filter(job=job).exists(), timeout=JOB_TIMEOUT, interval=0.02,
             worker=worker, message="the first generations")
    services.cancel_job(job)

    wait_for(lambda: not job.chunks.filter(status=Chunk.Status.RUNNING).exists()
             and queue_lengths() == {name: 0 for name in queues.ALL},
             timeout=60, worker=worker, message="the worker to stop and the queue to drain")
    stopped_at = Generation.objects.filter(job=job).count()
    time.sleep(0.5)
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.CANCELLED and job.cancel_requested
    assert Generation.objects.filter(job=job).count() == stopped_at < job.total_prompts * job.k
    assert not job.chunks.filter(stage="generate", index__gte=1, status=Chunk.Status.DONE).exists()
    assert not JobMetric.objects.filter(job=job).exists()
