"""Word ban on tiny GPT-2 and Llama: multi-token words blocked, per-row language lists, undo, bad files."""
import pytest
import torch

from evaluation.detox import load_detox_method
from evaluation.detox.word_ban import BanProcessor, WordBan, ban_table, spellings
from evaluation.generators import GenerationParams, PromptInput
from evaluation.scorers import lexicon
from tests.evaluation.detox_helpers import PROMPTS, assert_no_hooks, logits, tiny_generator
from toxplatform.errors import ApplicationError


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def generator(request, tmp_path_factory):
    gen = tiny_generator(tmp_path_factory, request.param)
    yield gen
    gen.close()


@pytest.fixture
def data_root(settings, tmp_path):
    settings.DETOX_DATA_ROOTS = [tmp_path]
    return tmp_path


def contains(sequence: list[int], part: list[int]) -> bool:
    return any(sequence[i:i + len(part)] == part for i in range(len(sequence) - len(part) + 1))


def test_every_spelling_and_every_token_of_a_multi_token_word_is_in_the_table(generator):
    table = ban_table(generator.tokenizer, ["Fuchs"])
    # as written, lower case, Capitalized, UPPER (duplicates once), each with and without a space
    assert sorted(spellings("fUchs")) == sorted(f"{space}{form}" for form in ("fUchs", "fuchs", "FUchs", "FUCHS")
                                                for space in ("", " "))
    assert sorted(spellings("Fuchs")) == [" FUCHS", " Fuchs", " fuchs", "FUCHS", "Fuchs", "fuchs"]
    for text in spellings("Fuchs"):
        ids = generator.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert ids[-1] in table[tuple(ids[:-1])]
    assert any(len(prefix) >= 1 for prefix in table)  # some spelling needs more than one token


def test_processor_bans_the_completing_token_only_after_its_prefix_and_leaves_every_other_logit(generator):
    ids = generator.tokenizer(" lazy dog", add_special_tokens=False)["input_ids"]
    assert len(ids) >= 2
    table = {tuple(ids[:-1]): {ids[-1]}}
    holder = type("M", (), {"row_tables": [table, {}], "fallback_table": lambda self: {}})()
    processor = BanProcessor(holder)
    scores = torch.randn(2, len(generator.tokenizer))
    before = scores.clone()
    rows = torch.tensor([[5] + ids[:-1], [5] + ids[:-1]])  # both rows end with the prefix
    out = processor(rows, scores)
    assert out[0, ids[-1]] == float("-inf")
    keep = torch.ones(scores.shape[1], dtype=torch.bool)
    keep[ids[-1]] = False
    assert torch.equal(out[0, keep], before[0, keep]) and torch.equal(out[1], before[1])  # row 2: no list
    other = torch.tensor([[5] + [ids[0] + 1] * (len(ids) - 1)])
    fresh = torch.randn(1, len(generator.tokenizer))
    holder.row_tables = [table]
    assert torch.equal(processor(other, fresh.clone()), fresh)  # prefix absent: nothing banned


def test_a_word_the_model_would_write_is_never_written(generator, data_root):
    params = GenerationParams(k=1, max_new_tokens=12, temperature=0, seed=0)
    prompt = PromptInput("The quick brown fox", "en")
    plain = generator.generate([prompt], params)[0][0].text
    # The first few characters the model writes on its own, as a banned "word" of several tokens.
    word = plain.strip()[:6]
    word_ids = generator.tokenizer(word, add_special_tokens=False)["input_ids"]
    assert len(word_ids) >= 2 and word
    (data_root / "words.txt").write_text(f"# test list\n{word}\n", encoding="utf-8")
    method = WordBan(term_lists=False, word_file="words.txt")
    transformed = method.transform_prompt(prompt)
    with method.applied(generator) as hooks:
        banned_text = generator.generate([transformed], params, hooks)[0][0].text
    assert method.row_languages == ["en"]
    new_ids = generator.tokenizer(banned_text, add_special_tokens=False)["input_ids"]
    assert banned_text != plain
    for text in spellings(word):
        assert not contains(new_ids, generator.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert generator.generate([prompt], params)[0][0].text == plain  # nothing left behind
    assert_no_hooks(generator.model)


def test_each_row_gets_its_own_languages_list(generator):
    method = WordBan()
    prompts = [method.transform_prompt(p) for p in [PromptInput("The quick brown fox", "en"),
                                                     PromptInput("Быстрая лиса", "ru"),
                                                     PromptInput("ሰላም ሰላም", "am")]]
    with method.applied(generator) as hooks:
        generator.generate(prompts, GenerationParams(k=2, max_new_tokens=3, seed=0, batch_size=3), hooks)
    assert sorted(method.row_languages) == ["am", "am", "en", "en", "ru", "ru"]
    for language, table in zip(method.row_languages, method.row_tables):
        code = lexicon.list_code(language)
        assert table == (ban_table(generator.tokenizer, lexicon.terms(code)) if code else {})
    assert method.notes == {"languages_without_list": ["am"]}


def test_rows_that_were_not_transformed_get_the_union_and_are_noted(generator):
    method = WordBan()
    method.transform_prompt(PromptInput("Быстрая лиса", "ru"))
    with method.applied(generator) as hooks:
        generator.generate([PromptInput("something else", "en")], GenerationParams(k=1, max_new_tokens=2), hooks)
    assert method.row_languages == [None] and method.notes["rows_without_language"] == 1
    assert method.row_tables[0] == ban_table(generator.tokenizer, lexicon.terms("ru"))


def test_generation_is_unchanged_after_the_context_and_after_an_exception(generator):
    method = WordBan()
    before = logits(generator)
    params = GenerationParams(k=2, max_new_tokens=5, seed=4)
    plain = generator.generate(PROMPTS, params)
    with pytest.raises(RuntimeError, match="boom"), method.applied(generator):
        raise RuntimeError("boom")
    assert torch.equal(logits(generator), before) and generator.generate(PROMPTS, params) == plain
    assert_no_hooks(generator.model)


@pytest.mark.parametrize("params, message", [
    ({"term_lists": False}, "nothing would be banned"),
    ({"word_file": "missing.txt"}, "does not exist"),
    ({"word_file": "/etc/hostname"}, "outside the detox data folders"),
    ({"word_file": "empty.txt"}, "has no words"),
    ({"term_lists": "yes"}, "term_lists must be true or false"),
])
def test_bad_parameters_are_rejected(data_root, params, message):
    (data_root / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ApplicationError) as error:
        load_detox_method("word_ban", params)
    assert message in str(error.value)
