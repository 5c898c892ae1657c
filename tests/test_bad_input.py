"""Bad input gets a 4xx with a clear message, never a 500, and changes nothing: ids that
str.isdigit() accepts but int() does not, NUL characters (PostgreSQL refuses them), control
and format characters in names, oversized free text."""
import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from evaluation import services
from evaluation.detox import registry as detox_registry
from evaluation.model_loading import resolve_model
from evaluation.models import EvaluationJob, ModelSpec
from tests.evaluation.results_data import PASSWORD, add_toxicity, make_dataset, make_job, make_user
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import ensure_api_token
from toxplatform.errors import ApplicationError
from toxplatform.validation import check_name, check_text, parse_id, strict_int

BAD_NUMBERS = ["²", "١٢", "¹²", "1e3", "1.0", "0x10", "", " ", "12a", "٣", "9" * 30]


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_strict_int_takes_only_ascii_digits(value):
    with pytest.raises(ApplicationError, match="whole number"):
        strict_int(value, "k")


def test_strict_int_bounds_and_ids():
    assert strict_int("12", "k") == 12 and strict_int(" 7 ", "k") == 7 and strict_int(5, "k") == 5
    with pytest.raises(ApplicationError, match="k must be at least 1"):
        strict_int("0", "k", minimum=1)
    with pytest.raises(ApplicationError, match="whole number"):
        strict_int(True, "k")
    with pytest.raises(ApplicationError, match="between 1 and"):
        parse_id(str(2**63), "id")  # no bigint: not a database error, a clear one
    assert parse_id("42") == 42


@pytest.mark.parametrize("text", ["evil\u202ename", "bell\x07", "esc\x1b[31mred", "tab\there", "zero\u200bwidth",
                                  "line\nbreak", "nul\x00"])
def test_names_refuse_control_and_format_characters(text):
    with pytest.raises(ApplicationError, match="control or invisible formatting characters"):
        check_name(text, "name", max_length=100)


def test_names_and_text_accept_every_script():
    for name in ("نموذج عربي", "מודל", "मॉडल", "模型 v2", "Modèle — ü"):
        assert check_name(name, "name", max_length=100) == name
    # Free text keeps line breaks and the joiners Persian and Hindi need, refuses ESC and BEL.
    assert check_text("Be kind.\nمی‌خواهم", "instruction", max_length=100)
    with pytest.raises(ApplicationError, match="control characters"):
        check_text("be \x1b[2Jkind", "instruction", max_length=100)
    with pytest.raises(ApplicationError, match="at most 100 characters"):
        check_text("x" * 101, "instruction", max_length=100)


# --- through the pages and the API -------------------------------------------------------------


@pytest.fixture
def researcher(db):
    user = make_user("res", Role.RESEARCHER)
    page = Client()
    page.login(username="res", password=PASSWORD)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=user).key}")
    return {"page": page, "api": api, "user": user}


@pytest.fixture
def done_jobs(db):
    dataset = make_dataset()
    jobs = [make_job(name, "none", dataset) for name in ("alpha", "beta")]
    for job in jobs:
        add_toxicity(job, "en", emt=0.3, tp=0.2, avg=0.1)
    return jobs


@pytest.mark.parametrize("value", ["²", "١", "99999999999999999999999"])
def test_superscript_and_huge_ids_are_4xx_on_pages_and_api(researcher, done_jobs, value):
    a = done_jobs[0].pk
    page, api = researcher["page"], researcher["api"]
    assert page.get(reverse("evaluation:job-create"), {"from": value}).status_code == 404
    assert page.get(reverse("evaluation:job-compare"), {"a": value, "b": a}).status_code == 404
    response = api.get(reverse("api:job-compare"), {"a": value, "b": a})
    assert response.status_code == 400 and "give a job id" in response.json()["extra"]["a"]
    for url in (reverse("api:job-compare") + f"?a={a}&b={done_jobs[1].pk}",
                reverse("api:leaderboard-language-detail", args=["en"]) + "?"):
        response = api.get(url + f"&k={value}")
        assert response.status_code == 400, url
        assert "whole number" in str(response.json()) or "between" in str(response.json())
    page_k = page.get(reverse("evaluation:leaderboard-language", args=["en"]), {"k": value})
    assert page_k.status_code == 400


@pytest.mark.django_db
def test_nul_characters_are_a_400_everywhere(researcher, done_jobs):
    page, api = researcher["page"], researcher["api"]
    cases = [
        page.get(reverse("evaluation:leaderboard-language", args=["en"]), {"scorer": "a\x00b"}),
        page.get(reverse("corpus:dataset-list"), {"q": "\x00"}),
        page.get("/evaluation/leaderboards/languages/e%00n/"),
        api.get(reverse("api:prompt-list"), {"language": "\x00"}),
        api.get(reverse("api:leaderboard-language-detail", args=["en"]), {"dataset": "\x00"}),
        page.post(reverse("evaluation:job-create"), {"name": "x\x00y"}),
        api.post(reverse("api:job-list"), {"model": "m", "dataset": "mini", "method": "system_prompt",
                                           "method_params": {"instruction": "be kind\x00"}, "scorers": ["lexicon"]},
                 format="json"),
    ]
    for response in cases:
        assert response.status_code == 400, (response.request, response.content[:200])
        assert b"NUL character" in response.content
    assert EvaluationJob.objects.count() == 2


@pytest.mark.django_db
def test_a_job_name_with_control_characters_is_refused_and_nothing_is_written(tmp_path):
    model_dir = build_tiny_causal_lm(tmp_path / "tiny")
    make_dataset()
    for name in ("\u202egnp.exe", "ring\x07", "\x1b]0;pwned\x07"):
        with pytest.raises(ApplicationError) as error:
            services.create_job(model=str(model_dir), dataset="mini", languages=["en"], k=1, scorers=["lexicon"],
                                name=name, enqueue=False)
        assert "control or format characters" in error.value.extra["name"]
    assert EvaluationJob.objects.count() == 0


@pytest.mark.django_db
def test_a_model_folder_named_with_format_characters_is_not_registered(tmp_path):
    model_dir = build_tiny_causal_lm(tmp_path / "ledom\u202e")
    with pytest.raises(ApplicationError, match="control or invisible formatting characters"):
        resolve_model(str(model_dir))
    assert ModelSpec.objects.count() == 0


def test_the_detox_instruction_is_capped_and_printable():
    method = detox_registry.get("system_prompt")
    assert method(instruction="Be respectful.\nAnswer kindly.").params["instruction"].startswith("Be")
    with pytest.raises(ApplicationError, match="at most 2000 characters"):
        method(instruction="x" * (2 * 1024 * 1024))
    with pytest.raises(ApplicationError, match="control characters"):
        method(instruction="ok\x1b[2J")
    with pytest.raises(ApplicationError, match="must be"):
        method(instruction=["not", "text"])


@pytest.mark.parametrize("categories", [[[1]], [{"a": 1}], [None], "toxicity"])
def test_lexicon_categories_of_the_wrong_type_are_a_clear_error(categories):
    from evaluation.scorers import registry as scorers

    with pytest.raises(ApplicationError, match="categories must be"):
        scorers.get("lexicon")(categories=categories)
