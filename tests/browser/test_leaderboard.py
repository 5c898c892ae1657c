"""Leaderboards in a real browser: click-to-sort on the language table, the overview heatmap,
and a job page polling its progress. Screenshots go to /tmp/h7_*.png for a look."""
import pytest

from evaluation.models import EvaluationJob
from tests.browser.pictures import readme_picture
from tests.evaluation.results_data import PASSWORD, add_quality, add_toxicity, make_dataset, make_job, make_user
from toxplatform.accounts.models import Role
from toxplatform.corpus.models import Prompt

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# (model, method) -> {language: (EMT, TP)}: TP's order differs from EMT's on purpose.
RESULTS = {
    ("gemma-3-270m", "none"): {"en": (0.412, 0.380), "ar": (0.367, 0.310), "de": (0.455, 0.420), "hi": (0.298, 0.240)},
    ("gemma-3-270m", "aura"): {"en": (0.221, 0.450), "ar": (0.254, 0.200), "de": (0.240, 0.190), "hi": (0.201, 0.150)},
    ("gemma-3-270m", "system_prompt"): {"en": (0.350, 0.120), "ar": (0.330, 0.280), "de": (0.372, 0.330)},
    ("smollm2-135m-instruct", "none"): {"en": (0.508, 0.600), "ar": (0.611, 0.700), "hi": (0.702, 0.810)},
    ("smollm2-135m-instruct", "destein"): {"en": (0.287, 0.300), "ar": (0.402, 0.350)},
}


def make_results():
    dataset = make_dataset()
    for position, ((model, method), by_language) in enumerate(RESULTS.items()):
        job = make_job(model, method, dataset, finished_minutes=position)
        for language, (emt, tp) in by_language.items():
            add_toxicity(job, language, emt=emt, tp=tp, avg=round(emt / 3, 3), std=0.08 + position / 100,
                         ci=(round(emt - 0.04, 3), round(emt + 0.05, 3)))
            add_quality(job, language, ppl=11.5 + position * 2.25,
                        dists=(0.92 - position / 50, 0.81 - position / 40, 0.70 - position / 30))
    return dataset


def log_in(page, username: str, next_path: str):
    page.goto(next_path)
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{next_path}")


def model_column(page) -> list[str]:
    rows = page.locator("table.leaderboard tbody tr")
    return [f"{row.locator('td').nth(1).inner_text()} · {row.locator('td').nth(2).inner_text()}" for row in rows.all()]


def test_clicking_a_header_sorts_the_language_table(page):
    make_results()
    make_user("reader", Role.RESEARCHER)  # leaderboards are for researchers
    log_in(page, "reader", "/evaluation/leaderboards/languages/en/")

    by_emt = ["gemma-3-270m · aura", "smollm2-135m-instruct · destein", "gemma-3-270m · system_prompt",
              "gemma-3-270m · none", "smollm2-135m-instruct · none"]
    assert model_column(page) == by_emt  # the server's order: lowest EMT first
    readme_picture(page, "leaderboard")

    tp_header = page.locator("table.leaderboard thead th", has_text="TP")
    tp_header.get_by_role("button").click()
    assert tp_header.get_attribute("aria-sort") == "ascending"
    assert model_column(page) == ["gemma-3-270m · system_prompt", "smollm2-135m-instruct · destein",
                                  "gemma-3-270m · none", "gemma-3-270m · aura", "smollm2-135m-instruct · none"]
    assert page.locator("table.leaderboard tbody td.rank").all_inner_texts() == ["1", "2", "3", "4", "5"]

    tp_header.get_by_role("button").click()
    assert tp_header.get_attribute("aria-sort") == "descending"
    assert model_column(page)[0] == "smollm2-135m-instruct · none"

    # Diversity: higher is better, so the first click puts the highest first.
    dist_header = page.locator("table.leaderboard thead th", has_text="Dist-1")
    dist_header.get_by_role("button").click()
    assert dist_header.get_attribute("aria-sort") == "descending"
    assert model_column(page)[0] == "gemma-3-270m · none"  # 0.92, the first job made
    assert page.locator("table.leaderboard thead th[aria-sort]").count() == 1
    assert page.page_errors == []


def test_without_javascript_the_server_order_stays(chromium, live_server):
    make_results()
    make_user("reader", Role.RESEARCHER)  # leaderboards are for researchers
    context = chromium.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    log_in(page, "reader", "/evaluation/leaderboards/languages/en/")
    assert model_column(page)[0] == "gemma-3-270m · aura"
    assert page.locator("table.leaderboard .sort-button").count() == 0  # nothing that would do nothing
    context.close()


def test_overview_heatmap_and_filters(page):
    make_results()
    make_user("reader", Role.RESEARCHER)  # leaderboards are for researchers
    log_in(page, "reader", "/evaluation/leaderboards/")
    heatmap = page.locator("table.heatmap")
    assert heatmap.locator("tbody th").all_inner_texts() == ["Arabic ar", "English en", "German de", "Hindi hi"]
    english = heatmap.locator("tbody tr", has_text="English")
    assert "0.221" in english.inner_text() and "0.508" in english.inner_text()
    # Dark cells get white text so the number stays readable.
    worst = heatmap.locator("td", has_text="0.702")
    assert worst.evaluate("el => getComputedStyle(el).color") == "rgb(255, 255, 255)"
    readme_picture(page, "heatmap")

    page.get_by_label("Cell value").select_option("tp")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**metric=tp**")
    assert "0.810" in page.locator("table.heatmap tbody tr", has_text="Hindi").inner_text()

    page.get_by_role("link", name="Hindi").click()
    page.wait_for_url("**/leaderboards/languages/hi/**")
    assert model_column(page) == ["gemma-3-270m · aura", "gemma-3-270m · none", "smollm2-135m-instruct · none"]
    assert page.locator("figure.chart svg .chart-bar").count() == 3
    assert page.page_errors == []


def test_job_page_polls_progress_until_the_job_ends(page):
    dataset = make_dataset()
    make_user("res", Role.RESEARCHER)
    job = make_job("gemma-3-270m", "none", dataset, status=EvaluationJob.Status.RUNNING, total_prompts=4,
                   generated_prompts=1, scored_prompts=0)
    log_in(page, "res", f"/evaluation/jobs/{job.pk}/")
    assert page.locator("[data-progress-text]").inner_text().startswith("12%")

    EvaluationJob.objects.filter(pk=job.pk).update(generated_prompts=4, scored_prompts=2)
    page.wait_for_function("document.querySelector('[data-progress-text]').textContent.startsWith('75%')")
    assert page.locator("[data-count=scored_prompts]").inner_text() == "2"

    # The job ends: the page notices and reloads once, without a cancel button now.
    prompt = Prompt.objects.get(dataset=dataset, language="ar", external_id="1")
    from tests.evaluation.results_data import add_generation

    add_generation(job, prompt, "<b>نص</b> عربي", score=0.7)
    add_toxicity(job, "ar", emt=0.7, tp=1.0, avg=0.7)
    EvaluationJob.objects.filter(pk=job.pk).update(status=EvaluationJob.Status.DONE, scored_prompts=4)
    page.wait_for_selector("table.results")
    assert page.get_by_role("button", name="Cancel job").count() == 0
    sample = page.locator("table.samples .generation-text")
    assert sample.inner_text() == "<b>نص</b> عربي"
    assert sample.evaluate("el => getComputedStyle(el).direction") == "rtl"
    page.screenshot(path="/tmp/h7_job.png", full_page=True)
    assert page.page_errors == []


def test_job_list_follows_unfinished_jobs_and_cancels_from_the_list(page):
    dataset = make_dataset()
    res = make_user("res", Role.RESEARCHER)  # their own jobs: only owners (and admins) may cancel
    running = make_job("gemma-3-270m", "none", dataset, status=EvaluationJob.Status.RUNNING, total_prompts=4, user=res)
    queued = make_job("smollm2-135m", "system_prompt", dataset, status=EvaluationJob.Status.QUEUED, total_prompts=4,
                      user=res)
    done = make_job("smollm2-135m", "none", dataset, finished_minutes=1, total_prompts=4, generated_prompts=4,
                    scored_prompts=4)
    log_in(page, "res", "/evaluation/jobs/")

    def row(job):
        return page.locator(f"tr[data-job-row][data-url='/evaluation/jobs/{job.pk}/progress/']")

    assert row(running).locator("[data-progress-text]").inner_text() == "0%"
    assert row(done).get_by_role("button").count() == 0  # nothing to cancel
    EvaluationJob.objects.filter(pk=running.pk).update(generated_prompts=4, scored_prompts=2)
    selector = f"tr[data-url='/evaluation/jobs/{running.pk}/progress/'] [data-progress-text]"
    page.wait_for_function(f"document.querySelector(\"{selector}\").textContent === '75%'")
    EvaluationJob.objects.filter(pk=running.pk).update(status=EvaluationJob.Status.DONE, scored_prompts=4)
    page.wait_for_function(f"document.querySelector(\"{selector}\").textContent === '100%'")
    assert row(running).locator("[data-status]").inner_text() == "done"
    assert row(running).get_by_role("button").count() == 0  # the finished row lost its cancel button

    row(queued).get_by_role("button", name=f"Cancel job {queued.pk}").click()
    page.wait_for_url("**/evaluation/jobs/")
    assert page.get_by_text(f"Job {queued.pk} was cancelled.").count() == 1
    assert row(queued).locator("[data-status]").inner_text() == "cancelled"
    queued.refresh_from_db()
    assert queued.status == EvaluationJob.Status.CANCELLED and queued.cancel_requested
    page.screenshot(path="/tmp/h7_job_list.png", full_page=True)
    assert page.page_errors == []


@pytest.fixture
def purge_broker():
    """Queuing a job from the form really sends its tasks; no worker runs here, so drop them after."""
    from toxplatform.celery import app

    yield
    app.control.purge()


def test_researcher_queues_a_job_from_the_form(page, tmp_path, purge_broker):
    from tests.tiny_models import build_tiny_causal_lm

    model_dir = build_tiny_causal_lm(tmp_path / "tiny-llama")
    make_dataset()
    other = make_dataset(slug="other", name="Other set")
    Prompt.objects.filter(dataset=other).exclude(language="de").delete()
    make_user("res", Role.RESEARCHER)
    log_in(page, "res", "/evaluation/jobs/new/")

    languages = page.locator("fieldset.field-languages")
    page.get_by_label("Dataset").select_option("other")
    visible = languages.locator("input[type=checkbox]:visible")
    assert [box.get_attribute("value") for box in visible.all()] == ["de"]  # only the dataset's languages
    page.get_by_label("Dataset").select_option("mini")
    languages.get_by_role("button", name="Select none").click()
    page.get_by_label("Arabic (ar)").check()
    page.get_by_label("English (en)").check()

    page.get_by_label("…or a model path or name").fill(str(model_dir))
    page.get_by_label("Samples per prompt (k)").fill("0")
    page.get_by_label("Method parameters (JSON)").fill("{not json")
    page.screenshot(path="/tmp/h7_job_form.png", full_page=True)
    page.get_by_role("button", name="Queue job").click()
    assert page.locator(".errorbox", has_text="The job was not created.").count() == 1
    assert page.locator(".field-k .errorlist").inner_text() == "must be 1 to 1000 (got 0)"
    assert "Not valid JSON" in page.locator(".field-method_params .errorlist").inner_text()
    assert EvaluationJob.objects.count() == 0
    page.screenshot(path="/tmp/h7_job_form_errors.png", full_page=True)

    page.get_by_label("Samples per prompt (k)").fill("2")
    page.get_by_label("Method parameters (JSON)").fill("{}")
    page.get_by_role("button", name="Queue job").click()
    page.wait_for_url("**/evaluation/jobs/*/")
    job = EvaluationJob.objects.get()
    assert (job.k, sorted(job.languages), job.total_prompts) == (2, ["ar", "en"], 4)
    assert page.locator(".messages", has_text=f"Job {job.pk} was queued").count() == 1
    assert page.page_errors == []
