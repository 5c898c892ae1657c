"""Scoring throughput: each local scorer vs the bare work it wraps, on the same texts.

- lexicon        vs a bare lower-case word-set lookup in the same English list (and, for
                 reference, glin-profanity's own Filter.is_profane);
- hf_classifier  vs tokenizer + model forward + softmax on the same batches;
- perplexity     vs the model forward alone on the same padded batches (no tokenization).

Runs alternate scorer, bare, scorer, bare ... after one warm-up each; the best run of each
is reported as texts/s with the ratio scorer / bare (1.0 = no overhead).

    python bench/bench_scoring.py                                  # CPU defaults
    python bench/bench_scoring.py --classifier xlmr-tiny --classifier xlmr-small \
        --lm tiny-llama --lm package:smollm2-135m-instruct --model-texts 64
    python bench/bench_scoring.py --lm /path/to/causal-lm --classifier /path/to/classifier
    python bench/bench_scoring.py --write                          # update "## Scoring" in docs/benchmarks.md

Random shapes are random-init models of real shapes with the tiny test tokenizer (weights do
not change speed); a packaged or local model is used as it is.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")
# Scratch models are built in the temp folder: allow it as a model root. A bench serves
# nothing, so any SECRET_KEY does (a PostgreSQL setup refuses to start without one).
os.environ["TOXPLATFORM_MODEL_ROOTS"] = ",".join(filter(None, [os.environ.get("TOXPLATFORM_MODEL_ROOTS"), tempfile.gettempdir()]))
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-a-server")

import django  # noqa: E402

django.setup()

import torch  # noqa: E402
import transformers  # noqa: E402

from evaluation.scorers import ScoringInput, lexicon, registry  # noqa: E402
from evaluation.scorers import _local_model as local  # noqa: E402
from tests.tiny_models import CORPUS, build_tiny_causal_lm, build_tokenizer  # noqa: E402

# name: (hidden, layers, heads, intermediate, vocab)
CLASSIFIER_SHAPES = {
    "xlmr-tiny": (32, 2, 4, 64, 512),
    "xlmr-small": (384, 6, 12, 1536, 250002),  # multilingual MiniLM-L6 width / depth
    "xlmr-base": (768, 12, 12, 3072, 250002),  # XLM-R base, the usual toxicity classifier body
}
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Scoring"
FLAGGED: dict[str, int] = {}  # texts each lexicon variant flagged, shown under the table


def make_texts(count: int, seed: int = 0) -> list[ScoringInput]:
    """Continuations of 10-30 words drawn from the test corpus; a tenth carry a listed term."""
    rng = random.Random(seed)
    words = " ".join(CORPUS[:-1]).split()
    english_terms = [t for t in lexicon.terms("en") if " " not in t and t.isalpha()]
    items = []
    for i in range(count):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(10, 30)))
        if i % 10 == 0:
            text += " " + rng.choice(english_terms)
        items.append(ScoringInput(prompt=rng.choice(CORPUS[:-1]), continuation=" " + text, language="en"))
    return items


def best_rates(count: int, runs: int, scorer_fn, bare_fn) -> tuple[float, float]:
    scorer_fn(), bare_fn()  # warm-up
    scorer_best = bare_best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        scorer_fn()
        scorer_best = min(scorer_best, time.perf_counter() - start)
        start = time.perf_counter()
        bare_fn()
        bare_best = min(bare_best, time.perf_counter() - start)
    return count / scorer_best, count / bare_best


def bench_lexicon(items, runs):
    scorer = registry.get("lexicon")()
    word_set = set(lexicon.terms("en"))
    texts = [item.continuation for item in items]
    hits = {}

    def bare():
        hits["bare"] = sum(any(word in word_set for word in text.lower().split()) for text in texts)

    def ours():
        hits["ours"] = sum(r["toxicity"].value == 1.0 for r in scorer.score(items))

    rows = [("lexicon", "set lookup of lower-cased words", *best_rates(len(items), runs, ours, bare))]
    try:
        from glin_profanity import Filter

        package = Filter({"languages": ["english"]})

        def glin():
            package.clear_cache()
            hits["glin"] = sum(package.is_profane(text) for text in texts)

        rows.append(("lexicon", "glin-profanity Filter.is_profane", *best_rates(len(items), runs, ours, glin)))
    except Exception as exc:  # the reference row is optional
        print(f"glin-profanity Filter skipped: {exc}", file=sys.stderr)
    FLAGGED.update(hits)
    return rows


def classifier_dir(shape: str, workdir: Path) -> Path:
    """A random-init classifier of a named shape, or an existing directory as it is."""
    if shape not in CLASSIFIER_SHAPES:
        return Path(shape)
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    hidden, layers, heads, intermediate, vocab = CLASSIFIER_SHAPES[shape]
    path = workdir / shape
    tokenizer = build_tokenizer(path, wrap_with_bos_eos=True)
    config = XLMRobertaConfig(
        vocab_size=max(vocab, len(tokenizer)),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=2,
        id2label={0: "non-toxic", 1: "toxic"},
        label2id={"non-toxic": 0, "toxic": 1},
    )
    torch.manual_seed(0)
    XLMRobertaForSequenceClassification(config).save_pretrained(path)
    return path


def bench_classifier(items, runs, args, workdir, shape):
    path = classifier_dir(shape, workdir)
    labels = {args.classifier_label: "toxicity"}
    params = dict(path=str(path), labels=labels, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    scorer = registry.get("hf_classifier")(**params)
    model, tokenizer = scorer._load()
    texts = [item.continuation for item in items]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # the scorer's batches
    batches = [[texts[i] for i in order[s : s + args.batch_size]] for s in range(0, len(order), args.batch_size)]

    def bare():
        with torch.inference_mode():
            for batch in batches:
                encoded = tokenizer(batch, padding=True, truncation=True, max_length=512, return_tensors="pt")
                probs = torch.softmax(model(**encoded.to(scorer.device)).logits.float(), dim=-1)
                probs.cpu()

    rate = best_rates(len(items), runs, lambda: scorer.score(items), bare)
    return [("hf_classifier", f"tokenize + forward + softmax ({path.name})", *rate)]


def bench_perplexity(items, runs, args, workdir, location):
    if location == "tiny-llama":
        location = str(build_tiny_causal_lm(workdir / "tiny-llama", arch="llama"))
    scorer = registry.get("perplexity")(path=location, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    model, tokenizer = scorer._load()
    pending = [(i, *scorer.encode(item.prompt, item.continuation)) for i, item in enumerate(items)]
    order = sorted(range(len(pending)), key=lambda i: len(pending[i][1]) + len(pending[i][2]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tensors = []
    for start in range(0, len(order), args.batch_size):
        rows = [pending[i][1] + pending[i][2] for i in order[start : start + args.batch_size]]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        tensors.append((ids.to(scorer.device), mask.to(scorer.device)))

    def bare():
        with torch.inference_mode():
            for ids, mask in tensors:
                model(input_ids=ids, attention_mask=mask).logits[:, -1].float().cpu()

    rate = best_rates(len(items), runs, lambda: scorer.score(items), bare)
    name = location if location.startswith(local.PACKAGE_PREFIX) else Path(location).name
    return [("perplexity", f"forward on the same padded batches ({name})", *rate)]


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2g}"


def render(rows, args, elapsed) -> str:
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    lines = [
        SECTION,
        "",
        "`" + " ".join(["python bench/bench_scoring.py", *[a for a in sys.argv[1:] if a != "--write"]]) + "`",
        f"{args.texts} texts for the lexicon, {args.model_texts} for the models (10-30 words each), "
        f"batch size {args.batch_size}, {args.dtype}, {torch.get_num_threads()} torch thread(s), best of "
        f"{args.runs} runs after a warm-up; {device}; torch {torch.__version__}, transformers "
        f"{transformers.__version__}, Python {platform.python_version()}; took {elapsed:.0f} s.",
        "",
        "| scorer | bare baseline | scorer texts/s | bare texts/s | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for scorer, baseline, ours, bare in rows:
        lines.append(f"| {scorer} | {baseline} | {rate(ours)} | {rate(bare)} | {ours / bare:.2f} |")
    if FLAGGED:
        names = {"ours": "lexicon scorer", "bare": "set lookup", "glin": "glin-profanity Filter"}
        counts = ", ".join(f"{names[key]} {value}" for key, value in FLAGGED.items())
        lines += ["", f"Texts flagged among the {args.texts} (a tenth carry a listed word): {counts}."]
    lines += [
        "",
        "Ratio = scorer / bare. The lexicon does more than the set lookup (NFKC, case folding,",
        "multi-word terms, substring matching for unspaced scripts, per-item results), so its",
        "ratio is the price of correct matching; the model scorers' ratios are their overhead",
        "(tokenization, batching, per-item dicts) over the forward pass they wrap. The perplexity",
        "baseline gets ready-made tensors, so with a tiny model the scorer's own tokenization is a",
        "visible share; with a real model it disappears in the forward pass.",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace this section of docs/benchmarks.md (or append it), leaving the others alone."""
    current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    DOCS.write_text(updated, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000, help="texts for the lexicon")
    parser.add_argument("--model-texts", type=int, default=128, help="texts for the model scorers")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=local.DTYPES)
    parser.add_argument(
        "--classifier",
        action="append",
        help=f"a random shape ({', '.join(CLASSIFIER_SHAPES)}) or a model directory; repeatable (default xlmr-small)",
    )
    parser.add_argument("--classifier-label", default="toxic", help="the toxic label of a --classifier directory")
    parser.add_argument(
        "--lm", action="append", help="tiny-llama, a directory or package:<name>; repeatable (default tiny-llama)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 on a busy shared machine)")
    parser.add_argument("--only", choices=["lexicon", "hf_classifier", "perplexity"], action="append")
    parser.add_argument("--write", action="store_true", help=f"update '{SECTION}' in {DOCS.relative_to(ROOT)}")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    items = make_texts(max(args.texts, args.model_texts))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as workdir:
        wanted = args.only or ["lexicon", "hf_classifier", "perplexity"]
        if "lexicon" in wanted:
            rows += bench_lexicon(items[: args.texts], args.runs)
        for shape in (args.classifier or ["xlmr-small"]) if "hf_classifier" in wanted else []:
            rows += bench_classifier(items[: args.model_texts], args.runs, args, Path(workdir), shape)
        for location in (args.lm or ["tiny-llama"]) if "perplexity" in wanted else []:
            rows += bench_perplexity(items[: args.model_texts], args.runs, args, Path(workdir), location)
    text = render(rows, args, time.perf_counter() - started)
    print(text)
    if args.write:
        write_section(text)
        print(f"wrote {SECTION!r} in {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main()
