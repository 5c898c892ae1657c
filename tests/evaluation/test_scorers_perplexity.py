"""perplexity scorer on tiny Llama / GPT-2 models, checked against a hand-written loop."""
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from evaluation.scorers import ScoringInput, registry
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.errors import ApplicationError

ITEMS = [
    ScoringInput("The quick brown fox", " jumps over the lazy dog.", "en"),
    ScoringInput("Быстрая коричневая лиса", " прыгает через собаку.", "ru"),
    ScoringInput("敏捷的棕色狐狸", "跳过了懒狗。", "zh"),
    ScoringInput("Hi", " there, you are a kind and respectful person, thank you!", "en"),
    ScoringInput("Der schnelle braune Fuchs springt über den faulen Hund. Le renard brun", " saute.", "de"),
]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def lm_dir(request, tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp(f"ppl-{request.param}"), arch=request.param)


def manual_perplexity(path, prompt, continuation):
    """exp(mean NLL of the continuation tokens given the prompt), one position at a time."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    context = tokenizer(prompt)["input_ids"]
    target = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([context + target])).logits[0].double()
    nll = 0.0
    for offset, token in enumerate(target):
        position = len(context) + offset
        nll -= torch.log_softmax(logits[position - 1], dim=-1)[token].item()
    return math.exp(nll / len(target))


def test_matches_a_manual_loop_over_logits(lm_dir):
    scorer = registry.get("perplexity")(path=str(lm_dir), batch_size=8)
    assert scorer.categories() == ["perplexity"]
    for item, result in zip(ITEMS, scorer.score(ITEMS)):
        value = result["perplexity"].value
        assert value == pytest.approx(manual_perplexity(lm_dir, item.prompt, item.continuation), rel=1e-4)
        assert math.isfinite(value) and value > 1.0
        assert result["perplexity"].raw["tokens"] > 0
        assert value == pytest.approx(math.exp(result["perplexity"].raw["nll"] / result["perplexity"].raw["tokens"]))


def test_batched_equals_one_at_a_time(lm_dir):
    batched = registry.get("perplexity")(path=str(lm_dir), batch_size=5).score(ITEMS)
    single = registry.get("perplexity")(path=str(lm_dir), batch_size=1).score(ITEMS)
    for a, b in zip(batched, single):
        assert a["perplexity"].value == pytest.approx(b["perplexity"].value, rel=1e-5)


def test_prompt_conditions_the_value(lm_dir):
    conditioned = registry.get("perplexity")(path=str(lm_dir)).score(ITEMS[:1])[0]["perplexity"]
    alone = registry.get("perplexity")(path=str(lm_dir), condition_on_prompt=False).score(ITEMS[:1])[0]["perplexity"]
    assert conditioned.raw["tokens"] == alone.raw["tokens"]
    assert conditioned.value != pytest.approx(alone.value, rel=1e-6)


def test_trailing_prompt_space_moves_to_the_continuation(lm_dir):
    scorer = registry.get("perplexity")(path=str(lm_dir))
    a, b = scorer.score([ScoringInput("Hello", " world", "en"), ScoringInput("Hello ", "world", "en")])
    assert a["perplexity"].value == pytest.approx(b["perplexity"].value, rel=1e-9)


def test_empty_continuation_and_empty_prompt(lm_dir):
    scorer = registry.get("perplexity")(path=str(lm_dir))
    empty, no_prompt = scorer.score([ScoringInput("Hello", "", "en"), ScoringInput("", "Hello world", "en")])
    assert empty["perplexity"].value is None
    assert empty["perplexity"].raw == {"reason": "empty continuation"}
    # The first continuation token is predicted from BOS, so every token counts.
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    assert no_prompt["perplexity"].raw["tokens"] == len(tokenizer("Hello world", add_special_tokens=False)["input_ids"])
    assert math.isfinite(no_prompt["perplexity"].value)


def test_long_prompt_is_cut_from_the_left(lm_dir):
    scorer = registry.get("perplexity")(path=str(lm_dir), max_length=12)
    result = scorer.score([ScoringInput("word " * 50, " the end", "en")])[0]["perplexity"]
    assert result.raw["truncated"] is True
    context, target, _ = scorer.encode("word " * 50, " the end")
    assert len(context) + len(target) == 12
    assert math.isfinite(result.value)


def test_languages_param_and_bad_params(lm_dir, tmp_path):
    scorer = registry.get("perplexity")(path=str(lm_dir), languages=["en"])
    result = scorer.score([ScoringInput("Hallo", " Welt", "de")])[0]["perplexity"]
    assert result.value is None and result.raw["reason"] == "model not meant for de"
    with pytest.raises(ApplicationError, match="does not exist"):
        registry.get("perplexity")(path=str(tmp_path / "missing"))
    with pytest.raises(ApplicationError, match="unknown packaged model"):
        registry.get("perplexity")(path="package:no-such-model")
    with pytest.raises(ApplicationError, match="batch_size"):
        registry.get("perplexity")(path=str(lm_dir), batch_size="8")
    with pytest.raises(ApplicationError, match="condition_on_prompt"):
        registry.get("perplexity")(path=str(lm_dir), condition_on_prompt="yes")
    with pytest.raises(ApplicationError, match="max_length"):
        registry.get("perplexity")(path=str(lm_dir), max_length=1)
