"""Effectiveness of every detox method on one model: the same toxic prompts, seed, k and scorers.

Runs one `manage.py evaluate` job per method (inline, one after the other; `--reuse`, so a
second run of this script only prints the tables), then prints, per language, the methods
leaderboard (`evaluation.method_board.methods_board`: the jobs' JobMetric rows and the paired
difference to `none` from `evaluation.comparison`) under the trained scorer and under the
lexicon. Nothing here computes a metric: the numbers are the platform's.

The study in docs/benchmarks.md ("Effectiveness on Gemma-3-270m") was run as:

    export TOXPLATFORM_VAR_DIR=$PWD/var/study OMP_NUM_THREADS=1
    python manage.py migrate --no-input
    python manage.py import_dataset rtp-lx ../shared/data/rtp-lx
    python manage.py train_scorer --dataset rtp-lx --languages en ar hi ru zh-Hans \
        --name rtp-lx-e5-study --reuse
    nice -n 10 python bench/detox_effectiveness.py --languages en ar hi ru zh-Hans \
        --prompts 12 --k 5 --max-new-tokens 20 --seed 0 --scorer-name rtp-lx-e5-study \
        --fewer-prompts self_detoxify=6 --variants det_zero:num_experts=100 damp:num_experts=100 --markdown

`--fewer-prompts METHOD=N` gives a slow method the first N prompts of the same seeded sample
(the sample order is a hash of seed and transcreation group, so N prompts are a prefix of the
larger sample); its paired difference to `none` is then over those N prompts per language.
`--variants METHOD:KEY=VALUE` adds a job of a method with non-default parameters (its own row).
`--report-only` prints the tables from the jobs already in the database. DExperts is skipped:
it needs two more models with the base's tokenizer, and only one Gemma is packaged.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from evaluation.leaderboards import Cell  # noqa: E402
from evaluation.method_board import methods_board  # noqa: E402
from evaluation.models import EvaluationJob, ModelSpec  # noqa: E402
from evaluation.scorers.trained import key_for  # noqa: E402
from toxplatform.corpus.models import Dataset, Language  # noqa: E402

METHODS = ["none", "system_prompt", "word_ban", "toxic_vector", "aura", "det_zero", "damp", "destein",
           "self_detoxify", "dexperts", "dinm", "ft_l"]
# DExperts needs a non-toxic expert and a toxic anti-expert sharing the base's tokenizer; only
# one Gemma is packaged, so there is nothing to give it (see docs/benchmarks.md).
SKIPPED = {"dexperts": "no expert / anti-expert model with Gemma's tokenizer is available"}


def job_name(model: str, method: str) -> str:
    return f"effectiveness: {model} x {method}"


def parse_variant(value: str) -> tuple[str, dict]:
    """`method:key=value[,key=value]` -> (method, params); values read as JSON when they are JSON."""
    method, _, pairs = value.partition(":")
    params = {}
    for pair in filter(None, pairs.split(",")):
        key, _, raw = pair.partition("=")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return method, params


def run_jobs(args) -> dict[str, str]:
    """Evaluate each method (defaults), then each variant; returns {label: problem} for what did not finish."""
    problems = {}
    fewer = dict(item.split("=") for item in args.fewer_prompts)
    runs = [(method, {}) for method in args.methods] + [parse_variant(value) for value in args.variants]
    for method, params in runs:
        label = method + (f" ({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})" if params else "")
        if method in SKIPPED and not params:
            problems[label] = f"not run: {SKIPPED[method]}"
            continue
        prompts = int(fewer.get(method, args.prompts))
        print(f"\n== {args.model} x {label}: {len(args.languages)} languages x {prompts} toxic prompts, "
              f"k={args.k}, {args.max_new_tokens} new tokens, seed {args.seed} ==", flush=True)
        started = time.monotonic()
        try:
            call_command(
                "evaluate", model=args.model, method=method, method_params=params, dataset=args.dataset,
                languages=args.languages, prompt_split="toxic", prompts_per_language=prompts, k=args.k,
                max_new_tokens=args.max_new_tokens, seed=args.seed, batch_size=args.batch_size, reuse=True,
                no_progress=True, name=job_name(args.model, label),
                scorers=[f'trained:{{"name": "{args.scorer_name}"}}', "lexicon",
                         f'perplexity:{{"path": "package:{args.model}"}}'],
            )
        except Exception as error:  # a method that fails on this model is a finding: record, go on
            problems[label] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        print(f"   {label}: {time.monotonic() - started:.0f} s wall", flush=True)
    return problems


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def interval(cell: Cell, digits: int = 3) -> str:
    if cell.value is None:
        return "–"
    if cell.ci_low is None:
        return fmt(cell.value, digits)
    return f"{fmt(cell.value, digits)} [{fmt(cell.ci_low, digits)}, {fmt(cell.ci_high, digits)}]"


def paired(difference) -> str:
    if difference is None or difference.difference is None:
        return "–"
    mark = " *" if difference.significant else ""
    return (f"{difference.difference:+.3f} [{difference.ci_low:+.3f}, {difference.ci_high:+.3f}] "
            f"p={difference.p_value:.2f}{mark}")


def job_seconds(job: EvaluationJob) -> str:
    if job.started_at and job.finished_at:
        return f"{(job.finished_at - job.started_at).total_seconds():.0f}"
    return "–"


def report(args, problems: dict[str, str]) -> None:
    model = ModelSpec.objects.get(name=args.model)
    dataset = Dataset.objects.get(slug=args.dataset)
    trained, perplexity = key_for(args.scorer_name), f"perplexity:{args.model}"
    header = ["method", "EMT trained [95% CI]", "TP trained", "EMT − none (trained) [95% CI]", "n pairs",
              "EMT lexicon", "EMT − none (lexicon) [95% CI]", "PPL [95% CI]", "Dist-2", "job s"]
    for code in args.languages:
        language = Language.objects.get(code=code)
        board = methods_board(model=model, dataset=dataset, language=language, scorer=trained,
                              perplexity_scorer=perplexity, k=args.k)
        lexicon = methods_board(model=model, dataset=dataset, language=language, scorer="lexicon",
                                perplexity_scorer=perplexity, k=args.k)
        by_job = {row.job.pk: row for row in lexicon.rows}
        lines = []
        for row in board.rows:
            if row.method not in args.methods:
                continue
            lex = by_job.get(row.job.pk)
            emt = row.cells.get("emt", Cell())
            lines.append([
                row.label, interval(emt), fmt(row.cells.get("tp", Cell()).value),
                paired(row.vs_none.get("emt")) if not row.is_baseline else "(baseline)",
                str(row.vs_none["emt"].n if "emt" in row.vs_none else emt.n),
                fmt(lex.cells.get("emt", Cell()).value) if lex else "–",
                (paired(lex.vs_none.get("emt")) if not row.is_baseline else "(baseline)") if lex else "–",
                interval(row.cells.get("ppl", Cell()), 1), fmt(row.cells.get("dist-2", Cell()).value),
                job_seconds(row.job),
            ])
        print(f"\n### {language.english_name} ({code}) — {args.model}, toxic split, k={board.k}, "
              f"trained = {trained}, PPL = {perplexity}")
        print_table(header, lines, markdown=args.markdown)
        for note in board.notes:
            print(f"note: {note}")
    if problems:
        print("\nMethods without results:")
        for method, problem in problems.items():
            print(f"- {method}: {problem}")
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load {os.getloadavg()}")


def print_table(header: list[str], lines: list[list[str]], *, markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, *lines]:
        print("  ".join(value.ljust(width) for value, width in zip(line, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m", help="a packaged model (also the perplexity model)")
    parser.add_argument("--dataset", default="rtp-lx")
    parser.add_argument("--languages", nargs="+", default=["en", "ar", "hi", "ru", "zh-Hans"])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--prompts", type=int, default=12, help="toxic prompts per language")
    parser.add_argument("--fewer-prompts", nargs="*", default=[], metavar="METHOD=N",
                        help="fewer prompts (a prefix of the same sample) for slow methods")
    parser.add_argument("--variants", nargs="*", default=[], metavar="METHOD:KEY=VALUE[,KEY=VALUE]",
                        help="extra jobs of a method with non-default parameters (own rows in the tables)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--scorer-name", default="rtp-lx-e5", help="the trained scorer's run name")
    parser.add_argument("--report-only", action="store_true", help="print the tables of the jobs already run")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    problems = {} if args.report_only else run_jobs(args)
    if args.report_only:
        problems = {m: f"not run: {SKIPPED[m]}" for m in args.methods if m in SKIPPED}
    report(args, problems)


if __name__ == "__main__":
    main()
