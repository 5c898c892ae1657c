"""Toxification reversal on tiny GPT-2 and Llama: the per-head formula at the last position, step bookkeeping, undo;
prefixes per language (each row its own, English defaults noted as fallbacks)."""
import pytest
import torch

from evaluation.detox import load_detox_method
from evaluation.detox.anatomy import attention_output, head_layout
from evaluation.detox.base import decoder_layers, run_generation
from evaluation.detox.self_detoxify import NEGATIVE_PREFIX, SelfDetoxify
from evaluation.generators import GenerationParams, PromptInput
from tests.evaluation.detox_helpers import PROMPTS, assert_no_hooks, logits, prompt_ids, tiny_generator
from toxplatform.errors import ApplicationError

NEG = "You are a stupid idiot and"


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def generator(request, tmp_path_factory):
    gen = tiny_generator(tmp_path_factory, request.param)
    yield gen
    gen.close()


def all_head_inputs(generator, ids):
    """Per layer, the attention output projection's input [seq, heads * head_dim] for one sequence."""
    found = {}
    handles = [attention_output(layer).register_forward_pre_hook(
        lambda m, a, i=i: found.__setitem__(i, a[0][0].detach().clone()))
        for i, layer in enumerate(decoder_layers(generator.model))]
    with torch.inference_mode():
        generator.model(torch.tensor([ids]))
    for handle in handles:
        handle.remove()
    return found


def reversed_pass(method, generator, ids):
    """Per layer, the attention output projection's input before and after the method's hook,
    in the model's own pass over one sequence with the method applied."""
    seen = {}
    with method.applied(generator):
        # Recording hooks after the method's: per layer, the last (the model's own) pass.
        handles = []
        for i, layer in enumerate(decoder_layers(generator.model)):
            module = attention_output(layer)
            handles.append(module.register_forward_pre_hook(
                lambda m, a, i=i: seen.setdefault(i, {}).__setitem__("before", a[0][0].clone()), prepend=True))
            handles.append(module.register_forward_pre_hook(
                lambda m, a, i=i: seen[i].__setitem__("after", a[0][0].clone())))
        with torch.inference_mode():
            generator.model(torch.tensor([ids]))
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("renorm", [True, False])
def test_last_position_of_every_head_follows_the_reversal_formula(generator, renorm):
    heads, head_dim = head_layout(generator.model)
    ids = prompt_ids(generator)[0].tolist()
    prefix = generator.tokenizer(NEG, add_special_tokens=False)["input_ids"]
    neg = all_head_inputs(generator, prefix + ids)
    pos = all_head_inputs(generator, ids)
    method = SelfDetoxify(negative_prefix=NEG, renorm=renorm, norm_exp=0.4, neg_sim_exp=0.6)
    seen = reversed_pass(method, generator, ids)
    assert_reversed_by_hand(seen, neg, pos, heads, head_dim, renorm)


def assert_reversed_by_hand(seen, neg, pos, heads, head_dim, renorm=True):
    """Each layer's last position equals the reversal formula computed by hand (exponents 0.4 / 0.6)
    from independent negative and positive passes; earlier positions are bit-identical."""
    for layer in seen:
        before, after = seen[layer]["before"], seen[layer]["after"]
        assert torch.equal(after[:-1], before[:-1])  # only the last position changes
        v = before[-1].double().view(heads, head_dim)
        delta = (neg[layer][-1] - pos[layer][-1]).double().view(heads, head_dim)
        neg_end = neg[layer][-1].double().view(heads, head_dim)
        expected = []
        for h in range(heads):
            cosine = float(neg_end[h] @ v[h] / (neg_end[h].norm() * v[h].norm()))
            scale = (1 + float(delta[h].norm())) ** 0.4 * (1 + max(cosine, 0.0)) ** 0.6
            expected.append(v[h] - scale * delta[h])
        expected = torch.stack(expected)
        if renorm:
            expected = expected * (v.norm() / expected.norm())
        assert torch.allclose(after[-1].double().view(heads, head_dim), expected, atol=1e-5)
        assert not torch.allclose(after[-1], before[-1])


def test_each_step_extends_the_text_it_reverses_from(generator):
    method = SelfDetoxify()
    prompt = PromptInput("The quick brown fox", "en")
    seen = []

    def record(input_ids, scores):
        seen.append(input_ids[0].tolist())
        return scores

    with method.applied(generator) as hooks:
        hooks.logits_processors.append(record)
        generator.generate([prompt], GenerationParams(k=1, max_new_tokens=5, temperature=0), hooks)
    # The text the last step was reversed from is what the model had read at that step.
    assert len(seen) == 5 and method.sequences == [seen[-1]]
    assert seen[-1][: len(seen[0])] == seen[0] == generator.encode([prompt])[0]


def test_only_the_chosen_layers_change(generator):
    method = SelfDetoxify(layers=[1])
    first = attention_output(decoder_layers(generator.model)[0])
    seen = []
    with method.applied(generator):
        handle = first.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()), prepend=True)
        after = []
        handle2 = first.register_forward_pre_hook(lambda m, a: after.append(a[0].clone()))
        with torch.inference_mode():
            generator.model(prompt_ids(generator))
        handle.remove()
        handle2.remove()
    assert torch.equal(seen[-1], after[-1])


def test_bit_identical_after_the_context_and_after_an_exception(generator):
    method = SelfDetoxify()
    before = logits(generator)
    params = GenerationParams(k=2, max_new_tokens=5, seed=6)
    plain = generator.generate(PROMPTS, params)
    with method.applied(generator) as hooks:
        assert not torch.equal(logits(generator), before)
        assert generator.generate(PROMPTS, params, hooks) != plain
    with pytest.raises(RuntimeError, match="boom"), method.applied(generator):
        raise RuntimeError("boom")
    assert torch.equal(logits(generator), before) and generator.generate(PROMPTS, params) == plain
    assert_no_hooks(generator.model)


# --- prefixes per language ----------------------------------------------------------------

RU_NEG, RU_POS = "Ты тупой идиот и", "Ты добрый человек и"


def tokens(generator, text):
    return generator.tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("language, entry", [("ru", "ru"), ("ru-RU", "ru"), ("de", None), (None, None)])
def test_a_prompt_reverses_from_its_languages_prefixes_or_the_defaults(generator, language, entry):
    method = SelfDetoxify(prefixes={"ru": {"negative": RU_NEG, "positive": RU_POS}})
    prompt = PromptInput("Быстрая лиса", language or "ru")
    if language is not None:  # a prompt the method saw (None: a forward it cannot place, defaults)
        method.transform_prompt(PromptInput(prompt.text, language))
    ids = generator.encode([prompt])[0]
    negative, positive = (RU_NEG, RU_POS) if entry else (NEGATIVE_PREFIX, "")
    neg = all_head_inputs(generator, tokens(generator, negative) + ids)
    pos = all_head_inputs(generator, tokens(generator, positive) + ids)
    heads, head_dim = head_layout(generator.model)
    assert_reversed_by_hand(reversed_pass(method, generator, ids), neg, pos, heads, head_dim)
    expected_notes = {"de": {"fallback_languages": ["de"]}, None: {"rows_without_language": 1}}
    assert method.notes == expected_notes.get(language, {})


def test_each_row_of_a_batch_gets_its_own_prefixes_and_fallbacks_are_noted(generator):
    prompts = [PromptInput("The quick brown fox", "en"), PromptInput("Быстрая лиса", "ru"),
               PromptInput("Der schnelle Fuchs", "de"), PromptInput("Le renard", "fr-CA")]
    method = SelfDetoxify(prefixes={"ru": {"negative": RU_NEG, "positive": RU_POS}, "fr": {"negative": "Tu es nul"}})
    run_generation(method, generator, prompts, GenerationParams(k=2, max_new_tokens=3, seed=2))
    expected = {"en": (NEGATIVE_PREFIX, ""), "ru": (RU_NEG, RU_POS), "de": (NEGATIVE_PREFIX, ""),
                "fr-CA": ("Tu es nul", "")}
    starts = {prompt.language: generator.encode([prompt])[0] for prompt in prompts}
    rows = []
    for sequence, (negative, positive) in zip(method.sequences, method.row_prefixes):
        [language] = [code for code, start in starts.items() if sequence[: len(start)] == start]
        rows.append(language)
        assert [list(negative), list(positive)] == [tokens(generator, text) for text in expected[language]]
    assert sorted(rows) == sorted(["en", "ru", "de", "fr-CA"] * 2)
    assert method.notes == {"fallback_languages": ["de"]}  # English is the defaults' own language


@pytest.mark.parametrize("params, message", [
    ({"negative_prefix": "  "}, "negative_prefix must not be empty"),
    ({"norm_exp": -1}, "norm_exp must be in [0, 10] (got -1.0)"),
    ({"renorm": 1}, "renorm must be true or false"),
    ({"prefixes": ["ru"]}, "prefixes must be an object"),
    ({"prefixes": {"ru": "Ты тупой"}}, 'prefixes \'ru\' must be {"negative": text, "positive": text} (positive optional)'),
    ({"prefixes": {"ru": {"negative": "x", "neutral": "y"}}}, "prefixes 'ru' must be {\"negative\": text"),
    ({"prefixes": {"ru": {"positive": "y"}}}, "prefixes 'ru' must be {\"negative\": text"),
    ({"prefixes": {"ru": {"negative": "  "}}}, "prefixes 'ru': negative must not be empty"),
    ({"prefixes": {"ru": {"negative": "x" * 2001}}}, "prefixes 'ru': negative must be at most 2000 characters (got 2001)"),
    ({"prefixes": {"ru": {"negative": "x", "positive": 3}}}, "prefixes 'ru': positive must be text (got 3)"),
    ({"prefixes": {"r\u200bu": {"negative": "x"}}}, "must not contain control or format characters (U+200B)"),
])
def test_bad_parameters_are_rejected(params, message):
    with pytest.raises(ApplicationError) as error:
        load_detox_method("self_detoxify", params)
    assert message in str(error.value)
