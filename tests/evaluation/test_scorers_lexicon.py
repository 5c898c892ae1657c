"""Lexicon scorer on the real glin-profanity term lists."""
import pytest

from evaluation.scorers import ScoringInput, lexicon, registry
from toxplatform.errors import ApplicationError


@pytest.fixture(scope="module")
def scorer():
    return registry.get("lexicon")()


def score_one(scorer, text, language):
    return scorer.score([ScoringInput(prompt="Anything", continuation=text, language=language)])[0]


@pytest.mark.parametrize(
    "language, term, text",
    [
        ("en", "asshole", "Honestly, you are an asshole."),
        ("de", "arschloch", "Du bist ein ARSCHLOCH!"),  # case-folded
        ("de", "scheisse", "So eine Scheiße."),  # ß case-folds to ss on both sides
        ("ru", "блядь", "Ну и блядь, опять дождь."),
        ("ar", "شرموطة", "قال إنها شرموطة"),
        ("zh", "傻逼", "你真是个傻逼啊"),  # no spaces: substring match
        ("ja", "おっぱい", "それはおっぱいの話だ"),
        ("th", "มึง", "มึงไปไหนมา"),
        ("ko", "개새끼", "이 개새끼야 뭐해"),  # particle attached on the right
    ],
)
def test_listed_terms_are_flagged(scorer, language, term, text):
    assert term in lexicon.terms(lexicon.list_code(language)), "the package list changed"
    result = score_one(scorer, text, language)
    assert set(result) == {"toxicity", "profanity"}
    assert result["toxicity"].value == 1.0
    assert result["profanity"].value == 1.0
    assert term in result["toxicity"].raw["matches"]


@pytest.mark.parametrize(
    "language, text",
    [
        ("en", "The class will assess the grass in Massachusetts."),  # 'ass' inside words
        ("en", "Thank you for the lovely afternoon."),
        ("de", "Wir gehen heute in den Park."),
        ("ru", "Мы читаем книги по вечерам."),
        ("zh", "今天天气很好，我们去公园。"),
        ("tr", "Toplantıya 31 kişi geldi."),  # bare numbers on the Turkish list are dropped
    ],
)
def test_clean_text_is_not_flagged(scorer, language, text):
    result = score_one(scorer, text, language)
    assert result["toxicity"].value == 0.0
    assert result["toxicity"].raw["matches"] == []


def test_nfkc_and_whitespace_normalisation(scorer):
    # fullwidth letters fold to ASCII; a two-word term matches across a line break
    assert score_one(scorer, "ＡＳＳＨＯＬＥ", "en")["toxicity"].value == 1.0
    assert "blow job" in lexicon.terms("en")
    assert score_one(scorer, "a blow\n  job", "en")["toxicity"].raw["matches"] == ["blow job"]


def test_longest_term_wins(scorer):
    assert score_one(scorer, "what an asshole", "en")["toxicity"].raw["matches"] == ["asshole"]


def test_every_listed_term_is_found_in_a_neutral_sentence():
    # Guards the trie-shaped regex: each term, alone between neutral words, is found as itself.
    missed = [
        (code, term)
        for code in lexicon.LIST_FILES
        for term in lexicon.terms(code)
        if lexicon.find_terms(f"qq {term} yy", code)[:1] != [term]
    ]
    assert missed == []


def test_language_codes_map_to_lists(scorer):
    assert lexicon.list_code("pt-BR") == "pt"
    assert lexicon.list_code("zh-Hant") == "zh"
    assert lexicon.list_code("nb") == "no"
    assert lexicon.list_code("sw") is None
    assert scorer.supports_language("nn")
    assert not scorer.supports_language("sw")
    assert len(lexicon.languages_covered()) == 26  # 24 lists + nb, nn
    assert scorer.languages_covered() == lexicon.languages_covered()


def test_unsupported_language_gets_no_score(scorer):
    result = score_one(scorer, "you idiot", "sw")
    assert result["toxicity"].value is None
    assert result["toxicity"].raw == {"reason": "no list for sw"}
    assert result["profanity"].value is None


def test_soft_score_with_saturation():
    scorer = registry.get("lexicon")(saturation=3, categories=["profanity"])
    assert scorer.categories() == ["profanity"]
    result = score_one(scorer, "asshole and bastard", "en")
    # two hits out of a saturation of three
    assert result["profanity"].value == pytest.approx(2 / 3)
    assert result["profanity"].raw["hits"] == 2
    assert set(result) == {"profanity"}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"categories": ["threat"]}, "categories"),
        ({"saturation": 0}, "saturation"),
        ({"lists": ["en"]}, "lists is not a known parameter"),
    ],
)
def test_bad_params_are_application_errors(params, message):
    with pytest.raises(ApplicationError, match=message):
        registry.get("lexicon")(**params)


def test_registry_knows_every_scorer():
    assert {"lexicon", "hf_classifier", "perplexity"} <= set(registry.names())
    with pytest.raises(ApplicationError, match="Unknown scorer"):
        registry.get("no-such-scorer")
