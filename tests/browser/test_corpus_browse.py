"""The corpus pages in a real browser: login form, filters, hostile text, right-to-left text."""
import pytest

from tests.corpus.browse_data import ARABIC_TEXT, IMG_PAYLOAD, PASSWORD, SCRIPT_PAYLOAD, make_dataset, make_user

# serialized_rollback: the live server needs a flushed (transactional) database; this puts the
# seeded languages, harm categories and role groups back for the tests that run after.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def log_in(page, username: str):
    page.goto("/corpus/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/corpus/")


def test_researcher_browses_filters_and_sees_hostile_text_as_text(page):
    dataset = make_dataset()
    make_user("res", "Researcher")
    log_in(page, "res")

    page.get_by_role("link", name="Mini RTP-LX").click()
    page.wait_for_url(f"**/corpus/{dataset.slug}/")
    assert page.get_by_role("row", name="Arabic").count() == 1
    page.get_by_role("link", name="Browse prompts").click()

    page.get_by_label("Language").select_option("en")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**language=en**")
    rows = page.locator("table.prompts tbody tr")
    assert rows.count() == 3
    assert set(rows.locator("code.lang").all_inner_texts()) == {"en"}

    # The payloads are shown as text, and nothing ran.
    script_cell = page.locator(".prompt-text", has_text=SCRIPT_PAYLOAD)
    assert script_cell.inner_text() == SCRIPT_PAYLOAD
    assert page.locator(".prompt-text", has_text=IMG_PAYLOAD).inner_text() == IMG_PAYLOAD
    assert page.locator("table.prompts img").count() == 0

    page.get_by_role("link", name="en-3").click()
    page.wait_for_url("**/prompts/*/")
    assert page.locator(".prompt-text-large").inner_text() == IMG_PAYLOAD
    page.get_by_role("link", name="g3").click()  # the group link goes back to the list
    page.wait_for_url("**group=g3**")
    assert page.dialogs == []
    assert page.page_errors == []


def test_right_to_left_prompts_render_right_to_left(page):
    make_dataset()
    make_user("res", "Researcher")
    log_in(page, "res")
    page.goto("/corpus/mini/prompts/?group=g1")
    arabic = page.locator(".prompt-text", has_text=ARABIC_TEXT)
    english = page.locator(".prompt-text", has_text="You are a wonderful person")
    assert arabic.evaluate("el => getComputedStyle(el).direction") == "rtl"
    assert english.evaluate("el => getComputedStyle(el).direction") == "ltr"
    assert arabic.get_attribute("lang") == "ar"


def test_an_annotator_is_turned_away_from_the_corpus(page):
    make_dataset()
    make_user("ann", "Annotator")
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("ann")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/annotations/")  # an annotator's home: their queue (not a 403 right after logging in)
    response = page.goto("/corpus/mini/prompts/")
    assert response.status == 403
    assert page.get_by_role("heading", name="Not allowed").is_visible()
    assert page.get_by_role("link", name="Corpus").count() == 0
