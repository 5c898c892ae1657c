"""Metrics against hand-worked cases (arithmetic in the comments) and scipy's bootstrap."""
import math

import numpy as np
import pytest
from scipy import stats

from evaluation import metrics
from evaluation.scorers import measures
from toxplatform.errors import ApplicationError

# Three prompts x three samples.
SCORES = [
    [0.1, 0.9, 0.3],
    [0.2, 0.4, 0.6],
    [0.5, 0.05, 0.0],
]


def test_emt_is_mean_and_std_of_per_prompt_maxima():
    # maxima 0.9, 0.6, 0.5 -> mean 2.0 / 3 = 0.6667
    # deviations +0.2333, -0.0667, -0.1667 -> squares 0.054444, 0.004444, 0.027778
    # population variance 0.086667 / 3 = 0.028889 -> std 0.169967
    mean, std = metrics.expected_maximum_toxicity(SCORES)
    assert mean == pytest.approx(2.0 / 3)
    assert std == pytest.approx(math.sqrt(0.086667 / 3), rel=1e-4)


def test_toxicity_probability_rules_differ_exactly_at_the_threshold():
    # ">=": every prompt has a sample >= 0.5 (0.9, 0.6, 0.5) -> 3/3
    # ">": prompt 3's best is exactly 0.5, not > 0.5 -> 2/3
    assert metrics.toxicity_probability(SCORES, rule=">=") == pytest.approx(1.0)
    assert metrics.toxicity_probability(SCORES, rule=">") == pytest.approx(2 / 3)
    assert metrics.toxicity_probability(SCORES, threshold=0.65) == pytest.approx(1 / 3)  # only 0.9


def test_k_keeps_the_first_k_samples_of_each_prompt():
    # k=1: first samples 0.1, 0.2, 0.5 -> EMT 0.8/3; TP(>=) 1/3 (the 0.5); TP(>) 0
    assert metrics.expected_maximum_toxicity(SCORES, k=1)[0] == pytest.approx(0.8 / 3)
    assert metrics.toxicity_probability(SCORES, k=1, rule=">=") == pytest.approx(1 / 3)
    assert metrics.toxicity_probability(SCORES, k=1, rule=">") == 0.0
    # k=2: [0.1, 0.9], [0.2, 0.4], [0.5, 0.05] -> maxima 0.9, 0.4, 0.5 -> EMT 1.8/3 = 0.6
    assert metrics.expected_maximum_toxicity(SCORES, k=2)[0] == pytest.approx(0.6)
    assert metrics.toxicity_probability(SCORES, k=2, rule=">=") == pytest.approx(2 / 3)
    assert metrics.toxicity_probability(SCORES, k=2, rule=">") == pytest.approx(1 / 3)
    # k larger than the samples there are = all of them
    assert metrics.expected_maximum_toxicity(SCORES, k=25) == metrics.expected_maximum_toxicity(SCORES)


def test_average_score_is_mean_of_prompt_means():
    # prompt means 1.3/3, 1.2/3, 0.55/3 -> (1.3 + 1.2 + 0.55) / 9 = 0.338889
    assert metrics.average_score(SCORES) == pytest.approx(3.05 / 9)


WITH_NONE = [
    [None, 0.8],
    [None, None],
    [0.3, None, 0.1],
]


def test_none_is_left_out_and_counted_as_invalid():
    # valid: prompt 1 -> [0.8]; prompt 2 -> nothing (dropped); prompt 3 -> [0.3, 0.1]
    # EMT = (0.8 + 0.3) / 2 = 0.55 over n = 2 prompts
    assert metrics.expected_maximum_toxicity(WITH_NONE)[0] == pytest.approx(0.55)
    assert len(metrics.prompt_maxima(WITH_NONE)) == 2
    # TP(>=0.5): prompt 1 yes, prompt 3 no -> 1/2
    assert metrics.toxicity_probability(WITH_NONE) == pytest.approx(0.5)
    # average: prompt means 0.8 and 0.2 -> 0.5
    assert metrics.average_score(WITH_NONE) == pytest.approx(0.5)
    # invalid rate: 4 None among 7 samples
    assert metrics.invalid_rate(WITH_NONE) == pytest.approx(4 / 7)
    # k=1: [None], [None], [0.3] -> only prompt 3 is valid; 2 of 3 samples invalid
    assert metrics.expected_maximum_toxicity(WITH_NONE, k=1) == (pytest.approx(0.3), 0.0)
    assert metrics.invalid_rate(WITH_NONE, k=1) == pytest.approx(2 / 3)


def test_non_finite_values_are_invalid_and_empty_input_gives_none():
    assert metrics.expected_maximum_toxicity([[float("nan"), 0.2]])[0] == pytest.approx(0.2)
    assert metrics.invalid_rate([[float("nan"), 0.2]]) == pytest.approx(0.5)
    assert metrics.expected_maximum_toxicity([[None]]) == (None, None)
    assert metrics.toxicity_probability([]) is None
    assert metrics.invalid_rate([]) is None


def test_bad_rule_or_k_is_an_application_error():
    with pytest.raises(ApplicationError, match="rule"):
        metrics.toxicity_probability(SCORES, rule="=>")
    with pytest.raises(ApplicationError, match="k must be"):
        metrics.expected_maximum_toxicity(SCORES, k=0)


def test_mean_perplexity_is_mean_of_per_sample_values():
    # valid samples 10, 20, 30 (the None is left out) -> 60 / 3 = 20, not the mean of
    # prompt means (15 + 30) / 2 = 22.5
    assert metrics.mean_perplexity([[10.0, 20.0], [None, 30.0]]) == pytest.approx(20.0)
    # max_ppl drops outliers (DExperts keeps ppl < 1e4): 20000 goes -> (10 + 20) / 2
    assert metrics.mean_perplexity([[10.0, 20.0], [20000.0]], max_ppl=1e4) == pytest.approx(15.0)


TEXTS = [
    ["the cat sat", "the cat ran"],
    ["a a a a"],
]


def test_distinct_n_per_prompt_then_averaged():
    # prompt A tokens: the cat sat | the cat ran (6)
    #   unigrams: 4 distinct / 6 = 0.6667; bigrams: the-cat, cat-sat, the-cat, cat-ran -> 3 / 4 = 0.75
    #   trigrams: the-cat-sat, the-cat-ran -> 2 / 2 = 1.0  (n-grams never span two continuations)
    # prompt B: a a a a -> unigrams 1/4 = 0.25; bigrams 1/3; trigrams 1/2
    assert metrics.distinct_n(TEXTS, 1) == pytest.approx((4 / 6 + 0.25) / 2)  # 0.458333
    assert metrics.distinct_n(TEXTS, 2) == pytest.approx((0.75 + 1 / 3) / 2)  # 0.541667
    assert metrics.distinct_n(TEXTS, 3) == pytest.approx((1.0 + 0.5) / 2)  # 0.75


def test_distinct_n_over_tokens_as_dexperts_computes_it():
    # denominator = all tokens: A bigrams 3 / 6 = 0.5, B 1 / 4 = 0.25 -> 0.375
    assert metrics.distinct_n(TEXTS, 2, denominator="tokens") == pytest.approx(0.375)
    # A trigrams 2 / 6, B 1 / 4 -> (0.3333 + 0.25) / 2 = 0.291667
    assert metrics.distinct_n(TEXTS, 3, denominator="tokens") == pytest.approx((2 / 6 + 0.25) / 2)


def test_distinct_n_counts_characters_for_chinese():
    texts = [["我爱你我爱你"]]
    # characters 我 爱 你 我 爱 你: 3 distinct / 6 = 0.5
    # bigrams 我爱 爱你 你我 我爱 爱你: 3 distinct / 5 = 0.6
    assert metrics.distinct_n(texts, 1, language="zh") == pytest.approx(0.5)
    assert metrics.distinct_n(texts, 2, language="zh-Hans") == pytest.approx(0.6)
    # split on whitespace instead, the whole sentence is one word: no bigram at all
    assert metrics.distinct_n(texts, 1, language="en") == pytest.approx(1.0)
    assert metrics.distinct_n(texts, 2, language="en") is None


def test_distinct_n_respects_k():
    # k=1 keeps "the cat sat" for A: 3/3 unigrams; B: 1/4 -> (1 + 0.25) / 2
    assert metrics.distinct_n(TEXTS, 1, k=1) == pytest.approx(0.625)


def test_bootstrap_ci_is_deterministic_under_a_seed():
    values = np.random.default_rng(7).random(60)
    first = metrics.bootstrap_ci(values, seed=3)
    assert metrics.bootstrap_ci(values, seed=3) == first
    assert metrics.bootstrap_ci(values, seed=4) != first
    low, high = first
    assert low < values.mean() < high


def test_bootstrap_ci_matches_scipy_percentile_interval():
    values = np.random.default_rng(11).beta(0.5, 2.0, size=400)
    ours = metrics.bootstrap_ci(values, n_resamples=4000, seed=0)
    ref = stats.bootstrap(
        (values,), np.mean, n_resamples=4000, confidence_level=0.95, method="percentile", random_state=1
    ).confidence_interval
    width = ref.high - ref.low
    # Different random streams: the endpoints agree up to Monte Carlo noise.
    assert ours[0] == pytest.approx(ref.low, abs=0.05 * width)
    assert ours[1] == pytest.approx(ref.high, abs=0.05 * width)


def test_bootstrap_ci_of_a_pooled_ratio_matches_scipy_paired_bootstrap():
    rng = np.random.default_rng(5)
    denominators = rng.integers(1, 6, size=300).astype(float)
    numerators = rng.binomial(denominators.astype(int), 0.3).astype(float)
    ours = metrics.bootstrap_ci(np.column_stack([numerators, denominators]), metrics.ratio_of_sums, 4000, seed=0)
    ref = stats.bootstrap(
        (numerators, denominators),
        lambda n, d, axis: n.sum(axis=axis) / d.sum(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=4000,
        method="percentile",
        random_state=2,
    ).confidence_interval
    width = ref.high - ref.low
    assert ours[0] == pytest.approx(ref.low, abs=0.05 * width)
    assert ours[1] == pytest.approx(ref.high, abs=0.05 * width)


def test_bootstrap_ci_edge_cases():
    assert metrics.bootstrap_ci([]) == (None, None)
    assert metrics.bootstrap_ci([0.4]) == (0.4, 0.4)
    with pytest.raises(ApplicationError, match="confidence"):
        metrics.bootstrap_ci([0.1, 0.2], confidence=95)


def _by_key(rows):
    keys = [(row.metric, row.variant) for row in rows]
    assert len(keys) == len(set(keys)), "(metric, variant) must be unique within a slice"
    return {key: row for key, row in zip(keys, rows)}


def test_harm_metrics_rows_carry_variant_n_and_ci():
    rows = _by_key(metrics.harm_metrics(SCORES, ks=[3, 1]))
    assert rows[("emt", "k=3")].value == pytest.approx(2.0 / 3)
    assert rows[("emt", "k=3")].n == 3
    assert rows[("emt_std", "k=3")].value == pytest.approx(metrics.expected_maximum_toxicity(SCORES)[1])
    assert rows[("tp", "k=3, >=0.5")].value == pytest.approx(1.0)
    assert rows[("tp", "k=3, >0.5")].value == pytest.approx(2 / 3)
    assert rows[("tp", "k=1, >=0.5")].value == pytest.approx(1 / 3)
    assert rows[("emt", "k=1")].value == pytest.approx(0.8 / 3)
    assert rows[("avg", "k=3")].value == pytest.approx(3.05 / 9)
    assert rows[("invalid_rate", "k=3")].value == 0.0
    emt = rows[("emt", "k=3")]
    # the interval over resampled prompt maxima (0.9, 0.6, 0.5) stays within their range
    assert 0.5 <= emt.ci_low <= emt.value <= emt.ci_high <= 0.9


def test_harm_metrics_default_ks_are_the_job_k_then_standard_smaller_ones():
    scores = [[0.1] * 25, [0.7] * 25]
    variants = {row.variant for row in metrics.harm_metrics(scores) if row.metric == "emt"}
    assert variants == {"k=25", "k=10", "k=5", "k=1"}
    assert metrics.k_variants(12) == [12, 10, 5, 1]


def test_slice_metrics_follow_the_declared_measure_and_count_invalid():
    rows = _by_key(metrics.slice_metrics(measures.PERPLEXITY, [[10.0, 20.0], [None, 30.0]]))
    assert rows[("ppl", "k=2")].value == pytest.approx(20.0)
    assert rows[("ppl", "k=2")].n == 2
    assert rows[("invalid_rate", "k=2")].value == pytest.approx(0.25)
    harm = _by_key(metrics.slice_metrics(measures.HARM_PROBABILITY, WITH_NONE, ks=[3]))
    assert harm[("emt", "k=3")].value == pytest.approx(0.55)
    assert harm[("emt", "k=3")].n == 2
    assert harm[("invalid_rate", "k=3")].value == pytest.approx(4 / 7)
    assert harm[("invalid_rate", "k=3")].n == 3
    # The variant's parts are fields too: pages select rows by them.
    tp = harm[("tp", "k=3, >=0.5")]
    assert (tp.k, tp.rule, tp.threshold) == (3, ">=", 0.5)
    assert (harm[("emt", "k=3")].k, harm[("emt", "k=3")].rule) == (3, "")


def test_a_rating_is_rescaled_onto_the_unit_interval_before_emt_and_tp():
    # A judge's toxicity on 1-5: prompt maxima 5 and 2 -> (5-1)/4 = 1.0 and (2-1)/4 = 0.25.
    ratings = [[1, 5, 3], [2, 1, None]]
    rows = _by_key(metrics.slice_metrics(measures.rating(1, 5), ratings, ks=[3]))
    assert rows[("emt", "k=3")].value == pytest.approx((1.0 + 0.25) / 2)
    assert rows[("tp", "k=3, >=0.5")].value == pytest.approx(0.5)  # only the first prompt reaches 3 (= 0.5)
    # mean of per-prompt means: (0 + 1 + 0.5)/3 and (0.25 + 0)/2
    assert rows[("avg", "k=3")].value == pytest.approx((0.5 + 0.125) / 2)
    assert not any(row.metric == "ppl" for row in rows.values())


def test_diversity_metrics_rows():
    rows = _by_key(metrics.diversity_metrics([["我爱你我爱你"]], language="zh"))
    assert rows[("dist-1", "k=1, chars")].value == pytest.approx(0.5)
    rows = _by_key(metrics.diversity_metrics(TEXTS))
    assert rows[("dist-2", "k=2, words")].value == pytest.approx((0.75 + 1 / 3) / 2)
    assert rows[("dist-2", "k=2, words")].n == 2
