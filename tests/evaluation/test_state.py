"""The job and chunk state machine: every status change goes through evaluation/services/state.py,
and a transition that is not in its tables cannot happen."""
import pytest

from evaluation.models import Chunk, EvaluationJob
from evaluation.services import state
from tests.evaluation.results_data import make_job

Job = EvaluationJob.Status


def test_the_tables_cover_every_status_and_done_is_final():
    assert set(state.JOB_TRANSITIONS) == set(Job.values)
    assert set(state.CHUNK_TRANSITIONS) == set(Chunk.Status.values)
    assert state.JOB_TRANSITIONS[Job.DONE] == frozenset()
    assert state.CHUNK_TRANSITIONS[Chunk.Status.DONE] == frozenset()
    # Only a person's resume leaves FAILED or CANCELLED, and only back to QUEUED.
    assert state.JOB_TRANSITIONS[Job.FAILED] == state.JOB_TRANSITIONS[Job.CANCELLED] == {Job.QUEUED}


def test_a_transition_outside_the_table_is_a_programming_error():
    with pytest.raises(ValueError, match="not in the state table"):
        state._sources(state.JOB_TRANSITIONS, Job.RUNNING, (Job.DONE,))


@pytest.mark.django_db
@pytest.mark.parametrize("start, change, ends", [
    (Job.PENDING, lambda job: state.queue_job(job.pk), Job.QUEUED),
    (Job.RUNNING, lambda job: state.queue_job(job.pk), Job.RUNNING),  # only PENDING is queued
    (Job.QUEUED, lambda job: state.begin_finalizing(job.pk), Job.FINALIZING),
    (Job.DONE, lambda job: state.fail_job(job.pk, "late failure"), Job.DONE),  # a finished job keeps its end
    (Job.RUNNING, lambda job: state.fail_job(job.pk, "boom"), Job.FAILED),
    (Job.CANCELLED, lambda job: state.cancel_job(job.pk), Job.CANCELLED),
    (Job.FAILED, lambda job: state.reopen_job(job), Job.QUEUED),
    (Job.DONE, lambda job: state.reopen_job(job), Job.DONE),
    (Job.RUNNING, lambda job: state.finish_job(job), Job.RUNNING),  # DONE only after FINALIZING
    (Job.FINALIZING, lambda job: state.finish_job(job), Job.DONE),
], ids=lambda value: value if isinstance(value, str) else "")
def test_each_job_transition_leaves_only_the_states_the_table_allows(dataset, start, change, ends):
    job = make_job("alpha", "none", dataset, status=start)
    changed = change(job)
    job.refresh_from_db()
    assert job.status == ends
    assert bool(changed) == (start != ends)


@pytest.mark.django_db
def test_reopen_gives_unfinished_chunks_fresh_attempts_keeps_their_count_and_keeps_done_ones(dataset):
    job = make_job("alpha", "none", dataset, status=Job.FAILED)
    done = Chunk.objects.create(job=job, stage="generate", index=0, status=Chunk.Status.DONE, attempts=1)
    failed = Chunk.objects.create(job=job, stage="score", index=0, status=Chunk.Status.FAILED, attempts=3,
                                  error="boom")
    assert state.reopen_job(job)
    done.refresh_from_db()
    failed.refresh_from_db()
    assert (done.status, done.attempts) == (Chunk.Status.DONE, 1)
    # History is kept (3 attempts so far); the cap counts from the resume on.
    assert (failed.status, failed.attempts, failed.attempts_since_resume, failed.error) == (
        Chunk.Status.QUEUED, 3, 0, "")
