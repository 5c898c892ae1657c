"""What the trained scorer learns, and how it is held out: pure numpy, no Django.

- `group_keys` / `heldout_mask`: the split is by transcreation group. A transcreated RTP-LX
  prompt's group is its `Prompt.group_id` (the same source prompt in all 28 languages); a
  culturally specific prompt (no group id) is its own group, "<language>:<external id>".
  A group is held out when sha256("<seed>:<group>") falls below the held-out fraction: the
  same group lands on the same side in every language, on every machine, in every run with
  that seed, and any prompt's side can be recomputed from its group alone (scorer
  evaluation uses that to leave out what a trained scorer was trained on).
- A head per harm category maps a sentence embedding to a continuous score:
  `ridge` (default): ridge regression on the mean of the raters' values (all three raters'
  information, not only the rounded aggregate), samples weighted by the inverse frequency of
  their aggregate class (`balanced`) so that the rare upper classes count;
  `logistic`: multinomial logistic regression on the aggregate class (scikit-learn), score =
  the expected class value.
- Cutpoints turn the score into a class on the category's scale. They are tuned on
  out-of-fold scores of the training set (grouped inner folds: in-sample scores are
  over-confident) to maximise linearly weighted kappa against the human aggregate, first
  one set for all languages, then per language (`calibration="language"`) where a language
  has enough training items; a language without its own cutpoints uses the global ones.
  `calibration="none"` rounds the score to the nearest class (the baseline).

Agreement numbers come from toxplatform.agreement (one implementation for the platform).
"""
from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from toxplatform import agreement

HEADS = ("ridge", "logistic")
CALIBRATIONS = ("none", "global", "language")
# A language gets its own cutpoints only with this many out-of-fold training items.
MIN_LANGUAGE_ITEMS = 150
CANDIDATES = 24  # cutpoint positions tried per sweep (quantiles of the scores between neighbours)
SWEEPS = 3


# --- the split ----------------------------------------------------------------------------
def group_key(language: str, external_id: str, group_id: str) -> str:
    return group_id if group_id else f"{language}:{external_id}"


def _unit(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_heldout(key: str, fraction: float, seed: int) -> bool:
    return _unit(seed, key) < fraction


def heldout_mask(keys, fraction: float, seed: int) -> np.ndarray:
    cache: dict[str, bool] = {}
    out = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        if key not in cache:
            cache[key] = is_heldout(key, fraction, seed)
        out[i] = cache[key]
    return out


def group_folds(keys, folds: int, seed: int) -> np.ndarray:
    """Fold number 0..folds-1 per item, by group (every item of a group in one fold)."""
    return np.array([int(_unit(seed + 7919, key) * folds) for key in keys], dtype=int)


# --- configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadConfig:
    head: str = "ridge"
    alpha: float = 10.0  # ridge penalty; for logistic, C = 1 / alpha
    balanced: bool = True
    calibration: str = "language"
    inner_folds: int = 3
    seed: int = 0

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}")


@dataclass
class Targets:
    """One category's training targets: the human aggregate class and the raters' mean."""

    low: int
    high: int
    classes: np.ndarray  # int, aggregate rule applied
    mean: np.ndarray  # float, mean of the raters' values

    @classmethod
    def from_raters(cls, raters: np.ndarray, low: int, high: int, rule: str) -> Targets:
        aggregate = agreement.aggregate_labels(raters, rule)
        classes = np.array([int(round(value)) for value in aggregate], dtype=int)
        return cls(low, high, classes, np.nanmean(np.asarray(raters, dtype=float), axis=1))


# --- heads ----------------------------------------------------------------------------------
def _class_weights(classes: np.ndarray) -> np.ndarray:
    values, counts = np.unique(classes, return_counts=True)
    per_class = {value: len(classes) / (len(values) * count) for value, count in zip(values, counts)}
    return np.array([per_class[value] for value in classes])


def _fit_ridge(X: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float) -> np.ndarray:
    """Weighted ridge with an unpenalised intercept: coefficients (d + 1,), intercept last."""
    w = weights / weights.mean()
    x_mean = (w[:, None] * X).sum(0) / w.sum()
    y_mean = float((w * y).sum() / w.sum())
    Xc = X - x_mean
    gram = (Xc * w[:, None]).T @ Xc + alpha * np.eye(X.shape[1])
    coef = np.linalg.solve(gram, (Xc * w[:, None]).T @ (y - y_mean))
    return np.concatenate([coef, [y_mean - x_mean @ coef]])


def _fit_logistic(X: np.ndarray, classes: np.ndarray, balanced: bool, alpha: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0 / alpha, class_weight="balanced" if balanced else None, max_iter=300,
                               random_state=seed)
    model.fit(X, classes)
    return np.concatenate([model.coef_, model.intercept_[:, None]], axis=1), model.classes_.astype(float)


@dataclass
class Head:
    kind: str
    coef: np.ndarray  # ridge: (d + 1,); logistic: (classes, d + 1)
    class_values: np.ndarray | None = None  # logistic: the class of each row of coef

    def scores(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "ridge":
            return X @ self.coef[:-1] + self.coef[-1]
        logits = X @ self.coef[:, :-1].T + self.coef[:, -1]
        if logits.shape[1] == 1:  # two classes: one row of coefficients for the second
            p = 1 / (1 + np.exp(-logits[:, 0]))
            return self.class_values[0] * (1 - p) + self.class_values[1] * p
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities @ self.class_values


def fit_head(X: np.ndarray, targets: Targets, config: HeadConfig) -> Head:
    if len(np.unique(targets.classes)) < 2:
        # One class in the training data: every item gets it (a constant score).
        return Head("ridge", np.concatenate([np.zeros(X.shape[1]), [float(targets.classes[0])]]))
    if config.head == "logistic":
        coef, class_values = _fit_logistic(X, targets.classes, config.balanced, config.alpha, config.seed)
        return Head("logistic", coef, class_values)
    weights = _class_weights(targets.classes) if config.balanced else np.ones(len(X))
    return Head("ridge", _fit_ridge(X, targets.mean, weights, config.alpha))


# --- cutpoints ------------------------------------------------------------------------------
def apply_cutpoints(scores: np.ndarray, cutpoints: np.ndarray, low: int) -> np.ndarray:
    """Class low + (number of cutpoints below the score)."""
    return low + np.searchsorted(np.asarray(cutpoints), scores, side="left").astype(int)


def objective(y: np.ndarray, predicted: np.ndarray, low: int, high: int) -> float:
    """The cutpoint search's objective: linearly weighted kappa of two integer arrays on
    low..high, from their confusion table. The search evaluates it thousands of times per
    category, where agreement.cohen_kappa (general input checks: missing values, any label
    type) costs ~1.6 ms per call on 800 items; tests check both give the same value. Every
    number the platform reports comes from toxplatform.agreement. -1 when undefined."""
    k = high - low + 1
    table = np.bincount((y - low) * k + (predicted - low), minlength=k * k).reshape(k, k).astype(float)
    positions = np.arange(k)
    weight = np.abs(positions[:, None] - positions[None, :])
    expected = np.outer(table.sum(axis=1), table.sum(axis=0))
    expected_disagreement = float((weight * expected).sum())
    if expected_disagreement == 0:
        return -1.0
    return 1.0 - len(y) * float((weight * table).sum()) / expected_disagreement


def tune_cutpoints(scores: np.ndarray, y: np.ndarray, low: int, high: int,
                   start: np.ndarray | None = None) -> np.ndarray:
    """Increasing cutpoints maximising linearly weighted kappa of (y, classes of scores).

    Start: cutpoints that reproduce the class shares of y (quantile matching), or `start`;
    then coordinate ascent, each cutpoint tried at quantiles of the scores between its
    neighbours, keeping a move only when kappa improves."""
    k = high - low
    if start is None:
        shares = np.cumsum([np.mean(y == value) for value in range(low, high)])
        cuts = np.quantile(scores, np.clip(shares, 0.0, 1.0))
    else:
        cuts = np.array(start, dtype=float)
    cuts = np.maximum.accumulate(cuts)
    best = objective(y, apply_cutpoints(scores, cuts, low), low, high)
    ordered = np.sort(scores)
    for _ in range(SWEEPS):
        moved = False
        for j in range(k):
            lo = cuts[j - 1] if j > 0 else ordered[0] - 1e-9
            hi = cuts[j + 1] if j + 1 < k else ordered[-1] + 1e-9
            inside = ordered[(ordered >= lo) & (ordered <= hi)]
            if not inside.size:
                continue
            for candidate in np.unique(np.quantile(inside, np.linspace(0, 1, CANDIDATES))):
                trial = cuts.copy()
                trial[j] = candidate
                value = objective(y, apply_cutpoints(scores, trial, low), low, high)
                if value > best + 1e-12:
                    best, cuts, moved = value, trial, True
        if not moved:
            break
    return cuts


# --- one category, all categories ---------------------------------------------------------
@dataclass
class CategoryModel:
    slug: str
    low: int
    high: int
    head: Head
    cutpoints: np.ndarray
    by_language: dict[str, np.ndarray] = field(default_factory=dict)

    def scores(self, X: np.ndarray) -> np.ndarray:
        return self.head.scores(X)

    def classes(self, scores: np.ndarray, languages) -> np.ndarray:
        out = apply_cutpoints(scores, self.cutpoints, self.low)
        for language, cuts in self.by_language.items():
            mask = np.asarray(languages) == language
            if mask.any():
                out[mask] = apply_cutpoints(scores[mask], cuts, self.low)
        return out


def out_of_fold_scores(X: np.ndarray, targets: Targets, keys, config: HeadConfig) -> np.ndarray:
    folds = group_folds(keys, config.inner_folds, config.seed)
    scores = np.zeros(len(X))
    for fold in range(config.inner_folds):
        test = folds == fold
        if not test.any() or test.all():
            continue
        train_targets = Targets(targets.low, targets.high, targets.classes[~test], targets.mean[~test])
        scores[test] = fit_head(X[~test], train_targets, config).scores(X[test])
    return scores


def fit_category(slug: str, X: np.ndarray, targets: Targets, languages: np.ndarray, keys,
                 config: HeadConfig) -> CategoryModel:
    if config.calibration == "none":  # the score rounded to the nearest class
        cuts = np.arange(targets.low, targets.high) + 0.5
        return CategoryModel(slug, targets.low, targets.high, fit_head(X, targets, config), cuts)
    oof = out_of_fold_scores(X, targets, keys, config)
    cuts = tune_cutpoints(oof, targets.classes, targets.low, targets.high)
    by_language = {}
    if config.calibration == "language":
        for language in np.unique(languages):
            mask = languages == language
            y = targets.classes[mask]
            if mask.sum() < MIN_LANGUAGE_ITEMS or len(np.unique(y)) < 2:
                continue
            by_language[str(language)] = tune_cutpoints(oof[mask], y, targets.low, targets.high, start=cuts)
    head = fit_head(X, targets, config)
    return CategoryModel(slug, targets.low, targets.high, head, cuts, by_language)


@dataclass
class TrainedModel:
    config: HeadConfig
    categories: dict[str, CategoryModel]
    encoder_fingerprint: str = ""
    meta: dict = field(default_factory=dict)

    def predict(self, X: np.ndarray, languages) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{category: (classes on its scale, continuous scores)}."""
        out = {}
        for slug, model in self.categories.items():
            scores = model.scores(X)
            out[slug] = (model.classes(scores, languages), scores)
        return out

    # --- the artifact: one .npz (arrays) with a JSON header; no pickle ---------------------
    def to_bytes(self) -> bytes:
        arrays, header = {}, {"config": asdict(self.config), "encoder_fingerprint": self.encoder_fingerprint,
                              "meta": self.meta, "categories": []}
        for index, (slug, model) in enumerate(self.categories.items()):
            arrays[f"coef_{index}"] = model.head.coef
            if model.head.class_values is not None:
                arrays[f"classes_{index}"] = model.head.class_values
            header["categories"].append({
                "slug": slug, "low": model.low, "high": model.high, "head": model.head.kind,
                "cutpoints": model.cutpoints.tolist(),
                "by_language": {language: cuts.tolist() for language, cuts in model.by_language.items()},
            })
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedModel:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            header = json.loads(arrays["header"].tobytes().decode("utf-8"))
            categories = {}
            for index, entry in enumerate(header["categories"]):
                class_values = arrays[f"classes_{index}"] if f"classes_{index}" in arrays else None
                categories[entry["slug"]] = CategoryModel(
                    entry["slug"], int(entry["low"]), int(entry["high"]),
                    Head(entry["head"], arrays[f"coef_{index}"], class_values),
                    np.array(entry["cutpoints"], dtype=float),
                    {language: np.array(cuts, dtype=float) for language, cuts in entry["by_language"].items()},
                )
        return cls(HeadConfig(**header["config"]), categories, header["encoder_fingerprint"], header["meta"])


def fit(X: np.ndarray, targets: dict[str, Targets], languages, keys, config: HeadConfig,
        progress: Callable[[int, int], None] | None = None) -> TrainedModel:
    languages = np.asarray(languages)
    categories = {}
    for done, (slug, category_targets) in enumerate(targets.items()):
        categories[slug] = fit_category(slug, X, category_targets, languages, keys, config)
        if progress:
            progress(done + 1, len(targets))
    return TrainedModel(config, categories)
