"""Numbers honest about what they can say, in a real browser: a rank that the confidence
intervals do not support is shown as tied (no star), and a lexicon number in a language the
lexicon does not cover carries a "not covered" mark that explains itself."""
import pytest

from tests.browser.test_leaderboard import log_in
from tests.evaluation.results_data import add_toxicity, make_dataset, make_job, make_user
from toxplatform.accounts.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_tied_ranks_and_the_coverage_mark_on_a_language_leaderboard(page):
    dataset = make_dataset()
    # In Arabic: a is apart from b and c; b and c overlap (tied at rank 2).
    for position, (model, emt, ci) in enumerate([("a", 0.10, (0.05, 0.15)), ("b", 0.30, (0.20, 0.40)),
                                                 ("c", 0.35, (0.30, 0.45))]):
        job = make_job(model, "none", dataset, finished_minutes=position,
                       scorer_coverage={"lexicon": {"ar": True, "de": False}})
        add_toxicity(job, "ar", emt=emt, tp=emt, avg=emt, ci=ci)
        add_toxicity(job, "de", emt=0.0, tp=0.0, avg=0.0, ci=(0.0, 0.0))
    make_user("res", Role.RESEARCHER)
    log_in(page, "res", "/evaluation/leaderboards/languages/ar/")

    rows = page.locator("table.leaderboard tbody tr")
    ranks = [rows.nth(i).locator("td.rank").inner_text().strip() for i in range(3)]
    assert [rank.lower() for rank in ranks] == ["1", "2 tied", "2 tied"]  # CSS shows TIED in capitals
    emt = [rows.nth(i).locator("td").nth(3).locator(".value") for i in range(3)]
    assert "best" in emt[0].get_attribute("class")  # apart from the others: starred
    assert page.locator(".coverage-mark").count() == 0  # the lexicon covers Arabic

    # German: every row is 0.000 [0, 0] (all tied, so no star), each marked as not covered.
    page.goto("/evaluation/leaderboards/languages/de/")
    marks = page.locator("table.leaderboard .coverage-mark.not-covered")
    assert marks.count() == 3
    assert "lexicon does not cover German" in marks.first.get_attribute("title")
    assert page.locator("table.leaderboard .value.best").count() == 0
    assert all("tied" in cell.inner_text().lower() for cell in page.locator("table.leaderboard td.rank").all())
    page.screenshot(path="/tmp/rx_honest_leaderboard.png", full_page=True)
    assert page.page_errors == []
