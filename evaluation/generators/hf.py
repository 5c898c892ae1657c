"""Local transformers causal LM: a model directory, a GGUF file, or a packaged model.

Sampling is ours, not `generate(do_sample=True)`: every row (prompt, sample index) draws
from its own random stream, seeded by (job seed, prompt, sample index). A prompt's samples
therefore do not depend on which other prompts share its batch, on the batch size, or on
how many times the job was resumed. Guaranteed: the same inputs, params and machine give
bit-identical text. Different batch composition changes only the padding, which can move
logits by rounding error (so, rarely, a token); the random draws themselves never change.

The sampler is the last logits processor of a greedy `generate` call: it applies
temperature and nucleus (top-p) filtering, draws the token by inverse CDF with the row's
uniform for that step, and leaves only that token finite, so greedy decoding picks it.
Detox methods' processors run before it, on raw logits, as they would with HF sampling.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
)

from evaluation import model_loading
from evaluation.generators.base import (
    GenerationHooks,
    GenerationParams,
    Generator,
    ModelConfig,
    PromptInput,
    Sample,
    chat_messages,
    check_generation_params,
    registry,
    render_plain,
    sample_seed,
)
from toxplatform.errors import ApplicationError

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def choose_device(requested: str) -> torch.device:
    if requested in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ApplicationError(f"unknown device {requested!r}", {"expected": "auto, cpu, cuda, cuda:N"}) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ApplicationError(f"device {requested!r} was asked for but CUDA is not available on this machine")
    return device


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls run natively and beat float32 (see docs/benchmarks.md)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested not in ("", "auto"):
        try:
            return DTYPES[requested]
        except KeyError:
            raise ApplicationError(f"unknown dtype {requested!r}", {"expected": "auto, " + ", ".join(DTYPES)}) from None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


class SeededNucleusSampler(LogitsProcessor):
    """Temperature + nucleus sampling with one random stream per row (see the module docstring).

    Sorting the whole vocabulary every step is what makes transformers' top-p slow on a CPU
    (49k-262k tokens x hundreds of rows). The nucleus of a trained model almost always lies in
    its top few hundred tokens, so rows are drawn from `torch.topk` of 256, then 4096
    candidates; only a row whose nucleus fits in neither (a flat distribution) is sorted in
    full. Each row's path depends on its own logits only, and every path draws exactly.
    """

    def __init__(
        self,
        row_seeds: list[int],
        prompt_length: int,
        steps: int,
        top_p: float,
        temperature: float,
        device,
        candidates: tuple[int, ...] = (256, 4096),
    ):
        uniforms = np.stack([np.random.Generator(np.random.Philox(seed)).random(steps) for seed in row_seeds])
        self.uniforms = torch.as_tensor(uniforms, dtype=torch.float32, device=device)
        self.prompt_length = prompt_length
        self.top_p = top_p
        self.temperature = temperature
        self.candidates = candidates

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length
        uniforms = self.uniforms[:, step : step + 1]
        logits = scores.float() / self.temperature
        log_total = torch.logsumexp(logits, dim=-1, keepdim=True)
        vocabulary = logits.shape[-1]
        chosen = torch.empty((logits.shape[0], 1), dtype=torch.long, device=logits.device)
        pending = torch.arange(logits.shape[0], device=logits.device)
        for width in (*self.candidates, vocabulary):
            width = min(width, vocabulary)
            if width < vocabulary:
                top_logits, top_ids = torch.topk(logits[pending], width, dim=-1, sorted=True)
            else:
                top_logits, top_ids = torch.sort(logits[pending], dim=-1, descending=True, stable=True)
            drawn, kept = self._draw((top_logits - log_total[pending]).exp(), top_ids, uniforms[pending])
            # kept == width: the nucleus may reach past these candidates; widen for those rows.
            fits = (kept.squeeze(-1) < width) | (width == vocabulary)
            chosen[pending[fits]] = drawn[fits]
            pending = pending[~fits]
            if len(pending) == 0:
                break
        only_chosen = torch.full_like(scores, float("-inf"))
        return only_chosen.scatter_(-1, chosen, 0.0)

    def _draw(self, probs, ids, uniforms):
        """Inverse-CDF draw inside the nucleus of rows sorted by probability (descending)."""
        cumulative = probs.cumsum(dim=-1)
        # The nucleus: the most likely tokens whose mass *before* them is below top_p
        # (the same set as transformers' TopPLogitsWarper; the first token is always kept).
        kept = ((cumulative - probs) < self.top_p).sum(dim=-1, keepdim=True).clamp(min=1)
        mass = cumulative.gather(-1, kept - 1)
        position = torch.minimum(torch.searchsorted(cumulative, uniforms * mass), kept - 1)
        return ids.gather(-1, position), kept


@registry.register
class HFGenerator(Generator):
    name = model_loading.LOCAL_BACKEND
    label = "transformers (local directory or GGUF file)"
    has_local_model = True

    @classmethod
    def fingerprint_of(cls, config: ModelConfig) -> str:
        directory, gguf_file = model_loading.local_model_files(config.location, config.gguf_file)
        return model_loading.fingerprint_model(directory, gguf_file)

    @classmethod
    def recheck_fingerprint_on_submit(cls, config: ModelConfig) -> bool:
        # A packaged model is converted on first load and cannot change under its package version.
        return not config.location.startswith(model_loading.PACKAGE_PREFIX)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        # Path problems are reported before anything heavy is imported or loaded.
        self.directory, self.gguf_file = model_loading.local_model_files(config.location, config.gguf_file)
        self.device = choose_device(config.device)
        self.dtype = choose_dtype(config.dtype, self.device)
        extra = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.directory, **extra)
            self.model = AutoModelForCausalLM.from_pretrained(
                self.directory,
                dtype=self.dtype,
                device_map=str(self.device) if self.device.type == "cuda" else None,
                **extra,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            where = self.directory / self.gguf_file if self.gguf_file else self.directory
            raise ApplicationError(f"cannot load model from {where}: {exc}") from exc
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if config.use_chat_template and not self.tokenizer.chat_template:
            raise ApplicationError(
                f"model {config.name!r} is set to use a chat template, but its tokenizer has none",
                {"fix": "turn off use_chat_template for this model"},
            )
        self.stop_ids = self._stop_token_ids()
        self._fingerprint = ""

    def fingerprint(self) -> str:
        if not self._fingerprint:
            self._fingerprint = model_loading.fingerprint_model(self.directory, self.gguf_file)
        return self._fingerprint

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --- prompts -------------------------------------------------------------------
    def _stop_token_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def _chat_text(self, prompt: PromptInput) -> str:
        try:
            return self.tokenizer.apply_chat_template(chat_messages(prompt), tokenize=False, add_generation_prompt=True)
        except Exception:  # jinja raises its own errors: some templates refuse a system role
            if not prompt.system:
                raise
            merged = PromptInput(text=render_plain(prompt), language=prompt.language)
            return self.tokenizer.apply_chat_template(chat_messages(merged), tokenize=False, add_generation_prompt=True)

    def encode(self, prompts: list[PromptInput]) -> list[list[int]]:
        """Token ids per prompt, as the model will see them (chat template applied if set)."""
        if self.uses_chat_template:
            texts = [self._chat_text(p) for p in prompts]
            encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        else:
            encoded = self.tokenizer([render_plain(p) for p in prompts], add_special_tokens=True)["input_ids"]
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        return [ids if ids else [start] for ids in encoded]

    # --- generation ----------------------------------------------------------------
    def generate(
        self, prompts: list[PromptInput], params: GenerationParams, hooks: GenerationHooks | None = None
    ) -> list[list[Sample]]:
        check_generation_params(params)
        hooks = hooks or GenerationHooks()
        encoded = self._fit_context(self.encode(prompts), params.max_new_tokens)
        greedy = params.temperature == 0
        # Greedy samples are all the same: decode once, copy k times.
        draws = 1 if greedy else params.k
        rows = [
            (prompt_index, sample_index, sample_seed(params.seed, prompts[prompt_index], sample_index))
            for prompt_index in range(len(prompts))
            for sample_index in range(draws)
        ]
        # Longest prompts first: batches of similar length waste less on padding, and a
        # batch too large for memory fails on the first call.
        rows.sort(key=lambda row: (-len(encoded[row[0]]), row[0], row[1]))
        rows_per_batch = max(1, params.batch_size) * draws
        results: list[list[Sample | None]] = [[None] * params.k for _ in prompts]
        for start in range(0, len(rows), rows_per_batch):
            batch = rows[start : start + rows_per_batch]
            for (prompt_index, sample_index, _), sample in zip(batch, self._generate_rows(batch, encoded, params, hooks)):
                targets = range(params.k) if greedy else [sample_index]
                for target in targets:
                    results[prompt_index][target] = Sample(sample.text, sample.token_count)
        return results

    def _fit_context(self, encoded: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        """Keep the end of prompts longer than the context window minus the new tokens."""
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if not limit:
            return encoded
        room = max(1, limit - max_new_tokens)
        return [ids[-room:] for ids in encoded]

    def _generate_rows(self, rows, encoded, params: GenerationParams, hooks: GenerationHooks) -> list[Sample]:
        try:
            return self._generate_batch(rows, encoded, params, hooks)
        except torch.OutOfMemoryError:
            if len(rows) == 1:
                raise
            # Each row has its own random stream, so splitting the batch keeps the text.
            torch.cuda.empty_cache()
            half = len(rows) // 2
            logger.warning("out of memory with %d sequences per batch; retrying with %d", len(rows), half)
            return self._generate_rows(rows[:half], encoded, params, hooks) + self._generate_rows(
                rows[half:], encoded, params, hooks
            )

    def _generate_batch(self, rows, encoded, params: GenerationParams, hooks: GenerationHooks) -> list[Sample]:
        width = max(len(encoded[prompt_index]) for prompt_index, _, _ in rows)
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, (prompt_index, _, _) in enumerate(rows):
            ids = encoded[prompt_index]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        processors = LogitsProcessorList(hooks.logits_processors)
        if params.temperature > 0:
            processors.append(
                SeededNucleusSampler(
                    [seed for _, _, seed in rows], width, params.max_new_tokens, params.top_p, params.temperature, self.device
                )
            )
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                generation_config=self._generation_config(params),
                logits_processor=processors,
            )
        return self._decode(output[:, width:].tolist())

    def _generation_config(self, params: GenerationParams) -> GenerationConfig:
        # Everything that shapes the text is set here, so the model's own generation
        # defaults (repetition penalty, top-k, ...) cannot slip in.
        return GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=params.max_new_tokens,
            min_new_tokens=params.min_new_tokens or None,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            temperature=1.0,
            top_p=1.0,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.stop_ids) or None,
            bos_token_id=self.tokenizer.bos_token_id,
        )

    def _decode(self, new_tokens: list[list[int]]) -> list[Sample]:
        kept = []
        for ids in new_tokens:
            end = next((i for i, token in enumerate(ids) if token in self.stop_ids), len(ids))
            kept.append(ids[:end])
        texts = self.tokenizer.batch_decode(kept, skip_special_tokens=True)
        return [Sample(text=text, token_count=len(ids)) for text, ids in zip(texts, kept)]

