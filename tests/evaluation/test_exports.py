"""A job's results as files: every sample with its scores (JSON Lines, page download and API),
every metric row (CSV). Records checked field by field; hostile text stays data; roles."""
import csv
import io
import json

import pytest
from django.urls import reverse
from django.utils.html import escape
from rest_framework.test import APIClient

from evaluation import exports
from evaluation.models import Generation, JobMetric, Score
from tests.evaluation.results_data import (
    ARABIC_GENERATION,
    PASSWORD,
    PPL_SCORER,
    XSS_GENERATION,
    add_generation,
    add_metric,
    add_quality,
    add_toxicity,
    make_job,
    make_user,
)
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import ensure_api_token
from toxplatform.corpus.models import Prompt

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(dataset):
    """en prompt 1: two samples (the first hostile HTML), scored by the lexicon and perplexity;
    ar prompt 1: one sample, the lexicon could not score it (value None, with its reason)."""
    job = make_job("alpha", "none", dataset, k=2, total_prompts=2)
    en = Prompt.objects.get(dataset=dataset, language="en", external_id="1")
    ar = Prompt.objects.get(dataset=dataset, language="ar", external_id="1")
    first = add_generation(job, en, XSS_GENERATION, score=0.9)
    Score.objects.filter(generation=first).update(raw={"matches": ["alert"]})
    Score.objects.create(generation=first, scorer=PPL_SCORER, category="perplexity", value=12.5)
    Score.objects.create(generation=first, scorer="lexicon", category="profanity", value=0.0)
    add_generation(job, en, "a calm sentence", score=0.0, sample_index=1)
    arabic = add_generation(job, ar, ARABIC_GENERATION)
    for index, prompt in enumerate([en, ar, Prompt.objects.get(dataset=dataset, language="de", external_id="1")]):
        job.job_prompts.create(prompt=prompt, chunk_index=index)  # as plan_job writes them
    Score.objects.create(generation=arabic, scorer="lexicon", category="toxicity", value=None,
                         raw={"reason": "language 'ar' not supported by lexicon"})
    add_toxicity(job, "en", emt=0.9, tp=0.5, avg=0.45)
    add_quality(job, "en", ppl=12.5)
    return job


def read_jsonl(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def test_samples_download_has_every_sample_with_prompt_and_scores(researcher_client, job):
    response = researcher_client.get(reverse("evaluation:job-samples-download", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="job-{job.pk}-samples.jsonl"'
    assert response["X-Content-Type-Options"] == "nosniff"
    records = read_jsonl(response)
    # Ordered by language code, prompt, sample.
    assert [(r["language"], r["sample_index"]) for r in records] == [("ar", 0), ("en", 0), ("en", 1)]
    arabic, hostile, calm = records
    assert hostile == {
        "job": job.pk, "language": "en", "prompt_id": Prompt.objects.get(language="en", external_id="1").pk,
        "external_id": "1", "group_id": "1", "prompt_is_toxic": True, "prompt": "You are such a",
        "sample_index": 0, "continuation": XSS_GENERATION, "token_count": 5,
        "scores": {"lexicon": {"profanity": 0.0, "toxicity": 0.9}, PPL_SCORER: {"perplexity": 12.5}},
        "score_details": {"lexicon": {"toxicity": {"matches": ["alert"]}}},
    }
    assert calm["scores"] == {"lexicon": {"toxicity": 0.0}} and calm["score_details"] == {}
    assert arabic["continuation"] == ARABIC_GENERATION
    assert arabic["scores"] == {"lexicon": {"toxicity": None}}  # invalid stays null, never 0
    assert arabic["score_details"]["lexicon"]["toxicity"]["reason"].startswith("language 'ar'")


def test_samples_file_keeps_non_latin_text_readable(researcher_client, job):
    body = b"".join(researcher_client.get(
        reverse("evaluation:job-samples-download", args=[job.pk])).streaming_content).decode()
    assert ARABIC_GENERATION in body  # UTF-8 as it is, not \u escapes


def test_samples_download_by_language_and_unknown_language(researcher_client, job):
    url = reverse("evaluation:job-samples-download", args=[job.pk])
    response = researcher_client.get(url, {"language": "en"})
    assert [r["language"] for r in read_jsonl(response)] == ["en", "en"]
    assert response["Content-Disposition"] == f'attachment; filename="job-{job.pk}-samples-en.jsonl"'
    refused = researcher_client.get(url, {"language": "xx-Fake"})
    assert refused.status_code == 400
    assert "unknown language code 'xx-Fake'" in refused.content.decode()


def test_samples_are_read_in_batches_not_one_query_per_sample(researcher_client, dataset, django_assert_max_num_queries):
    job = make_job("beta", "none", dataset, k=30)
    prompts = list(Prompt.objects.filter(dataset=dataset))
    generations = Generation.objects.bulk_create(
        Generation(job=job, prompt=prompt, sample_index=i, text=f"text {i}") for prompt in prompts for i in range(30)
    )
    Score.objects.bulk_create(Score(generation=g, scorer="lexicon", category="toxicity", value=0.1) for g in generations)
    with django_assert_max_num_queries(4):  # the generations and their scores, in one batch
        records = list(exports.sample_records(job))
    assert len(records) == 150 == len(generations)
    assert all(record["scores"] == {"lexicon": {"toxicity": 0.1}} for record in records)


def test_metrics_csv_has_every_row_and_variant(researcher_client, job):
    add_metric(job, "en", "tp", 0.25, k=1, rule=">=", ci=(0.1, 0.4))
    add_metric(job, "en", "avg", None, subset="toxic", ci=(None, None))
    response = researcher_client.get(reverse("evaluation:job-metrics-download", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="job-{job.pk}-metrics.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == exports.METRIC_COLUMNS
    assert len(rows) - 1 == JobMetric.objects.filter(job=job).count()
    by_key = {(r[1], r[2], r[3], r[4], r[5]): r for r in rows[1:]}
    assert by_key[("lexicon", "toxicity", "all", "tp", "k=1, >=0.5")] == [
        "en", "lexicon", "toxicity", "all", "tp", "k=1, >=0.5", "0.25", "0.1", "0.4", "100"]
    assert by_key[("lexicon", "toxicity", "toxic", "avg", "k=2")][6:9] == ["", "", ""]  # None: empty cells
    assert by_key[(PPL_SCORER, "perplexity", "all", "ppl", "k=2")][6:9] == ["12.5", "11.5", "13.5"]


def test_metrics_csv_quotes_text_a_spreadsheet_would_run(researcher_client, job):
    add_metric(job, "en", "emt", 0.5, scorer="=cmd:calc", category="toxicity")
    rows = list(csv.reader(io.StringIO(b"".join(researcher_client.get(
        reverse("evaluation:job-metrics-download", args=[job.pk])).streaming_content).decode())))
    assert ["en", "'=cmd:calc", "toxicity", "all", "emt", "k=2", "0.5", "0.45", "0.55", "100"] in rows
    assert exports.spreadsheet_safe(-0.5) == -0.5 and exports.spreadsheet_safe("+1") == "'+1"


def test_job_page_links_both_downloads(researcher_client, job):
    html = researcher_client.get(reverse("evaluation:job-detail", args=[job.pk])).content.decode()
    assert f'href="/evaluation/jobs/{job.pk}/samples.jsonl"' in html
    assert f'href="/evaluation/jobs/{job.pk}/metrics.csv"' in html


def test_downloads_need_the_researcher_role(client, job):
    urls = [reverse("evaluation:job-samples-download", args=[job.pk]),
            reverse("evaluation:job-metrics-download", args=[job.pk])]
    for url in urls:
        assert client.get(url).status_code == 302  # to the login page
    make_user("ann", Role.ANNOTATOR)
    client.login(username="ann", password=PASSWORD)
    for url in urls:
        assert client.get(url).status_code == 403
    assert client.get(reverse("evaluation:job-samples-download", args=[job.pk + 1000])).status_code == 403


# --- API ------------------------------------------------------------------------------------


def api_client(username: str, role: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=make_user(username, role)).key}")
    return client


def test_api_samples_are_the_same_records_paginated(job):
    client = api_client("res", Role.RESEARCHER)
    url = reverse("api:job-samples", args=[job.pk])
    response = client.get(url, {"page_size": 2})
    assert response.status_code == 200, response.data
    assert response.data["count"] == 3
    assert len(response.data["results"]) == 2
    rest = client.get(response.data["next"]).data["results"]
    assert [dict(r) for r in response.data["results"] + rest] == list(exports.sample_records(job))
    english = client.get(url, {"language": "en"}).data
    assert english["count"] == 2
    refused = client.get(url, {"language": "xx-Fake"})
    assert refused.status_code == 400
    assert "unknown language code" in refused.data["message"]


def test_api_samples_need_the_researcher_role(job):
    url = reverse("api:job-samples", args=[job.pk])
    assert APIClient().get(url).status_code in (401, 403)
    assert api_client("ann", Role.ANNOTATOR).get(url).status_code == 403


def test_a_real_job_exports_k_samples_per_prompt(researcher_client, dataset, tmp_path):
    """The whole way: a tiny model run inline, then the download holds prompts x k records,
    each scored by the lexicon, matching the Generation rows."""
    from evaluation import services

    job = services.create_job(model=str(build_tiny_causal_lm(tmp_path / "tiny")), dataset="mini",
                              languages=["en", "de"], k=3, max_new_tokens=4, scorers=["lexicon"], enqueue=False)
    job = services.run_job_inline(job)
    assert job.status == "done", job.error
    records = read_jsonl(researcher_client.get(reverse("evaluation:job-samples-download", args=[job.pk])))
    assert len(records) == 3 * 3  # en 1, en 2, de 1
    assert {(r["prompt_id"], r["sample_index"]) for r in records} == set(
        Generation.objects.filter(job=job).values_list("prompt_id", "sample_index"))
    assert all(set(r["scores"]) == {"lexicon"} for r in records)
    texts = dict(Generation.objects.filter(job=job).values_list("id", "text"))
    assert sorted(r["continuation"] for r in records) == sorted(texts.values())


# --- browsing every sample -------------------------------------------------------------------


def test_sample_browser_orders_by_score_and_filters_by_language(researcher_client, job):
    url = reverse("evaluation:job-samples", args=[job.pk])
    response = researcher_client.get(url)
    assert response.status_code == 200
    page = response.context["page"]
    # Default: the first harm slice (lexicon: toxicity), highest first, the invalid (None) last.
    assert [g.text for g in page.object_list] == [XSS_GENERATION, "a calm sentence", ARABIC_GENERATION]
    html = response.content.decode()
    assert XSS_GENERATION not in html and "&lt;script&gt;alert(&quot;gen&quot;)&lt;/script&gt;" in html
    assert f'<div class="generation-text" lang="ar" dir="rtl">{ARABIC_GENERATION}</div>' in html
    assert '<option value="lexicon|toxicity" selected>' in html
    assert f'<option value="{PPL_SCORER}|perplexity">' in html
    assert "badge-high" in html and html.count("badge-high") == 1  # lexicon 0.9; a perplexity is not "high"
    by_prompt = researcher_client.get(url, {"order": "prompt", "language": "en"}).context["page"]
    assert [(g.prompt.language_id, g.sample_index) for g in by_prompt.object_list] == [("en", 0), ("en", 1)]
    perplexity = researcher_client.get(url, {"slice": f"{PPL_SCORER}|perplexity"}).context["page"]
    assert [g.text for g in perplexity.object_list] == [XSS_GENERATION]  # the one sample with a perplexity


def test_sample_browser_pages_and_bad_filters(researcher_client, job, django_assert_max_num_queries):
    prompt = Prompt.objects.get(language="de", external_id="1")
    Generation.objects.bulk_create(Generation(job=job, prompt=prompt, sample_index=i, text=f"de {i}") for i in range(60))
    url = reverse("evaluation:job-samples", args=[job.pk])
    first = researcher_client.get(url, {"order": "prompt", "language": "de"})
    assert first.context["page"].paginator.count == 60 and len(first.context["page"].object_list) == 50
    assert 'href="?order=prompt&amp;language=de&amp;page=2"' in first.content.decode()
    with django_assert_max_num_queries(12):  # session, user, job, filters, count, page, scores
        second = researcher_client.get(url, {"order": "prompt", "language": "de", "page": 2})
    assert [g.sample_index for g in second.context["page"].object_list] == list(range(50, 60))
    for params, message in [({"language": "xx"}, "this job has no prompts in 'xx'"),
                            ({"order": "random"}, "must be toxic or prompt"),
                            ({"slice": "judge|threat"}, "this job has no scores for 'judge|threat'")]:
        refused = researcher_client.get(url, params)
        assert refused.status_code == 400 and escape(message) in refused.content.decode(), params
    assert researcher_client.get(reverse("evaluation:job-detail", args=[job.pk])).content.decode().count(
        f'href="/evaluation/jobs/{job.pk}/samples/"') == 1
