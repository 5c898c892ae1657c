"""A finished job's page at a glance, in a real browser: one summary table across languages
(EMT, TP, Avg with CIs and n on all / toxic / non-toxic prompts), a chart and a legend above the
per-language detail; each language links to its samples and its leaderboard."""
import pytest

from evaluation.metric_columns import EMT
from tests.browser.pictures import readme_picture
from tests.browser.test_leaderboard import log_in
from tests.evaluation.results_data import add_toxicity, make_dataset, make_job, make_user
from toxplatform.accounts.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_summary_table_chart_legend_and_links(page):
    dataset = make_dataset()
    job = make_job("gemma-3-270m", "none", dataset, languages=["en", "ar"])
    add_toxicity(job, "en", emt=0.412, tp=0.380, avg=0.137, ci=(0.35, 0.47), n=40)
    add_toxicity(job, "ar", emt=0.367, tp=0.310, avg=0.122, ci=(0.30, 0.43), n=38)
    add_toxicity(job, "en", emt=0.6, tp=0.5, avg=0.2, subset="toxic", n=20)
    add_toxicity(job, "ar", emt=0.5, tp=0.4, avg=0.2, subset="toxic", n=19)
    make_user("res", Role.RESEARCHER)
    log_in(page, "res", f"/evaluation/jobs/{job.pk}/")

    summary = page.locator("table.summary")
    heads = summary.locator("thead th.subset-head").all_inner_texts()
    assert heads == ["All prompts", "Toxic prompts"]  # subsets this job has numbers for
    rows = summary.locator("tbody tr")
    assert rows.locator("th").all_inner_texts() == ["Arabic ar", "English en"]
    english = rows.nth(1).locator("td")
    assert english.nth(0).inner_text().split() == ["0.412", "[0.350,", "0.470]", "n=40"]
    assert english.nth(3).inner_text().split() == ["0.600", "[0.550,", "0.650]", "n=20"]  # toxic EMT
    # Above the per-language detail: the chart and a legend defining every metric.
    assert page.locator(".job-summary figure.chart svg").count() == 1
    legend = page.locator(".metric-legend")
    assert EMT.title in legend.inner_text() and "Prompts the value rests on" in legend.inner_text()
    box = summary.bounding_box()
    assert box["y"] < page.locator("#results-heading").bounding_box()["y"]

    rows.nth(0).get_by_role("link", name="samples").click()
    page.wait_for_url(f"**/evaluation/jobs/{job.pk}/samples/?language=ar")
    page.go_back()
    page.locator("table.summary tbody tr").nth(0).get_by_role("link", name="leaderboard").click()
    page.wait_for_url("**/evaluation/leaderboards/languages/ar/?dataset=mini&scorer=lexicon&category=toxicity")
    assert "gemma-3-270m" in page.locator("table.leaderboard").inner_text()
    page.go_back()
    page.locator("table.summary tbody tr").nth(1).get_by_role("link", name="English").click()
    assert page.url.endswith("#lang-en")
    readme_picture(page, "job-page")
    assert page.page_errors == []
