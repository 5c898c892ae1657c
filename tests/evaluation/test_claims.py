"""Claims are leases: renewed by their holder while its work runs, free once it stops
renewing; a holder that cannot record its end hands the claim back without losing the attempt."""
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from evaluation.models import Chunk, EvaluationJob
from evaluation.services import claims
from tests.evaluation.results_data import make_dataset, make_job
from toxplatform.errors import TransientError

# Transactional: the lease thread has its own connection and must see the committed claim.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def chunk(settings):
    settings.EVALUATION_CLAIM_LEASE_SECONDS = 0.8  # renewed every 0.2 s
    job = make_job("alpha", "none", make_dataset(), status=EvaluationJob.Status.QUEUED)
    return Chunk.objects.create(job=job, stage=Chunk.Stage.GENERATE, index=0)


def test_a_claim_is_renewed_while_the_work_runs_and_not_after(chunk):
    claimed = claims.claim_chunk(chunk.pk)
    assert claimed.deadline <= timezone.now() + timedelta(seconds=0.8)
    seen = []

    def work():
        for _ in range(5):
            time.sleep(0.3)
            seen.append(Chunk.objects.values_list("deadline", flat=True).get(pk=chunk.pk))

    assert claims.run_claimed(claimed, work, lambda: True)
    # 1.5 s of work under a 0.8 s lease: the deadline kept moving ahead of the clock.
    assert seen == sorted(seen) and seen[-1] > claimed.deadline + timedelta(seconds=0.6)
    assert not any(thread.name.startswith("claim-lease-") for thread in threading.enumerate())
    last = Chunk.objects.values_list("deadline", flat=True).get(pk=chunk.pk)
    time.sleep(0.5)  # the lease thread stopped with the work: nothing renews it now
    assert Chunk.objects.values_list("deadline", flat=True).get(pk=chunk.pk) == last


def test_a_claim_that_is_not_renewed_is_taken_over_after_the_lease(chunk):
    first = claims.claim_chunk(chunk.pk)  # claimed, and its holder then goes silent
    assert claims.claim_chunk(chunk.pk) is None  # still held
    time.sleep(0.9)
    second = claims.claim_chunk(chunk.pk)
    assert second is not None and second.worker != first.worker and second.attempts == 2


def test_a_lost_database_connection_hands_the_claim_back_and_refunds_the_attempt(chunk):
    claimed = claims.claim_chunk(chunk.pk)
    assert claimed.attempts == 1

    def complete():  # the work finished; recording its end finds the server gone
        raise OperationalError("server closed the connection unexpectedly")

    with pytest.raises(TransientError, match="Database or broker unavailable"):
        claims.run_claimed(claimed, lambda: None, complete)
    chunk.refresh_from_db()
    assert (chunk.status, chunk.attempts) == (Chunk.Status.QUEUED, 0)
    assert "Interrupted: OperationalError" in chunk.error
    job = EvaluationJob.objects.get(pk=chunk.job_id)
    assert job.status != EvaluationJob.Status.FAILED and job.error == ""
