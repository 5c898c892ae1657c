"""Model and scorer paths must resolve inside the configured model roots (the model cache
and TOXPLATFORM_MODEL_ROOTS); errors never list a folder or echo a path outside them."""
import os
import pathlib

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from evaluation import model_loading
from evaluation.generators import load_generator
from evaluation.model_loading import local_model_files, resolve_model, safe_model_path
from evaluation.models import EvaluationJob, ModelSpec
from evaluation.scorers import registry as scorers
from tests.evaluation.results_data import make_dataset, make_user
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import ensure_api_token
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db

OUTSIDE = "outside the folders models may be loaded from"


@pytest.fixture
def roots(tmp_path, settings):
    """Only tmp/models (and the cache) are allowed; tmp/elsewhere holds a real model too."""
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    settings.MODEL_ROOTS = [tmp_path / "models"]
    inside = build_tiny_causal_lm(tmp_path / "models" / "tiny")
    outside = build_tiny_causal_lm(tmp_path / "elsewhere" / "secret-model")
    return {"inside": inside, "outside": outside, "tmp": tmp_path}


@pytest.fixture
def researcher():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=make_user('res', Role.RESEARCHER)).key}")
    return client


def assert_reveals_nothing(text: str, roots) -> None:
    """Apart from the allowed folders it names, the text holds no name from ~ or / and nothing
    of the environment."""
    for allowed in (roots["tmp"] / "cache", roots["tmp"] / "models"):
        text = text.replace(str(allowed), "")
    home_entries = [entry for entry in os.listdir(os.path.expanduser("~")) if len(entry) > 3]
    root_entries = [entry for entry in os.listdir("/") if len(entry) > 3]
    for entry in home_entries + root_entries + ["secret-model", "elsewhere", "environ", "PATH="]:
        assert entry not in text, entry


@pytest.mark.parametrize("path", ["~", "/", "/proc/self/environ", "/etc", "../../../../../etc", "~root"])
def test_paths_outside_the_roots_are_refused_without_a_word_about_them(roots, path):
    with pytest.raises(ApplicationError, match=OUTSIDE) as error:
        resolve_model(path)
    assert_reveals_nothing(str(error.value), roots)
    assert str(roots["tmp"] / "models") in error.value.extra["allowed folders"]
    assert ModelSpec.objects.count() == 0


def test_a_model_outside_the_roots_is_refused_even_though_it_is_a_real_model(roots):
    with pytest.raises(ApplicationError, match=OUTSIDE):
        resolve_model(str(roots["outside"]))
    with pytest.raises(ApplicationError, match=OUTSIDE):
        local_model_files(str(roots["outside"]))
    assert resolve_model(str(roots["inside"])).location == str(roots["inside"].resolve())


def test_a_symlink_that_leads_out_of_a_root_is_refused(roots):
    link = roots["tmp"] / "models" / "innocent"
    link.symlink_to(roots["outside"], target_is_directory=True)
    with pytest.raises(ApplicationError, match=OUTSIDE):
        resolve_model(str(link))
    with pytest.raises(ApplicationError, match=OUTSIDE):
        scorers.get("perplexity")(path=str(link))
    # A GGUF file name is a path too: it cannot climb out of its folder.
    with pytest.raises(ApplicationError, match=OUTSIDE):
        local_model_files(str(roots["inside"]), gguf_file="../../elsewhere/secret-model/config.json")


def test_a_spec_whose_location_is_outside_the_roots_does_not_load_in_a_worker(roots):
    """A spec written by the admin or before the roots were set: the worker refuses it too."""
    spec = ModelSpec.objects.create(name="old", location=str(roots["outside"]), fingerprint="a" * 64)
    with pytest.raises(ApplicationError, match=OUTSIDE):
        load_generator(spec)


def test_a_bare_name_that_is_not_a_model_says_unknown_model(roots, monkeypatch):
    monkeypatch.chdir(roots["tmp"] / "elsewhere")
    with pytest.raises(ApplicationError, match="unknown model 'secret-model'") as error:
        resolve_model("secret-model")  # a folder of the current directory, outside the roots
    assert OUTSIDE not in str(error.value)


@pytest.mark.parametrize("path", ["~", "/", "/proc/self/environ"])
def test_scorer_paths_outside_the_roots_are_refused(roots, path):
    for name, extra in (("perplexity", {}), ("hf_classifier", {"labels": {"toxic": "toxicity"}})):
        with pytest.raises(ApplicationError, match=OUTSIDE) as error:
            scorers.get(name)(path=path, **extra)
        assert_reveals_nothing(str(error.value), roots)


def test_jobs_api_refuses_a_home_directory_model_with_a_400_that_lists_nothing(roots, researcher):
    make_dataset()
    for model in ("~", "/", "/proc/self/environ"):
        response = researcher.post(reverse("api:job-list"), {
            "model": model, "dataset": "mini", "languages": ["en"], "k": 1, "scorers": ["lexicon"],
        }, format="json")
        assert response.status_code == 400, response.content
        assert OUTSIDE in response.json()["extra"]["model"]
        assert_reveals_nothing(response.content.decode(), roots)
    assert EvaluationJob.objects.count() == 0 and ModelSpec.objects.count() == 0


def test_an_unreadable_model_folder_is_a_clear_error(roots, monkeypatch):
    locked = roots["tmp"] / "models" / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root reads a mode-000 folder anyway: make the OS say no
        original = pathlib.Path.is_file

        def is_file(self):
            if self.parent == locked or self == locked:
                raise PermissionError(13, "Permission denied", str(self))
            return original(self)

        monkeypatch.setattr(pathlib.Path, "is_file", is_file)
    else:
        locked.chmod(0)
    try:
        with pytest.raises(ApplicationError, match="cannot be read"):
            resolve_model(str(locked))
        with pytest.raises(ApplicationError, match="cannot be read"):
            scorers.get("perplexity")(path=str(locked))
    finally:
        locked.chmod(0o755)


def test_too_long_and_non_text_paths_are_clear_errors(roots, researcher):
    with pytest.raises(ApplicationError, match="too long"):
        safe_model_path("a" * 300)
    with pytest.raises(ApplicationError, match="too long"):
        safe_model_path(str(roots["tmp"] / "models" / ("b" * 256)))
    with pytest.raises(ApplicationError, match="path must be text"):
        scorers.get("perplexity")(path=["/models/x"])
    with pytest.raises(ApplicationError, match="path must be text"):
        scorers.get("hf_classifier")(path={"a": 1}, labels={"toxic": "toxicity"})
    make_dataset()
    for payload in ({"model": "m" * 300}, {"scorers": [{"name": "perplexity", "params": {"path": "p" * 300}}]},
                    {"scorers": [{"name": "perplexity", "params": {"path": 7}}]}):
        body = {"model": str(roots["inside"]), "dataset": "mini", "languages": ["en"], "k": 1,
                "scorers": ["lexicon"], **payload}
        response = researcher.post(reverse("api:job-list"), body, format="json")
        assert response.status_code == 400, (payload, response.content[:300])


def test_the_cache_is_a_root_and_roots_come_from_the_environment(settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    settings.MODEL_ROOTS = [tmp_path / "a", tmp_path / "b"]
    assert model_loading.model_roots() == [tmp_path / "cache", tmp_path / "a", tmp_path / "b"]
    (tmp_path / "cache" / "packaged").mkdir(parents=True)
    assert safe_model_path(str(tmp_path / "cache" / "packaged")) == (tmp_path / "cache" / "packaged").resolve()


def test_the_job_form_shows_path_errors_on_the_form(roots, client):
    from tests.evaluation.test_views import form_data

    make_user("res", Role.RESEARCHER)
    client.login(username="res", password="results-test-password")
    make_dataset()
    long_segment = str(roots["tmp"] / "models" / ("x" * 300))
    for path, message in ((long_segment, "too long"), ("x" * 300, "unknown model"), ("~", OUTSIDE),
                          ("/proc/self/environ", OUTSIDE)):
        response = client.post(reverse("evaluation:job-create"), form_data(model_path=path))
        assert response.status_code == 400, path
        assert message in " ".join(response.context["form"].errors["model_path"]), path
        assert_reveals_nothing(" ".join(response.context["form"].errors["model_path"]), roots)
    assert EvaluationJob.objects.count() == 0
