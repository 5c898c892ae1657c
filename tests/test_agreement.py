"""toxplatform.agreement: equal to the reference implementations on random data, right on
hand-worked cases, and never crashing on the edge cases the module docstring promises."""
import warnings

import krippendorff
import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from toxplatform import agreement
from toxplatform.agreement import (
    AGGREGATION_RULES,
    AgreementInputError,
    AgreementResult,
    aggregate_labels,
    bootstrap_ci,
    category_counts,
    class_counts,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_counts,
    krippendorff_alpha,
    mean_pairwise_agreement,
    mean_pairwise_kappa,
    pairwise,
    percent_agreement,
    spearman,
    with_bootstrap_ci,
)
from toxplatform.errors import ApplicationError

TOLERANCE = 1e-9
DATASETS = 150


def random_pairs(seed):
    """(a, b) pairs on random subsets of 1..5 (so labels inside the scale go unused) with a
    random share of agreement."""
    rng = np.random.default_rng(seed)
    for _ in range(DATASETS):
        used = rng.choice(np.arange(1, 6), size=int(rng.integers(2, 6)), replace=False)
        n = int(rng.integers(2, 60))
        a = rng.choice(used, size=n)
        agree = rng.random(n) < rng.random()
        yield a, np.where(agree, a, rng.choice(used, size=n))


def sklearn_kappa(a, b, **options):
    with warnings.catch_warnings():  # 0/0 on one-class data: sklearn warns and returns nan
        warnings.simplefilter("ignore")
        value = cohen_kappa_score(a, b, **options)
    return None if np.isnan(value) else value


# ---- against the reference implementations ---------------------------------------------------


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_equals_sklearn(weights):
    compared = 0
    for a, b in random_pairs(seed=1):
        expected = sklearn_kappa(a, b, weights=weights)
        result = cohen_kappa(a, b, weights=weights)
        assert result.n == len(a)
        if expected is None:
            assert result.value is None and result.undefined_reason == agreement.ONE_CLASS
        else:
            assert result.value == pytest.approx(expected, abs=TOLERANCE)
            compared += 1
    assert compared > DATASETS * 0.9


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_with_full_scale_equals_sklearn_with_labels(weights):
    scale = list(range(1, 8))  # wider than any data set: absent categories must still count
    changed_by_scale = 0
    for a, b in random_pairs(seed=2):
        expected = sklearn_kappa(a, b, weights=weights, labels=scale)
        result = cohen_kappa(a, b, weights=weights, labels=range(1, 8))
        if expected is None:
            assert result.value is None
            continue
        assert result.value == pytest.approx(expected, abs=TOLERANCE)
        without_scale = cohen_kappa(a, b, weights=weights).value
        changed_by_scale += without_scale is not None and abs(without_scale - result.value) > TOLERANCE
    if weights is not None:  # data sets skipping an interior label change weighted kappa
        assert changed_by_scale > 0


def test_cohen_kappa_with_missing_values_uses_items_rated_by_both():
    rng = np.random.default_rng(3)
    for a, b in random_pairs(seed=3):
        a_missing = np.where(rng.random(len(a)) < 0.2, np.nan, a)
        b_missing = [None if rng.random() < 0.2 else int(v) for v in b]
        both = ~np.isnan(a_missing) & np.array([v is not None for v in b_missing])
        result = cohen_kappa(a_missing, b_missing, weights="quadratic", labels=range(1, 6))
        assert result.n == both.sum()
        expected = sklearn_kappa(a[both], b[both], weights="quadratic", labels=[1, 2, 3, 4, 5]) if both.any() else None
        assert result.value == (None if expected is None else pytest.approx(expected, abs=TOLERANCE))


def test_spearman_equals_scipy_with_ties_and_missing_values():
    rng = np.random.default_rng(4)
    compared = 0
    for a, _ in random_pairs(seed=4):
        scores = np.round(a / 5 + rng.normal(0, 0.3, size=len(a)), 1)  # rounding makes ties
        scores[rng.random(len(a)) < 0.1] = np.nan
        kept = ~np.isnan(scores)
        result = spearman(a, scores)
        assert result.n == kept.sum()
        if kept.sum() < 2 or len(set(a[kept])) < 2 or len(set(scores[kept])) < 2:
            assert result.value is None and result.undefined_reason
            continue
        assert result.value == pytest.approx(spearmanr(a[kept], scores[kept]).statistic, abs=TOLERANCE)
        compared += 1
    assert compared > DATASETS * 0.8


def random_rating_matrices(seed, *, fixed_raters_with_gaps=False):
    """items x raters matrices (floats, NaN = missing)."""
    rng = np.random.default_rng(seed)
    for _ in range(DATASETS):
        items, raters, top = int(rng.integers(2, 40)), int(rng.integers(2, 7)), int(rng.integers(2, 6))
        truth = rng.integers(1, top + 1, size=(items, 1))
        noise = rng.integers(1, top + 1, size=(items, raters))
        ratings = np.where(rng.random((items, raters)) < rng.random(), truth, noise).astype(float)
        if fixed_raters_with_gaps and raters > 2:  # each item keeps the same number of ratings
            keep = int(rng.integers(2, raters))
            for row in ratings:
                row[rng.permutation(raters)[keep:]] = np.nan
        yield ratings


@pytest.mark.parametrize("gaps", [False, True])
def test_fleiss_kappa_equals_statsmodels(gaps):
    compared = 0
    for ratings in random_rating_matrices(5, fixed_raters_with_gaps=gaps):
        counts, _ = category_counts(ratings)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = statsmodels_fleiss_kappa(counts)
        result = fleiss_kappa(ratings)
        if np.isnan(expected):
            assert result.value is None and result.undefined_reason == agreement.ONE_CLASS
            continue
        assert result.value == pytest.approx(expected, abs=TOLERANCE)
        assert result.n == len(ratings)
        compared += 1
    assert compared > DATASETS * 0.9


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_alpha_equals_the_krippendorff_package_with_missing_values(level):
    rng = np.random.default_rng(6)
    compared = 0
    for ratings in random_rating_matrices(6):
        data = ratings.T.copy()  # raters x items, the package's orientation
        data[rng.random(data.shape) < 0.25] = np.nan
        domain = [1, 2, 3, 4, 5, 6]
        pairable = (~np.isnan(data)).sum(axis=0) >= 2
        result = krippendorff_alpha(data, level=level, values=domain)
        if not pairable.any():
            assert result.value is None and result.undefined_reason == agreement.NO_PAIRABLE_ITEMS
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = krippendorff.alpha(data, level_of_measurement=level, value_domain=domain)
        if np.isnan(expected):  # a single value among the pairable ratings
            assert result.value is None and result.undefined_reason == agreement.ONE_CLASS
            continue
        assert result.value == pytest.approx(expected, abs=TOLERANCE)
        assert result.n == pairable.sum()
        compared += 1
    assert compared > DATASETS * 0.8


def test_krippendorff_alpha_on_text_labels_equals_the_package():
    rng = np.random.default_rng(7)
    scale = ["none", "mild", "severe"]
    compared = 0
    for ratings in random_rating_matrices(7):
        data = ratings.T % 3
        data[rng.random(data.shape) < 0.2] = np.nan
        words = [[None if np.isnan(v) else scale[int(v)] for v in row] for row in data]
        for level in ("nominal", "ordinal"):
            result = krippendorff_alpha(words, level=level, values=scale)
            try:
                with np.errstate(invalid="ignore", divide="ignore"):
                    expected = krippendorff.alpha(data, level_of_measurement=level, value_domain=[0, 1, 2])
            except ValueError:  # the package refuses data without a pairable item
                assert result.value is None
                continue
            if np.isnan(expected):
                assert result.value is None
            else:
                assert result.value == pytest.approx(expected, abs=TOLERANCE)
                compared += 1
    assert compared > DATASETS


# ---- hand-worked cases ---------------------------------------------------------------------


def test_cohen_kappa_hand_worked():
    # Table (a rows, b columns): [[20, 5], [10, 15]], n = 50.
    # p_o = 35/50 = 0.7; margins a (25, 25), b (30, 20): p_e = (25*30 + 25*20) / 2500 = 0.5;
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    a = [1] * 25 + [2] * 25
    b = [1] * 20 + [2] * 5 + [1] * 10 + [2] * 15
    assert cohen_kappa(a, b) == AgreementResult(pytest.approx(0.4, abs=TOLERANCE), n=50)
    assert percent_agreement(a, b).value == pytest.approx(0.7)


def test_weighted_kappa_hand_worked_and_the_scale_matters():
    # a = (1, 2, 4), b = (2, 2, 4), linear weights.
    # Scale from the data {1, 2, 4} (positions 0, 1, 2): observed sum w*o = d(1,2) = 1;
    # margins a (1, 1, 1), b (0, 2, 1); sum w * a_i * b_j = 1*2*1 + 1*1*2 + 1*1*1 + 1*2*1 = 7;
    # kappa = 1 - n * 1 / 7 = 1 - 3/7 = 4/7.
    a, b = [1, 2, 4], [2, 2, 4]
    assert cohen_kappa(a, b, weights="linear").value == pytest.approx(4 / 7, abs=TOLERANCE)
    # Full scale 1..4 (label 3 unused, positions 0, 1, 3): observed still 1; expected
    # 1*2*1 + 1*1*3 + 1*1*2 + 1*2*2 = 11; kappa = 1 - 3/11 = 8/11.
    assert cohen_kappa(a, b, weights="linear", labels=range(1, 5)).value == pytest.approx(8 / 11, abs=TOLERANCE)


def test_fleiss_kappa_hand_worked():
    # Counts per item over (1, 2): (3, 0), (2, 1), (0, 3); m = 3 raters.
    # P_i = (9-3)/6 = 1, (4+1-3)/6 = 1/3, 1 -> mean 7/9. p = (5/9, 4/9) -> P_e = 41/81.
    # kappa = (63/81 - 41/81) / (40/81) = 22/40 = 0.55.
    ratings = [[1, 1, 1], [1, 1, 2], [2, 2, 2]]
    assert fleiss_kappa(ratings).value == pytest.approx(0.55, abs=TOLERANCE)
    assert fleiss_kappa_from_counts([[3, 0], [2, 1], [0, 3]]).value == pytest.approx(0.55, abs=TOLERANCE)


def test_krippendorff_alpha_nominal_hand_worked():
    # Raters x items; item 4 has one rating, so it is not pairable.
    # Coincidences: item (1,1) -> o11 += 2; (1,2) -> o12 = o21 = 1; (2,2) -> o22 += 2.
    # o = [[2, 1], [1, 2]], n_c = (3, 3), n = 6.
    # alpha = 1 - (n - 1) * sum(o off-diagonal) / sum(n_c n_k off-diagonal) = 1 - 5 * 2 / 18 = 4/9.
    data = [[1, 1, 2, 2], [1, 2, 2, None]]
    result = krippendorff_alpha(data, level="nominal")
    assert result.value == pytest.approx(4 / 9, abs=TOLERANCE)
    assert result.n == 3


def test_krippendorff_alpha_ordinal_hand_worked():
    # Items (1,2), (2,3), (1,1): o12 = o21 = 1, o23 = o32 = 1, o11 = 2; n_c = (3, 2, 1), n = 6.
    # Ordinal d(c,k) = (sum of n_g from c to k - (n_c + n_k)/2)^2:
    #   d(1,2) = (5 - 2.5)^2 = 6.25, d(2,3) = (3 - 1.5)^2 = 2.25, d(1,3) = (6 - 2)^2 = 16.
    # sum o*d = 2*6.25 + 2*2.25 = 17; sum n_c n_k d = 2 * (6*6.25 + 2*2.25 + 3*16) = 180.
    # alpha = 1 - 5 * 17 / 180 = 19/36.
    data = [[1, 2, 1], [2, 3, 1]]
    assert krippendorff_alpha(data, level="ordinal").value == pytest.approx(19 / 36, abs=TOLERANCE)


def test_mean_pairwise_kappa_is_the_mean_over_rater_pairs():
    rng = np.random.default_rng(8)
    ratings = rng.integers(1, 6, size=(40, 3)).astype(float)
    ratings[:30, 1] = ratings[:30, 0]  # raters 0 and 1 agree often
    ratings[5, 2] = np.nan
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = []
    for i, j in pairs:
        both = ~np.isnan(ratings[:, i]) & ~np.isnan(ratings[:, j])
        expected.append(cohen_kappa_score(ratings[both, i], ratings[both, j], weights="linear", labels=[1, 2, 3, 4, 5]))
    result = mean_pairwise_kappa(ratings, weights="linear", labels=range(1, 6))
    assert result.value == pytest.approx(np.mean(expected), abs=TOLERANCE)
    assert result.n == 40
    assert set(pairwise(ratings, labels=range(1, 6))) == set(pairs)
    assert mean_pairwise_agreement([[1, 1, 2], [2, 2, 2]]).value == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_mean_pairwise_kappa_shares_one_scale_across_pairs():
    # Pair (0, 1) never uses label 2; weighted kappa must still count it as a step.
    ratings = [[1, 1, 2], [3, 3, 2], [1, 3, 1], [3, 1, 3]]
    per_pair = pairwise(ratings, weights="linear", labels=[1, 2, 3])
    assert mean_pairwise_kappa(ratings, weights="linear").value == pytest.approx(
        np.mean([r.value for r in per_pair.values()]), abs=TOLERANCE)


def test_category_and_class_counts_include_unused_labels():
    table, scale = category_counts([[1, 1, None], [3, 1, 3]], labels=range(1, 4))
    assert scale.tolist() == [1, 2, 3]
    assert table.tolist() == [[2, 0, 0], [1, 0, 2]]
    assert class_counts([1, 3, None, 3], labels=range(1, 5)) == {1: 1, 2: 0, 3: 2, 4: 0}


# ---- the human aggregate -------------------------------------------------------------------


@pytest.mark.parametrize(
    "ratings, expected",
    [
        ([1, 1, 3], 1),  # majority
        ([5, 2, 5], 5),
        ([1, 2, 4], 2),  # all differ: mean 7/3 -> 2
        ([1, 2], 2),  # all differ: mean 1.5, half up -> 2
        ([2, 3, 5], 3),  # all differ: mean 10/3 -> 3
        ([1, 1, 2, 2], 2),  # tie of two: mean 1.5, half up -> 2
        ([1, 1, 4, 4, 5], 3),  # tie of two (1 and 4): mean 15/5 = 3
        ([3, None, 3], 3),  # missing left out
        ([1, None, 4], 3),  # two left, they differ: mean 2.5 -> 3
        ([None, None, None], None),  # nobody rated it
    ],
)
def test_majority_then_rounded_mean(ratings, expected):
    assert aggregate_labels([ratings]) == [expected]


def test_aggregate_rules_are_named_and_described():
    assert set(AGGREGATION_RULES) == {"majority_then_rounded_mean", "rounded_mean"}
    assert all(len(description) > 40 for description in AGGREGATION_RULES.values())
    assert aggregate_labels([[1, 1, 5]], rule="rounded_mean") == [2]  # 7/3 -> 2
    assert aggregate_labels([["low", "low", "high"]]) == ["low"]
    with pytest.raises(AgreementInputError, match="numeric"):
        aggregate_labels([["low", "high"]])
    with pytest.raises(AgreementInputError, match="unknown aggregation rule"):
        aggregate_labels([[1]], rule="mode")


# ---- bootstrap -----------------------------------------------------------------------------


def easy_pair(n=200, seed=9):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 4, size=n)
    return a, np.where(rng.random(n) < 0.8, a, rng.integers(1, 4, size=n))


def test_bootstrap_is_deterministic_per_seed_and_contains_the_estimate():
    a, b = easy_pair()
    first = bootstrap_ci(cohen_kappa, a, b, n_resamples=300, seed=11)
    assert first == bootstrap_ci(cohen_kappa, a, b, n_resamples=300, seed=11)
    assert first != bootstrap_ci(cohen_kappa, a, b, n_resamples=300, seed=12)
    point = cohen_kappa(a, b).value
    assert first.low < point < first.high
    assert first.dropped == 0
    result = with_bootstrap_ci(cohen_kappa, a, b, n_resamples=300, seed=11)
    assert (result.value, result.ci_low, result.ci_high, result.n) == (point, first.low, first.high, 200)


def test_bootstrap_pairs_the_arrays():
    # Identical arrays stay identical in every resample only if items are drawn together.
    a, _ = easy_pair()
    low, high, dropped = bootstrap_ci(cohen_kappa, a, a.copy(), n_resamples=200)
    assert (low, high, dropped) == (1.0, 1.0, 0)


def test_cluster_bootstrap_keeps_groups_whole():
    sizes = [1, 2, 3, 4, 5]
    groups = np.repeat(np.arange(len(sizes)) * 10, sizes)  # group ids 0, 10, 20, ...
    size_of = dict(zip(groups.tolist(), [sizes[g // 10] for g in groups]))
    resampled = []

    def record(items):
        resampled.append(items)
        return float(len(items))

    bootstrap_ci(record, groups, n_resamples=200, groups=groups)
    assert len(resampled) == 200
    for items in resampled:
        ids, counts = np.unique(items, return_counts=True)
        assert all(count % size_of[i] == 0 for i, count in zip(ids.tolist(), counts))
        assert sum(count // size_of[i] for i, count in zip(ids.tolist(), counts)) == len(sizes)
    assert len({len(items) for items in resampled}) > 1  # sizes differ: whole groups were drawn


def test_cluster_bootstrap_is_wider_when_items_in_a_group_move_together():
    # 20 groups of 10 identical items: item resampling pretends 200 independent items.
    rng = np.random.default_rng(13)
    group_values = rng.integers(0, 2, size=20).astype(float)
    values, groups = np.repeat(group_values, 10), np.repeat(np.arange(20), 10)
    items = bootstrap_ci(np.mean, values, n_resamples=500)
    clusters = bootstrap_ci(np.mean, values, n_resamples=500, groups=groups)
    assert clusters.high - clusters.low > 2 * (items.high - items.low)


def test_bootstrap_drops_and_counts_undefined_resamples():
    a = [1] * 9 + [2]  # a resample without the last item is one class: kappa undefined
    undefined = []

    def kappa(x, y):
        result = cohen_kappa(x, y)
        undefined.append(not result.defined)
        return result

    interval = bootstrap_ci(kappa, a, a, n_resamples=300)
    assert 0 < interval.dropped == sum(undefined) < 300
    assert (interval.low, interval.high) == (1.0, 1.0)
    assert bootstrap_ci(cohen_kappa, [1, 1], [1, 1], n_resamples=50) == (None, None, 50)
    result = with_bootstrap_ci(cohen_kappa, a, a, n_resamples=300)
    assert result.resamples_dropped == interval.dropped


def test_with_bootstrap_ci_resamples_krippendorff_items_not_raters():
    a, b = easy_pair(n=60)
    data = np.vstack([a, b])  # 2 raters x 60 items
    result = with_bootstrap_ci(krippendorff_alpha, data, n_resamples=200, level="nominal")
    # The same draws over the rows of the items x raters matrix give the same interval.
    by_rows = bootstrap_ci(lambda items: krippendorff_alpha(items.T, level="nominal"), data.T, n_resamples=200)
    assert (result.ci_low, result.ci_high) == (by_rows.low, by_rows.high)
    assert result.ci_low < result.value < result.ci_high


def test_bootstrap_rejects_bad_options():
    with pytest.raises(AgreementInputError, match="same number of items"):
        bootstrap_ci(cohen_kappa, [1, 2], [1, 2, 3])
    with pytest.raises(AgreementInputError, match="one group id per item"):
        bootstrap_ci(np.mean, [1, 2, 3], groups=[1, 2])
    with pytest.raises(AgreementInputError, match="confidence"):
        bootstrap_ci(np.mean, [1, 2, 3], confidence=95)
    assert bootstrap_ci(np.mean, []) == (None, None, 0)


# ---- edge cases ----------------------------------------------------------------------------


def test_one_class_in_both_is_undefined_not_zero_or_one():
    for measure in (cohen_kappa, lambda a, b: cohen_kappa(a, b, weights="quadratic", labels=range(1, 6))):
        result = measure([3, 3, 3], [3, 3, 3])
        assert (result.value, result.n, result.undefined_reason) == (None, 3, agreement.ONE_CLASS)
    assert fleiss_kappa([[2, 2], [2, 2]]).undefined_reason == agreement.ONE_CLASS
    assert krippendorff_alpha([[2, 2], [2, 2]]).undefined_reason == agreement.ONE_CLASS
    assert spearman([1, 2, 3], [4, 4, 4]).undefined_reason == agreement.CONSTANT_INPUT
    assert mean_pairwise_kappa([[1, 1, 1], [1, 1, 1]]).undefined_reason == agreement.NO_DEFINED_PAIR
    # One rater constant, the other not: chance agreement is not total, kappa is 0.
    assert cohen_kappa([1, 1, 1, 1], [1, 2, 1, 2]).value == 0


def test_empty_input_is_undefined_with_n_zero():
    for result in (
        percent_agreement([], []), cohen_kappa([], []), spearman([], []), fleiss_kappa([]),
        krippendorff_alpha([]), mean_pairwise_kappa([]),
        cohen_kappa([None, 1], [2, None]),  # no item rated by both
    ):
        assert result.value is None and result.n == 0 and result.undefined_reason


def test_mismatched_lengths_raise_a_clear_value_error():
    with pytest.raises(ValueError, match="equal lengths"):
        cohen_kappa([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2, 3], [1, 2])
    assert issubclass(AgreementInputError, ApplicationError)  # pages and API show its message


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: cohen_kappa([1, 6], [1, 2], labels=range(1, 6)), "not on the scale"),
        (lambda: cohen_kappa([1, 2], [1, 2], weights="cubic"), "weights must be"),
        (lambda: cohen_kappa([], [], weights="cubic"), "weights must be"),
        (lambda: cohen_kappa([1, 2], ["a", "b"]), "both numbers or both strings"),
        (lambda: cohen_kappa([[1, 2]], [[1, 2]]), "flat sequences"),
        (lambda: mean_pairwise_kappa([["a", "b"], ["b", "b"]], weights="quadratic"), "ordered scale"),
        (lambda: cohen_kappa(["a", "b"], ["a", "a"], weights="linear"), "ordered scale"),
        (lambda: cohen_kappa([1, "a"], [1, 2]), "not a mix"),
        (lambda: cohen_kappa([1, 2], [1, 2], labels=[1, 1, 2]), "repeat"),
        (lambda: fleiss_kappa([[1, 2, 1], [1, 2, None]]), "same number of ratings"),
        (lambda: fleiss_kappa([[1, 2], [1]]), "rectangular"),
        (lambda: fleiss_kappa([1, 2, 3]), "2-D"),
        (lambda: krippendorff_alpha([[1, 2]], level="nominalish"), "level must be"),
        (lambda: krippendorff_alpha([["a", "b"], ["a", "a"]], level="ordinal"), "ordered scale"),
        (lambda: krippendorff_alpha([["a", "b"], ["a", "a"]], level="interval"), "needs numbers"),
        (lambda: spearman(["a", "b"], [1, 2]), "needs numbers"),
        (lambda: bootstrap_ci(np.mean, [1, 2, 3], groups=[1, None, 2]), "none missing"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(AgreementInputError, match=message):
        call()


def test_fleiss_allows_gaps_when_every_item_keeps_the_same_number_of_ratings():
    # Same counts as the hand-worked case, with a fourth column holding the gaps.
    ratings = [[1, 1, None, 1], [None, 1, 1, 2], [2, 2, 2, None], [None, None, None, None]]
    result = fleiss_kappa(ratings)
    assert result.value == pytest.approx(0.55, abs=TOLERANCE)
    assert result.n == 3  # the unrated item is left out


def test_text_labels_with_missing_values():
    # np.asarray turns a NaN among strings into "nan": still missing, not a label.
    a = np.asarray(["low", "high", np.nan, "low"])
    b = ["low", "high", "high", None]
    result = cohen_kappa(a, b)
    assert (result.value, result.n) == (1.0, 2)
    scale = ["low", "mid", "high"]
    ordered = cohen_kappa(["low", "mid", "high"], ["low", "high", "high"], weights="linear", labels=scale)
    numeric = cohen_kappa([1, 2, 3], [1, 3, 3], weights="linear")
    assert ordered.value == pytest.approx(numeric.value, abs=TOLERANCE)


def test_aggregate_labels_returns_plain_ints_for_whole_numbers():
    labels = aggregate_labels(np.array([[1.0, 1.0, 2.0], [1.0, 2.0, np.nan]]))
    assert labels == [1, 2] and all(type(label) is int for label in labels)
    assert aggregate_labels([[1, 2, 3], [4]]) == [2, 4]  # rows may differ in length


def test_pairwise_takes_any_two_rater_measure():
    ratings = np.array([[1, 1, 2], [2, 2, 3], [3, 3, 3], [4, 5, 1]], dtype=float)
    rhos = pairwise(ratings, spearman)
    assert rhos[(0, 1)].value == pytest.approx(spearmanr(ratings[:, 0], ratings[:, 1]).statistic, abs=TOLERANCE)
    assert rhos[(1, 2)].value == pytest.approx(spearmanr(ratings[:, 1], ratings[:, 2]).statistic, abs=TOLERANCE)


def test_with_bootstrap_ci_cluster_bootstrap_of_alpha_resamples_groups_of_items():
    a, b = easy_pair(n=60)
    data = np.vstack([a, b])
    groups = np.repeat(np.arange(20), 3)
    result = with_bootstrap_ci(krippendorff_alpha, data, n_resamples=100, groups=groups, seed=3)
    by_rows = bootstrap_ci(lambda items: krippendorff_alpha(items.T), data.T, n_resamples=100, groups=groups, seed=3)
    assert (result.ci_low, result.ci_high) == (by_rows.low, by_rows.high)
