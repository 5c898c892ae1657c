"""Weights are never hashed (or converted) inside a web request: the job is queued with a quick
fingerprint, the first worker that loads the model records the full one, and weights that
change after queueing are still refused."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from evaluation import model_loading, services, worker_cache
from evaluation.model_loading import fingerprint_model, is_quick, resolve_model
from evaluation.models import EvaluationJob, ModelSpec
from tests.evaluation.results_data import make_dataset, make_user
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import ensure_api_token
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_machine(settings, tmp_path, monkeypatch):
    """A machine that has hashed nothing yet: empty sha256 cache on disk and in memory."""
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    monkeypatch.setattr(model_loading, "_sha_cache", {})
    worker_cache.clear()
    yield
    worker_cache.clear()


@pytest.fixture
def no_hashing(monkeypatch):
    def refuse(path):
        raise AssertionError(f"hashed {path} inside the request")

    monkeypatch.setattr(model_loading, "file_sha256", refuse)
    monkeypatch.setattr(model_loading, "convert_gguf", lambda *a, **k: refuse("a GGUF (conversion)"))


def job_args(model, **overrides):
    return dict(model=model, dataset="mini", languages=["en"], k=1, max_new_tokens=2, scorers=["lexicon"],
                **overrides)


def test_the_jobs_api_queues_without_hashing_and_the_worker_records_the_full_fingerprint(
    fresh_machine, tmp_path, monkeypatch
):
    model_dir = build_tiny_causal_lm(tmp_path / "models" / "tiny")
    make_dataset()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ensure_api_token(user=make_user('res', Role.RESEARCHER)).key}")
    with monkeypatch.context() as request_time:
        request_time.setattr(model_loading, "file_sha256", lambda path: pytest.fail(f"hashed {path} in the request"))
        response = client.post(reverse("api:job-list"), {
            "model": str(model_dir), "dataset": "mini", "languages": ["en"], "k": 1, "max_new_tokens": 2,
            "scorers": ["lexicon"],
        }, format="json")
    assert response.status_code == 201, response.content
    job = EvaluationJob.objects.get()
    assert is_quick(job.model_fingerprint) and len(job.model_fingerprint) <= 64
    assert job.model.fingerprint == job.model_fingerprint

    job = services.run_job_inline(job)  # the worker's side
    assert job.status == EvaluationJob.Status.DONE, job.error
    job.refresh_from_db()
    full = fingerprint_model(model_dir)
    assert job.model_fingerprint == full and ModelSpec.objects.get().fingerprint == full


def test_a_machine_that_has_hashed_the_files_records_the_full_fingerprint_at_once(fresh_machine, tmp_path):
    model_dir = build_tiny_causal_lm(tmp_path / "models" / "tiny")
    full = fingerprint_model(model_dir)  # hashed once (e.g. by a worker on this machine)
    make_dataset()
    job = services.create_job(**job_args(str(model_dir)), enqueue=False)
    assert job.model_fingerprint == full


def test_a_packaged_model_is_not_converted_in_the_request(fresh_machine, no_hashing):
    spec = resolve_model("smollm2-135m-instruct")
    assert spec.location == "package:smollm2-135m-instruct" and spec.fingerprint == ""
    assert not (model_loading.Path(model_loading.settings.MODEL_CACHE_DIR) / "packaged").exists()


def test_weights_rewritten_between_queueing_and_the_first_load_are_refused(fresh_machine, tmp_path):
    model_dir = build_tiny_causal_lm(tmp_path / "models" / "tiny")
    make_dataset()
    job = services.create_job(**job_args(str(model_dir)), enqueue=False)
    assert is_quick(job.model_fingerprint)
    build_tiny_causal_lm(model_dir, seed=1)  # retrained in place, same sizes
    with pytest.raises(ApplicationError, match="changed after the job was queued"):
        worker_cache.generator_for(job)
    job.refresh_from_db()
    assert is_quick(job.model_fingerprint)  # nothing recorded for weights it was not queued with


def test_weights_rewritten_after_the_first_load_are_refused_by_every_later_load(fresh_machine, tmp_path):
    model_dir = build_tiny_causal_lm(tmp_path / "models" / "tiny")
    make_dataset()
    job = services.create_job(**job_args(str(model_dir)), enqueue=False)
    first = worker_cache.generator_for(job)  # the first worker: records the full fingerprint
    job.refresh_from_db()
    assert job.model_fingerprint == fingerprint_model(model_dir)
    build_tiny_causal_lm(model_dir, seed=1)
    # This process keeps the weights the job ran with: its next chunk continues with them.
    assert worker_cache.generator_for(EvaluationJob.objects.get(pk=job.pk)) is first
    # Another process (or machine) would load the new files: refused.
    worker_cache.clear()
    with pytest.raises(ApplicationError, match="changed after the job was queued"):
        worker_cache.generator_for(EvaluationJob.objects.get(pk=job.pk))


def test_a_job_queued_after_a_rewrite_gets_the_new_weights_in_a_process_that_holds_the_old(fresh_machine, tmp_path):
    model_dir = build_tiny_causal_lm(tmp_path / "models" / "tiny")
    make_dataset()
    old_job = services.create_job(**job_args(str(model_dir)), enqueue=False)
    old = worker_cache.generator_for(old_job)
    build_tiny_causal_lm(model_dir, seed=1)
    new_job = services.create_job(**job_args(str(model_dir)), enqueue=False)
    new = worker_cache.generator_for(new_job)
    assert new is not old
    new_job.refresh_from_db()
    assert new_job.model_fingerprint == fingerprint_model(model_dir) != old.base.fingerprint()
