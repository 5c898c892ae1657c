"""Agreement measures: between two raters, among many raters, and between a scorer and humans.

The one implementation the platform uses (scorer evaluation against RTP-LX human labels and
annotation campaigns alike). Pure numpy / scipy; no Django.

Measures (each returns an ``AgreementResult``: value, n, and why the value is undefined):
- ``percent_agreement(a, b)``: share of items both raters labelled identically.
- ``cohen_kappa(a, b, weights=...)``: agreement beyond chance, 1 - observed / expected
  disagreement; ``weights="linear"`` / ``"quadratic"`` charge |i - j| / (i - j)^2 for labels i
  and j positions apart on the scale (Cohen 1968, as scikit-learn's ``cohen_kappa_score``).
- ``spearman(a, b)``: Spearman's rho (Pearson correlation of average ranks), e.g. scorer
  probability vs human label.
- ``fleiss_kappa(ratings)``: chance-corrected agreement of m raters per item (Fleiss 1971, as
  statsmodels).
- ``krippendorff_alpha(data, level=...)``: 1 - observed / expected disagreement over the
  coincidence matrix, for nominal, ordinal, interval or ratio data with any missing cells
  (Krippendorff 2011, as the ``krippendorff`` package).
- ``mean_pairwise_kappa(ratings)``: mean Cohen's kappa over rater pairs, the "human ceiling"
  a scorer is compared against.
- ``aggregate_labels(ratings, rule)``: one label per item from several raters, by a named rule
  (``AGGREGATION_RULES`` holds each rule's name and description for the pages).
- ``bootstrap_ci`` / ``with_bootstrap_ci``: percentile bootstrap over items, or over groups of
  items (cluster bootstrap, e.g. RTP-LX transcreation groups); seeded, so deterministic.
Helpers: ``pairwise`` (any two-rater measure for every rater pair), ``mean_pairwise_agreement``,
``category_counts`` (items x categories table), ``fleiss_kappa_from_counts``, ``class_counts``
(class balance).

Conventions:
- Orientation: two-rater functions take two equal-length sequences (one label per item).
  ``fleiss_kappa``, ``mean_pairwise_kappa``, ``pairwise`` and ``aggregate_labels`` take an
  items x raters matrix (rows = items, as statsmodels). ``krippendorff_alpha`` alone takes
  raters x items (rows = raters, as the ``krippendorff`` package).
- Labels are numbers or strings (not both); numbers compare by value (1 == 1.0). Missing =
  ``None`` or NaN (also the "nan" numpy writes for a NaN among strings). Two-rater measures
  leave out items missing in either; ``n`` is the number of items kept. Many-rater measures
  say in their docstring which items they leave out.
- The scale: ``labels`` (``values`` for alpha) is the full ordered scale, e.g. ``range(1, 6)``.
  Its order defines "ordinal"; weighted kappa charges by position on it, so pass the full
  scale (a category nobody used still counts as a step). Without it the scale is the sorted
  set of labels seen. A label outside a given scale is an error, never silently dropped.
- Undefined is not 0 and not 1: when a measure cannot be computed (no items, one class only so
  chance agreement is total, a constant input to Spearman) ``value`` is None and
  ``undefined_reason`` says why. Nothing here raises on such data.
- Bad input (different lengths, a ragged or non-2-D matrix, unknown options, labels outside
  the scale) raises ``AgreementInputError``, both a ``ValueError`` and the platform's
  ``ApplicationError`` (so pages, API and CLI show its message).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from toxplatform.errors import ApplicationError

WEIGHTS = (None, "linear", "quadratic")
LEVELS = ("nominal", "ordinal", "interval", "ratio")

# Undefined reasons (stable strings: pages and tests may compare against them).
NO_ITEMS = "no items rated by both"
NO_PAIRABLE_ITEMS = "no item has two or more ratings"
ONE_CLASS = "only one category used, so chance agreement is total"
CONSTANT_INPUT = "one side has a single value, so no rank correlation"
TOO_FEW_ITEMS = "fewer than two items"
NO_DEFINED_PAIR = "no rater pair has a defined kappa"

MAJORITY_THEN_ROUNDED_MEAN = "majority_then_rounded_mean"
ROUNDED_MEAN = "rounded_mean"
AGGREGATION_RULES = {
    MAJORITY_THEN_ROUNDED_MEAN: (
        "The label most raters gave (a plurality). When no single label has the most votes "
        "(all raters differ, or two labels tie) the mean of the item's ratings rounded half "
        "up (2.5 -> 3). Missing ratings are left out; an item nobody rated has no label."
    ),
    ROUNDED_MEAN: (
        "The mean of the item's ratings rounded half up (2.5 -> 3). Missing ratings are left "
        "out; an item nobody rated has no label."
    ),
}


class AgreementInputError(ApplicationError, ValueError):
    """Input an agreement measure cannot take (a caller's bug or a malformed file)."""


@dataclass(frozen=True)
class AgreementResult:
    """One agreement number with what it rests on. value is None when undefined."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0  # items the value rests on
    undefined_reason: str | None = None
    resamples_dropped: int = 0  # bootstrap resamples where the measure was undefined

    @property
    def defined(self) -> bool:
        return self.value is not None


class BootstrapInterval(NamedTuple):
    """Percentile interval; (None, None, ...) when no resample had a defined statistic."""

    low: float | None
    high: float | None
    dropped: int  # resamples where the statistic was undefined (left out of the percentiles)


def _plain(label):
    """A label as pages and JSON want it: 3 rather than 3.0 or np.float64(3.0)."""
    label = label.item() if isinstance(label, np.generic) else label
    return int(label) if isinstance(label, float) and label.is_integer() else label


def _undefined(reason: str, n: int = 0) -> AgreementResult:
    return AgreementResult(None, n=n, undefined_reason=reason)


# ---- reading labels -----------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and np.isnan(value))


def _as_array(data, name: str) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data
    try:
        array = np.asarray(data)
    except ValueError as error:  # numpy's "inhomogeneous shape" for ragged rows
        raise AgreementInputError(f"{name} must be a rectangular array (every row the same length)",
                                  {"error": str(error)}) from None
    # numpy turns [1, "a"] into strings; keep the cells as given so a mix is caught.
    return np.asarray(data, dtype=object) if array.dtype.kind in "US" else array


def _split_missing(data: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(present values as float or str array, missing mask) of an array of labels."""
    kind = data.dtype.kind
    if kind in "biuf":
        values = data.astype(float)
        return values[~np.isnan(values)], np.isnan(values)
    if kind in "US":
        text = data.astype(str)
        missing = text == "nan"  # numpy turns a NaN among strings into "nan" (as krippendorff reads it)
        return text[~missing], missing
    if kind != "O":
        raise AgreementInputError(f"{name} must hold numbers or strings", {"dtype": str(data.dtype)})
    if not any(isinstance(v, (str, bytes)) for v in data.flat):
        try:
            values = data.astype(float)  # None -> NaN; much faster than a check per cell
        except (TypeError, ValueError):
            values = None
        if values is not None:
            return values[~np.isnan(values)], np.isnan(values)
    missing = np.vectorize(_is_missing, otypes=[bool])(data) if data.size else np.zeros(data.shape, bool)
    present = data[~missing]
    if all(isinstance(v, str) for v in present):
        return present.astype(str), missing
    raise AgreementInputError(f"{name} must hold numbers or strings, not a mix",
                              {"types": ", ".join(sorted({type(v).__name__ for v in present}))})


def _scale(present: np.ndarray, labels, name: str) -> np.ndarray:
    """The ordered scale: the given labels, or the sorted distinct present values."""
    if labels is None:
        return np.unique(present)
    scale, missing = _split_missing(_as_array(list(labels), name), name)
    if missing.any():
        raise AgreementInputError(f"{name} must not contain missing values")
    if len(np.unique(scale)) != len(scale):
        raise AgreementInputError(f"{name} must not repeat a label", {name: list(labels)})
    if present.size and present.dtype.kind != scale.dtype.kind:
        raise AgreementInputError(f"the data and {name} must be both numbers or both strings")
    return scale


def _codes(present: np.ndarray, scale: np.ndarray, name: str) -> np.ndarray:
    """Position of each present value on the scale; a value off the scale is an error."""
    if not present.size:
        return np.zeros(0, dtype=int)
    order = np.argsort(scale, kind="stable")
    positions = np.clip(np.searchsorted(scale[order], present), 0, len(scale) - 1)
    off_scale = scale[order][positions] != present
    if off_scale.any():
        raise AgreementInputError(f"a label is not on the scale given as {name}",
                                  {"label": present[off_scale][0], name: scale.tolist()})
    return order[positions]


def _encode(matrix, labels, name: str = "labels", data_name: str = "ratings") -> tuple[np.ndarray, np.ndarray]:
    """(codes with -1 for missing, scale) of any array of labels."""
    data = _as_array(matrix, data_name)
    present, missing = _split_missing(data, data_name)
    scale = _scale(present, labels, name)
    codes = np.full(data.shape, -1, dtype=int)
    codes[~missing] = _codes(present, scale, name)
    return codes, scale


def _matrix(ratings, name: str, labels=None, scale_name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    codes, scale = _encode(ratings, labels, scale_name, name)
    if codes.size == 0 and codes.ndim == 1:  # [] is an empty matrix, not a wrong shape
        codes = codes.reshape(0, 0)
    if codes.ndim != 2:
        raise AgreementInputError(f"{name} must be a 2-D matrix", {"dimensions": codes.ndim})
    return codes, scale


def _paired_codes(a, b, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes of the items both raters labelled, and the scale."""
    first, second = _as_array(a, "a"), _as_array(b, "b")
    if first.ndim != 1 or second.ndim != 1:
        raise AgreementInputError("a and b must be flat sequences, one label per item")
    if len(first) != len(second):
        raise AgreementInputError("a and b must rate the same items (equal lengths)",
                                  {"len(a)": len(first), "len(b)": len(second)})
    (present_a, missing_a), (present_b, missing_b) = _split_missing(first, "a"), _split_missing(second, "b")
    if present_a.size and present_b.size and present_a.dtype.kind != present_b.dtype.kind:
        raise AgreementInputError("a and b must be both numbers or both strings")
    present = [values for values in (present_a, present_b) if values.size]
    scale = _scale(np.concatenate(present) if present else present_a, labels, "labels")
    codes_a, codes_b = np.full(len(first), -1), np.full(len(second), -1)
    codes_a[~missing_a], codes_b[~missing_b] = _codes(present_a, scale, "labels"), _codes(present_b, scale, "labels")
    both = (codes_a >= 0) & (codes_b >= 0)
    return codes_a[both], codes_b[both], scale


def category_counts(ratings, *, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """(items x categories table of how many raters gave each label, the scale).

    ratings: items x raters, missing allowed. Column j of the table counts scale[j]."""
    codes, scale = _matrix(ratings, "ratings", labels)
    return _count_table(codes, len(scale)), scale


def _count_table(codes: np.ndarray, categories: int) -> np.ndarray:
    items = np.broadcast_to(np.arange(codes.shape[0])[:, None], codes.shape)
    rated = codes >= 0
    flat = items[rated] * categories + codes[rated]
    return np.bincount(flat, minlength=codes.shape[0] * categories).reshape(codes.shape[0], categories)


def class_counts(values, *, labels=None) -> dict:
    """{label: how many items have it} over the scale (zeros included), missing left out."""
    codes, scale = _encode(values, labels, data_name="values")
    counts = np.bincount(codes[codes >= 0].ravel(), minlength=len(scale))
    return {_plain(label): int(count) for label, count in zip(scale, counts)}


# ---- two raters --------------------------------------------------------------------------


def percent_agreement(a, b, *, labels=None) -> AgreementResult:
    """Share of items (rated by both) with the same label in a and b."""
    codes_a, codes_b, _ = _paired_codes(a, b, labels)
    return _agreement_of_codes(codes_a, codes_b)


def _agreement_of_codes(codes_a: np.ndarray, codes_b: np.ndarray) -> AgreementResult:
    if not codes_a.size:
        return _undefined(NO_ITEMS)
    return AgreementResult(float(np.mean(codes_a == codes_b)), n=int(codes_a.size))


def _check_weights(weights: str | None, labels, scale: np.ndarray) -> None:
    if weights not in WEIGHTS:
        raise AgreementInputError("weights must be None, 'linear' or 'quadratic'", {"weights": weights})
    if weights is not None and labels is None and scale.dtype.kind == "U":
        raise AgreementInputError("weighted kappa on text labels needs the ordered scale as labels=")


def _disagreement_weights(categories: int, weights: str | None) -> np.ndarray:
    positions = np.arange(categories)
    distance = np.abs(positions[:, None] - positions[None, :]).astype(float)
    if weights is None:
        return (distance > 0).astype(float)
    return distance if weights == "linear" else distance**2


def cohen_kappa(a, b, *, weights: str | None = None, labels=None) -> AgreementResult:
    """Cohen's kappa of two raters, optionally weighted for an ordinal scale.

    kappa = 1 - sum(w * observed) / sum(w * expected), where observed is the confusion table and
    expected the outer product of the two raters' label counts over n. labels: the full scale
    (its order is the ordinal order); weights charge by position on it."""
    codes_a, codes_b, scale = _paired_codes(a, b, labels)
    _check_weights(weights, labels, scale)
    return _kappa_of_codes(codes_a, codes_b, len(scale), weights)


def _kappa_of_codes(codes_a: np.ndarray, codes_b: np.ndarray, categories: int, weights: str | None) -> AgreementResult:
    """Cohen's kappa of scale positions (items rated by both only)."""
    n = int(codes_a.size)
    if not n:
        return _undefined(NO_ITEMS)
    weight = _disagreement_weights(categories, weights)
    observed = np.bincount(codes_a * categories + codes_b, minlength=categories**2).reshape(categories, categories)
    # Counts, not proportions: integer sums keep "no expected disagreement" exactly 0.
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    expected_disagreement = float((weight * expected).sum())
    if expected_disagreement == 0:
        return _undefined(ONE_CLASS, n)
    return AgreementResult(1 - n * float((weight * observed).sum()) / expected_disagreement, n=n)


def spearman(a, b) -> AgreementResult:
    """Spearman's rho of two numeric sequences over the items present in both (ties get
    average ranks, as scipy.stats.spearmanr)."""
    first, second = _as_array(a, "a"), _as_array(b, "b")
    if first.ndim != 1 or second.ndim != 1 or len(first) != len(second):
        raise AgreementInputError("a and b must be flat sequences of equal length",
                                  {"shape(a)": first.shape, "shape(b)": second.shape})
    values_a, missing_a = _split_missing(first, "a")
    values_b, missing_b = _split_missing(second, "b")
    if "U" in (values_a.dtype.kind, values_b.dtype.kind):
        raise AgreementInputError("spearman needs numbers")
    full_a, full_b = np.full(len(first), np.nan), np.full(len(second), np.nan)
    full_a[~missing_a], full_b[~missing_b] = values_a, values_b
    both = ~(missing_a | missing_b)
    x, y = full_a[both], full_b[both]
    n = int(x.size)
    if n < 2:
        return _undefined(TOO_FEW_ITEMS if n else NO_ITEMS, n)
    if np.all(x == x[0]) or np.all(y == y[0]):
        return _undefined(CONSTANT_INPUT, n)
    return AgreementResult(float(stats.spearmanr(x, y).statistic), n=n)


# ---- many raters ---------------------------------------------------------------------------


def fleiss_kappa_from_counts(counts) -> AgreementResult:
    """Fleiss' kappa of an items x categories count table with the same number m >= 2 of
    ratings on every item (rows with no rating at all are left out).

    P_i = (sum_j n_ij^2 - m) / (m (m - 1)); p_j = share of all ratings in category j;
    kappa = (mean P_i - sum p_j^2) / (1 - sum p_j^2)."""
    table = _as_array(counts, "counts")
    if table.ndim != 2 or table.dtype.kind not in "biuf" or (table.size and (table < 0).any()):
        raise AgreementInputError("counts must be an items x categories table of counts >= 0")
    table = table[table.sum(axis=1) > 0].astype(float)
    if not len(table):
        return _undefined(NO_PAIRABLE_ITEMS)
    per_item = table.sum(axis=1)
    raters = per_item[0]
    if not np.all(per_item == raters):
        raise AgreementInputError(
            "Fleiss' kappa needs the same number of ratings on every item; "
            "use krippendorff_alpha for items with different numbers of ratings",
            {"ratings per item": sorted({int(m) for m in per_item})})
    if raters < 2:
        return _undefined(NO_PAIRABLE_ITEMS, len(table))
    item_agreement = ((table**2).sum(axis=1) - raters) / (raters * (raters - 1))
    shares = table.sum(axis=0) / table.sum()
    chance = float((shares**2).sum())
    if chance == 1:
        return _undefined(ONE_CLASS, len(table))
    return AgreementResult((float(item_agreement.mean()) - chance) / (1 - chance), n=len(table))


def fleiss_kappa(ratings, *, labels=None) -> AgreementResult:
    """Fleiss' kappa of an items x raters matrix of labels.

    Missing cells are allowed as long as every rated item has the same number of ratings
    (Fleiss' raters need not be the same people on every item); an item nobody rated is left
    out. Different numbers of ratings per item raise AgreementInputError: use
    krippendorff_alpha there."""
    counts, _ = category_counts(ratings, labels=labels)
    return fleiss_kappa_from_counts(counts)


def _alpha_distances(scale: np.ndarray, totals: np.ndarray, level: str) -> np.ndarray:
    """Squared distance delta^2 between every two values of the scale (Krippendorff 2011)."""
    if level == "nominal":
        return 1.0 - np.eye(len(scale))
    if level == "ordinal":
        # delta(c, k) = (sum of n_g for g from c to k) - (n_c + n_k) / 2, over scale positions.
        cumulative = np.concatenate([[0.0], np.cumsum(totals)])
        positions = np.arange(len(scale))
        low, high = np.minimum.outer(positions, positions), np.maximum.outer(positions, positions)
        between = cumulative[high + 1] - cumulative[low]
        return (between - (totals[:, None] + totals[None, :]) / 2) ** 2
    if level == "interval":
        return np.subtract.outer(scale, scale) ** 2
    sums = np.add.outer(scale, scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums == 0, 0.0, (np.subtract.outer(scale, scale) / np.where(sums == 0, 1, sums)) ** 2)


def krippendorff_alpha(reliability_data, *, level: str = "nominal", values=None) -> AgreementResult:
    """Krippendorff's alpha of a raters x items matrix (rows = raters), missing allowed.

    Items with fewer than two ratings are not pairable and are left out (n counts the rest).
    alpha = 1 - (N - 1) * sum(o_ck d_ck) / sum(N_c N_k d_ck), with o the coincidence matrix,
    N_c its margins, N the pairable ratings and d the squared distance of the level. values:
    the full ordered scale (the ``krippendorff`` package's value_domain)."""
    if level not in LEVELS:
        raise AgreementInputError("level must be one of " + ", ".join(LEVELS), {"level": level})
    codes, scale = _matrix(reliability_data, "reliability_data", values, "values")
    if scale.dtype.kind == "U" and (level in ("interval", "ratio") or (level == "ordinal" and values is None)):
        raise AgreementInputError(f"level={level!r} on text labels needs numbers, or for 'ordinal' "
                                  "the ordered scale as values=")
    counts = _count_table(codes.T, len(scale)).astype(float)  # items x values
    ratings_per_item = counts.sum(axis=1)
    pairable = ratings_per_item >= 2
    counts, ratings_per_item = counts[pairable], ratings_per_item[pairable]
    if not len(counts):
        return _undefined(NO_PAIRABLE_ITEMS)
    scaled = counts / (ratings_per_item - 1)[:, None]
    # o_ck = sum over items of n_uc (n_uk - [c == k]) / (m_u - 1): pairs from different raters.
    coincidence = scaled.T @ counts - np.diag(scaled.sum(axis=0))
    totals = coincidence.sum(axis=1)
    distance = _alpha_distances(scale, totals, level)
    expected = float((np.outer(totals, totals) * distance).sum())
    if expected == 0:
        return _undefined(ONE_CLASS, len(counts))
    observed = float((coincidence * distance).sum())
    return AgreementResult(float(1 - (totals.sum() - 1) * observed / expected), n=len(counts))


def pairwise(
    ratings, measure: Callable[..., AgreementResult] | None = None, **options
) -> dict[tuple[int, int], AgreementResult]:
    """{(rater i, rater j): measure(column i, column j, **options)} for every pair i < j of an
    items x raters matrix (measure: cohen_kappa by default; items rated by both). Pass
    labels= (the full scale) so weighted kappa charges the same steps in every pair."""
    measure = measure or cohen_kappa
    data = _as_array(ratings, "ratings")
    if data.size == 0 and data.ndim == 1:  # [] is an empty matrix, not a wrong shape
        data = data.reshape(0, 0)
    if data.ndim != 2:
        raise AgreementInputError("ratings must be an items x raters matrix", {"dimensions": data.ndim})
    return {(i, j): measure(data[:, i], data[:, j], **options)
            for i, j in itertools.combinations(range(data.shape[1]), 2)}


def _mean_over_pairs(codes: np.ndarray, measure_of_codes: Callable[[np.ndarray, np.ndarray], AgreementResult]):
    """Mean of measure_of_codes over every pair of columns of a codes matrix (-1 = missing).
    The matrix is encoded once, so every pair shares one scale and a bootstrap stays fast."""
    n = int(((codes >= 0).sum(axis=1) >= 2).sum())
    defined = []
    for i, j in itertools.combinations(range(codes.shape[1]), 2):
        both = (codes[:, i] >= 0) & (codes[:, j] >= 0)
        result = measure_of_codes(codes[both, i], codes[both, j])
        if result.defined:
            defined.append(result.value)
    if not defined:
        return _undefined(NO_DEFINED_PAIR if n else NO_PAIRABLE_ITEMS, n)
    return AgreementResult(float(np.mean(defined)), n=n)


def mean_pairwise_kappa(ratings, *, weights: str | None = None, labels=None) -> AgreementResult:
    """The human ceiling: unweighted mean of Cohen's kappa over every rater pair (columns of an
    items x raters matrix), each pair on the items both rated. Pairs whose kappa is undefined
    are left out; n = items with at least two ratings. Every pair is on one scale (labels, or
    all labels seen), so weighted kappa charges the same steps in each pair."""
    codes, scale = _matrix(ratings, "ratings", labels)
    _check_weights(weights, labels, scale)
    return _mean_over_pairs(codes, lambda a, b: _kappa_of_codes(a, b, len(scale), weights))


def mean_pairwise_agreement(ratings, *, labels=None) -> AgreementResult:
    """Mean percent agreement over every rater pair (items x raters, items rated by both)."""
    codes, _ = _matrix(ratings, "ratings", labels)
    return _mean_over_pairs(codes, _agreement_of_codes)


# ---- the human aggregate -------------------------------------------------------------------


def _round_half_up(values: np.ndarray) -> float:
    return float(np.floor(values.mean() + 0.5))


def aggregate_labels(ratings, rule: str = MAJORITY_THEN_ROUNDED_MEAN) -> list:
    """One label per item by a rule of AGGREGATION_RULES, None for an item nobody rated.

    ratings: one row of labels per item (an items x raters matrix, or rows of different
    lengths). Whole numbers come back as ints; the rounded mean needs numeric labels."""
    if rule not in AGGREGATION_RULES:
        raise AgreementInputError("unknown aggregation rule", {"rule": rule, "known": ", ".join(AGGREGATION_RULES)})
    aggregate = []
    for row in ratings:
        row = _as_array(row, "ratings")
        if row.ndim != 1:
            raise AgreementInputError("ratings must be one sequence of labels per item", {"row": row.tolist()})
        present, _ = _split_missing(row, "ratings")
        if not present.size:
            aggregate.append(None)
            continue
        if rule == MAJORITY_THEN_ROUNDED_MEAN:
            labels, counts = np.unique(present, return_counts=True)
            if (counts == counts.max()).sum() == 1:
                aggregate.append(_plain(labels[counts.argmax()]))
                continue
        if present.dtype.kind == "U":
            raise AgreementInputError("the rounded mean needs numeric labels", {"ratings": row.tolist()})
        aggregate.append(_plain(_round_half_up(present)))
    return aggregate


# ---- confidence intervals ------------------------------------------------------------------


def _statistic_value(outcome) -> float | None:
    value = outcome.value if isinstance(outcome, AgreementResult) else outcome
    if value is None or not np.isfinite(value):
        return None
    return float(value)


def bootstrap_ci(
    statistic: Callable,
    *arrays,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups=None,
    item_axis: int = 0,
) -> BootstrapInterval:
    """Percentile bootstrap interval of statistic(*arrays), resampling items with replacement.

    The arrays are paired: every resample takes the same items (positions along item_axis)
    from each. groups: one group id per item for a cluster bootstrap, which resamples whole groups
    (every item of a drawn group comes along), e.g. the prompts of one RTP-LX transcreation
    group. statistic returns a number, None / NaN when undefined, or an AgreementResult;
    undefined resamples are dropped and counted. The same seed gives the same interval."""
    if not 0 < confidence < 1:
        raise AgreementInputError("confidence must be between 0 and 1", {"confidence": confidence})
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise AgreementInputError("n_resamples must be a positive integer", {"n_resamples": n_resamples})
    if not arrays:
        raise AgreementInputError("bootstrap_ci needs at least one array to resample")
    data = [_as_array(array, "arrays") for array in arrays]
    if any(array.ndim <= item_axis for array in data):
        raise AgreementInputError(f"every array needs an axis {item_axis} to resample")
    sizes = {array.shape[item_axis] for array in data}
    if len(sizes) != 1:
        raise AgreementInputError("the arrays must have the same number of items", {"sizes": sorted(sizes)})
    count = sizes.pop()
    if groups is not None:
        group_ids = _as_array(groups, "groups")
        if group_ids.shape != (count,):
            raise AgreementInputError("groups needs one group id per item",
                                      {"items": count, "groups": group_ids.shape})
        try:
            _, group_of_item = np.unique(group_ids, return_inverse=True)
        except TypeError:  # None among the ids, or ids numpy cannot order
            raise AgreementInputError("groups must be ids of one type, none missing") from None
        by_group = np.argsort(group_of_item, kind="stable")
        members = np.split(by_group, np.cumsum(np.bincount(group_of_item))[:-1]) if count else []
    if count == 0:
        return BootstrapInterval(None, None, 0)
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_resamples):
        if groups is None:
            items = rng.integers(0, count, size=count)
        else:
            items = np.concatenate([members[g] for g in rng.integers(0, len(members), size=len(members))])
        value = _statistic_value(statistic(*(np.take(array, items, axis=item_axis) for array in data)))
        if value is not None:
            replicates.append(value)
    dropped = n_resamples - len(replicates)
    if not replicates:
        return BootstrapInterval(None, None, dropped)
    tail = (1 - confidence) / 2
    low, high = np.percentile(replicates, [100 * tail, 100 * (1 - tail)])
    return BootstrapInterval(float(low), float(high), dropped)


def with_bootstrap_ci(
    measure: Callable[..., AgreementResult],
    *arrays,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups=None,
    item_axis: int | None = None,
    **options,
) -> AgreementResult:
    """measure(*arrays, **options) with its percentile bootstrap interval filled in.

    item_axis: the axis that holds the items; by default the measure's own orientation
    (1 for krippendorff_alpha's raters x items, 0 otherwise). No interval for an undefined value."""
    point = measure(*arrays, **options)
    if not point.defined:
        return point
    if item_axis is None:
        item_axis = 1 if measure is krippendorff_alpha else 0
    interval = bootstrap_ci(
        lambda *resampled: measure(*resampled, **options), *arrays,
        n_resamples=n_resamples, confidence=confidence, seed=seed, groups=groups, item_axis=item_axis,
    )
    return replace(point, ci_low=interval.low, ci_high=interval.high, resamples_dropped=interval.dropped)


__all__ = [
    "AGGREGATION_RULES", "LEVELS", "WEIGHTS", "AgreementInputError", "AgreementResult",
    "BootstrapInterval", "aggregate_labels", "bootstrap_ci", "category_counts", "class_counts",
    "cohen_kappa", "fleiss_kappa", "fleiss_kappa_from_counts", "krippendorff_alpha",
    "mean_pairwise_agreement", "mean_pairwise_kappa", "pairwise", "percent_agreement",
    "spearman", "with_bootstrap_ci",
]
