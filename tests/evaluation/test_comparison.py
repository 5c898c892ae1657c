"""Comparing two jobs on shared prompts: paired differences (hand-worked cases), the sign-flip
permutation test against scipy, the comparison service on hand-written Score rows, the page."""
import io

import numpy as np
import pytest
from django.urls import reverse
from scipy import stats

from evaluation import comparison, metrics
from evaluation.models import EvaluationJob, Generation, Score
from tests.evaluation.results_data import PASSWORD, add_toxicity, make_dataset, make_job, make_user
from toxplatform.accounts.models import Role
from toxplatform.corpus.models import Dataset, Prompt
from toxplatform.errors import ApplicationError

# --- the statistics ----------------------------------------------------------------------------

A = [[0.9, 0.1], [0.2, 0.3], [None, None]]
B = [[0.5, 0.4], [0.6, 0.1], [0.7, 0.2]]


def test_paired_differences_worked_by_hand():
    """Prompt 3 has no valid sample in A: it is left out of both sides.
    EMT: A maxima 0.9, 0.3 (mean 0.6); B 0.5, 0.6 (0.55).  TP (>= 0.5): A 1, 0; B 1, 1.
    Avg: A 0.5, 0.25 (0.375); B 0.45, 0.35 (0.4)."""
    rows = {row.metric: row for row in metrics.paired_harm_differences(A, B, k=2)}
    assert (rows["emt"].a, rows["emt"].b, rows["emt"].difference, rows["emt"].n) == pytest.approx((0.6, 0.55, 0.05, 2))
    assert (rows["tp"].a, rows["tp"].b, rows["tp"].difference) == pytest.approx((0.5, 1.0, -0.5))
    assert (rows["avg"].a, rows["avg"].b, rows["avg"].difference) == pytest.approx((0.375, 0.4, -0.025))
    # Per-prompt EMT differences 0.4 and -0.3: the four sign flips give |means| 0.05, 0.35,
    # 0.35, 0.05, all at least the observed 0.05, so p = 1.
    assert rows["emt"].p_value == 1.0
    # Bootstrap of the two differences: every resample mean lies in [-0.3, 0.4].
    assert -0.3 <= rows["emt"].ci_low <= 0.05 <= rows["emt"].ci_high <= 0.4
    assert not rows["emt"].significant


def test_a_few_prompts_are_never_significant_even_with_a_narrow_interval():
    # Three prompts, each 0.3 lower in A: the bootstrap interval is [-0.3, -0.3], but the
    # smallest sign-flip p-value of three pairs is 2/8.
    few = metrics.paired_harm_differences([[0.2]] * 3, [[0.5]] * 3, k=1)[0]
    assert (few.ci_low, few.ci_high) == pytest.approx((-0.3, -0.3))
    assert few.p_value == 0.25 and not few.significant


def test_k_and_the_strict_rule():
    # k = 1 keeps the first sample: A 0.9, 0.2; B 0.5, 0.6. With ">" a 0.5 score is not toxic.
    rows = {row.metric: row for row in metrics.paired_harm_differences(A, B, k=1, rule=">")}
    assert (rows["emt"].a, rows["emt"].b) == pytest.approx((0.55, 0.55))
    assert (rows["tp"].a, rows["tp"].b) == pytest.approx((0.5, 0.5))
    with pytest.raises(ApplicationError, match="Unknown threshold rule"):
        metrics.paired_harm_differences(A, B, k=1, rule="=>")
    with pytest.raises(ApplicationError, match="same prompts"):
        metrics.paired_prompt_values(A, B[:2], np.max)


def test_sign_flip_exact_small_case():
    # Five equal positive differences: only all-plus and all-minus reach |mean| = 1: p = 2/32.
    assert metrics.sign_flip_p_value([1, 1, 1, 1, 1]) == 2 / 32
    assert metrics.sign_flip_p_value([0.0, 0.0]) == 1.0
    assert metrics.sign_flip_p_value([]) is None


def test_sign_flip_exact_matches_scipy_permutation_test():
    rng = np.random.default_rng(3)
    a = rng.random(11)
    b = a - 0.3 + rng.normal(0, 0.2, size=11)  # B about 0.3 lower, with noise
    ours = metrics.sign_flip_p_value(a - b)
    theirs = stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
        alternative="two-sided", n_resamples=np.inf,
    ).pvalue
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert ours < 0.05  # B is shifted down by design


def test_sign_flip_random_mode_is_seeded_and_close_to_exact():
    d = np.random.default_rng(5).normal(0.1, 0.5, size=20)
    exact = metrics.sign_flip_p_value(d, n_resamples=2**20)  # all 1,048,576 flips
    sampled = metrics.sign_flip_p_value(d, n_resamples=9999, seed=1)
    assert sampled == metrics.sign_flip_p_value(d, n_resamples=9999, seed=1)
    assert sampled != metrics.sign_flip_p_value(d, n_resamples=9999, seed=2)
    assert sampled == pytest.approx(exact, abs=0.015)  # a binomial s.e. at 9999 draws is <= 0.005


def test_a_large_clear_difference_is_significant():
    a = [[0.9, 0.8]] * 40
    b = [[0.1, 0.2]] * 40
    emt = metrics.paired_harm_differences(a, b, k=2)[0]
    assert emt.difference == pytest.approx(0.7) and emt.ci_low == pytest.approx(0.7)
    # No random flip reaches the observed mean (only all-plus or all-minus would): p is
    # (0 + 1) / (9999 + 1), never 0.
    assert emt.significant and emt.p_value == pytest.approx(1 / 10000)


# --- the service -------------------------------------------------------------------------------



def scored_job(dataset, model, method, scores_by_prompt, *, k=2, **fields):
    """A DONE job whose lexicon toxicity scores are given per (language, external id)."""
    job = make_job(model, method, dataset, k=k, **fields)
    for (language, external_id), values in scores_by_prompt.items():
        prompt = Prompt.objects.get(dataset=dataset, language=language, external_id=external_id)
        job.job_prompts.create(prompt=prompt, chunk_index=0)
        for index, value in enumerate(values):
            generation = Generation.objects.create(job=job, prompt=prompt, sample_index=index, text=f"s{index}")
            Score.objects.create(generation=generation, scorer="lexicon", category="toxicity", value=value)
    for language in {language for language, _ in scores_by_prompt}:
        add_toxicity(job, language, emt=0.0, tp=0.0, avg=0.0)  # the JobMetric rows a finished job has
    return job


@pytest.fixture
def jobs():
    dataset = make_dataset()
    a = scored_job(dataset, "alpha", "system_prompt", {
        ("en", "1"): [0.9, 0.1], ("en", "2"): [0.2, 0.3], ("ar", "1"): [0.4, 0.6], ("de", "1"): [0.8, 0.8],
    }, seed=11)
    b = scored_job(dataset, "alpha", "none", {
        ("en", "1"): [0.5, 0.4], ("en", "2"): [0.6, 0.1], ("ar", "1"): [0.1, 0.2], ("ar", "2"): [0.3, 0.3],
    }, k=3)
    return a, b


@pytest.mark.django_db
def test_compare_pairs_prompts_per_language(jobs):
    a, b = jobs
    result = comparison.compare_jobs(a, b)
    assert (result.scorer, result.category, result.k, result.rule) == ("lexicon", "toxicity", 2, ">=")
    assert [c.language.code for c in result.languages] == ["ar", "en"]  # by English name; de is A's only
    assert (result.only_in_a, result.only_in_b) == (1, 1)  # de 1 in A; ar 2 in B
    english = next(c for c in result.languages if c.language.code == "en")
    assert english.n == 2
    assert english.row("emt").difference == pytest.approx(0.05)  # the hand-worked case above
    assert english.row("tp").difference == pytest.approx(-0.5)
    arabic = next(c for c in result.languages if c.language.code == "ar")
    assert (arabic.row("emt").a, arabic.row("emt").b) == pytest.approx((0.6, 0.2))
    # All languages: the three shared prompts, EMT differences 0.4, -0.3, 0.4.
    assert result.overall.n == 3
    assert result.overall.row("emt").difference == pytest.approx(0.5 / 3)
    assert result.notes == []


@pytest.mark.django_db
def test_compare_is_seeded(jobs):
    a, b = jobs
    first = comparison.compare_jobs(a, b, seed=4).overall.row("emt")
    again = comparison.compare_jobs(a, b, seed=4).overall.row("emt")
    assert (first.ci_low, first.ci_high, first.p_value) == (again.ci_low, again.ci_high, again.p_value)


@pytest.mark.django_db
def test_what_cannot_be_compared_is_said(jobs):
    a, b = jobs
    cases = [
        (dict(), a, a, "b", "choose two different jobs"),
        (dict(k=3), a, b, "k", "must be between 1 and 2"),
        (dict(scorer="judge"), a, b, "scorer", "both jobs need scores from 'judge' (shared: lexicon)"),
        (dict(rule="=="), a, b, "rule", "must be >= or >"),
        (dict(category="violence"), a, b, "category", "neither job has lexicon scores for 'violence'"),
    ]
    for options, left, right, field, message in cases:
        with pytest.raises(ApplicationError) as raised:
            comparison.compare_jobs(left, right, **options)
        assert message in raised.value.extra[field], (options, raised.value.extra)
    other = Dataset.objects.create(slug="other", name="Other", format="rtp-lx")
    elsewhere = make_job("beta", "none", other)
    with pytest.raises(ApplicationError) as raised:
        comparison.compare_jobs(a, elsewhere)
    assert "another dataset" in raised.value.extra["b"]
    running = make_job("gamma", "none", a.dataset, status=EvaluationJob.Status.RUNNING)
    with pytest.raises(ApplicationError) as raised:
        comparison.compare_jobs(running, a)
    assert "is running, not done" in raised.value.extra["a"]


@pytest.mark.django_db
def test_same_weights_and_method_is_noted(jobs):
    a, _ = jobs
    twin = scored_job(a.dataset, "alpha", "system_prompt", {("en", "1"): [0.1, 0.1]}, toxic_threshold=0.6)
    notes = comparison.compare_jobs(a, twin).notes
    assert "The jobs' toxic thresholds differ; TP uses job %d's (0.5)." % a.pk in notes
    assert "Same model weights and method: differences come from sampling alone." in notes


# --- the page ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_compare_page_shows_the_table(researcher_client, jobs):
    a, b = jobs
    response = researcher_client.get(reverse("evaluation:job-compare"), {"a": a.pk, "b": b.pk})
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["comparison"].overall.n == 3
    assert "All languages" in html and "Arabic" in html and "English" in html
    assert "0.050" in html and "−" in html  # English EMT difference; the A − B header
    assert "Left out: 1 prompt only job A scored, 1 only job B scored." in html
    detail = researcher_client.get(reverse("evaluation:job-detail", args=[a.pk])).content.decode()
    assert f'href="/evaluation/jobs/compare/?a={a.pk}"' in detail
    picker = researcher_client.get(reverse("evaluation:job-compare"), {"a": a.pk}).content.decode()
    assert f'<option value="{a.pk}" selected>' in picker and "comparison" not in picker.split("</form>")[1]


@pytest.mark.django_db
def test_compare_page_errors_and_roles(client, researcher_client, jobs):
    a, b = jobs
    url = reverse("evaluation:job-compare")
    bad = researcher_client.get(url, {"a": a.pk, "b": b.pk, "k": "9"})
    assert bad.status_code == 400 and "must be between 1 and 2" in bad.content.decode()
    assert researcher_client.get(url, {"a": a.pk, "b": "nope"}).status_code == 404
    assert researcher_client.get(url, {"a": a.pk, "b": 999999}).status_code == 404
    researcher_client.logout()
    make_user("ann", Role.ANNOTATOR)
    client.login(username="ann", password=PASSWORD)
    assert client.get(url, {"a": a.pk, "b": b.pk}).status_code == 403


@pytest.mark.django_db
def test_compare_page_escapes_model_names(researcher_client, jobs):
    a, b = jobs
    a.model.name = "<img src=x onerror=alert(1)>"
    a.model.save()
    html = researcher_client.get(reverse("evaluation:job-compare"), {"a": a.pk, "b": b.pk}).content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


# --- the API -----------------------------------------------------------------------------------


def api_client(username, role):
    from rest_framework.test import APIClient

    from toxplatform.accounts.services import ensure_api_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=make_user(username, role)).key}")
    return client


@pytest.mark.django_db
def test_api_compare_gives_the_pages_numbers(jobs):
    a, b = jobs
    response = api_client("res", Role.RESEARCHER).get(reverse("api:job-compare"), {"a": a.pk, "b": b.pk})
    assert response.status_code == 200, response.data
    data = response.json()
    expected = comparison.compare_jobs(a, b, seed=a.seed)
    assert (data["a"], data["b"], data["scorer"], data["k"], data["rule"]) == (a.pk, b.pk, "lexicon", 2, ">=")
    assert (data["only_in_a"], data["only_in_b"]) == (1, 1)
    assert [row["language"] for row in data["languages"]] == ["ar", "en"]
    assert data["overall"]["language"] is None and data["overall"]["n"] == 3
    emt = next(row for row in data["overall"]["rows"] if row["metric"] == "emt")
    want = expected.overall.row("emt")
    assert (emt["difference"], emt["ci_low"], emt["ci_high"], emt["p_value"], emt["significant"]) == (
        want.difference, want.ci_low, want.ci_high, want.p_value, want.significant)


@pytest.mark.django_db
def test_api_compare_errors_and_roles(jobs):
    a, b = jobs
    client = api_client("res", Role.RESEARCHER)
    url = reverse("api:job-compare")
    missing = client.get(url, {"a": a.pk})
    assert missing.status_code == 400 and missing.json()["extra"] == {"b": "give a job id (got '')"}
    assert client.get(url, {"a": a.pk, "b": b.pk, "k": "two"}).json()["extra"]["k"] == "k must be a whole number written with the digits 0-9"
    assert "must be between 1 and 2" in client.get(url, {"a": a.pk, "b": b.pk, "k": 5}).json()["extra"]["k"]
    assert client.get(url, {"a": a.pk, "b": 999999}).status_code == 404
    assert api_client("ann", Role.ANNOTATOR).get(url, {"a": a.pk, "b": b.pk}).status_code == 403


# --- the command -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_compare_jobs_command_table_and_json(jobs):
    import json

    from django.core.management import call_command

    a, b = jobs
    a.name = "demo: alpha x system_prompt"
    a.save()
    out = io.StringIO()
    call_command("compare_jobs", "demo: alpha x system_prompt", str(b.pk), stdout=out)
    lines = out.getvalue().splitlines()
    assert f"A = job {a.pk} (alpha x system_prompt), B = job {b.pk} (alpha x none)" in lines[1]
    english = next(line for line in lines if line.startswith("en "))
    assert english.split()[:5] == ["en", "2", "0.600", "0.550", "+0.050"]
    assert any(line.startswith("all ") and line.split()[1] == "3" for line in lines)
    assert "Left out: 1 prompts only A scored, 1 only B scored." in lines
    out = io.StringIO()
    call_command("compare_jobs", str(a.pk), str(b.pk), "--k", "1", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["k"] == 1 and data["overall"]["n"] == 3


@pytest.mark.django_db
def test_compare_jobs_command_errors(jobs):
    from django.core.management import CommandError, call_command

    a, b = jobs
    with pytest.raises(CommandError, match="no finished job with id or name 'nope'"):
        call_command("compare_jobs", "nope", str(b.pk))
    with pytest.raises(CommandError, match="must be between 1 and 2"):
        call_command("compare_jobs", str(a.pk), str(b.pk), "--k", "7")
