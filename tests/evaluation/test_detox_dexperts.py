"""DExperts on tiny GPT-2 and Llama: logits equal the formula at every step (KV caches, padding), undo, submit checks."""
import functools

import pytest
import torch

from evaluation import services
from evaluation.detox import load_detox_method
from evaluation.detox.dexperts import DExperts, nucleus_filter
from evaluation.generators import GenerationParams, PromptInput, load_generator
from evaluation.models import EvaluationJob
from tests.evaluation.detox_helpers import PROMPTS, assert_no_hooks, logits
from tests.tiny_models import build_tiny_causal_lm, build_tokenizer
from tests.worker_utils import make_dataset, model_spec_for
from toxplatform.errors import ApplicationError


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def models(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"dexperts-{request.param}")
    paths = {role: build_tiny_causal_lm(root / role, request.param, seed=seed)
             for seed, role in enumerate(["base", "expert", "anti"])}
    base = load_generator({"name": "base", "location": str(paths["base"]), "dtype": "float32", "device": "cpu"})
    yield base, paths
    base.close()


def recorded_steps(method, base, prompts, params):
    """(input_ids, scores in, scores out) of the DExperts processor at every step of a generate call."""
    steps = []
    with method.applied(base) as hooks:
        [processor] = hooks.logits_processors

        def around(input_ids, scores):
            before = scores.clone()
            after = processor(input_ids, scores)
            steps.append((input_ids.clone(), before, after.clone()))
            return after

        hooks.logits_processors[0] = around
        texts = base.generate(prompts, params, hooks)
    return steps, texts


@functools.cache
def loaded(path):
    return load_generator({"name": "x", "location": str(path), "dtype": "float32", "device": "cpu"}).model


def full_logits(path, input_ids, prompt_width, prompt_lengths):
    """Next-token logits of a model read from scratch (no cache), with the rows' left padding masked."""
    model = loaded(path)
    mask = torch.ones_like(input_ids)
    for row, length in enumerate(prompt_lengths):
        mask[row, : prompt_width - length] = 0
    with torch.inference_mode():
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
    return out.logits[:, -1, :]


@pytest.mark.parametrize("filter_top_p", [1.0, 0.9])
def test_logits_equal_the_formula_at_every_step_with_padding_and_kv_caches(models, filter_top_p):
    base, paths = models
    method = DExperts(expert=str(paths["expert"]), anti_expert=str(paths["anti"]), alpha=2.0,
                      filter_top_p=filter_top_p)
    prompts = [PromptInput("The quick brown fox jumps over", "en"), PromptInput("Hi", "en")]
    steps, _ = recorded_steps(method, base, prompts, GenerationParams(k=1, max_new_tokens=4, seed=0, batch_size=2))
    assert len(steps) == 4
    prompt_width = steps[0][0].shape[1]
    # Rows are sorted longest prompt first; each row's padding is known from its prompt.
    lengths = sorted((len(ids) for ids in base.encode(prompts)), reverse=True)
    for input_ids, before, after in steps:
        expert = full_logits(paths["expert"], input_ids, prompt_width, lengths)
        anti = full_logits(paths["anti"], input_ids, prompt_width, lengths)
        expected = nucleus_filter(before, filter_top_p) + 2.0 * (expert - anti)
        assert torch.allclose(after, expected, atol=1e-4)
        assert torch.equal(torch.isinf(after), torch.isinf(expected))
    if filter_top_p < 1:
        assert torch.isinf(steps[0][2]).any()


def test_nucleus_filter_keeps_the_smallest_set_reaching_top_p():
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(nucleus_filter(scores, 0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(nucleus_filter(scores, 0.81)).tolist() == [[False, False, False, True]]
    assert torch.equal(nucleus_filter(scores, 1.0), scores)


def test_alpha_zero_without_filter_is_plain_generation_and_the_model_is_unchanged_after(models):
    base, paths = models
    params = GenerationParams(k=2, max_new_tokens=5, seed=7)
    plain = base.generate(PROMPTS, params)
    before = logits(base)
    zero = DExperts(expert=str(paths["expert"]), anti_expert=str(paths["anti"]), alpha=0.0, filter_top_p=1.0)
    with zero.applied(base) as hooks:
        assert base.generate(PROMPTS, params, hooks) == plain
    steered = DExperts(expert=str(paths["expert"]), anti_expert=str(paths["anti"]), alpha=5.0)
    with steered.applied(base) as hooks:
        assert base.generate(PROMPTS, params, hooks) != plain
    with pytest.raises(RuntimeError, match="boom"), steered.applied(base):
        raise RuntimeError("boom")
    assert base.generate(PROMPTS, params) == plain and torch.equal(logits(base), before)
    assert_no_hooks(base.model)
    assert set(steered.notes["experts"]) == {"expert", "anti_expert"}


@pytest.mark.parametrize("params, message", [
    ({"anti_expert": "b"}, "expert is required"),
    ({"expert": "a", "anti_expert": "a"}, "anti_expert must be another model than the expert"),
    ({"expert": "a", "anti_expert": "b", "alpha": -1}, "alpha must be in [0, 100] (got -1.0)"),
    ({"expert": "a", "anti_expert": "b", "filter_top_p": 0}, "filter_top_p must be in (0, 1] (got 0.0)"),
])
def test_bad_parameters_are_rejected(params, message):
    with pytest.raises(ApplicationError) as error:
        load_detox_method("dexperts", params)
    assert message in str(error.value)


@pytest.mark.django_db
def test_submit_refuses_experts_with_another_tokenizer_or_missing(models, tmp_path):
    _, paths = models
    other = build_tiny_causal_lm(tmp_path / "other", "llama")
    build_tokenizer(other, vocab_size=400)  # same model files, a different vocabulary
    dataset = make_dataset(per_language=2)
    spec = model_spec_for(paths["base"])
    args = dict(model=spec, method="dexperts", dataset=dataset, languages=["en"], k=1, max_new_tokens=2,
                scorers=["lexicon"], enqueue=False)
    with pytest.raises(ApplicationError) as error:
        services.create_job(**args, method_params={"expert": str(other), "anti_expert": str(paths["anti"])})
    assert f"expert '{other}' does not share the tokenizer of 'tiny-llama'" in error.value.extra["method"]
    with pytest.raises(ApplicationError) as error:
        services.create_job(**args, method_params={"expert": "/no/such/model", "anti_expert": str(paths["anti"])})
    assert "outside the folders models may be loaded from" in error.value.extra["method"]
    assert not EvaluationJob.objects.exists()
    job = services.create_job(**args, method_params={"expert": str(paths["expert"]), "anti_expert": str(paths["anti"])})
    job = services.run_job_inline(job)
    assert job.status == EvaluationJob.Status.DONE, job.error
    assert set(job.detox_notes["experts"]) == {"expert", "anti_expert"}
