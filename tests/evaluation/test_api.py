"""The jobs API: create (Researcher only; create_job's errors as a 400, nothing written), list,
status with progress, metrics, cancel."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from evaluation.models import Chunk, EvaluationJob, JobPrompt, ModelSpec
from tests.evaluation.results_data import add_quality, add_toxicity, make_job, make_user
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import ensure_api_token

pytestmark = pytest.mark.django_db


def api_client(username: str, role: str) -> APIClient:
    user = make_user(username, role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=user).key}")
    client.user = user
    return client


@pytest.fixture
def researcher():
    return api_client("res", Role.RESEARCHER)


@pytest.fixture
def annotator():
    return api_client("ann", Role.ANNOTATOR)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


def job_payload(model_dir, **overrides):
    payload = {
        "model": str(model_dir), "dataset": "mini", "languages": ["en", "de"], "k": 2, "max_new_tokens": 4,
        "seed": 3, "scorers": ["lexicon"], "chunk_size": 2,
    }
    payload.update(overrides)
    return payload


def test_researcher_creates_a_job(researcher, dataset, tiny_model_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = researcher.post(reverse("api:job-list"), job_payload(tiny_model_dir), format="json")
    assert response.status_code == 201, response.data
    job = EvaluationJob.objects.get()
    assert response.data["id"] == job.pk
    assert response.data["status"] == "queued" == job.status
    assert response.data["progress"]["total_prompts"] == 3 == job.total_prompts  # en 1, en 2, de 1
    assert response.data["created_by"] == "res"
    # Left-out parameters take create_job's defaults.
    assert (job.detox_method, job.top_p, job.threshold_rule, job.scorers) == (
        "none", 0.9, ">=", [{"name": "lexicon", "params": {}, "key": "lexicon"}]
    )
    assert JobPrompt.objects.filter(job=job).count() == 3
    assert Chunk.objects.filter(job=job).count() == 4  # 2 chunks x (generate, score)
    assert len(callbacks) >= 1


def test_bad_parameters_are_a_400_naming_each_field(researcher, dataset, tiny_model_dir):
    response = researcher.post(
        reverse("api:job-list"),
        job_payload(tiny_model_dir, k=0, languages=["xx"], method="nope", scorers=["lexicon", "nope"]),
        format="json",
    )
    assert response.status_code == 400
    assert response.data["message"] == "Invalid evaluation job"
    assert set(response.data["extra"]) >= {"k", "languages", "method", "scorers"}
    assert "'xx'" in response.data["extra"]["languages"]
    assert EvaluationJob.objects.count() == 0
    assert ModelSpec.objects.count() == 0


def test_wrong_types_are_a_400_before_the_service(researcher, dataset, tiny_model_dir):
    response = researcher.post(reverse("api:job-list"), job_payload(tiny_model_dir, k="many", languages="en"),
                               format="json")
    assert response.status_code == 400
    assert set(response.data) == {"k", "languages"}
    assert EvaluationJob.objects.count() == 0


def test_annotators_cannot_create_cancel_or_read_jobs(annotator, dataset, tiny_model_dir):
    job = make_job("alpha", "none", dataset, status=EvaluationJob.Status.RUNNING)
    assert annotator.post(reverse("api:job-list"), job_payload(tiny_model_dir), format="json").status_code == 403
    assert annotator.post(reverse("api:job-cancel", args=[job.pk])).status_code == 403
    assert EvaluationJob.objects.count() == 1
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.RUNNING
    # Annotators rate outputs blind to the model and method: jobs are not theirs to read either.
    assert annotator.get(reverse("api:job-list")).status_code == 403
    assert annotator.get(reverse("api:job-detail", args=[job.pk])).status_code == 403


def test_anonymous_requests_are_refused(dataset):
    assert APIClient().get(reverse("api:job-list")).status_code == 401


def test_list_and_detail(researcher, dataset):
    older = make_job("alpha", "none", dataset)
    newer = make_job("beta", "system_prompt", dataset, status=EvaluationJob.Status.RUNNING, total_prompts=8,
                     generated_prompts=4)
    listing = researcher.get(reverse("api:job-list")).data
    assert [row["id"] for row in listing["results"]] == [newer.pk, older.pk]
    assert listing["results"][0]["model"] == "beta" and listing["results"][0]["dataset"] == "mini"
    detail = researcher.get(reverse("api:job-detail", args=[newer.pk])).data
    assert detail["progress"]["percent"] == 25 and detail["progress"]["stage"] == "generating"
    assert researcher.get(reverse("api:job-progress", args=[newer.pk])).data["generated_prompts"] == 4


def test_metrics(researcher, dataset):
    job = make_job("alpha", "none", dataset)
    add_toxicity(job, "en", emt=0.5, tp=0.6, avg=0.2)
    add_toxicity(job, "ar", emt=0.3, tp=0.4, avg=0.1)
    add_quality(job, "en", ppl=12.0)
    data = researcher.get(reverse("api:job-metrics", args=[job.pk])).data
    assert data["count"] == 4 + 4 + 4  # en toxicity, ar toxicity, en ppl + dist-1/2/3
    english = researcher.get(reverse("api:job-metrics", args=[job.pk]), {"language": "en", "scorer": "lexicon"}).data
    rows = {row["metric"]: row for row in english["results"]}
    assert set(rows) == {"emt", "emt_std", "tp", "avg"}
    assert rows["emt"] == {
        "language": "en", "category": "toxicity", "scorer": "lexicon", "metric": "emt", "subset": "all",
        "variant": "k=25", "value": 0.5, "n": 100, "ci_low": 0.45, "ci_high": 0.55,
    }


def test_cancel(researcher, dataset):
    job = make_job("alpha", "none", dataset, status=EvaluationJob.Status.RUNNING, user=researcher.user)
    response = researcher.post(reverse("api:job-cancel", args=[job.pk]))
    assert response.status_code == 200
    assert response.data["status"] == "cancelled" and response.data["cancel_requested"] is True
    again = researcher.post(reverse("api:job-cancel", args=[job.pk]))
    assert again.status_code == 400
    assert "already finished" in again.data["message"]


def test_schema_lists_the_job_endpoints(researcher):
    schema = researcher.get(reverse("api:schema"), {"format": "json"}).json()
    assert {"/api/jobs/", "/api/jobs/{id}/", "/api/jobs/{id}/metrics/", "/api/jobs/{id}/cancel/"} <= set(schema["paths"])
