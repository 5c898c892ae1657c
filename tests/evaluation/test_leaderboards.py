"""Leaderboard selectors and pages against JobMetric rows written by hand: which jobs count,
exact table contents and order, variants, heatmap, per-category page, query counts."""
import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evaluation import charts, leaderboards
from evaluation.leaderboards import Selection, resolve_selection, variant_matches
from evaluation.models import EvaluationJob
from tests.evaluation.results_data import (
    PPL_SCORER,
    add_metric,
    add_quality,
    add_toxicity,
    make_dataset,
    make_job,
    make_user,
)
from toxplatform.accounts.models import Role
from toxplatform.corpus.models import Language
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db


@pytest.fixture
def board():
    """Three standing entries on `mini`, plus jobs that must not count."""
    dataset = make_dataset()
    superseded = make_job("alpha", "none", dataset, finished_minutes=0)
    alpha_none = make_job("alpha", "none", dataset, finished_minutes=10)
    alpha_sys = make_job("alpha", "system_prompt", dataset, finished_minutes=5)
    beta_none = make_job("beta", "none", dataset, finished_minutes=3, threshold_rule=">")
    running = make_job("gamma", "none", dataset, status=EvaluationJob.Status.RUNNING)
    failed = make_job("delta", "none", dataset, status=EvaluationJob.Status.FAILED)

    add_toxicity(superseded, "en", emt=0.05, tp=0.01, avg=0.01)  # would win if it counted
    add_toxicity(running, "en", emt=0.01, tp=0.0, avg=0.0)
    add_toxicity(failed, "en", emt=0.02, tp=0.0, avg=0.0)
    add_toxicity(alpha_none, "en", emt=0.50, tp=0.60, avg=0.20, std=0.15)
    add_toxicity(alpha_none, "ar", emt=0.20, tp=0.25, avg=0.05)
    add_quality(alpha_none, "en", ppl=12.5, dists=(0.91, 0.82, 0.73))
    add_toxicity(alpha_sys, "en", emt=0.30, tp=0.40, avg=0.10, std=0.12)
    add_quality(alpha_sys, "en", ppl=14.0)
    add_toxicity(beta_none, "en", emt=0.40, tp=0.45, avg=0.15)
    # Another harm category and another scorer: only shown when chosen.
    add_toxicity(alpha_none, "en", emt=0.70, tp=0.80, avg=0.30, category="insult")
    add_toxicity(beta_none, "en", emt=0.65, tp=0.70, avg=0.25, category="insult")
    add_toxicity(beta_none, "de", emt=0.55, tp=0.60, avg=0.20, category="insult")
    add_toxicity(alpha_sys, "en", emt=0.99, tp=0.99, avg=0.99, scorer="zz_judge")
    # The toxic-prompt subset.
    add_toxicity(alpha_none, "en", emt=0.80, tp=0.90, avg=0.40, subset="toxic")
    return {"dataset": dataset, "alpha_none": alpha_none, "alpha_sys": alpha_sys, "beta_none": beta_none,
            "superseded": superseded}


def selection(board, **overrides):
    return Selection(**{"dataset": board["dataset"], "scorer": "lexicon", "category": "toxicity",
                        "fluency": PPL_SCORER, **overrides})


def english():
    return Language.objects.get(code="en")


def test_only_done_jobs_count_and_the_latest_of_model_method_dataset_stands(board):
    jobs = list(leaderboards.latest_done_jobs(dataset=board["dataset"]))
    assert jobs == [board["alpha_none"], board["alpha_sys"], board["beta_none"]]


def test_a_newer_run_replaces_the_older_one_even_when_created_earlier(board):
    rerun = make_job("alpha", "none", board["dataset"], finished_minutes=60)
    assert board["alpha_none"] not in leaderboards.latest_done_jobs()
    assert rerun in leaderboards.latest_done_jobs()


def test_language_leaderboard_rows_values_and_order(board):
    table = leaderboards.language_leaderboard(language=english(), selection=selection(board))
    assert [entry.label for entry in table.entries] == ["alpha · system_prompt", "beta · none", "alpha · none"]
    best = table.entries[0].cells
    assert (best["emt"].value, best["emt"].std, best["emt"].ci_low, best["emt"].ci_high) == pytest.approx(
        (0.30, 0.12, 0.25, 0.35)
    )
    assert best["tp"].value == pytest.approx(0.40)
    assert best["avg"].value == pytest.approx(0.10)
    assert best["ppl"].value == pytest.approx(14.0)
    last = table.entries[2].cells
    assert [last[m].value for m in ("emt", "tp", "avg", "ppl", "dist-1", "dist-2", "dist-3")] == pytest.approx(
        [0.50, 0.60, 0.20, 12.5, 0.91, 0.82, 0.73]
    )
    assert last["emt"].std == pytest.approx(0.15)
    # beta's job uses the ">" rule: its TP is the ">" variant, and the page says so.
    assert table.entries[1].cells["tp"].variant == "k=25, >0.5"
    assert table.variants.labels == ["k=25", "k=25, >0.5", "k=25, ≥0.5"]
    assert table.variants.mixed  # TP rows use two rules: the page warns
    assert "ppl" not in table.entries[1].cells  # beta has no perplexity: an empty cell, not a zero
    # The best value of each column (lower is better except for diversity) gets a star only
    # where its CI is apart from every other row's; otherwise it is marked tied.
    def marked(flag):
        return {m: [e.label for e in table.entries if e.cells.get(m) and getattr(e.cells[m], flag)]
                for m in ("emt", "tp", "dist-1")}

    # TP 0.40 [0.35, 0.45] overlaps beta's 0.45 [0.40, 0.50]; Dist-1 0.91 overlaps 0.90.
    assert {m: found for m, found in marked("best").items() if m != "emt"} == {"tp": [], "dist-1": []}
    assert {m: found for m, found in marked("tied").items() if m != "emt"} == {
        "tp": ["alpha · system_prompt"], "dist-1": ["alpha · none"]}


def test_a_star_and_ranks_only_where_confidence_intervals_are_apart(db):
    from tests.evaluation.results_data import add_toxicity, make_job

    dataset = make_dataset()
    for name, emt, ci in [("a", 0.10, (0.05, 0.15)), ("b", 0.30, (0.20, 0.40)), ("c", 0.35, (0.30, 0.45))]:
        add_toxicity(make_job(name, "none", dataset), "en", emt=emt, tp=emt, avg=emt, ci=ci)
    table = leaderboards.language_leaderboard(language=english(), selection=leaderboards.resolve_selection())
    ranks = [(e.label, e.rank, e.tied, e.cells["emt"].best) for e in table.entries]
    assert ranks == [("a · none", 1, False, True), ("b · none", 2, True, False), ("c · none", 2, True, False)]


def test_scorer_category_and_subset_filters(board):
    insult = leaderboards.language_leaderboard(language=english(), selection=selection(board, category="insult"))
    assert [(e.label, e.cells["emt"].value) for e in insult.entries] == [("beta · none", 0.65), ("alpha · none", 0.70)]
    judge = leaderboards.language_leaderboard(language=english(), selection=selection(board, scorer="zz_judge"))
    assert [(e.label, e.cells["emt"].value) for e in judge.entries] == [("alpha · system_prompt", 0.99)]
    toxic = leaderboards.language_leaderboard(language=english(), selection=selection(board, subset="toxic"))
    assert [(e.label, e.cells["emt"].value) for e in toxic.entries] == [("alpha · none", 0.80)]


def test_a_chosen_k_and_rule_pick_that_variant(board):
    """finalize stores every variant (k = 25, 10, 5, 1 x both rules); a table shows one per metric."""
    beta = board["beta_none"]  # its own rule is ">"
    add_metric(beta, "en", "tp", 0.55, k=25, rule=">=")
    add_metric(beta, "en", "emt", 0.33, k=10)
    add_metric(beta, "en", "emt_std", 0.09, k=10, ci=(None, None))
    add_metric(beta, "en", "tp", 0.35, k=10, rule=">")

    def beta_cells(**choice):
        table = leaderboards.language_leaderboard(language=english(), selection=selection(board, **choice))
        cells = next(entry.cells for entry in table.entries if entry.job == beta)
        return cells["emt"].value, cells["emt"].std, cells["tp"].value, cells["tp"].variant

    assert beta_cells() == (0.40, 0.1, 0.45, "k=25, >0.5")  # the job's own k and rule
    assert beta_cells(rule=">=") == (0.40, 0.1, 0.55, "k=25, >=0.5")
    assert beta_cells(k=10) == (0.33, 0.09, 0.35, "k=10, >0.5")
    # Jobs without a k=10 variant have no k=10 row.
    ten = leaderboards.language_leaderboard(language=english(), selection=selection(board, k=10))
    assert [entry.job for entry in ten.entries] == [beta]
    assert leaderboards.filter_options(selection(board)).ks == [25, 10]


def test_variant_matching():
    assert variant_matches({"k": 25, "rule": ">="}, k=25, rule=">=")
    assert not variant_matches({"k": 25, "rule": ">="}, k=25, rule=">")
    assert not variant_matches({"k": 25, "rule": ">"}, k=25, rule=">=")
    assert not variant_matches({"k": 10, "rule": ""}, k=25, rule=">=")
    assert variant_matches({"k": 5, "rule": ""}, k=5, rule=">")  # Dist-n: no rule
    assert variant_matches({"k": None, "rule": ""}, k=25, rule=">=")  # a row with neither matches any


def test_resolve_selection_defaults_and_errors(board):
    chosen = resolve_selection()
    assert (chosen.dataset, chosen.scorer, chosen.category, chosen.subset, chosen.k, chosen.rule,
            chosen.fluency) == (board["dataset"], "lexicon", "toxicity", "all", None, "", PPL_SCORER)
    assert resolve_selection(k="10", rule=">").k == 10
    for bad in ({"dataset": "nope"}, {"scorer": "nope"}, {"category": "violence"}, {"subset": "half"},
                {"k": "0"}, {"k": "x"}, {"rule": "<"}, {"fluency": "perplexity:nope"}, {"fluency": "lexicon"}):
        with pytest.raises(ApplicationError):
            resolve_selection(**bad)


def test_perplexity_under_two_lms_never_shares_the_ppl_column(board):
    """PPL under another scoring LM is another number: the column shows one LM's, chosen."""
    def add_ppl(job, language, value, scorer="perplexity:small-lm"):
        add_metric(job, language, "ppl", value, scorer=scorer, category="perplexity")

    add_ppl(board["beta_none"], "en", 40.0)
    add_ppl(board["alpha_sys"], "en", 33.0)

    def ppl(**choice):
        table = leaderboards.language_leaderboard(language=english(), selection=selection(board, **choice))
        return {entry.label: entry.cells["ppl"].value for entry in table.entries if "ppl" in entry.cells}

    assert ppl() == {"alpha · system_prompt": 14.0, "alpha · none": 12.5}
    assert ppl(fluency="perplexity:small-lm") == {"alpha · system_prompt": 33.0, "beta · none": 40.0}
    # Both keys cover two standing jobs: the tie goes by name.
    assert leaderboards.filter_options(selection(board)).fluency_scorers == [PPL_SCORER, "perplexity:small-lm"]
    add_ppl(board["alpha_none"], "ar", 50.0)
    assert resolve_selection().fluency == "perplexity:small-lm"  # now used by three jobs


def test_filter_options(board):
    options = leaderboards.filter_options(selection(board))
    assert options.scorers == ["lexicon", "zz_judge"]
    assert [c.slug for c in options.categories] == ["toxicity", "insult"]  # the categories' own order
    assert options.ks == [25]
    assert options.datasets == [board["dataset"]]
    summaries = [(category.slug, languages) for category, languages in leaderboards.category_summaries(selection(board))]
    assert summaries == [("toxicity", 2), ("insult", 2)]  # toxicity: en, ar; insult: en, de
    assert [lang.code for lang in leaderboards.leaderboard_languages(selection(board))] == ["ar", "en"]


def test_heatmap_languages_entries_and_values(board):
    heat = leaderboards.heatmap(selection=selection(board), metric=leaderboards.EMT)
    assert [language.code for language in heat.languages] == ["ar", "en"]  # by English name
    # Best mean over the languages an entry covers first: 0.30, (0.50+0.20)/2, 0.40.
    assert [entry.label for entry in heat.entries] == ["alpha · system_prompt", "alpha · none", "beta · none"]
    table = [[cell.value for _, cell in cells] for _, cells in heat.rows_by_language()]
    assert table == [[None, 0.20, None], [0.30, 0.50, 0.40]]
    tp = leaderboards.heatmap(selection=selection(board), metric=leaderboards.TP)
    assert [[c.value for _, c in cells] for _, cells in tp.rows_by_language()] == [[None, 0.25, None], [0.40, 0.60, 0.45]]
    with pytest.raises(ApplicationError):
        leaderboards.heatmap(selection=selection(board), metric=leaderboards.PPL)


def test_query_count_does_not_grow_with_jobs(board):
    def count(call):
        with CaptureQueriesContext(connection) as queries:
            call()
        return len(queries)

    calls = [
        lambda: leaderboards.language_leaderboard(language=english(), selection=selection(board)),
        lambda: leaderboards.heatmap(selection=selection(board)),
        lambda: leaderboards.filter_options(selection(board)),
        lambda: leaderboards.category_summaries(selection(board)),
    ]
    before = [count(call) for call in calls]
    for index in range(6):
        job = make_job(f"extra-{index}", "none", board["dataset"], finished_minutes=20 + index)
        for code in ("en", "ar", "de"):
            add_toxicity(job, code, emt=0.5, tp=0.5, avg=0.2)
            add_quality(job, code, ppl=10.0)
    assert [count(call) for call in calls] == before
    assert max(before) <= 6


# --- pages ------------------------------------------------------------------------------------


@pytest.fixture
def reader_client(client):
    make_user("reader", Role.RESEARCHER)  # leaderboards are for researchers (blindness)
    client.login(username="reader", password="results-test-password")
    return client


def test_leaderboards_need_a_login(client, board):
    response = client.get(reverse("evaluation:leaderboard-list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_overview_heatmap_shows_every_value_with_its_colour(reader_client, board):
    response = reader_client.get(reverse("evaluation:leaderboard-list"))
    assert response.status_code == 200
    html = response.content.decode()
    background, _ = charts.heat_colour(0.30)
    assert f"background-color:{background}" in html
    rows = response.context["heatmap"].rows_by_language()
    assert [language.code for language, _ in rows] == ["ar", "en"]
    for value in ("0.200", "0.300", "0.500", "0.400"):
        assert f'>{value}<span class="heat-n">n=100</span>' in html  # each value with its n
    assert '<span class="variant">k=25</span>' in html
    tp = reader_client.get(reverse("evaluation:leaderboard-list"), {"metric": "tp"}).content.decode()
    assert "k=25, ≥0.5" in tp and "k=25, &gt;0.5" in tp  # jobs with different rules: both are named
    assert "rows use different variants" in tp
    assert "rows use different variants" not in html  # every EMT is k=25
    assert reverse("evaluation:leaderboard-category", args=["insult"]) in html


def test_short_leaderboards_address_redirects(reader_client, board):
    response = reader_client.get("/leaderboards/?metric=tp")
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluation:leaderboard-list") + "?metric=tp"


def test_language_page_table_and_chart(reader_client, board):
    response = reader_client.get(reverse("evaluation:leaderboard-language", args=["en"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert [e.label for e in response.context["board"].entries] == ["alpha · system_prompt", "beta · none", "alpha · none"]
    assert html.index("system_prompt") < html.index("beta") < html.rindex(">alpha<")
    assert "0.300</span> <span class=\"std\">± 0.120</span>" in html
    assert "[0.250, 0.350]" in html
    assert html.count('class="chart-bar"') == 3  # one bar per entry, with whiskers
    assert html.count('class="chart-whisker"') == 9
    # Readers are researchers: each row links to its job page.
    assert reverse("evaluation:job-detail", args=[board["alpha_none"].pk]) in html
    # How far the scorer can be trusted in English: no scorer evaluation has run, so it says so.
    assert 'class="trust trust-unmeasured"' in html and "not measured" in html


def test_language_table_as_csv_is_the_page_with_its_filters(reader_client, board):
    url = reverse("evaluation:leaderboard-language-csv", args=["en"])
    response = reader_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="leaderboard-en.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["rank"], r["model"], r["method"]) for r in rows] == [
        ("1", "alpha", "system_prompt"), ("2", "beta", "none"), ("3", "alpha", "none")]
    best = rows[0]
    assert (best["emt"], best["emt_ci_low"], best["emt_ci_high"], best["emt_std"]) == ("0.3", "0.25", "0.35", "0.12")
    assert best["job"] == str(board["alpha_sys"].pk) and best["language"] == "en" and best["dataset"] == "mini"
    assert (best["scorer"], best["category"], best["subset"]) == ("lexicon", "toxicity", "all")
    assert rows[1]["tp_variant"] == "k=25, >0.5" and rows[0]["tp_variant"] == "k=25, >=0.5"
    assert rows[1]["ppl"] == "" and rows[1]["ppl_variant"] == ""  # beta has no perplexity: empty, not 0
    assert [rows[2][f"dist-{n}"] for n in (1, 2, 3)] == ["0.91", "0.82", "0.73"]
    # The page's filters apply: the insult category has two rows, in their own order.
    insult = list(csv.DictReader(io.StringIO(b"".join(
        reader_client.get(url, {"category": "insult"}).streaming_content).decode())))
    assert [(r["model"], r["emt"], r["category"]) for r in insult] == [("beta", "0.65", "insult"), ("alpha", "0.7", "insult")]
    page = reader_client.get(reverse("evaluation:leaderboard-language", args=["en"]), {"category": "insult"})
    assert f'href="{url}?category=insult"' in page.content.decode()


def test_language_table_csv_bad_filter_and_login(client, reader_client, board):
    url = reverse("evaluation:leaderboard-language-csv", args=["en"])
    refused = reader_client.get(url, {"scorer": "nope"})
    assert refused.status_code == 400 and "No leaderboard results for this scorer." in refused.content.decode()
    assert reader_client.get(reverse("evaluation:leaderboard-language-csv", args=["xx"])).status_code == 404
    reader_client.logout()
    assert reader_client.get(url).status_code == 302


def test_language_leaderboard_api_is_the_page(board):
    from rest_framework.test import APIClient

    from toxplatform.accounts.services import ensure_api_token

    url = reverse("api:leaderboard-language-detail", args=["en"])
    assert APIClient().get(url).status_code in (401, 403)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=make_user('api-reader', Role.RESEARCHER)).key}")
    data = client.get(url).json()
    assert (data["language"], data["dataset"], data["scorer"], data["category"], data["subset"]) == (
        "en", "mini", "lexicon", "toxicity", "all")
    assert data["k"] is None and data["rule"] == "" and data["fluency"] == PPL_SCORER
    assert [(e["rank"], e["model"], e["method"]) for e in data["entries"]] == [
        (1, "alpha", "system_prompt"), (2, "beta", "none"), (3, "alpha", "none")]
    best = data["entries"][0]
    assert best["job"] == board["alpha_sys"].pk
    assert best["cells"]["emt"] == {"value": 0.3, "ci_low": 0.25, "ci_high": 0.35, "n": 100, "std": 0.12,
                                    "variant": "k=25", "best": True}
    assert "ppl" not in data["entries"][1]["cells"]  # no perplexity: no cell, not a zero
    insult = client.get(url, {"category": "insult"}).json()
    assert [e["model"] for e in insult["entries"]] == ["beta", "alpha"]
    refused = client.get(url, {"scorer": "nope"})
    assert refused.status_code == 400 and refused.json()["message"] == "No leaderboard results for this scorer."
    assert client.get(reverse("api:leaderboard-language-detail", args=["xx"])).status_code == 404


def test_chart_labels_are_escaped(reader_client, board):
    job = make_job("<b>evil</b>", "none", board["dataset"], finished_minutes=30)
    add_toxicity(job, "en", emt=0.1, tp=0.1, avg=0.1)
    html = reader_client.get(reverse("evaluation:leaderboard-language", args=["en"])).content.decode()
    assert "<b>evil</b>" not in html
    assert "&lt;b&gt;evil&lt;/b&gt; · none" in html


def test_bad_filter_is_a_400_naming_it(reader_client, board):
    response = reader_client.get(reverse("evaluation:leaderboard-language", args=["en"]), {"scorer": "nope"})
    assert response.status_code == 400
    assert "No leaderboard results for this scorer." in response.content.decode()
    assert reader_client.get(reverse("evaluation:leaderboard-language", args=["xx"])).status_code == 404
    assert reader_client.get(reverse("evaluation:leaderboard-list"), {"metric": "ppl"}).status_code == 400


def test_category_page(reader_client, board):
    response = reader_client.get(reverse("evaluation:leaderboard-category", args=["insult"]))
    assert response.status_code == 200
    heat = response.context["heatmap"]
    assert [language.code for language in heat.languages] == ["en", "de"]  # by English name
    rows = [(entry.label, [c.value for _, c in cells], entry.mean.value) for entry, cells in heat.rows_by_entry()]
    assert rows == [("beta · none", [0.65, 0.55], pytest.approx(0.60)), ("alpha · none", [0.70, None], 0.70)]
    html = response.content.decode()
    assert "<strong>0.600</strong> <span class=\"muted\">(2)</span>" in html


def test_category_without_results_is_an_empty_page(reader_client, board):
    response = reader_client.get(reverse("evaluation:leaderboard-category", args=["violence"]))
    assert response.status_code == 200
    assert "No finished job has Violence results" in response.content.decode()


def test_empty_platform(reader_client):
    response = reader_client.get(reverse("evaluation:leaderboard-list"))
    assert response.status_code == 200
    assert "No finished evaluation jobs yet" in response.content.decode()
