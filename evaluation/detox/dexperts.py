"""DExperts (Liu et al., ACL 2021) / LM arithmetic (Dekoninck et al., ICLR 2024).

Next-token logits z = z_base + alpha * (z_expert − z_anti), with a non-toxic expert and a
toxic anti-expert that share the base model's tokenizer. As alisawuffles/DExperts does, the
base logits are first nucleus-filtered (filter_top_p 0.9: tokens outside the base's nucleus
stay impossible); filter_top_p 1 is the plain formula. The job's own top-p / temperature
sampling then draws from z.

A logits processor runs the two extra models step by step, each with its own KV cache: the
first call of a batch reads the whole (left-padded) prompt, every later call one new token.
It learns the attention mask from a pre-hook on the base model. Experts are given as a
ModelSpec name or a local model path; the worker loads them once with the base model's dtype
and device. create_job refuses experts whose tokenizer differs from the base's.
"""
from __future__ import annotations

from pathlib import Path

from evaluation.detox.anatomy import forward_inputs
from evaluation.detox.base import DetoxMethod, registry
from toxplatform.errors import ApplicationError
from toxplatform.params import Param, ParamSchema

ROLES = ("expert", "anti_expert")


def nucleus_filter(scores, top_p: float):
    """Logits outside the top_p nucleus set to -inf (the first token always stays)."""
    import torch

    if top_p >= 1:
        return scores
    sorted_logits, order = torch.sort(scores, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    outside = (probs.cumsum(dim=-1) - probs) >= top_p
    return scores.masked_fill(outside.scatter(-1, order, outside), float("-inf"))


def cache_argument(model) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _model_files(name: str) -> tuple[Path, str]:
    """(directory, gguf file) of a ModelSpec name or a local path, checked."""
    from evaluation.generators import backend
    from evaluation.model_loading import local_model_files
    from evaluation.models import ModelSpec

    if "/" in name or name.startswith(("~", ".")):
        # A path: local_model_files resolves it inside the allowed model folders or refuses it.
        return local_model_files(name)
    spec = ModelSpec.objects.filter(name=name).first()
    if spec is None:
        raise ApplicationError(f"unknown model {name!r}: neither a model spec name nor a path")
    if not backend(spec.backend).has_local_model:
        raise ApplicationError(f"model {name!r} is an HTTP endpoint: DExperts needs local weights")
    return local_model_files(spec.location, spec.gguf_file)


def _vocabulary(directory: Path, gguf_file: str) -> dict:
    from transformers import AutoTokenizer

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    return AutoTokenizer.from_pretrained(directory, **extra).get_vocab()


class ExpertsProcessor:
    """z = filter(z_base) + alpha * (z_expert − z_anti), experts run with their own KV caches."""

    def __init__(self, method: DExperts, experts: dict, state: dict):
        self.method, self.experts, self.state = method, experts, state
        self.caches: dict = {}

    def _next_logits(self, model, input_ids, mask):
        import torch

        role_cache = self.caches.get(id(model))
        with torch.inference_mode():
            if role_cache is None:  # first step of a batch: the whole prompt
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True)
            else:
                positions = mask.sum(-1, keepdim=True) - 1
                out = model(input_ids=input_ids[:, -1:], attention_mask=mask, position_ids=positions,
                            use_cache=True, **{cache_argument(model): role_cache})
        # transformers 5.2x calls the KV cache `cache`; earlier releases `past_key_values`.
        self.caches[id(model)] = out.cache if hasattr(out, "cache") else out.past_key_values
        return out.logits[:, -1, :].float()

    def __call__(self, input_ids, scores):
        import torch

        if self.state.pop("new_batch", False):
            self.caches = {}
        mask = self.state.get("mask")
        if mask is None or mask.shape != input_ids.shape:
            mask = torch.ones_like(input_ids)
        expert = self._next_logits(self.experts["expert"].model, input_ids, mask.to(input_ids.device))
        anti = self._next_logits(self.experts["anti_expert"].model, input_ids, mask.to(input_ids.device))
        base = nucleus_filter(scores, self.method.params["filter_top_p"])
        width = min(base.shape[-1], expert.shape[-1], anti.shape[-1])
        # Columns past a smaller model's vocabulary are padding rows of the bigger embedding.
        steer = torch.zeros_like(base)
        steer[:, :width] = self.method.params["alpha"] * (expert[:, :width] - anti[:, :width]).to(base)
        return base + steer


@registry.register
class DExperts(DetoxMethod):
    name = "dexperts"
    summary = "Logits of the base plus alpha * (non-toxic expert − toxic anti-expert) (Liu et al., 2021)"
    requires_local_model = True
    parameters = ParamSchema(
        Param("expert", str, None, required=True, max_length=1000, single_line=True,
              help="The non-toxic expert: a model spec name or a local model path"),
        Param("anti_expert", str, None, required=True, max_length=1000, single_line=True,
              help="The toxic anti-expert: a model spec name or a local model path"),
        Param("alpha", float, 2.0, minimum=0, maximum=100, help="Weight of (expert − anti-expert) (paper: 2.0)"),
        Param("filter_top_p", float, 0.9, minimum=0, maximum=1, exclusive_minimum=True,
              help="Nucleus filter on the base logits before adding (reference: 0.9; 1 = none)"),
    )

    def __init__(self, **params):
        super().__init__(**params)
        self._experts: dict = {}

    def check(self, params: dict) -> dict[str, str]:
        if params["expert"].strip() == params["anti_expert"].strip():
            return {"anti_expert": "must be another model than the expert"}
        return {}

    def submit_problems(self, *, model, dataset, languages) -> list[str]:
        from evaluation.model_loading import local_model_files

        try:
            base = _vocabulary(*local_model_files(model.location, model.gguf_file))
        except (ApplicationError, OSError, ValueError) as error:
            return [f"cannot read the tokenizer of {model.name!r}: {error}"]
        problems = []
        for role in ROLES:
            try:
                vocabulary = _vocabulary(*_model_files(self.params[role]))
            except (ApplicationError, OSError, ValueError) as error:
                problems.append(f"{role}: {error}")
                continue
            if vocabulary != base:
                problems.append(f"{role} {self.params[role]!r} does not share the tokenizer of {model.name!r} "
                                f"({len(vocabulary)} vs {len(base)} tokens or other ids): DExperts adds their logits "
                                "token by token")
        return problems

    def experts_for(self, generator) -> dict:
        """The expert and anti-expert generators, loaded once (the base's dtype and device)."""
        from evaluation.generators import load_generator

        if not self._experts:
            for role in ROLES:
                directory, gguf_file = _model_files(self.params[role])
                self._experts[role] = load_generator({
                    "name": f"dexperts-{role}", "location": str(directory / gguf_file if gguf_file else directory),
                    "dtype": str(generator.dtype).removeprefix("torch."), "device": str(generator.device),
                })
            base_vocabulary = generator.tokenizer.get_vocab()
            for role, expert in self._experts.items():
                if expert.tokenizer.get_vocab() != base_vocabulary:
                    raise ApplicationError(f"{role} {self.params[role]!r} does not share the base model's tokenizer")
        return self._experts

    def install(self, generator, ctx) -> None:
        experts = self.experts_for(generator)
        state: dict = {}

        def watch_mask(module, args, kwargs):
            input_ids, mask, prefill = forward_inputs(args, kwargs)
            if input_ids is not None:
                state["mask"] = mask
                if prefill:
                    state["new_batch"] = True

        ctx.forward_pre_hook(generator.model, watch_mask, with_kwargs=True)
        ctx.logits_processor(ExpertsProcessor(self, experts, state))
        self.notes["experts"] = {role: expert.fingerprint()[:16] for role, expert in experts.items()}
