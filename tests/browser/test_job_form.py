"""The job form in a real browser: select all / none, the live size, the confirmation a large
job needs (shown by the script, required by the server), and the chosen method's declared
summary."""
import pytest
from django.test import override_settings

from evaluation.detox import registry as detox_registry
from evaluation.models import EvaluationJob
from tests.browser.test_leaderboard import log_in
from tests.evaluation.results_data import make_dataset, make_user
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.accounts.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


def test_size_select_all_and_a_large_job_confirmed(page, tiny_model_dir):
    make_dataset()  # en: 2 prompts, ar: 2, de: 1
    make_user("res", Role.RESEARCHER)
    # 5 prompts x k=25 x 20 tokens = 2,500 tokens: large above 1,000.
    with override_settings(JOB_CONFIRM_WORK=1_000):
        log_in(page, "res", "/evaluation/jobs/new/")
        size = page.locator("[data-size-text]")
        # The preset: English and German ticked (ar is not), 20 prompts each at most.
        assert size.inner_text() == "3 prompts (2 languages) × k = 25 samples × 20 new tokens = 1,500 tokens. " \
                                    "A large job (above 1,000): tick the box below to queue it."
        confirm = page.get_by_label("Queue this large job")
        assert confirm.is_visible()
        page.get_by_label("Samples per prompt (k)").fill("10")
        assert size.inner_text() == "3 prompts (2 languages) × k = 10 samples × 20 new tokens = 600 tokens."
        assert not confirm.is_visible()
        assert page.locator("[data-size-time]").inner_text().startswith("No time estimate")

        languages = page.locator("fieldset.field-languages")
        languages.get_by_role("button", name="Select none").click()
        assert languages.locator("[data-check-count]").inner_text() == "0 of 3 ticked"
        languages.get_by_role("button", name="Select all").click()
        assert languages.locator("[data-check-count]").inner_text() == "3 of 3 ticked"
        page.get_by_label("Samples per prompt (k)").fill("25")
        assert size.inner_text().startswith("5 prompts (3 languages) × k = 25 samples × 20 new tokens = 2,500 tokens.")
        assert confirm.is_visible()

        # The chosen method's declared summary is shown, the others' are not.
        page.get_by_label("Detox method").select_option("system_prompt")
        summary = detox_registry.get("system_prompt").summary
        assert page.locator("[data-method-info=system_prompt]").is_visible()
        assert summary in page.locator("[data-method-info=system_prompt]").inner_text()
        assert not page.locator("[data-method-info=none]").is_visible()
        page.get_by_label("Detox method").select_option("none")

        page.get_by_label("…or a model path or name").fill(str(tiny_model_dir))
        # Not confirmed: the server refuses it (the script does not decide) and says why.
        page.get_by_role("button", name="Queue job").click()
        error = page.locator(".field-confirm_large .errorlist")
        error.wait_for()
        assert "2,500 tokens is a large job (above 1,000)" in error.inner_text()
        assert EvaluationJob.objects.count() == 0
        page.get_by_label("Queue this large job").check()
        page.get_by_role("button", name="Queue job").click()
        page.wait_for_url("**/evaluation/jobs/*/")
    job = EvaluationJob.objects.get()
    assert job.total_prompts == 5 and job.k == 25 and sorted(job.languages) == ["ar", "de", "en"]
    assert page.page_errors == []
