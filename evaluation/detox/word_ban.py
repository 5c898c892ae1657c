"""Word ban (the RealToxicityPrompts baseline): offensive words cannot be written while decoding.

Every token sequence of a listed word is blocked, not only single tokens: for a word written
as tokens t1..tn, whenever the text so far ends with t1..t(n-1), tn gets logit -inf (the same
rule as transformers' NoBadWordsLogitsProcessor, looked up in a prefix table instead of a
scan). Each word is banned as written, lower case, Capitalized and UPPER, each with and without
a leading space (BPE tokenizers spell " word" with other tokens than "word").

Words come from the prompt's language: the glin-profanity list the lexicon scorer reads
(evaluation/scorers/lexicon.py, 24 languages), plus `word_file`, a UTF-8 file inside the
detox data folders with one word a line (`#` starts a comment), banned in every language.
Each row of a batch gets the list of its own prompt's language: the method recognises a row by
its prompt tokens (it sees the prompts in transform_prompt and the batch in a pre-hook on the
model). A row it cannot recognise (generate called without transform_prompt) gets the union
of the lists of the languages seen so far, and the method notes it.
"""
from __future__ import annotations

from evaluation.detox.anatomy import PromptLanguages, forward_inputs
from evaluation.detox.base import DetoxMethod, registry
from evaluation.detox.learning_data import resolve_data_file
from evaluation.generators.base import PromptInput
from toxplatform.errors import ApplicationError
from toxplatform.params import Param, ParamSchema

MAX_WORDS_FILE_LINES = 100_000


def read_word_file(value: str) -> list[str]:
    path = resolve_data_file(value)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ApplicationError(f"word file {value!r} is not UTF-8 text") from exc
    words = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not words:
        raise ApplicationError(f"word file {value!r} has no words")
    if len(words) > MAX_WORDS_FILE_LINES:
        raise ApplicationError(f"word file {value!r} has more than {MAX_WORDS_FILE_LINES:,} words")
    return words


def spellings(word: str) -> list[str]:
    forms = dict.fromkeys([word, word.lower(), word[:1].upper() + word[1:], word.upper()])
    return [text for form in forms for text in (form, " " + form)]


def ban_table(tokenizer, words) -> dict[tuple, set[int]]:
    """{token prefix: tokens that would complete a banned word after it}."""
    texts = sorted({text for word in words for text in spellings(word)})
    table: dict[tuple, set[int]] = {}
    if not texts:
        return table
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        if ids:
            table.setdefault(tuple(ids[:-1]), set()).add(ids[-1])
    return table


def merge_tables(tables) -> dict[tuple, set[int]]:
    merged: dict[tuple, set[int]] = {}
    for table in tables:
        for prefix, tokens in table.items():
            merged.setdefault(prefix, set()).update(tokens)
    return merged


class BanProcessor:
    """A logits processor: -inf for each row's banned next tokens given its text so far."""

    def __init__(self, method: WordBan):
        self.method = method

    def __call__(self, input_ids, scores):
        tables = self.method.row_tables
        longest = max((len(prefix) for table in tables for prefix in table), default=0)
        tails = input_ids[:, max(0, input_ids.shape[1] - longest):].tolist() if longest else [[]] * len(input_ids)
        for row, tail in enumerate(tails):
            table = tables[row] if row < len(tables) else self.method.fallback_table()
            banned = set()
            for length in range(len(tail) + 1):
                banned |= table.get(tuple(tail[len(tail) - length:]), set())
            if banned:
                scores[row, sorted(banned)] = float("-inf")
        return scores


@registry.register
class WordBan(DetoxMethod):
    name = "word_ban"
    summary = "Block every token sequence of listed offensive words while decoding, per language (RTP baseline)"
    requires_local_model = True
    parameters = ParamSchema(
        Param("term_lists", bool, True, help="Ban the glin-profanity list of each prompt's language"),
        Param("word_file", str, "", max_length=1000, single_line=True,
              help="A file inside the detox data folders, one word a line, banned in every language"),
    )

    def __init__(self, **params):
        super().__init__(**params)
        self.extra_words = read_word_file(self.params["word_file"]) if self.params["word_file"] else []
        self._tables: dict[str, dict] = {}  # per language, built on first use
        self._fallbacks: dict[tuple, dict] = {}
        self._prompts = PromptLanguages()
        self.row_tables: list[dict] = []
        self.row_languages: list[str | None] = []
        self._generator = None

    def check(self, params: dict) -> dict[str, str]:
        problems = {}
        if params["word_file"]:
            try:
                read_word_file(params["word_file"])
            except ApplicationError as error:
                problems["word_file"] = str(error)
        elif not params["term_lists"]:
            problems["term_lists"] = "is off and no word_file is given: nothing would be banned"
        return problems

    def transform_prompt(self, prompt: PromptInput) -> PromptInput:
        self._prompts.note(prompt)
        return prompt

    def table_for(self, language: str) -> dict:
        from evaluation.scorers import lexicon

        if language not in self._tables:
            code = lexicon.list_code(language)
            words = list(self.extra_words)
            if self.params["term_lists"]:
                if code is None:
                    missing = self.notes.setdefault("languages_without_list", [])
                    if language not in missing:
                        missing.append(language)
                else:
                    words += lexicon.terms(code)
            self._tables[language] = ban_table(self._generator.tokenizer, words)
        return self._tables[language]

    def fallback_table(self) -> dict:
        languages = tuple(self._prompts.seen())
        if languages not in self._fallbacks:
            self._fallbacks[languages] = merge_tables(
                [self.table_for(language) for language in languages]
                or [ban_table(self._generator.tokenizer, self.extra_words)]
            )
        return self._fallbacks[languages]

    def _recognise_rows(self, input_ids, attention_mask) -> None:
        rows = [[token for token, real in zip(ids, mask) if real]
                for ids, mask in zip(input_ids.tolist(), attention_mask.tolist())]
        self.row_languages = self._prompts.of_rows(self._generator, rows)
        self.row_tables = [self.table_for(language) if language is not None else self.fallback_table()
                           for language in self.row_languages]
        if None in self.row_languages:
            self.notes["rows_without_language"] = self.notes.get("rows_without_language", 0) + \
                self.row_languages.count(None)

    def install(self, generator, ctx) -> None:
        self._generator = generator

        def first_pass(module, args, kwargs):
            input_ids, mask, prefill = forward_inputs(args, kwargs)
            if prefill:  # the pass that holds the whole prompt: which row is which prompt
                self._recognise_rows(input_ids, mask)

        ctx.forward_pre_hook(generator.model, first_pass, with_kwargs=True)
        ctx.logits_processor(BanProcessor(self))
