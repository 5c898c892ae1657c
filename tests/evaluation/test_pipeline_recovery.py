"""Recovery: a worker killed mid-chunk (SIGKILL of its whole process group, as when a
machine dies) is replaced, and the job still ends with nothing missing and nothing doubled.
A module of its own: it starts and kills its own workers."""
from __future__ import annotations

import pytest

from evaluation import tasks
from evaluation.models import Chunk, EvaluationJob, Generation, JobMetric
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import (
    JOB_TIMEOUT,
    CeleryWorker,
    assert_complete,
    create_test_job,
    flush_broker,
    wait_for,
    wait_until_finished,
)
from toxplatform import queues

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "llama", arch="llama")


@pytest.fixture
def broker():
    flush_broker()
    yield
    flush_broker()


def test_a_worker_killed_mid_chunk_is_replaced_and_the_job_ends_with_nothing_doubled(tiny_llama, broker, tmp_path):
    log_path = tmp_path / "worker.log"
    first = CeleryWorker(log_path=log_path).start()
    # batch_size 1 and chunks of 8 prompts: a chunk commits 8 batches, so the kill lands inside one.
    job = create_test_job(tiny_llama, per_language=8, k=3, max_new_tokens=32, batch_size=1, chunk_size=8)
    try:
        wait_for(lambda: Generation.objects.filter(job=job).exists(), timeout=JOB_TIMEOUT, interval=0.02,
                 worker=first, message="the first generations")
    finally:
        first.kill()
    killed = list(job.chunks.filter(status=Chunk.Status.RUNNING))
    generated_at_kill = Generation.objects.filter(job=job).count()
    assert len(killed) == 1 and killed[0].stage == Chunk.Stage.GENERATE
    assert 0 < generated_at_kill < job.total_prompts * job.k

    with CeleryWorker(log_path=log_path) as second:
        # The killed chunk's message stays unacked in Redis until its visibility timeout.
        # Beat's periodic task, sent through the broker as beat sends it, finds the claim
        # whose process is gone from this host, frees it and re-sends the chunk.
        tasks.resume_stale_jobs_task.apply_async(queue=queues.DEFAULT)
        job = wait_until_finished(job, second)

    assert job.status == EvaluationJob.Status.DONE, job.error
    assert_complete(job)
    killed[0].refresh_from_db()
    assert killed[0].status == Chunk.Status.DONE and killed[0].attempts == 2
    assert job.generated_prompts == job.scored_prompts == job.total_prompts == 16
    assert JobMetric.objects.filter(job=job, language="de", subset="all", scorer="lexicon", category="toxicity",
                                    metric="emt", n=8).exists()


def test_a_chunk_past_its_soft_time_limit_fails_the_job_with_a_readable_error(tiny_llama, broker, tmp_path):
    job = create_test_job(tiny_llama, per_language=8, k=8, max_new_tokens=64, batch_size=1, chunk_size=16,
                          enqueue=False)
    EvaluationJob.objects.filter(pk=job.pk).update(status=EvaluationJob.Status.QUEUED)
    chunk = job.chunks.get(stage="generate", index=0)
    with CeleryWorker(log_path=tmp_path / "worker.log") as worker:
        # A per-call limit of 1 s, far below what loading the model and generating
        # 16 prompts x 8 samples x 64 tokens takes.
        tasks.generate_chunk_task.apply_async((chunk.id,), queue=queues.GENERATE, soft_time_limit=1, time_limit=60)
        job = wait_until_finished(job, worker)
        assert "SoftTimeLimitExceeded" in worker.log() or "soft time limit" in worker.log().lower()

    assert job.status == EvaluationJob.Status.FAILED
    assert job.error == (
        "The task ran past its time limit (CELERY_TASK_SOFT_TIME_LIMIT): "
        "use a smaller chunk_size or batch_size, or fewer samples (k)."
    )
    chunk.refresh_from_db()
    assert chunk.status == Chunk.Status.FAILED and chunk.error == job.error and chunk.attempts == 1
    assert Generation.objects.filter(job=job).count() < job.total_prompts * job.k
    assert not JobMetric.objects.filter(job=job).exists()
