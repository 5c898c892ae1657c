"""The job form knows what it queues: a small explicit preset, the size (prompts x k x max
tokens) and a time estimate from the model's measured speed, a confirmation required above
JOB_CONFIRM_WORK on every interface that queues for a user (form, API), and each method's and
scorer's declared summary and parameters (also at GET /api/methods/ and /api/scorers/)."""
import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse

from evaluation import catalog, services
from evaluation.detox import registry as detox_registry
from evaluation.models import EvaluationJob, ModelSpec
from evaluation.scorers import registry as scorer_registry
from tests.evaluation.results_data import T0, make_job
from tests.evaluation.test_api import api_client, job_payload
from tests.evaluation.test_views import form_data
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.accounts.models import Role
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db

# The mini dataset: en and ar have 2 prompts, de 1. en + ar, k=3, 8 tokens: 4 x 3 x 8 = 96.
WORK = 96


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


def test_create_job_asks_to_confirm_a_large_job(dataset, tiny_model_dir):
    args = dict(model=str(tiny_model_dir), dataset="mini", languages=["en", "ar"], k=3, max_new_tokens=8,
                scorers=["lexicon"], enqueue=False)
    with override_settings(JOB_CONFIRM_WORK=WORK - 1):
        with pytest.raises(ApplicationError) as refused:
            services.create_job(confirm_large=False, **args)
        assert "4 prompts x k=3 x 8 new tokens = 96 tokens is a large job (above 95)" in (
            refused.value.extra["confirm_large"])
        assert EvaluationJob.objects.count() == 0 and ModelSpec.objects.count() == 0
        services.create_job(confirm_large=True, **args)
    with override_settings(JOB_CONFIRM_WORK=WORK):  # at the threshold: no confirmation needed
        services.create_job(confirm_large=False, **args)
    assert EvaluationJob.objects.count() == 2


def test_the_form_refuses_an_unconfirmed_large_job_on_its_field(researcher_client, dataset, tiny_model_dir):
    data = form_data(model_path=str(tiny_model_dir))
    with override_settings(JOB_CONFIRM_WORK=WORK - 1):
        page = researcher_client.post(reverse("evaluation:job-create"), data)
        assert page.status_code == 400
        assert "is a large job" in page.context["form"].errors["confirm_large"][0]
        assert EvaluationJob.objects.count() == 0
        page = researcher_client.post(reverse("evaluation:job-create"), {**data, "confirm_large": "on"})
        assert page.status_code == 302
    assert EvaluationJob.objects.count() == 1


def test_the_api_refuses_an_unconfirmed_large_job(dataset, tiny_model_dir):
    client = api_client("res", Role.RESEARCHER)
    payload = job_payload(tiny_model_dir, languages=["en", "ar"], k=3, max_new_tokens=8)
    with override_settings(JOB_CONFIRM_WORK=WORK - 1):
        refused = client.post(reverse("api:job-list"), payload, format="json")
        assert refused.status_code == 400 and "confirm_large" in refused.data["extra"]
        assert client.post(reverse("api:job-list"), {**payload, "confirm_large": True},
                           format="json").status_code == 201


def test_the_form_starts_small_and_explicit(researcher_client, dataset):
    page = researcher_client.get(reverse("evaluation:job-create"))
    form = page.context["form"]
    assert form["prompts_per_language"].value() == 20
    assert form["languages"].value() == ["en", "de"]
    html = page.content.decode()
    size = json.loads(html.split('<script id="job-size-data" type="application/json">', 1)[1].split("</script>")[0])
    assert size["counts"]["mini"] == {"ar": {"all": 2, "nontoxic": 1, "toxic": 1},
                                     "de": {"all": 1, "nontoxic": 0, "toxic": 1},
                                     "en": {"all": 2, "nontoxic": 1, "toxic": 1}}
    assert size["limits"] == {"confirm_work": 200_000, "max_work": 50_000_000}


def test_each_method_and_scorer_shows_its_declared_summary_and_parameters(researcher_client, dataset):
    html = researcher_client.get(reverse("evaluation:job-create")).content.decode()
    for name, cls in [*detox_registry.items(), *scorer_registry.items()]:
        assert cls.summary and cls.summary.replace("'", "&#x27;").replace('"', "&quot;") in html, name
        for param in cls.parameters:
            assert f"<code>{param.name}</code>" in html, (name, param.name)


def test_methods_and_scorers_api(dataset):
    client = api_client("res", Role.RESEARCHER)
    methods = client.get("/api/methods/").json()
    assert [m["name"] for m in methods] == detox_registry.names()
    chosen = next(m for m in methods if m["parameters"])
    cls = detox_registry.get(chosen["name"])
    assert chosen["summary"] == cls.summary and chosen["parameters"] == cls.parameters.describe()
    scorers = client.get("/api/scorers/").json()
    assert [s["name"] for s in scorers] == scorer_registry.names()
    assert all(s["summary"] for s in scorers)
    assert api_client("ann", Role.ANNOTATOR).get("/api/scorers/").status_code == 200  # no job data in it


def test_model_speed_from_its_latest_finished_jobs(dataset):
    job = make_job("alpha", "none", dataset, total_prompts=10, k=5, max_new_tokens=20, started_at=T0,
                   finished_minutes=0)
    job.finished_at = T0 + timedelta(seconds=100)
    job.save()
    make_job("alpha", "none", dataset, status=EvaluationJob.Status.RUNNING, total_prompts=99, started_at=T0)
    assert catalog.model_speeds() == {job.model_id: 10.0}  # 10 x 5 x 20 tokens in 100 s


def test_the_form_offers_only_categories_that_hold_labels(researcher_client, dataset):
    from toxplatform.corpus.models import HarmCategory, PromptLabel

    assert list(researcher_client.get(reverse("evaluation:job-create")).context["form"].fields["categories"]
                .queryset) == []
    PromptLabel.objects.create(prompt=dataset.prompts.first(), category=HarmCategory.objects.get(slug="insult"),
                               value=2, source="test")
    offered = researcher_client.get(reverse("evaluation:job-create")).context["form"].fields["categories"].queryset
    assert [category.slug for category in offered] == ["insult"]
