"""Only a job's owner or an admin cancels it (page and API); leaderboards name models and
methods, so annotators (who judge outputs blind) cannot read them: researchers only, unless an
operator makes them public."""
import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from evaluation.models import EvaluationJob
from tests.evaluation.results_data import PASSWORD, add_toxicity, make_dataset, make_job, make_user
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import create_user_with_role, ensure_api_token

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.login(username=user.username, password=PASSWORD)
    return client


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=user).key}")
    return client


@pytest.fixture
def people(db):
    return {
        "owner": make_user("owner", Role.RESEARCHER),
        "other": make_user("other", Role.RESEARCHER),
        "annotator": make_user("ann", Role.ANNOTATOR),
        "admin": create_user_with_role(username="boss", password=PASSWORD, superuser=True),
    }


@pytest.fixture
def running(people):
    return make_job("alpha", "none", make_dataset(), status=EvaluationJob.Status.RUNNING, user=people["owner"])


def status_of(job) -> str:
    job.refresh_from_db()
    return job.status


def test_another_researcher_cannot_cancel_a_job_on_the_page_or_the_api(people, running):
    page = signed_in(people["other"]).post(reverse("evaluation:job-cancel", args=[running.pk]))
    assert page.status_code == 403
    api = token_client(people["other"]).post(reverse("api:job-cancel", args=[running.pk]))
    assert api.status_code == 403
    assert api.json()["detail"] == "Only the researcher who queued this job, or an admin, can cancel it."
    assert status_of(running) == EvaluationJob.Status.RUNNING and not running.cancel_requested
    # They still see the job, without a cancel button.
    detail = signed_in(people["other"]).get(reverse("evaluation:job-detail", args=[running.pk])).content.decode()
    listing = signed_in(people["other"]).get(reverse("evaluation:job-list")).content.decode()
    assert "Cancel job" not in detail and f"Cancel job {running.pk}" not in listing
    assert "Cancel job" in signed_in(people["owner"]).get(reverse("evaluation:job-detail", args=[running.pk])).content.decode()


def test_the_owner_cancels_on_the_page(people, running):
    response = signed_in(people["owner"]).post(reverse("evaluation:job-cancel", args=[running.pk]))
    assert response.status_code == 302
    assert status_of(running) == EvaluationJob.Status.CANCELLED


def test_an_admin_cancels_anyones_job_through_the_api(people, running):
    response = token_client(people["admin"]).post(reverse("api:job-cancel", args=[running.pk]))
    assert response.status_code == 200
    assert status_of(running) == EvaluationJob.Status.CANCELLED


@pytest.fixture
def board(people):
    job = make_job("alpha", "none", make_dataset(), user=people["owner"])
    add_toxicity(job, "en", emt=0.3, tp=0.2, avg=0.1)
    return job


LEADERBOARD_PAGES = [
    ("evaluation:leaderboard-list", []),
    ("evaluation:leaderboard-language", ["en"]),
    ("evaluation:leaderboard-language-csv", ["en"]),
    ("evaluation:leaderboard-category", ["toxicity"]),
]


def test_annotators_cannot_read_leaderboards_pages_csv_or_api(people, board):
    client = signed_in(people["annotator"])
    for name, args in LEADERBOARD_PAGES:
        response = client.get(reverse(name, args=args))
        assert response.status_code == 403, name
        assert b"alpha" not in response.content
    api = token_client(people["annotator"]).get(reverse("api:leaderboard-language-detail", args=["en"]))
    assert api.status_code == 403 and api.json()["detail"] == "Leaderboards are for researchers."
    # Their pages do not link to the leaderboards either.
    home = client.get(reverse("accounts:profile")).content.decode()
    assert reverse("evaluation:leaderboard-list") not in home


def test_researchers_read_leaderboards(people, board):
    client = signed_in(people["other"])
    for name, args in LEADERBOARD_PAGES:
        assert client.get(reverse(name, args=args)).status_code == 200, name
    assert token_client(people["other"]).get(reverse("api:leaderboard-language-detail", args=["en"])).status_code == 200
    assert reverse("evaluation:leaderboard-list") in client.get(reverse("accounts:profile")).content.decode()


def test_anonymous_visitors_are_sent_to_the_login_page(board):
    response = Client().get(reverse("evaluation:leaderboard-list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    assert APIClient().get(reverse("api:leaderboard-language-detail", args=["en"])).status_code == 401


def test_an_operator_can_make_leaderboards_public(people, board, settings):
    settings.LEADERBOARDS_PUBLIC = True
    for client in (Client(), signed_in(people["annotator"])):
        for name, args in LEADERBOARD_PAGES:
            assert client.get(reverse(name, args=args)).status_code == 200, name
    assert APIClient().get(reverse("api:leaderboard-language-detail", args=["en"])).status_code == 200
    # Jobs themselves stay researchers' pages.
    assert signed_in(people["annotator"]).get(reverse("evaluation:job-list")).status_code == 403
