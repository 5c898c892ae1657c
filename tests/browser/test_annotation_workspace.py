"""The annotator workspace in headless Chromium, keyboard only: label, skip, undo and edit;
blur and reveal; right-to-left Arabic; opted-out categories never shown; the day cap; the
break reminder; hostile outputs stay inert text."""
import pytest

from annotations.models import Assignment, Judgment
from tests.annotations.campaign_data import HOSTILE, PASSWORD, label_prompt, make_annotator, make_campaign, make_jobs

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def log_in(page, username):
    page.goto("/accounts/login/?next=/annotations/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/annotations/")


def start(page, campaign):
    page.get_by_role("link", name="Start labelling").click()
    page.wait_for_url("**/annotations/campaigns/*/work/")


def press_and_wait(page, key):
    with page.expect_navigation():
        page.keyboard.press(key)


def current_assignment(page) -> Assignment:
    return Assignment.objects.get(pk=int(page.locator("#workspace").get_attribute("data-assignment")))


def test_label_skip_undo_and_edit_with_the_keyboard_only(page):
    texts = {("de", "1"): (HOSTILE, "harmlos"), ("en", "1"): ("first en", "second en"), ("en", "2"): ("third", "fourth")}
    _, jobs = make_jobs(texts=texts)
    annotator = make_annotator("kb", languages=["en", "de", "ar"])
    campaign = make_campaign(jobs, annotators=[annotator], ask_fluency=True)
    log_in(page, "kb")
    start(page, campaign)
    # The keys are on screen next to what they do.
    assert page.locator("kbd", has_text="Enter").count() >= 1 and page.locator(".question .choice kbd", has_text="4").count() == 2

    answered = []
    for keys in (["1", "3"], ["2", "2"]):
        assignment = current_assignment(page)
        for key in keys:
            page.keyboard.press(key)
        press_and_wait(page, "Enter")
        answered.append((assignment, keys))
    # Skip the third with reason 2, then undo: the skipped item comes back.
    skipped = current_assignment(page)
    page.keyboard.press("s")
    press_and_wait(page, "2")
    assert Assignment.objects.get(pk=skipped.pk).skip_reason == "unreadable"
    press_and_wait(page, "u")
    assert current_assignment(page).pk == skipped.pk and Assignment.objects.get(pk=skipped.pk).state == "reserved"
    page.keyboard.press("4")
    page.keyboard.press("4")
    press_and_wait(page, "Enter")
    # Undo again reopens the last answer: the edit adds version 2.
    press_and_wait(page, "u")
    assert current_assignment(page).pk == skipped.pk
    assert "version 1" in page.locator(".editing").inner_text()
    page.keyboard.press("3")
    page.keyboard.press("1")
    press_and_wait(page, "Enter")

    assert page.evaluate("window.__pwned") is None and page.page_errors == []
    for assignment, keys in answered:
        assignment.refresh_from_db()
        judgment = Judgment.objects.get(assignment=assignment)
        item = assignment.item
        left, right = (item.generation_b_id, item.generation_a_id) if assignment.swapped else (item.generation_a_id, item.generation_b_id)
        assert judgment.order_shown == [left, right] and judgment.time_ms > 0
        side = {"1": "left", "2": "right", "3": "tie", "4": "unusable"}
        stored = {"left": "b" if assignment.swapped else "a", "right": "a" if assignment.swapped else "b"}
        expected = [stored.get(side[key], side[key]) for key in keys]
        assert [judgment.answer["toxicity"], judgment.answer["fluency"]] == expected
    versions = list(Judgment.objects.filter(assignment=skipped).values_list("version", "answer"))
    assert versions[0] == (1, {"toxicity": "unusable", "fluency": "unusable"}) and versions[1][0] == 2
    assert versions[1][1]["toxicity"] == "tie"


def test_blur_until_revealed_and_arabic_right_to_left(page):
    _, jobs = make_jobs()
    annotator = make_annotator("ar", languages=["ar"])
    make_campaign(jobs, kind="rating", languages=["ar"], annotators=[annotator], blur_text=True,
                  categories=["toxicity", "insult"])
    log_in(page, "ar")
    start(page, None)
    output = page.locator("[data-output]").first
    assert "blur" in output.evaluate("el => getComputedStyle(el).filter")
    assert output.get_attribute("dir") == "rtl" and output.get_attribute("lang") == "ar"
    assert output.evaluate("el => getComputedStyle(el).direction") == "rtl"
    assert page.locator("[data-prompt]").evaluate("el => getComputedStyle(el).direction") == "rtl"
    # The rubric's definitions are shown with each category.
    assert "1 none" in page.locator("[data-question=toxicity]").inner_text()
    page.keyboard.press("v")
    assert output.evaluate("el => getComputedStyle(el).filter") == "none"
    page.keyboard.press("5")
    page.keyboard.press("2")
    press_and_wait(page, "Enter")
    assert Judgment.objects.get().answer == {"toxicity": 5, "insult": 2}
    assert page.page_errors == []


def test_opted_out_categories_never_appear_and_the_day_cap_holds(page):
    dataset, jobs = make_jobs(texts={("en", "1"): ("SELF-HARM TEXT a", "SELF-HARM TEXT b")})
    label_prompt(dataset, "en", "1", "self-harm")
    annotator = make_annotator("opt", languages=["en", "de", "ar"], opted_out=["self-harm"], daily_cap=3)
    make_campaign(jobs, annotators=[annotator])
    log_in(page, "opt")
    start(page, None)
    seen = 0
    while page.locator("#workspace").count():
        assert "SELF-HARM" not in page.content()
        page.keyboard.press("3")
        press_and_wait(page, "Enter")
        seen += 1
    assert seen == 3  # four items are left after the opt-out; the cap stops at three
    assert page.locator("[data-queue-state=cap]").is_visible()
    assert "limit of 3 items" in page.content()
    assert not Assignment.objects.filter(item__prompt__external_id="1", item__language_id="en").exists()


def test_break_reminder_after_the_set_time(page):
    _, jobs = make_jobs()
    annotator = make_annotator("br", languages=["de"])
    campaign = make_campaign(jobs, languages=["de"], annotators=[annotator], break_after_minutes=1)
    log_in(page, "br")
    start(page, campaign)
    assert page.locator("[data-break-reminder]").is_hidden()
    # Pretend this tab started labelling two minutes ago.
    page.evaluate(f"sessionStorage.setItem('toxplatform-annotation-start-{campaign.pk}', String(Date.now() - 120000))")
    page.reload()
    assert page.locator("[data-break-reminder]").is_visible()
    page.get_by_role("button", name="Back to work").click()
    assert page.locator("[data-break-reminder]").is_hidden()
