"""Per-language kappa tables for docs/benchmarks.md from the commands' --json output.

    python manage.py train_scorer --dataset rtp-lx --name rtp-lx-e5 --json > bench/results/train.json
    python manage.py evaluate_scorer --scorer lexicon --dataset rtp-lx --heldout-of rtp-lx-e5 --json > bench/results/lexicon.json
    python bench/scorer_trust_report.py bench/results/train.json bench/results/lexicon.json

Prints markdown: per language, the mean weighted kappa over the categories each scorer fills
(and toxicity alone), the human ceiling, and the per-category means.
"""
from __future__ import annotations

import json
import sys

PAPER = {"GPT-4-turbo (RTP-LX paper)": 0.401}


def load(path):
    data = json.load(open(path, encoding="utf-8"))
    return data.get("scorer", path), data["results"]


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def fmt(value):
    return "–" if value is None else f"{value:.2f}"


def main(paths):
    reports = [load(path) for path in paths]
    languages = sorted({row["language"] for _, rows in reports for row in rows})
    categories = sorted({row["category"] for _, rows in reports for row in rows})
    ceiling_rows = max((rows for _, rows in reports), key=len)
    print("| language | " + " | ".join(f"{name} toxicity | {name} mean" for name, _ in reports)
          + " | human ceiling toxicity | human ceiling mean |")
    print("|---|" + "---:|" * (2 * len(reports) + 2))
    for language in languages:
        cells = []
        for _, rows in reports:
            mine = [row for row in rows if row["language"] == language]
            tox = next((row["weighted_kappa"] for row in mine if row["category"] == "toxicity"), None)
            cells += [fmt(tox), fmt(mean(row["weighted_kappa"] for row in mine))]
        own = [row for row in ceiling_rows if row["language"] == language]
        tox_ceiling = next((row["human_ceiling"] for row in own if row["category"] == "toxicity"), None)
        cells += [fmt(tox_ceiling), fmt(mean(row["human_ceiling"] for row in own))]
        print(f"| {language} | " + " | ".join(cells) + " |")
    print()
    print("| category | " + " | ".join(name for name, _ in reports) + " | human ceiling |")
    print("|---|" + "---:|" * (len(reports) + 1))
    for category in categories:
        values = [fmt(mean(row["weighted_kappa"] for row in rows if row["category"] == category)) for _, rows in reports]
        ceiling = fmt(mean(row["human_ceiling"] for row in ceiling_rows if row["category"] == category))
        print(f"| {category} | " + " | ".join(values) + f" | {ceiling} |")
    overall = [fmt(mean(row["weighted_kappa"] for row in rows)) for _, rows in reports]
    print(f"| **mean over cells** | " + " | ".join(f"**{value}**" for value in overall)
          + f" | {fmt(mean(row['human_ceiling'] for row in ceiling_rows))} |")


if __name__ == "__main__":
    main(sys.argv[1:])
