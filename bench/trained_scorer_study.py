"""Which choices move the trained scorer's kappa: grouped 5-fold cross-validation on RTP-LX.

    OMP_NUM_THREADS=2 nice python -m bench.trained_scorer_study [--eval en de ar hi ru] [--train all|eval]

Reads the release files directly (bench/rtp_lx_data.py) and the embedding cache that
training fills (evaluation/scorers/encoders.py). Folds are by transcreation group, so the
same prompt in another language never sits on both sides. Kappa: linearly weighted, against
the majority-then-rounded-mean aggregate, per language x category on the out-of-fold
predictions of the evaluated languages, then the mean over those cells
(toxplatform.agreement). Prints one line per configuration and writes JSON to
bench/results/trained_scorer_study.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import django
import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")
django.setup()

from bench import rtp_lx_data  # noqa: E402
from evaluation.scorer_trust import learning  # noqa: E402
from toxplatform import agreement  # noqa: E402

SCALES = {"toxicity": (1, 5)}
RULE = agreement.MAJORITY_THEN_ROUNDED_MEAN


def targets_for(rows):
    out = {}
    for slug in rows[0]["raters"]:
        low, high = SCALES.get(slug, (1, 3))
        raters = np.array([row["raters"][slug] for row in rows], dtype=float)
        out[slug] = learning.Targets.from_raters(raters, low, high, RULE)
    return out


def subset(targets, mask):
    return {slug: learning.Targets(t.low, t.high, t.classes[mask], t.mean[mask]) for slug, t in targets.items()}


def cross_validate(X, targets, languages, keys, config, train_mask, eval_mask, folds=5, seed=0):
    """Out-of-fold classes for eval_mask items; each fold trains on train_mask items of the other folds."""
    fold_of = learning.group_folds(keys, folds, seed + 101)
    predicted = {slug: np.zeros(len(X), dtype=int) for slug in targets}
    for fold in range(folds):
        test = (fold_of == fold) & eval_mask
        train = (fold_of != fold) & train_mask
        index = np.flatnonzero(train)
        model = learning.fit(X[index], subset(targets, train), languages[index], [keys[i] for i in index], config)
        out = model.predict(X[test], languages[test])
        for slug, (classes, _) in out.items():
            predicted[slug][test] = classes
    return predicted


def kappas(predicted, targets, languages, eval_mask):
    cells = {}
    for language in sorted(set(languages[eval_mask])):
        mask = eval_mask & (languages == language)
        for slug, t in targets.items():
            result = agreement.cohen_kappa(t.classes[mask], predicted[slug][mask], weights="linear",
                                           labels=list(range(t.low, t.high + 1)))
            cells[(language, slug)] = result.value
    return cells


def mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval", nargs="+", default=["en", "de", "ar", "hi", "ru"])
    parser.add_argument("--train", nargs="+", default=["eval", "all"], help="eval: the same languages; all: all 28")
    parser.add_argument("--configs", nargs="+", default=None)
    args = parser.parse_args()
    # Only what is needed: a run on the evaluated languages alone must not embed the other 23.
    rows = rtp_lx_data.load(None if "all" in args.train else set(args.eval))
    X = rtp_lx_data.embed(rows, progress=False)
    languages = np.array([row["language"] for row in rows])
    keys = [row["group"] for row in rows]
    targets = targets_for(rows)
    eval_mask = np.isin(languages, args.eval)
    configs = {
        "ridge unweighted + global cutpoints": learning.HeadConfig(balanced=False, calibration="global"),
        "ridge balanced, rounded": learning.HeadConfig(calibration="none"),
        "ridge balanced + global cutpoints": learning.HeadConfig(calibration="global"),
        "ridge balanced + per-language cutpoints": learning.HeadConfig(calibration="language"),
        "ridge balanced a=1 + per-language cutpoints": learning.HeadConfig(alpha=1.0, calibration="language"),
        "ridge balanced a=100 + per-language cutpoints": learning.HeadConfig(alpha=100.0, calibration="language"),
        "logistic, rounded expected class": learning.HeadConfig(head="logistic", alpha=1.0, balanced=False,
                                                                calibration="none"),
        "logistic balanced + global cutpoints": learning.HeadConfig(head="logistic", alpha=1.0, calibration="global"),
        "logistic balanced + per-language cutpoints": learning.HeadConfig(head="logistic", alpha=1.0,
                                                                          calibration="language"),
    }
    if args.configs:
        configs = {name: config for name, config in configs.items() if any(c in name for c in args.configs)}
    out_path = Path(__file__).resolve().parent / "results" / "trained_scorer_study.json"
    out_path.parent.mkdir(exist_ok=True)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for train_name in args.train:
        train_mask = eval_mask if train_name == "eval" else np.ones(len(rows), dtype=bool)
        for name, config in configs.items():
            started = time.time()
            predicted = cross_validate(X, targets, languages, keys, config, train_mask, eval_mask)
            cells = kappas(predicted, targets, languages, eval_mask)
            by_category = {slug: mean([v for (l, s), v in cells.items() if s == slug]) for slug in targets}
            by_language = {code: mean([v for (l, s), v in cells.items() if l == code]) for code in args.eval}
            overall = mean(cells.values())
            label = f"train={train_name} eval={'+'.join(args.eval)} | {name}"
            results[label] = {"mean_kappa": overall, "by_category": by_category, "by_language": by_language,
                              "seconds": round(time.time() - started, 1)}
            print(f"{overall:.3f}  {label}  ({time.time() - started:.0f} s)  "
                  + " ".join(f"{slug[:6]}={v:.2f}" for slug, v in by_category.items() if v is not None), flush=True)
            out_path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
