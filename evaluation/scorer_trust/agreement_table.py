"""Scorer values against the human aggregate: one row per language x category x subset.

Every number comes from toxplatform.agreement. The rules that decide what is compared:

- Human side: the aggregate of the raters by a named rule (default
  `majority_then_rounded_mean`: the label most raters gave, the mean rounded half up where
  no single label has most votes), shown next to every kappa.
- Scorer side, put on the category's ordinal scale low..high (`MAPPING_RULE`):
  a rating measure on that same scale is rounded half up to a whole class (a trained
  scorer's or a judge's classes are unchanged); a rating on another scale, and a harm
  probability p on [0, 1], go through the unit interval the metrics already use
  (unit = (v - measure.low) / (measure.high - measure.low)) and back:
  class = low + floor(unit * (high - low) + 0.5). So p < 0.125 is 1 and p >= 0.875 is 5 on
  toxicity's 1-5, p < 0.25 is 1 and p >= 0.75 is 3 on a 1-3 category; a lexicon hit (1.0)
  is the top class. This is the inverse of the mapping that EMT and TP use; no scorer
  gets cutpoints fitted to the gold labels it is judged against (a trained scorer fits
  its own on training groups only).
- A value that is missing (the scorer gave none: unsupported language, unparseable judge
  reply), not finite, or outside its measure's range is invalid: counted in `invalid`,
  left out of kappa (n counts the rest).
- Kappa is linearly weighted Cohen's kappa over the category's full scale; exact agreement
  the share of identical classes; Spearman's rho between the scorer's own value (before
  mapping) and the human aggregate; the human ceiling is the mean pairwise linearly
  weighted kappa between the raters of the same prompts. Intervals: percentile bootstrap
  over prompts (clustered by transcreation group), seeded.
- Subsets: `all`, `transcreated` (translated from RealToxicityPrompts, a group id) and
  `cultural` (written for one culture).
"""
from __future__ import annotations

import math

import numpy as np

from evaluation.scorer_trust.labels import GoldLabels
from evaluation.scorers.measures import RATING, Measure
from toxplatform import agreement

MAPPING_RULE = "inverse-unit-rounded"
MAPPING_DESCRIPTION = (
    "Ratings on the category's own scale are rounded half up; probabilities (and ratings on "
    "another scale) map to the unit interval and back onto the scale, rounded half up: "
    "class = low + floor(unit x (high - low) + 0.5)."
)
SUBSETS = ("all", "transcreated", "cultural")
SPLITS = SUBSETS[1:]


def to_scale(values: np.ndarray, measure: Measure, low: int, high: int) -> np.ndarray:
    """Scorer values -> classes on low..high (float, NaN = invalid)."""
    values = np.asarray(values, dtype=float)
    out = np.full(len(values), np.nan)
    finite = np.isfinite(values)
    if measure.kind == RATING:
        in_range = finite & (values >= measure.low) & (values <= measure.high)
        if measure.low == low and measure.high == high:
            out[in_range] = np.floor(values[in_range] + 0.5)
            return out
        unit = (values - measure.low) / (measure.high - measure.low)
    else:
        in_range = finite & (values >= 0) & (values <= 1)
        unit = values
    out[in_range] = low + np.floor(unit[in_range] * (high - low) + 0.5)
    return out


def _value(result) -> float | None:
    return None if result.value is None or not math.isfinite(result.value) else float(result.value)


def _ints(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(np.int64)


def cell(human: np.ndarray, scorer_classes: np.ndarray, scorer_values: np.ndarray, raters: np.ndarray,
         groups: list[str], low: int, high: int, *, bootstrap: int, seed: int) -> dict:
    """The numbers of one language x category x subset. human / scorer_classes / scorer_values
    / raters / groups are aligned over the cell's labelled prompts; NaN scorer classes are invalid."""
    scale = list(range(low, high + 1))
    valid = ~np.isnan(scorer_classes)
    human_valid, scorer_valid = _ints(human[valid]), _ints(scorer_classes[valid])
    kappa = agreement.cohen_kappa(human_valid, scorer_valid, weights="linear", labels=scale)
    ci_low = ci_high = None
    if kappa.value is not None and bootstrap:
        interval = agreement.bootstrap_ci(
            lambda h, s: agreement.cohen_kappa(h, s, weights="linear", labels=scale),
            human_valid, scorer_valid, n_resamples=bootstrap, seed=seed,
            groups=np.array(groups, dtype=object)[valid].astype(str),
        )
        ci_low, ci_high = interval.low, interval.high
    exact = agreement.percent_agreement(human_valid, scorer_valid, labels=scale)
    rho = agreement.spearman(np.asarray(scorer_values, dtype=float)[valid], human[valid].astype(float))
    complete = raters[:, ~np.all(np.isnan(raters), axis=0)] if raters.size else raters
    if complete.size and not np.isnan(complete).any():
        ceiling = agreement.mean_pairwise_kappa(_ints(complete), weights="linear", labels=scale)
    elif complete.size and complete.shape[1] >= 2:
        ceiling = agreement.mean_pairwise_kappa(
            [[None if np.isnan(v) else int(v) for v in row] for row in complete], weights="linear", labels=scale)
    else:
        ceiling = agreement.AgreementResult(None, undefined_reason="one rater")
    return {
        "weighted_kappa": _value(kappa),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "exact_agreement": _value(exact),
        "spearman": _value(rho),
        "n": int(valid.sum()),
        "invalid": int((~valid).sum()),
        "human_ceiling": _value(ceiling),
        "human_classes": {str(int(k)): v for k, v in agreement.class_counts(_ints(human), labels=scale).items()},
        "scorer_classes": {str(int(k)): v for k, v in agreement.class_counts(scorer_valid, labels=scale).items()},
        "undefined_reason": kappa.undefined_reason or "",
    }


def agreement_rows(gold: GoldLabels, values: dict[str, np.ndarray], measures: dict[str, Measure],
                   include: np.ndarray | None = None, *, bootstrap: int = 1000, seed: int = 0,
                   subsets=SUBSETS, progress=None) -> list[dict]:
    """Rows {"language", "category", "subset", ...cell()} for every language x category x subset
    that has labelled prompts. values: per category, one scorer value per prompt of `gold`
    (NaN = no valid value); include: the prompts to count (default all)."""
    include = np.ones(len(gold), dtype=bool) if include is None else include
    rows = []
    languages = sorted(set(gold.languages[include].tolist()))
    subset_masks = {"all": np.ones(len(gold), dtype=bool), "transcreated": ~gold.culturally_specific,
                    "cultural": gold.culturally_specific}
    total = len(languages) * len(values)
    done = 0
    for language in languages:
        in_language = include & (gold.languages == language)
        for slug, category_values in values.items():
            labels = gold.categories[slug]
            classes = to_scale(category_values, measures[slug], labels.low, labels.high)
            for subset in subsets:
                items = in_language & labels.labelled & subset_masks[subset]
                if not items.any():
                    continue
                index = np.flatnonzero(items)
                numbers = cell(
                    labels.aggregate[index], classes[index], np.asarray(category_values, dtype=float)[index],
                    labels.raters[index], [gold.group_keys[i] for i in index], labels.low, labels.high,
                    bootstrap=bootstrap, seed=seed,
                )
                rows.append({"language": language, "category": slug, "subset": subset, **numbers})
            done += 1
            if progress:
                progress(done, total)
    return rows


def summary(rows: list[dict]) -> dict:
    """Means over the `all` rows: overall, per category, per language (defined kappas only)."""
    main = [row for row in rows if row["subset"] == "all"]

    def mean(items, key="weighted_kappa"):
        values = [row[key] for row in items if row[key] is not None]
        return round(float(np.mean(values)), 4) if values else None

    categories = sorted({row["category"] for row in main})
    languages = sorted({row["language"] for row in main})
    return {
        "mean_kappa": mean(main),
        "mean_human_ceiling": mean(main, "human_ceiling"),
        "cells": len(main),
        "defined_cells": sum(1 for row in main if row["weighted_kappa"] is not None),
        "by_category": {slug: mean([r for r in main if r["category"] == slug]) for slug in categories},
        "by_language": {code: mean([r for r in main if r["language"] == code]) for code in languages},
    }


def json_results(rows: list[dict]) -> dict:
    """evaluate_scorer --json / train_scorer --json: the `all` rows as `results`, the
    transcreated / culturally specific rows under `splits`."""
    keys = ("language", "category", "weighted_kappa", "ci_low", "ci_high", "exact_agreement", "spearman",
            "n", "invalid", "human_ceiling", "human_classes", "scorer_classes")

    def shape(row):
        return {key: row.get(key) for key in keys}

    return {
        "results": [shape(row) for row in rows if row["subset"] == "all"],
        "splits": {split: [shape(row) for row in rows if row["subset"] == split] for split in SPLITS},
    }
