"""Scorer coverage (Scorer.covers): recorded per job and scorer at creation, shown beside every
number from a scorer in a language it does not cover (job page, leaderboards, heatmaps)."""
import pytest
from django.urls import reverse

from evaluation import services
from evaluation.scorers import registry as scorer_registry
from tests.evaluation.results_data import add_toxicity, make_job
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.corpus.models import Prompt

pytestmark = pytest.mark.django_db
LEXICON = "lexicon"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


def test_create_job_records_what_each_scorer_covers(dataset, tiny_model_dir):
    Prompt.objects.create(dataset=dataset, language_id="he", external_id="1", text="אתה", group_id="1")
    lexicon = scorer_registry.get(LEXICON)()
    assert lexicon.covers("en") is True and lexicon.covers("he") is False
    job = services.create_job(model=str(tiny_model_dir), dataset="mini", languages=["en", "he"], k=1,
                              max_new_tokens=2, scorers=[LEXICON], enqueue=False)
    assert job.scorer_coverage == {LEXICON: {"en": True, "he": False}}


def test_a_scorer_that_cannot_say_claims_nothing():
    from evaluation.scorers.base import Scorer

    assert Scorer.covers(None, "he") is None  # the default: unknown, no mark


def test_job_page_and_leaderboard_mark_a_number_from_a_scorer_that_does_not_cover_it(researcher_client, dataset):
    job = make_job("alpha", "none", dataset, scorer_coverage={"lexicon": {"en": True, "ar": False}})
    add_toxicity(job, "en", emt=0.4, tp=0.3, avg=0.2)
    add_toxicity(job, "ar", emt=0.0, tp=0.0, avg=0.0)
    html = researcher_client.get(reverse("evaluation:job-detail", args=[job.pk])).content.decode()
    assert html.count('class="coverage-mark not-covered"') == 2  # the summary's Arabic row and its detail
    assert "lexicon does not cover Arabic" in html
    arabic = researcher_client.get(reverse("evaluation:leaderboard-language", args=["ar"])).content.decode()
    english = researcher_client.get(reverse("evaluation:leaderboard-language", args=["en"])).content.decode()
    assert "not covered</span>" in arabic and "not covered</span>" not in english
    overview = researcher_client.get(reverse("evaluation:leaderboard-list")).content.decode()
    assert overview.count("not covered</span>") == 1


def test_identical_categories_of_a_scorer_are_shown_once(researcher_client, dataset):
    from evaluation import results

    job = make_job("alpha", "none", dataset)
    add_toxicity(job, "en", emt=0.4, tp=0.3, avg=0.2)
    add_toxicity(job, "en", emt=0.4, tp=0.3, avg=0.2, category="insult")  # the very same numbers
    add_toxicity(job, "en", emt=0.5, tp=0.3, avg=0.2, category="violence")  # a different value
    (english,) = results.job_results(job)
    assert [(row.category, row.category_name, row.merged) for row in english.toxicity] == [
        ("insult", "Insult = Toxicity", ["toxicity"]), ("violence", "Violence", [])]
