"""One parameter schema: the API, the job form and the CLI reject the same out-of-range value
with the same message, and the machine-protecting limits hold on every interface."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse

from evaluation import services
from evaluation.job_parameters import JOB_PARAMETERS
from evaluation.models import EvaluationJob, ModelSpec
from tests.evaluation.test_api import api_client
from tests.evaluation.test_views import form_data
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.accounts.models import Role
from toxplatform.errors import ApplicationError
from toxplatform.params import Param, ParamProblem, ParamSchema


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "llama", arch="llama")


def expected_message(field: str, value) -> str:
    """What the schema itself says about the value: every interface must show exactly this."""
    with pytest.raises(ParamProblem) as problem:
        JOB_PARAMETERS[field].clean(value)
    return str(problem.value)


# (field, value as a number, how a form and a command line write it)
OUT_OF_RANGE = [
    ("k", 2_147_483_647, "2147483647"),
    ("k", 0, "0"),
    ("max_new_tokens", 4097, "4097"),
    ("top_p", 0.0, "0"),
    ("temperature", 11.0, "11"),
    ("chunk_size", 10_001, "10001"),
    ("batch_size", 0, "0"),
    ("prompts_per_language", 0, "0"),
    ("seed", 2**40, str(2**40)),
    ("toxic_threshold", 1.5, "1.5"),
]


@pytest.mark.parametrize("field, value, text", OUT_OF_RANGE, ids=[f"{f}={t}" for f, _, t in OUT_OF_RANGE])
def test_api_form_and_cli_reject_an_out_of_range_value_with_the_same_message(
    dataset, researcher_client, tiny_model_dir, field, value, text
):
    message = expected_message(field, value)
    assert "got" in message  # says what was given, not only what is allowed

    api = api_client("api-res", Role.RESEARCHER)
    payload = {"model": str(tiny_model_dir), "dataset": "mini", "languages": ["en"], "k": 1, "temperature": 1.0,
               "scorers": ["lexicon"], field: value}
    response = api.post(reverse("api:job-list"), payload, format="json")
    assert response.status_code == 400 and response.data["extra"][field] == message

    page = researcher_client.post(reverse("evaluation:job-create"),
                                  form_data(model_path=str(tiny_model_dir), **{field: text}))
    assert page.status_code == 400 and page.context["form"].errors[field] == [message]

    flag = JOB_PARAMETERS[field].flag
    with pytest.raises(CommandError) as command:
        call_command("evaluate", "--model", str(tiny_model_dir), "--dataset", "mini", "--languages", "en",
                     flag, text, "--no-progress", stdout=StringIO(), stderr=StringIO())
    assert f"{field}={message}" in str(command.value)

    assert EvaluationJob.objects.count() == 0
    assert ModelSpec.objects.count() == 0


def test_form_fields_show_the_declared_default_bounds_and_help(dataset, researcher_client):
    form = researcher_client.get(reverse("evaluation:job-create")).context["form"]
    k = JOB_PARAMETERS["k"]
    assert form.fields["k"].initial == k.default == 25
    assert form.fields["k"].widget.attrs["max"] == k.maximum == 1000
    assert "1 to 1000" in form.fields["k"].help_text and "default 25" in form.fields["k"].help_text


def test_a_job_too_big_for_the_machine_is_refused_with_its_numbers(dataset, tiny_model_dir):
    # mini: 2 English + 2 Arabic prompts; 4 prompts x k=10 x 20 tokens = 800 tokens.
    with override_settings(JOB_MAX_WORK=799):
        with pytest.raises(ApplicationError) as raised:
            services.create_job(model=str(tiny_model_dir), dataset="mini", languages=["en", "ar"], k=10,
                                max_new_tokens=20, scorers=["lexicon"], enqueue=False)
    assert raised.value.extra["size"].startswith("4 prompts x k=10 x 20 new tokens = 800 tokens, more than the 799")
    assert EvaluationJob.objects.count() == 0
    with override_settings(JOB_MAX_WORK=800):
        services.create_job(model=str(tiny_model_dir), dataset="mini", languages=["en", "ar"], k=10,
                            max_new_tokens=20, scorers=["lexicon"], enqueue=False)
    assert EvaluationJob.objects.count() == 1


def test_a_user_may_have_only_so_many_unfinished_jobs(dataset, tiny_model_dir, django_user_model):
    user = django_user_model.objects.create_user("busy", password="x" * 12)
    args = dict(model=str(tiny_model_dir), dataset="mini", languages=["en"], k=1, scorers=["lexicon"], enqueue=False)
    with override_settings(JOB_MAX_ACTIVE_PER_USER=2):
        first = services.create_job(user=user, **args)
        services.create_job(user=user, **args)
        with pytest.raises(ApplicationError) as raised:
            services.create_job(user=user, **args)
        assert "you have 2 jobs queued or running" in raised.value.extra["jobs"]
        services.cancel_job(first)  # a finished job no longer counts
        services.create_job(user=user, **args)
    assert EvaluationJob.objects.filter(created_by=user).count() == 3


# --- the schema itself ---------------------------------------------------------------------------

SCHEMA = ParamSchema(
    Param("alpha", float, 0.5, minimum=0, maximum=1),
    Param("layers", list, None, optional=True, item_kind=int),
    Param("label", str, "x", max_length=5, single_line=True),
    Param("mode", str, "a", choices=("a", "b")),
    checks=(lambda v: {"mode": "b needs alpha 1"} if v["mode"] == "b" and v["alpha"] != 1 else {},),
)


def test_schema_fills_defaults_and_converts_losslessly():
    assert SCHEMA.clean({}) == {"alpha": 0.5, "layers": None, "label": "x", "mode": "a"}
    cleaned = SCHEMA.clean({"alpha": 1, "layers": [3, 4], "mode": "b"})
    assert cleaned["alpha"] == 1.0 and isinstance(cleaned["alpha"], float) and cleaned["layers"] == [3, 4]


@pytest.mark.parametrize("values, field, message", [
    ({"alpha": True}, "alpha", "must be a number (got True)"),
    ({"alpha": float("nan")}, "alpha", "must be a number"),
    ({"alpha": 2}, "alpha", "must be in [0, 1] (got 2.0)"),
    ({"layers": [1, "2"]}, "layers", "must be a list of a whole number (got '2' in it)"),
    ({"layers": [True]}, "layers", "must be a list of a whole number"),
    ({"label": "toolong"}, "label", "must be at most 5 characters (got 7)"),
    ({"label": "a\x1bb"}, "label", "control or format characters (U+001B)"),
    ({"label": "a\x00"}, "label", "NUL"),
    ({"mode": "c"}, "mode", "must be one of a, b (got 'c')"),
    ({"mode": "b"}, "mode", "b needs alpha 1"),
    ({"colour": "red"}, "colour", "is not a known parameter (accepted: alpha, layers, label, mode)"),
])
def test_schema_names_each_problem(values, field, message):
    with pytest.raises(ApplicationError) as raised:
        SCHEMA.clean(values)
    assert message in raised.value.extra[field]


def test_every_job_parameter_is_declared_once_and_documented():
    names = JOB_PARAMETERS.names()
    assert len(names) == len(set(names)) == 19
    for param in JOB_PARAMETERS:
        assert param.help, f"{param.name} has no help text"
        if param.kind in (int, float):
            assert param.minimum is not None and param.maximum is not None, f"{param.name} is unbounded"
        if param.kind is str and not param.choices:
            assert param.max_length, f"{param.name} has no length cap"
