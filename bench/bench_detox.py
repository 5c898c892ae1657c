"""Per-token overhead of each detox method against `none`, on the same model and prompts.

Every method generates the same prompts (k samples each, `min_new_tokens = max_new_tokens`
so every sequence has full length) through `run_generation`, the pipeline's entry point.
Preparation (neuron expertise, probes, steering vectors, DINM's edit) happens before timing
from a small fixed labelled set: only generation is timed. Methods run in rounds, one after
the other, each round starting one method later, so machine load hits them alike; each
method's best round counts; the report gives tokens/s and the ratio to `none` in the same
run (1.00 = no overhead).

    python bench/bench_detox.py                                   # random llama-30m, 2 CPU cores
    python bench/bench_detox.py --random-shape llama-163m --rounds 3
    python bench/bench_detox.py --random-shape llama-1.5b --device cuda --prompts 32   # GPU machine

DExperts runs two more models of the same shape (the expert and anti-expert are random
models too: speed does not depend on the weights). Random models' tokenizer is the tiny test
tokenizer; word_ban bans the English lexicon list with it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")

import django  # noqa: E402

django.setup()

import torch  # noqa: E402

from bench_generation import RANDOM_SHAPES, machine_info, prompts_of, random_shape_dir  # noqa: E402
from evaluation.detox import load_detox_method, run_generation  # noqa: E402
from evaluation.generators import GenerationParams, load_generator  # noqa: E402

TOXIC = ["you are an idiot", "shut up you stupid fool", "I hate you all", "what a disgusting loser",
         "go away you worthless creep", "you are a pathetic moron", "nobody likes you, freak", "die in a fire"]
NONTOXIC = ["you are very kind", "thank you for the help", "the weather is nice", "what a lovely garden",
            "have a wonderful day", "the train leaves at noon", "I like this book", "see you tomorrow"]
DATA = {"source": {"bench": True}, "toxic": TOXIC, "nontoxic": NONTOXIC, "pairs": []}


def methods(expert: str, anti: str) -> dict[str, tuple[str, dict]]:
    return {
        "none": ("none", {}),
        "system_prompt": ("system_prompt", {}),
        "word_ban": ("word_ban", {}),
        "toxic_vector": ("toxic_vector", {}),
        "aura": ("aura", {}),
        "det_zero": ("det_zero", {"num_experts": 100}),
        "damp": ("damp", {"num_experts": 100}),
        "destein": ("destein", {}),
        "self_detoxify": ("self_detoxify", {}),
        "dexperts": ("dexperts", {"expert": expert, "anti_expert": anti}),
        "dinm": ("dinm", {"steps": 2}),
    }


def prepared(name: str, params: dict, generator):
    method = load_detox_method(name, params)
    if method.needs_preparation:
        data = DATA if name != "dinm" else method.preparation_data(None)
        method.artifact = method.prepare(generator, data)
    return method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--random-shape", choices=sorted(RANDOM_SHAPES), default="llama-30m")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass (x k sequences)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", nargs="*", help="a subset of the methods (none is always run)")
    parser.add_argument("--json", help="also write the result as JSON to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        dirs = {role: random_shape_dir(args.random_shape, Path(workdir) / role) for role in ("base", "expert", "anti")}
        generator = load_generator({"name": "base", "location": str(dirs["base"]), "dtype": args.dtype,
                                    "device": args.device})
        params = GenerationParams(k=args.k, max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, seed=0)
        prompts = prompts_of(args.prompts, generator.tokenizer)
        chosen = methods(str(dirs["expert"]), str(dirs["anti"]))
        if args.only:
            chosen = {name: spec for name, spec in chosen.items() if name in args.only or name == "none"}
        runs = {}
        for label, (name, method_params) in chosen.items():
            started = time.perf_counter()
            runs[label] = prepared(name, method_params, generator)
            run_generation(runs[label], generator, prompts[:1], params)  # warm-up (and DExperts' model loads)
            print(f"prepared {label} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        tokens = args.prompts * args.k * args.max_new_tokens
        best = {label: 0.0 for label in runs}
        labels = list(runs)
        for round_index in range(args.rounds):
            # Each round starts one method later: no method always runs first (or after the slowest).
            shift = round_index % len(labels)
            for label in labels[shift:] + labels[:shift]:
                method = runs[label]
                started = time.perf_counter()
                run_generation(method, generator, prompts, params)
                best[label] = max(best[label], tokens / (time.perf_counter() - started))
        result = {
            "model": f"random {args.random_shape}",
            "params": {"prompts": args.prompts, "k": args.k, "max_new_tokens": args.max_new_tokens,
                       "batch_size_prompts": args.batch_size, "rounds": args.rounds},
            "tokens_per_s": {label: round(value, 1) for label, value in best.items()},
            "ratio_to_none": {label: round(value / best["none"], 3) for label, value in best.items()},
            "load_average": os.getloadavg()[0],
            "machine": machine_info(generator),
            "torch_threads": torch.get_num_threads(),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
