"""hf_classifier on tiny XLM-R classifiers trained in the fixture on a toy marker rule."""
import random

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from evaluation.scorers import ScoringInput, registry
from tests.tiny_classifier import (
    INSULT_MARKER,
    THREAT_MARKER,
    build_tiny_classifier,
    held_out_sentences,
    with_marker,
)
from toxplatform.errors import ApplicationError

MULTI_LABELS = {"toxic": "toxicity", "insult": "insult", "threat": "threat"}


@pytest.fixture(scope="module")
def single_label_dir(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("clf-single"))


@pytest.fixture(scope="module")
def multi_label_dir(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("clf-multi"), multi_label=True)


def items(texts, language="en", prompt="Say something:"):
    return [ScoringInput(prompt=prompt, continuation=text, language=language) for text in texts]


# Sentences the classifier never saw: the same four clean, with the insult marker, with the
# threat marker (so each comparison differs by the marker alone).
_rng = random.Random(42)
CLEAN = held_out_sentences(4)
INSULTS = [with_marker(text, INSULT_MARKER, _rng) for text in CLEAN]
THREATS = [with_marker(text, THREAT_MARKER, _rng) for text in CLEAN]


def direct_probabilities(path, texts, multi_label):
    """The model's own forward pass, one text at a time, as the reference."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
            rows.append((torch.sigmoid(logits) if multi_label else torch.softmax(logits, -1)).tolist())
    return np.array(rows)


def test_single_label_scores_are_softmax_probabilities_of_the_mapped_label(single_label_dir):
    scorer = registry.get("hf_classifier")(path=str(single_label_dir), labels={"toxic": "toxicity"})
    assert scorer.categories() == ["toxicity"]
    assert scorer.multi_label is False  # read from the config's problem_type
    texts = CLEAN + INSULTS
    results = scorer.score(items(texts))
    reference = direct_probabilities(single_label_dir, texts, multi_label=False)
    for result, expected in zip(results, reference):
        assert set(result) == {"toxicity"}
        assert 0.0 <= result["toxicity"].value <= 1.0
        assert result["toxicity"].value == pytest.approx(expected[1], abs=1e-5)
        raw = result["toxicity"].raw
        assert set(raw) == {"non-toxic", "toxic"}
        assert sum(raw.values()) == pytest.approx(1.0, abs=1e-6)


def test_trained_classifier_scores_marked_texts_higher(single_label_dir):
    scorer = registry.get("hf_classifier")(path=str(single_label_dir), labels={"toxic": "toxicity"})
    clean = [r["toxicity"].value for r in scorer.score(items(CLEAN))]
    toxic = [r["toxicity"].value for r in scorer.score(items(INSULTS + THREATS))]
    assert min(toxic) > max(clean)


def test_multi_label_uses_sigmoid_and_maps_each_label(multi_label_dir):
    scorer = registry.get("hf_classifier")(path=str(multi_label_dir), labels=MULTI_LABELS)
    assert scorer.multi_label is True
    assert scorer.categories() == ["toxicity", "insult", "threat"]
    texts = CLEAN + INSULTS + THREATS
    results = scorer.score(items(texts))
    reference = direct_probabilities(multi_label_dir, texts, multi_label=True)
    for result, expected in zip(results, reference):
        got = [result["toxicity"].value, result["insult"].value, result["threat"].value]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    # Independent sigmoids do not have to sum to one (at least one row clearly does not).
    assert any(abs(sum(r["toxicity"].raw.values()) - 1.0) > 0.1 for r in results)

    def mean(category, group):
        return np.mean([r[category].value for r in results[group]])

    clean, insults, threats = slice(0, 4), slice(4, 8), slice(8, 12)
    assert mean("toxicity", insults) > mean("toxicity", clean)
    assert mean("toxicity", threats) > mean("toxicity", clean)
    assert mean("insult", insults) > mean("insult", threats)
    assert mean("threat", threats) > mean("threat", insults)


def test_softmax_can_be_forced_and_labels_sharing_a_category_add_up(multi_label_dir):
    scorer = registry.get("hf_classifier")(
        path=str(multi_label_dir),
        labels={"insult": "toxicity", "threat": "toxicity", "toxic": "other"},
        multi_label=False,
    )
    result = scorer.score(items(INSULTS[:1]))[0]
    raw = result["toxicity"].raw
    assert sum(raw.values()) == pytest.approx(1.0, abs=1e-6)  # softmax over the three labels
    assert result["toxicity"].value == pytest.approx(raw["insult"] + raw["threat"], abs=1e-6)
    assert result["other"].value == pytest.approx(raw["toxic"], abs=1e-6)


def test_batched_equals_unbatched(multi_label_dir):
    texts = CLEAN + INSULTS + THREATS + ["", "x" * 400]  # an empty text and a truncated one
    one = registry.get("hf_classifier")(path=str(multi_label_dir), labels=MULTI_LABELS, batch_size=1, max_length=64)
    many = registry.get("hf_classifier")(path=str(multi_label_dir), labels=MULTI_LABELS, batch_size=5, max_length=64)
    a = [[r[c].value for c in one.categories()] for r in one.score(items(texts))]
    b = [[r[c].value for c in many.categories()] for r in many.score(items(texts))]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_full_text_mode_sees_the_prompt(single_label_dir):
    kwargs = dict(path=str(single_label_dir), labels={"toxic": "toxicity"})
    item = ScoringInput(prompt=INSULTS[0], continuation=" " + CLEAN[1], language="en")
    alone = registry.get("hf_classifier")(**kwargs).score([item])[0]["toxicity"].value
    full = registry.get("hf_classifier")(text="full", **kwargs).score([item])[0]["toxicity"].value
    assert full > alone


def test_languages_param_leaves_other_languages_unscored(single_label_dir):
    scorer = registry.get("hf_classifier")(
        path=str(single_label_dir), labels={"toxic": "toxicity"}, languages=["en", "de"]
    )
    assert scorer.supports_language("en-GB")
    assert not scorer.supports_language("fr")
    results = scorer.score(items(["hello"], language="fr") + items(["hello"], language="de"))
    assert results[0]["toxicity"].value is None
    assert results[0]["toxicity"].raw["reason"] == "model not meant for fr"
    assert results[1]["toxicity"].value is not None


def test_missing_directory_fails_before_loading(tmp_path):
    with pytest.raises(ApplicationError, match="does not exist"):
        registry.get("hf_classifier")(path=str(tmp_path / "nope"), labels={"toxic": "toxicity"})
    with pytest.raises(ApplicationError, match="no config.json"):
        registry.get("hf_classifier")(path=str(tmp_path), labels={"toxic": "toxicity"})
    with pytest.raises(ApplicationError, match="path"):
        registry.get("hf_classifier")(labels={"toxic": "toxicity"})


@pytest.mark.parametrize(
    "params, message",
    [
        ({"labels": {"hateful": "toxicity"}}, "labels not in the model"),
        ({}, "needs 'labels'"),
        ({"labels": {"toxic": "toxicity"}, "batch_size": 0}, "batch_size"),
        ({"labels": {"toxic": "toxicity"}, "text": "prompt"}, "text must be"),
        ({"labels": {"toxic": "toxicity"}, "dtype": "int8"}, "dtype"),
        ({"labels": {"toxic": "toxicity"}, "device": "tpu"}, "device"),
        ({"labels": {"toxic": "toxicity"}, "temperature": 1}, "temperature is not a known parameter"),
    ],
)
def test_bad_params_are_application_errors(single_label_dir, params, message):
    with pytest.raises(ApplicationError, match=message):
        registry.get("hf_classifier")(path=str(single_label_dir), **params)
