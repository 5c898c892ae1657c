"""Resume a job from the job page, the API and the CLI (after a broker restart lost its
messages, or a failure): its owner or an admin, never another researcher."""
from datetime import datetime, timezone
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from evaluation import services
from evaluation.models import Chunk, EvaluationJob
from tests.evaluation.results_data import PASSWORD, make_dataset, make_user
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import flush_broker, queue_lengths
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import create_user_with_role, ensure_api_token

pytestmark = pytest.mark.django_db
FIRST_START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("resume") / "tiny")


@pytest.fixture
def failed_job(tiny_model):
    owner = make_user("owner", Role.RESEARCHER)
    make_dataset()
    job = services.create_job(user=owner, model=str(tiny_model), dataset="mini", languages=["en", "ar"], k=1,
                              max_new_tokens=2, scorers=["lexicon"], chunk_size=1, enqueue=False)
    job.chunks.filter(stage=Chunk.Stage.GENERATE, index=0).update(status=Chunk.Status.FAILED, attempts=3,
                                                                  error="worker lost")
    EvaluationJob.objects.filter(pk=job.pk).update(status=EvaluationJob.Status.FAILED, error="worker lost",
                                                   started_at=FIRST_START)
    flush_broker()
    yield job
    flush_broker()


def page_client(user) -> Client:
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    return client


def test_another_researcher_cannot_resume(failed_job):
    other = make_user("other", Role.RESEARCHER)
    assert page_client(other).post(reverse("evaluation:job-resume", args=[failed_job.pk])).status_code == 403
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=other).key}")
    assert api.post(reverse("api:job-resume", args=[failed_job.pk])).status_code == 403
    failed_job.refresh_from_db()
    assert failed_job.status == EvaluationJob.Status.FAILED
    assert "Resume job" not in page_client(other).get(reverse("evaluation:job-detail", args=[failed_job.pk])).content.decode()


def test_the_owner_resumes_from_the_job_page(failed_job, django_capture_on_commit_callbacks):
    owner = failed_job.created_by
    page = page_client(owner)
    assert "Resume job" in page.get(reverse("evaluation:job-detail", args=[failed_job.pk])).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = page.post(reverse("evaluation:job-resume", args=[failed_job.pk]), follow=True)
    assert "was resumed: 4 chunk(s) queued again" in response.content.decode()
    failed_job.refresh_from_db()
    assert failed_job.status == EvaluationJob.Status.QUEUED and failed_job.error == ""
    assert set(failed_job.chunks.values_list("status", flat=True)) == {Chunk.Status.QUEUED}
    assert queue_lengths()["generate"] == 4  # its four generate chunks (one prompt each) are in the broker again
    # Its history is kept: the attempts so far, the first start, and what the resume cleared.
    chunk = failed_job.chunks.get(stage=Chunk.Stage.GENERATE, index=0)
    assert (chunk.attempts, chunk.attempts_since_resume) == (3, 0)
    assert failed_job.started_at == FIRST_START
    assert [(e["event"], e["by"], e["from"], e["error"]) for e in failed_job.history] == [
        ("resumed", "owner", "failed", "worker lost")]
    page_text = page.get(reverse("evaluation:job-detail", args=[failed_job.pk])).content.decode()
    assert "resumed by owner (was failed: worker lost)" in page_text
    # The next claim keeps the first start and counts a fourth attempt.
    assert services.claim_chunk(chunk.pk).attempts == 4
    failed_job.refresh_from_db()
    assert failed_job.status == EvaluationJob.Status.RUNNING and failed_job.started_at == FIRST_START


def test_an_admin_resumes_through_the_api_and_a_done_job_is_a_400(failed_job, django_capture_on_commit_callbacks):
    admin = create_user_with_role(username="boss", password=PASSWORD, superuser=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=admin).key}")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("api:job-resume", args=[failed_job.pk]))
    assert response.status_code == 200 and response.json()["status"] == "queued"
    EvaluationJob.objects.filter(pk=failed_job.pk).update(status=EvaluationJob.Status.DONE)
    done = api.post(reverse("api:job-resume", args=[failed_job.pk]))
    assert done.status_code == 400 and "already done" in done.json()["message"]


def test_the_cli_resumes_jobs_by_id(failed_job, django_capture_on_commit_callbacks):
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("resume_job", str(failed_job.pk), stdout=out)
    assert out.getvalue().strip() == f"Job {failed_job.pk}: queued, 4 chunk(s) queued again"
    with pytest.raises(CommandError, match="whole number"):
        call_command("resume_job", "²", stdout=StringIO())
    with pytest.raises(CommandError, match="no job 999999"):
        call_command("resume_job", "999999", stdout=StringIO())
