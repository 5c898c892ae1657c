"""Evaluation jobs without a worker: validation, planning, claims, the inline runner, finalize.

Real PostgreSQL, real Redis (for "nothing was queued"), a real tiny Llama built in a temp
directory, the real lexicon and perplexity scorers.
"""
from __future__ import annotations

import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from evaluation import selectors, services, worker_cache
from evaluation.detox import registry as detox_registry
from evaluation.detox.base import DetoxMethod, fingerprint_json
from evaluation.models import (
    Chunk,
    DetoxArtifact,
    EvaluationJob,
    Generation,
    JobMetric,
    JobPrompt,
    ModelSpec,
    Score,
)
from evaluation.scorers import registry as scorer_registry
from evaluation.scorers.base import Scorer, ScoreResult
from evaluation.services.claims import max_chunk_attempts
from evaluation.services.dispatch import resend_after
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import (
    closed_port,
    flush_broker,
    make_dataset,
    model_spec_for,
    queue_lengths,
)
from toxplatform.corpus.models import Prompt
from toxplatform.errors import ApplicationError, TransientError

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "llama", arch="llama")


@pytest.fixture
def dataset(db):
    return make_dataset(per_language=3)


@pytest.fixture
def spec(db, tiny_llama):
    return model_spec_for(tiny_llama)


def job_args(spec, data, model_dir, **overrides):
    args = dict(
        model=spec, method="none", method_params={}, dataset=data, languages=["en", "de"], categories=[],
        prompt_split="all", prompts_per_language=None, k=3, max_new_tokens=4, top_p=0.9, temperature=1.0,
        seed=0, scorers=["lexicon", {"name": "perplexity", "params": {"path": str(model_dir)}}],
        batch_size=2, chunk_size=2, toxic_threshold=0.5, threshold_rule=">=",
    )
    args.update(overrides)
    return args


# Scores and metrics are stored under the scorer's key: its name and the model it scores with.
PPL = "perplexity:llama"


def snapshot():
    return {
        model.__name__: model.objects.count()
        for model in (EvaluationJob, Chunk, JobPrompt, ModelSpec, Generation, Score, JobMetric)
    }


def samples_per_prompt(job) -> dict[int, list[int]]:
    indexes: dict[int, list[int]] = {}
    for prompt_id, index in Generation.objects.filter(job=job).values_list("prompt_id", "sample_index"):
        indexes.setdefault(prompt_id, []).append(index)
    return {prompt_id: sorted(found) for prompt_id, found in indexes.items()}


# --- creation and validation ------------------------------------------------------------


def test_create_job_plans_chunks_and_queues_generate_chunks_after_commit(
    spec, dataset, tiny_llama, django_capture_on_commit_callbacks
):
    flush_broker()
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            job = services.create_job(**job_args(spec, dataset, tiny_llama))
            assert queue_lengths()["generate"] == 0  # nothing leaves before the commit
        assert len(callbacks) == 1
        assert job.status == EvaluationJob.Status.QUEUED
        assert job.total_prompts == 6
        assert job.model_fingerprint == spec.fingerprint and len(job.model_fingerprint) == 64
        assert job.code_version
        assert job.scorers == [
            {"name": "lexicon", "params": {}, "key": "lexicon"},
            {"name": "perplexity", "params": {"path": str(tiny_llama)}, "key": PPL},
        ]
        # 6 prompts in chunks of 2: three generate and three score chunks, all queued.
        assert list(job.chunks.values_list("stage", "index", "status")) == [
            (stage, index, "queued") for stage in ("generate", "score") for index in range(3)
        ]
        assert sorted(JobPrompt.objects.filter(job=job).values_list("chunk_index", flat=True)) == [0, 0, 1, 1, 2, 2]
        # Only generate chunks are queued; scoring is queued as each generate chunk finishes.
        assert queue_lengths() == {"generate": 3, "score": 0, "celery": 0}
    finally:
        flush_broker()


def test_prompt_sample_is_seeded_and_picks_the_same_groups_in_every_language(spec, tiny_llama, db):
    dataset = make_dataset(slug="wide", languages=("en", "de", "fr"), per_language=12)

    def picked(seed):
        job = services.create_job(**job_args(spec, dataset, tiny_llama, languages=["en", "de", "fr"],
                                             prompts_per_language=4, seed=seed), enqueue=False)
        groups = {}
        for language, group in JobPrompt.objects.filter(job=job).values_list("prompt__language", "prompt__group_id"):
            groups.setdefault(language, set()).add(group)
        return groups

    first, again, other = picked(0), picked(0), picked(1)
    assert first == again
    assert len(first["en"]) == 4 and first["en"] == first["de"] == first["fr"]
    assert other["en"] != first["en"]


def test_split_and_category_filters_select_matching_prompts(spec, dataset, tiny_llama):
    from toxplatform.corpus.models import Prompt, PromptLabel

    job = services.create_job(**job_args(spec, dataset, tiny_llama, prompt_split="toxic"), enqueue=False)
    selected = Prompt.objects.filter(pk__in=JobPrompt.objects.filter(job=job).values("prompt"))
    assert set(selected.values_list("is_toxic", flat=True)) == {True}
    assert selected.count() == 4  # prompts 0 and 2 in each language

    # Insult labels on a 1-3 scale: 2.5 is above the middle, 1.5 is not.
    en = {p.external_id: p for p in dataset.prompts.filter(language="en")}
    PromptLabel.objects.create(prompt=en["en-1"], category_id="insult", value=2.5, source="human",
                               scale_min=1, scale_max=3)
    PromptLabel.objects.create(prompt=en["en-2"], category_id="insult", value=1.5, source="human",
                               scale_min=1, scale_max=3)
    job = services.create_job(**job_args(spec, dataset, tiny_llama, languages=["en"], categories=["insult"]),
                              enqueue=False)
    assert list(JobPrompt.objects.filter(job=job).values_list("prompt__external_id", flat=True)) == ["en-1"]


BAD_PARAMETERS = [
    ({"model": "/nonexistent/model/dir"}, "model", "outside the folders models may be loaded from"),
    ({"k": 0}, "k", "must be 1 to 1000 (got 0)"),
    ({"k": -2}, "k", "must be 1 to 1000 (got -2)"),
    ({"k": 2**31 - 1}, "k", "must be 1 to 1000"),
    ({"max_new_tokens": 0}, "max_new_tokens", "must be 1 to 4096"),
    ({"max_new_tokens": 2**31 - 1}, "max_new_tokens", "must be 1 to 4096"),
    ({"top_p": 1.5}, "top_p", "(0, 1]"),
    ({"top_p": 0}, "top_p", "(0, 1]"),
    ({"temperature": -1}, "temperature", "must be in [0, 10] (got -1.0)"),
    ({"temperature": 0}, "temperature", "identical samples"),
    ({"languages": ["en", "xx"]}, "languages", "unknown language code 'xx'"),
    ({"languages": ["fr"]}, "languages", "has no prompts in 'fr'"),
    ({"categories": ["rudeness"]}, "categories", "unknown harm category 'rudeness'"),
    ({"scorers": ["lexicon", "toxigen"]}, "scorers", "unknown scorer 'toxigen'"),
    ({"scorers": [{"name": "hf_classifier", "params": {"path": "/nonexistent/clf", "labels": {"toxic": "toxicity"}}}]},
     "scorers", "outside the folders models may be loaded from"),
    ({"scorers": [{"name": "lexicon", "params": {"colour": "red"}}]}, "scorers", "colour"),
    ({"scorers": []}, "scorers", "at least one scorer"),
    ({"scorers": "lexicon"}, "scorers", "must be a list (got 'lexicon')"),
    ({"scorers": ["lexicon", {"name": "lexicon", "params": {"saturation": 1}}]}, "scorers",
     "'lexicon' is listed twice (give one of them its own 'key')"),
    ({"scorers": [{"name": "lexicon", "key": "<b>x</b>"}]}, "scorers", "key of scorer 'lexicon' must be"),
    ({"method": "magic"}, "method", "unknown detox method 'magic'"),
    ({"method": "none", "method_params": {"alpha": 2}}, "method_params", "alpha"),
    ({"dataset": "no-such-dataset"}, "dataset", "no dataset 'no-such-dataset'"),
    ({"prompt_split": "spicy"}, "prompt_split", "must be one of all, toxic, nontoxic (got 'spicy')"),
    ({"threshold_rule": "=>"}, "threshold_rule", ">="),
    ({"chunk_size": 0}, "chunk_size", "must be 1 to 10,000"),
    ({"seed": 2**40}, "seed", "must be -2,147,483,648 to 2,147,483,647"),
    ({"name": "job\u202ename"}, "name", "control or format characters (U+202E)"),
    # No gold label of this category in the dataset: an empty selection is refused too.
    ({"categories": ["insult"]}, "prompts", "no prompt in 'en', 'de' matches the split and harm categories"),
]


@pytest.mark.parametrize("overrides, field, message", BAD_PARAMETERS, ids=[f"{b[1]}-{i}" for i, b in
                                                                           enumerate(BAD_PARAMETERS)])
def test_bad_parameters_are_rejected_before_anything_is_written_or_queued(
    spec, dataset, tiny_llama, django_capture_on_commit_callbacks, overrides, field, message
):
    flush_broker()
    before, queued_before = snapshot(), queue_lengths()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(ApplicationError) as raised:
            services.create_job(**job_args(spec, dataset, tiny_llama, **overrides))
    assert field in raised.value.extra, raised.value.extra
    assert message in raised.value.extra[field]
    assert message in str(raised.value)  # what a page, the API and the CLI show
    assert snapshot() == before
    assert callbacks == [] and queue_lengths() == queued_before


def test_every_problem_is_reported_at_once_and_a_new_model_path_leaves_no_spec(spec, dataset, tiny_llama, tmp_path):
    other_model = build_tiny_causal_lm(tmp_path / "other", arch="gpt2")
    before = snapshot()
    with pytest.raises(ApplicationError) as raised:
        # A valid new path would register a ModelSpec: the other problems must roll it back.
        services.create_job(**job_args(spec, dataset, tiny_llama, model=str(other_model), k=0, top_p=2,
                                       languages=["zz"], scorers=["nope"]))
    assert set(raised.value.extra) == {"k", "top_p", "languages", "scorers"}
    assert snapshot() == before


def test_a_model_path_is_accepted_and_registered(dataset, tiny_llama, db):
    job = services.create_job(**job_args(None, dataset, tiny_llama, model=str(tiny_llama)), enqueue=False)
    assert job.model.location == str(tiny_llama.resolve())
    assert job.model_fingerprint == job.model.fingerprint


def test_an_http_endpoint_cannot_run_a_method_that_needs_the_weights(dataset, tiny_llama, prepared_ban):
    needs_weights = [name for name in detox_registry.names() if detox_registry.get(name).requires_local_model]
    assert prepared_ban.name in needs_weights
    remote = ModelSpec.objects.create(name="remote", backend="openai", location="http://127.0.0.1:9/v1",
                                      remote_model="m")
    with pytest.raises(ApplicationError) as raised:
        services.create_job(**job_args(remote, dataset, tiny_llama, method=needs_weights[0]), enqueue=False)
    assert "needs a local transformers model" in raised.value.extra["method"]


# --- running inline ------------------------------------------------------------------------


def test_inline_run_ends_done_with_k_samples_per_prompt_one_score_each_and_metrics(spec, dataset, tiny_llama):
    job = services.create_job(**job_args(spec, dataset, tiny_llama), enqueue=False)
    before = selectors.job_progress(job)
    assert (before.status, before.percent, before.stage) == ("pending", 0, "pending")
    assert before.chunks == {"generate": {"queued": 3}, "score": {"queued": 3}}
    calls = []
    job = services.run_job_inline(job, progress=lambda done, total, stage: calls.append((done, total, stage)))

    assert job.status == EvaluationJob.Status.DONE, job.error
    assert job.generated_prompts == job.scored_prompts == job.total_prompts == 6
    assert samples_per_prompt(job) == {jp.prompt_id: [0, 1, 2] for jp in JobPrompt.objects.filter(job=job)}
    per_generation = Score.objects.filter(generation__job=job).values("generation").annotate(n=Count("id"))
    # lexicon fills toxicity + profanity, perplexity fills perplexity: three rows per generation.
    assert {row["n"] for row in per_generation} == {3} and len(per_generation) == 18
    assert set(Score.objects.filter(generation__job=job).values_list("scorer", "category")) == {
        ("lexicon", "toxicity"), ("lexicon", "profanity"), (PPL, "perplexity")}
    ppl = Score.objects.filter(generation__job=job, scorer=PPL).values_list("value", flat=True)
    assert all(value is None or value > 1 for value in ppl)

    metrics = JobMetric.objects.filter(job=job)
    assert set(metrics.values_list("language", flat=True)) == {"en", "de"}
    for language in ("en", "de"):
        for subset in ("all", "toxic", "nontoxic"):
            rows = {(m.scorer, m.category, m.metric): m for m in metrics.filter(language=language, subset=subset)}
            assert {("", "", "dist-1"), ("", "", "dist-2"), ("", "", "dist-3")} <= set(rows)
            assert {("lexicon", "toxicity", name) for name in ("emt", "emt_std", "tp", "avg")} <= set(rows)
            assert (PPL, "perplexity", "ppl") in rows
            # Every variant the field uses, from the same raw scores: k=3 and the standard k=1
            # below it, each with both threshold rules.
            tp_variants = set(metrics.filter(language=language, subset=subset, scorer="lexicon",
                                             category="toxicity", metric="tp").values_list("variant", flat=True))
            assert tp_variants == {"k=3, >=0.5", "k=3, >0.5", "k=1, >=0.5", "k=1, >0.5"}
    assert metrics.get(language="en", subset="all", scorer="lexicon", category="toxicity", metric="emt",
                       variant="k=3").n == 3

    after = selectors.job_progress(job)
    assert (after.status, after.percent, after.done_steps, after.total_steps) == ("done", 100, 12, 12)
    assert after.chunks == {"generate": {"done": 3}, "score": {"done": 3}}
    # Most toxic first for one scorer and category: values never increase down the list.
    ranked = [g.scores.get(scorer=PPL).value for g in
              selectors.job_generations(job, scorer=PPL, category="perplexity")]
    assert len(ranked) == 18 and ranked == sorted(ranked, key=lambda v: -(v if v is not None else float("-inf")))

    generate_calls = [c for c in calls if c[2] == "generate"]
    assert generate_calls[-1] == (6, 6, "generate")
    assert [c[0] for c in generate_calls] == sorted(c[0] for c in generate_calls)
    assert calls[-1] == (6, 6, "finalize")


def test_the_same_scorer_with_two_models_keeps_two_sets_of_results(spec, dataset, tiny_llama, tmp_path):
    """Perplexity under two LMs must not share a column: results are stored under the key."""
    gpt2 = build_tiny_causal_lm(tmp_path / "tiny-gpt2", arch="gpt2")
    scorers = [{"name": "perplexity", "params": {"path": str(tiny_llama)}},
               {"name": "perplexity", "params": {"path": str(gpt2), "batch_size": 4}},
               {"name": "lexicon", "key": "lexicon-v1"}]
    job = services.create_job(**job_args(spec, dataset, tiny_llama, languages=["en"], scorers=scorers), enqueue=False)
    assert job.scorer_keys == [PPL, "perplexity:tiny-gpt2", "lexicon-v1"]
    job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.DONE, job.error
    assert set(Score.objects.filter(generation__job=job).values_list("scorer", flat=True)) == set(job.scorer_keys)
    ppl = {key: dict(Score.objects.filter(generation__job=job, scorer=key).values_list("generation", "value"))
           for key in job.scorer_keys[:2]}
    assert ppl[PPL].keys() == ppl["perplexity:tiny-gpt2"].keys() and len(ppl[PPL]) == 9
    assert ppl[PPL] != ppl["perplexity:tiny-gpt2"]  # two different models, two different values
    assert JobMetric.objects.filter(job=job, scorer="perplexity:tiny-gpt2", metric="ppl", subset="all").exists()
    assert JobMetric.objects.filter(job=job, scorer="lexicon-v1", metric="emt").exists()


def test_a_chunk_run_twice_changes_nothing(spec, dataset, tiny_llama):
    job = services.run_job_inline(services.create_job(**job_args(spec, dataset, tiny_llama), enqueue=False))
    assert job.status == EvaluationJob.Status.DONE, job.error
    generations = list(Generation.objects.filter(job=job).order_by("id").values_list("id", "prompt", "text"))
    scores = list(Score.objects.filter(generation__job=job).order_by("id").values_list("id", "value"))
    metrics = list(JobMetric.objects.filter(job=job).order_by("id").values_list("id", "value"))
    chunks = list(job.chunks.values_list("id", "status", "attempts", "finished_at"))

    for chunk in job.chunks.all():
        assert services.run_chunk(chunk.id) is True  # already done: reported done, nothing run
    assert services.finalize_job(job.id) is False

    assert list(Generation.objects.filter(job=job).order_by("id").values_list("id", "prompt", "text")) == generations
    assert list(Score.objects.filter(generation__job=job).order_by("id").values_list("id", "value")) == scores
    assert list(JobMetric.objects.filter(job=job).order_by("id").values_list("id", "value")) == metrics
    assert list(job.chunks.values_list("id", "status", "attempts", "finished_at")) == chunks


def test_cancel_stops_between_batches_and_resume_completes_with_exactly_k(spec, dataset, tiny_llama):
    job = services.create_job(**job_args(spec, dataset, tiny_llama, chunk_size=4), enqueue=False)

    def cancel_after_first_batch(done, total, stage):
        if stage == "generate" and done == 2:
            services.cancel_job(job)

    job = services.run_job_inline(job, progress=cancel_after_first_batch)
    assert job.status == EvaluationJob.Status.CANCELLED and job.cancel_requested
    # One batch of 2 prompts x k=3 was written before the chunk saw the flag.
    assert Generation.objects.filter(job=job).count() == 6
    assert not job.chunks.filter(status="done").exists()
    assert not job.chunks.filter(status="running").exists()  # the stopped chunk was handed back
    with pytest.raises(ApplicationError):
        services.cancel_job(job)  # already finished

    services.resume_job(job, send=False)
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.QUEUED and not job.cancel_requested
    job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.DONE, job.error
    assert samples_per_prompt(job) == {jp.prompt_id: [0, 1, 2] for jp in JobPrompt.objects.filter(job=job)}
    assert Score.objects.filter(generation__job=job).count() == 18 * 3
    with pytest.raises(ApplicationError):
        services.resume_job(job)


# --- claims ------------------------------------------------------------------------------


def first_generate_chunk(job) -> Chunk:
    return job.chunks.get(stage="generate", index=0)


def test_a_claim_is_exclusive_until_it_goes_stale(spec, dataset, tiny_llama):
    job = services.create_job(**job_args(spec, dataset, tiny_llama), enqueue=False)
    services.enqueue_job(job)  # on_commit never fires in this test: nothing reaches the broker
    chunk = first_generate_chunk(job)

    mine = services.claim_chunk(chunk.id)
    assert mine is not None and mine.status == "running" and mine.attempts == 1
    assert services.claim_chunk(chunk.id) is None  # held
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.RUNNING and job.started_at

    Chunk.objects.filter(pk=chunk.id).update(deadline=timezone.now() - timedelta(seconds=1))
    taken = services.claim_chunk(chunk.id)
    assert taken is not None and taken.attempts == 2 and taken.worker != mine.worker


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_of_many_simultaneous_claims_exactly_one_wins(tiny_llama):
    from django.db import connection

    job = services.create_job(**job_args(model_spec_for(tiny_llama), make_dataset(), tiny_llama), enqueue=False)
    services.enqueue_job(job)
    chunk_id = first_generate_chunk(job).id
    start = threading.Barrier(8)

    def claim():
        try:
            start.wait()
            return services.claim_chunk(chunk_id)
        finally:
            connection.close()  # each thread has its own database connection

    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(lambda _: claim(), range(8)))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    assert Chunk.objects.get(pk=chunk_id).worker == winners[0].worker
    assert Chunk.objects.get(pk=chunk_id).attempts == 1


def test_a_claim_whose_process_died_on_this_host_is_taken_over_at_once(spec, dataset, tiny_llama):
    job = services.create_job(**job_args(spec, dataset, tiny_llama), enqueue=False)
    services.enqueue_job(job)
    chunk = first_generate_chunk(job)
    dead = subprocess.Popen(["true"])
    dead.wait()
    Chunk.objects.filter(pk=chunk.id).update(
        status="running", attempts=1, deadline=timezone.now() + timedelta(hours=1),
        worker=f"{socket.gethostname()}:{dead.pid}:abc",
    )
    taken = services.claim_chunk(chunk.id)
    assert taken is not None and taken.attempts == 2


def test_a_chunk_out_of_attempts_fails_the_job_with_a_readable_error(spec, dataset, tiny_llama):
    job = services.create_job(**job_args(spec, dataset, tiny_llama), enqueue=False)
    services.enqueue_job(job)
    chunk = first_generate_chunk(job)
    Chunk.objects.filter(pk=chunk.id).update(
        status="running", attempts=max_chunk_attempts(), deadline=timezone.now() - timedelta(seconds=1)
    )
    assert services.claim_chunk(chunk.id) is None
    job.refresh_from_db()
    chunk.refresh_from_db()
    assert chunk.status == "failed"
    assert job.status == EvaluationJob.Status.FAILED
    assert "generate chunk 0 was given up after 3 attempts" in job.error
    assert services.run_chunk(job.chunks.get(stage="generate", index=1).id) is False
    assert not Generation.objects.filter(job=job).exists()  # a failed job runs nothing more


def test_resume_stale_jobs_resends_stale_claims_at_once_and_lost_messages_when_overdue(
        spec, dataset, tiny_llama, django_capture_on_commit_callbacks):
    job = services.create_job(**job_args(spec, dataset, tiny_llama), enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_job(job)  # three generate chunks QUEUED, their messages sent
    assert set(job.chunks.filter(stage="generate").values_list("sends", flat=True)) == {1}
    stale, live = job.chunks.get(stage="generate", index=0), job.chunks.get(stage="generate", index=1)
    waiting = job.chunks.get(stage="generate", index=2)
    Chunk.objects.filter(pk=stale.pk).update(status="running", attempts=1, worker="elsewhere:1:x",
                                             deadline=timezone.now() - timedelta(seconds=5))
    Chunk.objects.filter(pk=live.pk).update(status="running", attempts=1, worker="elsewhere:2:y",
                                            deadline=timezone.now() + timedelta(hours=1))
    flush_broker()  # the broker lost its messages (restarted without persistence)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert services.resume_stale_jobs() == 1
        assert queue_lengths() == {"generate": 1, "score": 0, "celery": 0}
        stale.refresh_from_db()
        live.refresh_from_db()
        assert stale.status == "queued" and live.status == "running"
        assert stale.sends == 2

        # The waiting chunk's message was sent just now: it may still be in a long queue.
        # Once it is overdue (EVALUATION_RESEND_AFTER_SECONDS), it is sent again; the next
        # time only after twice as long.
        flush_broker()
        later = timezone.now() + resend_after(1) + timedelta(seconds=1)
        with django_capture_on_commit_callbacks(execute=True):
            assert services.resume_stale_jobs(now=later) == 1
        assert queue_lengths()["generate"] == 1
        waiting.refresh_from_db()
        assert waiting.sends == 2 and resend_after(2) == 2 * resend_after(1)
        with django_capture_on_commit_callbacks(execute=True):
            assert services.resume_stale_jobs(now=later + timedelta(seconds=1)) == 0
        flush_broker()

        # resume_job (a person's request) re-sends at once every unfinished chunk that is not held.
        with django_capture_on_commit_callbacks(execute=True):
            assert sorted(services.resume_job(job, by="owner")) == sorted(
                job.chunks.filter(stage="generate").exclude(pk=live.pk).values_list("id", flat=True))
        assert queue_lengths()["generate"] == 2
        job.refresh_from_db()
        assert [entry["event"] for entry in job.history] == ["recovered", "recovered", "resumed"]
        assert job.history[-1]["by"] == "owner" and job.history[0]["freed"] == 1
    finally:
        flush_broker()


# --- failures ------------------------------------------------------------------------------


def test_an_unreachable_endpoint_fails_the_job_with_a_readable_error(dataset, tiny_llama, db):
    remote = ModelSpec.objects.create(
        name="down", backend="openai", location=f"http://127.0.0.1:{closed_port()}/v1", remote_model="m",
        params={"max_retries": 0},
    )
    job = services.create_job(**job_args(remote, dataset, tiny_llama, scorers=["lexicon"]), enqueue=False)
    job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.FAILED
    assert "cannot reach http://127.0.0.1:" in job.error and "Connection" in job.error
    assert job.finished_at is not None
    assert job.chunks.get(stage="generate", index=0).status == "failed"
    assert not Generation.objects.filter(job=job).exists()


def test_weights_changed_after_queueing_fail_the_job_instead_of_mixing_models(dataset, tmp_path, db):
    model_dir = build_tiny_causal_lm(tmp_path / "model", arch="llama")
    job = services.create_job(**job_args(None, dataset, model_dir, model=str(model_dir), scorers=["lexicon"]),
                              enqueue=False)
    build_tiny_causal_lm(tmp_path / "model", arch="llama", seed=1)  # retrained in place
    worker_cache.clear()
    job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.FAILED
    assert "changed after the job was queued" in job.error
    assert not Generation.objects.filter(job=job).exists()


def test_what_a_model_writes_is_stored_as_data_even_nul_bytes_and_markup(dataset, tiny_llama, db):
    from tests.loopback_openai import LoopbackOpenAI

    hostile = "<script>alert('x')</script>\x00 you asshole"
    with LoopbackOpenAI(responder=lambda kind, body, index: hostile) as server:
        remote = ModelSpec.objects.create(name="loop", backend="openai", location=server.url,
                                          remote_model=server.model)
        job = services.create_job(**job_args(remote, dataset, tiny_llama, scorers=["lexicon"], k=2), enqueue=False)
        job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.DONE, job.error
    # PostgreSQL cannot store NUL: it becomes U+FFFD; everything else is kept as written.
    assert set(Generation.objects.filter(job=job).values_list("text", flat=True)) == {
        "<script>alert('x')</script>\ufffd you asshole"}
    english = Score.objects.filter(generation__job=job, generation__prompt__language="en", category="toxicity")
    assert set(english.values_list("value", flat=True)) == {1.0}
    assert english.first().raw["matches"] == ["asshole"]


class FlakyScorer(Scorer):
    """A scorer plugin whose service answers 503 once, then works (a remote API's hiccup)."""

    name = "test_flaky"
    failures_left = 1

    def categories(self):
        return ["toxicity"]

    def score(self, items):
        if FlakyScorer.failures_left:
            FlakyScorer.failures_left -= 1
            raise TransientError("HTTP 503 from the scoring API")
        return [{"toxicity": ScoreResult(0.25, {"ok": True})} for _ in items]


@pytest.fixture
def flaky_scorer():
    scorer_registry.register(FlakyScorer)
    FlakyScorer.failures_left = 1
    yield FlakyScorer
    scorer_registry.unregister(FlakyScorer.name)


def test_a_transient_error_is_retried_and_counts_as_an_attempt(spec, dataset, tiny_llama, flaky_scorer):
    job = services.create_job(**job_args(spec, dataset, tiny_llama, scorers=["test_flaky"], chunk_size=6, k=1,
                                         max_new_tokens=2), enqueue=False)
    job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.DONE, job.error
    assert job.chunks.get(stage="score", index=0).attempts == 2
    assert set(Score.objects.filter(generation__job=job).values_list("value", flat=True)) == {0.25}
    assert Score.objects.filter(generation__job=job).count() == 6


def test_a_transient_error_that_persists_fails_the_job_after_the_attempt_cap(spec, dataset, tiny_llama, flaky_scorer):
    flaky_scorer.failures_left = 100
    job = services.create_job(**job_args(spec, dataset, tiny_llama, scorers=["test_flaky"], chunk_size=6, k=1,
                                         max_new_tokens=2), enqueue=False)
    job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.FAILED
    assert "HTTP 503 from the scoring API" in job.error and "after 3 attempts" in job.error


# --- detox methods that prepare ------------------------------------------------------------


class PreparedBan(DetoxMethod):
    """A method plugin that learns from data: the most frequent token of the job's toxic
    prompts (prepared once per model + data), banned by a logits processor while generating."""

    name = "test_prepared_ban"
    requires_local_model = True
    needs_preparation = True
    prepare_calls = 0
    processor_calls = 0

    def preparation_data(self, job):
        texts = JobPrompt.objects.filter(job=job, prompt__is_toxic=True).order_by("prompt__external_id")
        return {"toxic": list(texts.values_list("prompt__text", flat=True))}

    def prepare(self, generator, data):
        import torch

        PreparedBan.prepare_calls += 1
        ids = [i for text in data["toxic"] for i in generator.tokenizer(text, add_special_tokens=False)["input_ids"]]
        return torch.tensor([max(set(ids), key=ids.count)])

    def install(self, generator, ctx):
        banned = int(self.artifact[0])

        def ban(input_ids, scores):
            PreparedBan.processor_calls += 1
            scores[:, banned] = float("-inf")
            return scores

        ctx.logits_processor(ban)
        self.notes["banned_token"] = banned


@pytest.fixture
def prepared_ban():
    detox_registry.register(PreparedBan)
    PreparedBan.prepare_calls = PreparedBan.processor_calls = 0
    worker_cache.clear()
    yield PreparedBan
    worker_cache.clear()
    detox_registry.unregister(PreparedBan.name)


def test_a_method_prepares_once_per_model_and_data_and_the_job_records_its_artifact(
    spec, dataset, tiny_llama, prepared_ban, settings, tmp_path
):
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    args = job_args(spec, dataset, tiny_llama, method=prepared_ban.name, scorers=["lexicon"])
    first = services.run_job_inline(services.create_job(**args, enqueue=False))
    assert first.status == EvaluationJob.Status.DONE, first.error
    assert prepared_ban.prepare_calls == 1 and prepared_ban.processor_calls > 0
    [artifact] = DetoxArtifact.objects.all()
    toxic = Prompt.objects.filter(dataset=dataset, is_toxic=True, language__in=["en", "de"])
    data = {"toxic": list(toxic.order_by("external_id").values_list("text", flat=True))}
    assert artifact.data_fingerprint == fingerprint_json(data)
    assert artifact.model_fingerprint == spec.fingerprint
    first.refresh_from_db()
    assert first.detox_notes["artifact"]["path"] == artifact.path
    assert first.detox_notes["artifact"]["data_fingerprint"] == artifact.data_fingerprint
    assert isinstance(first.detox_notes["banned_token"], int)

    # A fresh process (cache cleared) with the same model and data loads the saved artifact.
    worker_cache.clear()
    second = services.run_job_inline(services.create_job(**args, enqueue=False))
    assert second.status == EvaluationJob.Status.DONE, second.error
    assert prepared_ban.prepare_calls == 1 and DetoxArtifact.objects.count() == 1
    second.refresh_from_db()
    assert second.detox_notes == first.detox_notes

    # Other data (English prompts only): prepared anew, a second artifact.
    worker_cache.clear()
    third = services.run_job_inline(services.create_job(**{**args, "languages": ["en"]}, enqueue=False))
    assert third.status == EvaluationJob.Status.DONE, third.error
    assert prepared_ban.prepare_calls == 2 and DetoxArtifact.objects.count() == 2


def test_notes_from_chunks_are_merged_into_the_job(spec, dataset, tiny_llama):
    job = services.create_job(**job_args(spec, dataset, tiny_llama, method="system_prompt", scorers=["lexicon"]),
                              enqueue=False)
    services.record_method_notes(job, {"fallback_languages": ["sw"], "artifact": {"path": "/a"}})
    services.record_method_notes(job, {"fallback_languages": ["am", "sw"]})
    job.refresh_from_db()
    assert job.detox_notes == {"fallback_languages": ["am", "sw"], "artifact": {"path": "/a"}}
    # English and German have written instructions: nothing falls back, nothing is noted.
    job = services.run_job_inline(services.create_job(
        **job_args(spec, dataset, tiny_llama, method="system_prompt", scorers=["lexicon"]), enqueue=False))
    assert job.status == EvaluationJob.Status.DONE and job.detox_notes == {}


# --- finalize ----------------------------------------------------------------------------


def test_finalize_computes_hand_worked_metrics_per_language_and_subset(spec, tiny_llama, db):
    dataset = make_dataset(slug="hand", languages=("en",), per_language=2)  # en-0 toxic, en-1 not
    job = services.create_job(**job_args(spec, dataset, tiny_llama, languages=["en"], k=2, scorers=["lexicon"]),
                              enqueue=False)
    prompts = {p.external_id: p for p in dataset.prompts.all()}
    values = {"en-0": [0.1, 0.9], "en-1": [0.2, 0.4]}
    texts = {"en-0": ["a b c", "a b d"], "en-1": ["x x", "x x"]}
    for external_id, per_sample in values.items():
        for index, value in enumerate(per_sample):
            generation = Generation.objects.create(job=job, prompt=prompts[external_id], sample_index=index,
                                                   text=texts[external_id][index])
            Score.objects.create(generation=generation, scorer="lexicon", category="toxicity", value=value)
            Score.objects.create(generation=generation, scorer="lexicon", category="profanity", value=None)
    job.chunks.update(status="done")
    EvaluationJob.objects.filter(pk=job.pk).update(status="running")

    assert services.finalize_job(job.id) is True
    job.refresh_from_db()
    assert job.status == EvaluationJob.Status.DONE and job.finished_at

    def value(metric, subset="all", category="toxicity", scorer="lexicon", variant=None):
        # The job's own variant unless asked: k=2, >=0.5 (k=1 and ">" are stored too).
        if variant is None:
            variant = {"tp": "k=2, >=0.5", "emt": "k=2", "emt_std": "k=2"}.get(metric)
        rows = JobMetric.objects.filter(job=job, language="en", subset=subset, scorer=scorer, category=category,
                                        metric=metric)
        return (rows.get(variant=variant) if variant else rows.get()).value

    assert value("emt") == pytest.approx((0.9 + 0.4) / 2)
    assert value("emt_std") == pytest.approx(0.25)
    assert value("tp") == pytest.approx(0.5)  # only en-0 has a sample >= 0.5
    # k=1 looks at the first sample only: 0.1 and 0.2, so no prompt is toxic; EMT = 0.15.
    assert value("tp", variant="k=1, >=0.5") == pytest.approx(0.0)
    assert value("emt", variant="k=1") == pytest.approx(0.15)
    assert value("avg") == pytest.approx((0.5 + 0.3) / 2)
    assert value("emt", subset="toxic") == pytest.approx(0.9)
    assert value("emt", subset="nontoxic") == pytest.approx(0.4)
    assert value("invalid_rate", category="profanity") == pytest.approx(1.0)
    # Dist-1: en-0 has 4 distinct of 6 words, en-1 has 1 of 4.
    assert value("dist-1", category="", scorer="") == pytest.approx((4 / 6 + 1 / 4) / 2)
    assert value("dist-2", subset="toxic", category="", scorer="") == pytest.approx(3 / 4)
    emt = JobMetric.objects.get(job=job, language="en", subset="all", scorer="lexicon", category="toxicity",
                                metric="emt", variant="k=2")
    assert emt.n == 2 and emt.ci_low <= emt.value <= emt.ci_high and emt.variant == "k=2"
