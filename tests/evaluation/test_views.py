"""Job pages: roles, the job form (form checks and create_job's errors shown, nothing written),
creating a real job from a tiny model, detail page (hostile text escaped, right-to-left),
progress JSON and cancel."""
import json
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from evaluation.models import Chunk, EvaluationJob, JobPrompt, ModelSpec
from tests.evaluation.results_data import (
    ARABIC_GENERATION,
    PASSWORD,
    XSS_GENERATION,
    add_generation,
    add_quality,
    add_toxicity,
    make_dataset,
    make_job,
    make_user,
)
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.accounts.models import Role
from toxplatform.corpus.models import Prompt

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


def form_data(**overrides):
    data = {
        "model_path": "", "method": "none", "method_params": "", "dataset": "mini", "languages": ["en", "ar"],
        "prompt_split": "all", "prompts_per_language": "", "k": "3", "max_new_tokens": "8", "top_p": "0.9",
        "temperature": "1.0", "seed": "7", "scorers": ["lexicon"], "scorer_params": "", "toxic_threshold": "0.5",
        "threshold_rule": ">=", "batch_size": "4", "chunk_size": "1",
    }
    data.update(overrides)
    return data


# --- roles -----------------------------------------------------------------------------------


def test_annotators_get_403_on_every_job_page(annotator_client, dataset):
    job = make_job("alpha", "none", dataset)
    for url, method in [
        (reverse("evaluation:job-list"), "get"),
        (reverse("evaluation:job-create"), "get"),
        (reverse("evaluation:job-create"), "post"),
        (reverse("evaluation:job-detail", args=[job.pk]), "get"),
        (reverse("evaluation:job-progress", args=[job.pk]), "get"),
        (reverse("evaluation:job-cancel", args=[job.pk]), "post"),
    ]:
        assert getattr(annotator_client, method)(url).status_code == 403, url
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.DONE


def test_anonymous_users_are_sent_to_login(client, dataset):
    response = client.get(reverse("evaluation:job-list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- the form ----------------------------------------------------------------------------------


def test_form_offers_registries_and_the_datasets_languages(researcher_client, dataset):
    response = researcher_client.get(reverse("evaluation:job-create"))
    assert response.status_code == 200
    form = response.context["form"]
    assert "none" in dict(form.fields["method"].choices)
    assert "lexicon" in dict(form.fields["scorers"].choices)
    assert [code for code, _ in form.fields["languages"].choices] == ["ar", "en", "de"]  # Arabic, English, German
    assert 'data-datasets="mini"' in response.content.decode()


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"k": "0"}, "k", "must be 1 to 1000 (got 0)"),
        ({"k": "many"}, "k", "whole number"),
        ({"languages": ["xx"]}, "languages", "xx is not one of the available choices"),
        ({"method_params": "{alpha: 1"}, "method_params", "Not valid JSON"),
        ({"method_params": "[1, 2]"}, "method_params", "must be a JSON object"),
        ({"scorer_params": '{"judge": {}}'}, "scorer_params", "not a selected scorer"),
        ({"top_p": "1.5"}, "top_p", "must be in (0, 1] (got 1.5)"),
        ({"temperature": "-0.5"}, "temperature", "must be in [0, 10] (got -0.5)"),
        ({"temperature": "0"}, "temperature", "identical samples"),  # greedy needs k = 1
        ({"model_path": ""}, "model_path", "Choose a registered model"),
    ],
)
def test_form_errors_are_shown_and_nothing_is_created(researcher_client, dataset, tiny_model_dir, overrides, field, message):
    data = form_data(model_path=str(tiny_model_dir))
    data.update(overrides)
    response = researcher_client.post(reverse("evaluation:job-create"), data)
    assert response.status_code == 400
    assert any(message in error for error in response.context["form"].errors[field]), response.context["form"].errors
    assert "The job was not created." in response.content.decode()
    assert EvaluationJob.objects.count() == 0
    assert ModelSpec.objects.count() == 0


def test_a_language_the_dataset_lacks_is_refused(researcher_client, tiny_model_dir):
    make_dataset()
    make_dataset(slug="other", name="Other")
    Prompt.objects.filter(dataset__slug="other", language="de").delete()
    response = researcher_client.post(
        reverse("evaluation:job-create"), form_data(model_path=str(tiny_model_dir), dataset="other", languages=["de"])
    )
    assert response.status_code == 400
    assert response.context["form"].errors["languages"] == ["Other has no prompts in: de."]
    assert EvaluationJob.objects.count() == 0


def test_create_job_errors_land_on_the_form(researcher_client, dataset, tmp_path):
    """Checks only the service can make (paths, method parameters) come back on their fields."""
    missing = tmp_path / "no-such-model"
    response = researcher_client.post(
        reverse("evaluation:job-create"), form_data(model_path=str(missing), method_params='{"alpha": 2}')
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "not an existing path" in errors["model_path"][0]
    assert "alpha is not a known parameter" in errors["method_params"][0]
    assert EvaluationJob.objects.count() == 0
    assert ModelSpec.objects.count() == 0


def test_researcher_creates_a_job_with_the_form(researcher_client, dataset, tiny_model_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = researcher_client.post(
            reverse("evaluation:job-create"),
            form_data(model_path=str(tiny_model_dir), name="tiny smoke", method_params="{}",
                      scorer_params='{"lexicon": {}}'),
        )
    job = EvaluationJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluation:job-detail", args=[job.pk])
    assert (job.name, job.detox_method, job.k, job.max_new_tokens, job.seed) == ("tiny smoke", "none", 3, 8, 7)
    assert job.languages == ["en", "ar"] and job.scorer_keys == ["lexicon"]
    assert job.created_by == researcher_client.user
    assert job.status == EvaluationJob.Status.QUEUED
    assert job.model.location == str(tiny_model_dir.resolve()) and job.model_fingerprint
    # Planned: the four en/ar prompts, one per chunk, a generate and a score chunk each.
    assert job.total_prompts == 4
    assert JobPrompt.objects.filter(job=job).count() == 4
    assert Chunk.objects.filter(job=job, stage=Chunk.Stage.GENERATE).count() == 4
    assert Chunk.objects.filter(job=job, stage=Chunk.Stage.SCORE).count() == 4
    assert len(callbacks) >= 1  # the generate tasks are sent once the transaction commits


def test_a_registered_model_can_be_chosen(researcher_client, dataset, tiny_model_dir):
    gone_path = tiny_model_dir.parent / "gone"
    gone = ModelSpec.objects.create(name="gone", location=str(gone_path), fingerprint="a" * 64)
    response = researcher_client.post(reverse("evaluation:job-create"), form_data(model=gone.pk, languages=["de"]))
    assert response.context["form"].errors["model"] == [f"gone: model path {gone_path.resolve()} does not exist"]
    assert EvaluationJob.objects.count() == 0

    spec = ModelSpec.objects.create(name="registered", location=str(tiny_model_dir))
    response = researcher_client.post(reverse("evaluation:job-create"), form_data(model=spec.pk, languages=["de"]))
    assert response.status_code == 302, response.context["form"].errors
    job = EvaluationJob.objects.get()
    assert job.model == spec and job.total_prompts == 1


def test_giving_both_a_registered_model_and_a_path_is_refused(researcher_client, dataset, tiny_model_dir):
    spec = ModelSpec.objects.create(name="registered", location="/models/registered", fingerprint="a" * 64)
    response = researcher_client.post(
        reverse("evaluation:job-create"), form_data(model=spec.pk, model_path=str(tiny_model_dir))
    )
    assert response.context["form"].errors["model_path"] == ["Give either a registered model or a path, not both."]
    assert EvaluationJob.objects.count() == 0


# --- list, detail, progress, cancel ----------------------------------------------------------------


def test_job_list(researcher_client, dataset):
    done = make_job("alpha", "none", dataset, languages=["en"], user=researcher_client.user, total_prompts=4,
                    generated_prompts=4, scored_prompts=4)
    running = make_job("beta", "system_prompt", dataset, status=EvaluationJob.Status.RUNNING, total_prompts=10,
                       generated_prompts=5, scored_prompts=0)
    response = researcher_client.get(reverse("evaluation:job-list"))
    html = response.content.decode()
    assert [job for job, *_ in response.context["rows"]] == [running, done]  # newest first
    assert [progress.percent for _, progress, _ in response.context["rows"]] == [25, 100]
    assert 'style="width: 25%"' in html and 'class="status status-running"' in html
    assert ">res</td>" in html and "system_prompt" in html


@pytest.fixture
def finished_job(dataset):
    job = make_job("alpha", "none", dataset, total_prompts=2, generated_prompts=2, scored_prompts=2, seed=1234)
    en = Prompt.objects.get(dataset=dataset, language="en", external_id="1")
    ar = Prompt.objects.get(dataset=dataset, language="ar", external_id="1")
    add_generation(job, en, XSS_GENERATION, score=0.9)
    add_generation(job, ar, ARABIC_GENERATION, score=0.1)
    add_toxicity(job, "en", emt=0.52, tp=0.61, avg=0.23, std=0.11)
    add_toxicity(job, "ar", emt=0.12, tp=0.2, avg=0.05)
    add_quality(job, "en", ppl=17.25, dists=(0.9, 0.8, 0.7))
    return job


def test_detail_escapes_generations_and_marks_right_to_left(researcher_client, finished_job):
    response = researcher_client.get(reverse("evaluation:job-detail", args=[finished_job.pk]))
    html = response.content.decode()
    assert XSS_GENERATION not in html
    assert "&lt;script&gt;alert(&quot;gen&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert f'<div class="generation-text" lang="ar" dir="rtl">{ARABIC_GENERATION}</div>' in html
    assert '<div class="generation-text" lang="en" dir="ltr">' in html


def test_detail_shows_results_and_the_reproducibility_card(researcher_client, finished_job):
    response = researcher_client.get(reverse("evaluation:job-detail", args=[finished_job.pk]))
    html = response.content.decode()
    results = response.context["results"]
    assert [r.language.code for r in results] == ["ar", "en"]
    english = results[1]
    assert [(row.scorer, row.category) for row in english.toxicity] == [("lexicon", "toxicity")]
    assert english.toxicity[0].cells["emt"].std == pytest.approx(0.11)
    assert english.quality["ppl"].value == pytest.approx(17.25)
    assert "<strong>0.520</strong> <span class=\"muted\">± 0.110</span><span class=\"ci\">[0.470, 0.570]</span>" in html
    assert "<strong>17.25</strong> <span class=\"muted\">[16.25, 18.25]</span>" in html
    assert "<code>1234</code>" in html  # seed
    assert "v-test" in html  # code version
    assert f'title="{"f" * 64}"' in html  # model fingerprint
    assert '<span class="variant">k=25, ≥0.5</span>' in html


def test_progress_json(researcher_client, dataset):
    job = make_job("alpha", "none", dataset, status=EvaluationJob.Status.RUNNING, total_prompts=10,
                   generated_prompts=6, scored_prompts=2)
    Chunk.objects.create(job=job, stage=Chunk.Stage.GENERATE, index=0, status=Chunk.Status.DONE)
    Chunk.objects.create(job=job, stage=Chunk.Stage.GENERATE, index=1, status=Chunk.Status.RUNNING)
    response = researcher_client.get(reverse("evaluation:job-progress", args=[job.pk]))
    assert response["Content-Type"] == "application/json"
    data = json.loads(response.content)
    assert data["status"] == "running" and data["stage"] == "generating"
    assert (data["total_prompts"], data["generated_prompts"], data["scored_prompts"]) == (10, 6, 2)
    assert data["percent"] == 40 and data["terminal"] is False
    assert data["chunks"]["generate"] == {"done": 1, "running": 1}


def test_cancel(researcher_client, dataset):
    job = make_job("alpha", "none", dataset, status=EvaluationJob.Status.RUNNING, user=researcher_client.user)
    url = reverse("evaluation:job-cancel", args=[job.pk])
    assert researcher_client.get(url).status_code == 405
    response = researcher_client.post(url, follow=True)
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.CANCELLED and job.cancel_requested
    assert f"Job {job.pk} was cancelled." in response.content.decode()
    # A finished job cannot be cancelled: the message says why, nothing changes.
    response = researcher_client.post(url, follow=True)
    assert "has already finished" in response.content.decode()
    assert json.loads(researcher_client.get(reverse("evaluation:job-progress", args=[job.pk])).content)["terminal"]


def test_cancel_needs_the_csrf_token(dataset):
    from django.test import Client

    owner = make_user("res2", Role.RESEARCHER)
    client = Client(enforce_csrf_checks=True)
    client.login(username="res2", password=PASSWORD)
    job = make_job("alpha", "none", dataset, status=EvaluationJob.Status.RUNNING, user=owner)
    assert client.post(reverse("evaluation:job-cancel", args=[job.pk])).status_code == 403
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.RUNNING


def test_a_job_run_for_real_shows_on_its_page_and_the_leaderboard(researcher_client, dataset, tiny_model_dir):
    """The whole way: create_job, the inline runner (tiny model, lexicon scorer), finalize's
    JobMetric rows, then the job page and the leaderboard read those rows."""
    from evaluation import services
    from evaluation.models import JobMetric

    job = services.create_job(
        user=researcher_client.user, model=str(tiny_model_dir), dataset="mini", languages=["en", "ar"], k=2,
        max_new_tokens=4, scorers=["lexicon"], seed=5, enqueue=False,
    )
    job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.DONE, job.error
    emt = JobMetric.objects.get(job=job, language="ar", scorer="lexicon", category="toxicity", metric="emt",
                                subset="all", variant="k=2")

    page = researcher_client.get(reverse("evaluation:job-detail", args=[job.pk]))
    arabic = next(r for r in page.context["results"] if r.language.code == "ar")
    assert arabic.toxicity[0].cells["emt"].value == emt.value
    assert set(arabic.quality) == {"dist-1", "dist-2", "dist-3"}  # no perplexity scorer in this job
    assert len(page.context["samples"]) == 4  # two prompts in each language, first sample each

    board = researcher_client.get(reverse("evaluation:leaderboard-language", args=["ar"])).context["board"]
    assert [entry.job for entry in board.entries] == [job]
    assert board.entries[0].cells["emt"].value == emt.value
    assert board.variants.labels == ["k=2", "k=2, ≥0.5"]


@pytest.mark.parametrize("next_url, lands_on", [("/evaluation/jobs/?page=1", "/evaluation/jobs/?page=1"),
                                                ("https://evil.example/", None), ("//evil.example/x", None)])
def test_cancel_goes_back_only_to_a_page_of_this_site(researcher_client, dataset, next_url, lands_on):
    job = make_job("m", "none", dataset, status=EvaluationJob.Status.RUNNING, user=researcher_client.user)
    response = researcher_client.post(reverse("evaluation:job-cancel", args=[job.pk]), {"next": next_url})
    assert response.status_code == 302
    assert response["Location"] == (lands_on or reverse("evaluation:job-detail", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.CANCELLED


# --- run again with changes ---------------------------------------------------------------------


class FormValues(HTMLParser):
    """The values a browser would submit for the form on a page (inputs, selects, textareas)."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and name != "csrfmiddlewaretoken":
            if attrs.get("type") in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.values.setdefault(name, []).append(attrs.get("value", "on"))
            else:
                self.values.setdefault(name, []).append(attrs.get("value") or "")
        elif tag == "select":
            self._select = name
            self.values.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in attrs:
            self.values[self._select].append(attrs.get("value", ""))
        elif tag == "textarea":
            self._textarea = name
            self.values[name] = [""]

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea][0] += data


def submitted_values(html: str) -> dict[str, list[str]]:
    parser = FormValues()
    parser.feed(html)
    return parser.values


def test_run_again_fills_the_form_with_the_jobs_parameters(researcher_client, dataset, tiny_model_dir):
    from evaluation import services
    from toxplatform.corpus.models import PromptLabel

    for prompt in Prompt.objects.filter(dataset=dataset, language__in=["ar", "de"], is_toxic=True):
        PromptLabel.objects.create(prompt=prompt, category_id="toxicity", value=0.9, source="human")
    source = services.create_job(
        model=str(tiny_model_dir), method="system_prompt", method_params={"instruction": "Be kind & <polite>."},
        dataset="mini", languages=["ar", "de"], categories=["toxicity"], prompt_split="toxic",
        prompts_per_language=1, k=4, max_new_tokens=6, top_p=0.8, temperature=0.7, seed=42,
        scorers=["lexicon"], toxic_threshold=0.4, threshold_rule=">", batch_size=3, chunk_size=5,
        name="baseline run", enqueue=False,
    )
    detail = researcher_client.get(reverse("evaluation:job-detail", args=[source.pk])).content.decode()
    assert f'href="/evaluation/jobs/new/?from={source.pk}"' in detail

    page = researcher_client.get(reverse("evaluation:job-create"), {"from": source.pk})
    assert page.status_code == 200
    html = page.content.decode()
    assert f"Filled in from <a href=\"/evaluation/jobs/{source.pk}/\">job {source.pk}</a>" in html
    assert "Not carried over" not in html
    values = submitted_values(html)
    assert json.loads(values["method_params"][0]) == {"instruction": "Be kind & <polite>."}
    assert "Be kind &amp; &lt;polite&gt;." in html and "<polite>" not in html  # escaped in the page
    # What a browser submits unchanged, but for the method: the new job differs in that alone.
    data = {name: v if len(v) != 1 else v[0] for name, v in values.items()}
    data["method"] = "none"
    data["method_params"] = "{}"
    response = researcher_client.post(reverse("evaluation:job-create"), data)
    assert response.status_code == 302, response.context["form"].errors
    again = EvaluationJob.objects.exclude(pk=source.pk).get()
    compared = ["model_id", "dataset_id", "languages", "categories", "prompt_split", "prompts_per_language", "k",
                "max_new_tokens", "top_p", "temperature", "seed", "scorers", "toxic_threshold", "threshold_rule",
                "batch_size", "chunk_size", "name", "total_prompts"]
    # Languages come back in the page's order (checkboxes grouped by script); the order does
    # not change which prompts a job selects.
    assert sorted(again.languages) == sorted(source.languages)
    compared.remove("languages")
    assert {f: getattr(again, f) for f in compared} == {f: getattr(source, f) for f in compared}
    assert (again.detox_method, again.detox_params) == ("none", {})


def test_run_again_says_what_the_form_cannot_hold(researcher_client, dataset, tiny_model_dir):
    from evaluation import services

    source = services.create_job(
        model=str(tiny_model_dir), dataset="mini", languages=["en"], k=2, max_new_tokens=4, enqueue=False,
        scorers=[{"name": "lexicon", "key": "lexicon-a"}, {"name": "lexicon", "key": "lexicon-b"}],
    )
    html = researcher_client.get(reverse("evaluation:job-create"), {"from": source.pk}).content.decode()
    assert "Not carried over: the job lists a scorer twice" in html
    assert "scorer keys given by the job (lexicon-a, lexicon-b) are not kept" in html
    assert submitted_values(html)["scorers"] == ["lexicon"]


def test_run_again_of_a_job_that_does_not_exist_is_a_404(researcher_client, dataset):
    for bad in ("999999", "abc", "-1"):
        assert researcher_client.get(reverse("evaluation:job-create"), {"from": bad}).status_code == 404


def test_sample_browser_links_each_prompt_and_offers_a_raw_left_to_right_view(researcher_client, dataset):
    job = make_job("alpha", "none", dataset)
    prompt = Prompt.objects.get(dataset=dataset, language="ar", external_id="1")
    add_generation(job, prompt, ARABIC_GENERATION + " <b>x</b>", score=0.4)
    url = reverse("evaluation:job-samples", args=[job.pk])
    html = researcher_client.get(url).content.decode()
    assert f'href="{reverse("corpus:prompt-detail", args=["mini", prompt.pk])}"' in html
    assert "raw-view" not in html and 'dir="rtl"' in html
    raw = researcher_client.get(url, {"view": "raw"}).content.decode()
    assert '<table class="data samples raw-view">' in raw
    assert "&lt;b&gt;x&lt;/b&gt;" in raw and "<b>x</b>" not in raw  # still escaped


def test_job_list_filters_and_hides_other_peoples_cancelled_jobs(researcher_client, dataset):
    mine = make_job("alpha", "none", dataset, user=researcher_client.user)
    my_cancelled = make_job("alpha", "none", dataset, user=researcher_client.user,
                            status=EvaluationJob.Status.CANCELLED)
    other = make_user("other", Role.RESEARCHER)
    theirs = make_job("beta", "none", dataset, user=other)
    their_cancelled = make_job("beta", "none", dataset, user=other, status=EvaluationJob.Status.CANCELLED)

    def listed(**query):
        response = researcher_client.get(reverse("evaluation:job-list"), query)
        return {job.pk for job, *_ in response.context["rows"]}

    cli_cancelled = make_job("beta", "none", dataset, status=EvaluationJob.Status.CANCELLED)  # no owner

    assert listed() == {mine.pk, my_cancelled.pk, theirs.pk, cli_cancelled.pk}  # theirs cancelled: noise to me
    assert listed(status="cancelled") == {my_cancelled.pk, their_cancelled.pk, cli_cancelled.pk}
    assert listed(owner="mine") == {mine.pk, my_cancelled.pk}
    assert listed(model="beta") == {theirs.pk, cli_cancelled.pk}
    assert listed(model="gamma") == set()
    bad = researcher_client.get(reverse("evaluation:job-list"), {"status": "<b>x</b>"})
    assert bad.status_code == 400 and "<b>x</b>" not in bad.content.decode()


def test_counts_have_thousands_separators(researcher_client, dataset):
    job = make_job("alpha", "none", dataset, total_prompts=30263, generated_prompts=30263, scored_prompts=1200)
    html = researcher_client.get(reverse("evaluation:job-detail", args=[job.pk])).content.decode()
    assert '<strong data-count="total_prompts">30,263</strong>' in html and "30,263 in total" in html
