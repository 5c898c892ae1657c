"""Where the detox methods hook into a causal LM, for the layouts the platform supports.

Two layouts cover GPT-2 and the Llama family (Llama, Mistral, Qwen2/3, Gemma 1-3, Phi-3):
- MLP neurons = the input of the MLP's output projection (`mlp.down_proj`; GPT-2 `mlp.c_proj`);
- the MLP's linear modules, whose outputs apple/ml-aura hooks (`mlp.gate_proj`, `up_proj`,
  `down_proj`; Phi-3 `gate_up_proj`; GPT-2 `mlp.c_fc`, `mlp.c_proj`);
- concatenated attention heads = the input of the attention output projection
  (`self_attn.o_proj`; GPT-2 `attn.c_proj`), [batch, seq, heads * head_dim]; its output is
  where LizLizLi/DeStein reads and steers, split into as many equal slices as heads;
- the residual stream = a decoder layer's output.
`architecture_problem(spec)` says at submit time, from config.json / GGUF metadata (no weights
are read), when a model is of another type.
"""
from __future__ import annotations

import json
from pathlib import Path

from evaluation.detox.base import decoder_layers
from toxplatform.errors import ApplicationError

# transformers model_type (config.json) or GGUF general.architecture -> supported.
SUPPORTED_MODEL_TYPES = frozenset({
    "gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text", "phi3", "olmo2",
})
# Packaged models (model_loading.PACKAGED_MODELS) and their model_type.
PACKAGED_TYPES = {"gemma-3-270m": "gemma3_text", "smollm2-135m-instruct": "llama"}


def mlp_neurons(layer):
    """The module whose input is the MLP neurons [batch, seq, intermediate]."""
    mlp = getattr(layer, "mlp", None)
    for name in ("down_proj", "c_proj"):
        if mlp is not None and hasattr(mlp, name):
            return getattr(mlp, name)
    raise ApplicationError(f"cannot find the MLP output projection of {type(layer).__name__}")


# The MLP's linear modules in the order apple/ml-aura lists them (whichever the layer has).
MLP_LINEAR_NAMES = ("c_fc", "gate_proj", "up_proj", "gate_up_proj", "c_proj", "down_proj")


def mlp_linear_modules(layer) -> list[tuple[str, object]]:
    """[(name, module)] of the MLP's linear modules, e.g. [("mlp.c_fc", ...), ("mlp.c_proj", ...)]."""
    mlp = getattr(layer, "mlp", None)
    found = [(f"mlp.{name}", getattr(mlp, name)) for name in MLP_LINEAR_NAMES if hasattr(mlp, name)]
    if not found:
        raise ApplicationError(f"cannot find the MLP's linear modules of {type(layer).__name__}")
    return found


def attention_output(layer):
    """The module whose input is the concatenated attention heads [batch, seq, heads * head_dim]."""
    for attention, projection in (("self_attn", "o_proj"), ("attn", "c_proj")):
        module = getattr(getattr(layer, attention, None), projection, None)
        if module is not None:
            return module
    raise ApplicationError(f"cannot find the attention output projection of {type(layer).__name__}")


def in_features(module) -> int:
    """Input width of a Linear or GPT-2 Conv1D (whose weight is [in, out])."""
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.in_features
    return module.weight.shape[0]


def out_features(module) -> int:
    """Output width of a Linear or GPT-2 Conv1D."""
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.out_features
    return module.weight.shape[1]


def head_count(model) -> int:
    config = getattr(model.config, "text_config", None) or model.config
    for name in ("num_attention_heads", "n_head"):
        if getattr(config, name, None):
            return int(getattr(config, name))
    raise ApplicationError(f"cannot find the number of attention heads of {type(model).__name__}")


def head_layout(model, where: str = "input") -> tuple[int, int]:
    """(heads, width of one head's slice) of the attention output projection's input (the
    concatenated heads), or with where="output" of its output cut into as many equal slices."""
    heads = head_count(model)
    module = attention_output(decoder_layers(model)[0])
    width = in_features(module) if where == "input" else out_features(module)
    if width % heads:
        raise ApplicationError(f"the attention output projection's {where} ({width}) does not split into {heads} heads")
    return heads, width // heads


def layer_indexes(model, chosen: list[int] | None) -> list[int]:
    """The chosen decoder layers (negative counts from the end), or all; bad indexes are an error."""
    count = len(decoder_layers(model))
    if chosen is None:
        return list(range(count))
    bad = [i for i in chosen if not -count <= i < count]
    if bad:
        raise ApplicationError(f"layers {bad} do not exist: the model has {count} decoder layers (0 to {count - 1})")
    return sorted({i % count for i in chosen})


def _config(spec) -> dict | None:
    """A local model directory's config.json (None: a GGUF file, a package, unreadable)."""
    path = Path(spec.location or "").expanduser()
    if getattr(spec, "gguf_file", "") or path.is_file():
        return None
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def model_type(spec) -> str | None:
    """The model_type of a ModelSpec's local model without loading weights (None: unknown)."""
    from evaluation.model_loading import PACKAGE_PREFIX

    location = spec.location or ""
    if location.startswith(PACKAGE_PREFIX):
        return PACKAGED_TYPES.get(location[len(PACKAGE_PREFIX):])
    path = Path(location).expanduser()
    gguf_file = getattr(spec, "gguf_file", "") or (path.name if path.is_file() else "")
    if gguf_file:
        try:
            from gguf import GGUFReader

            directory = path.parent if path.is_file() else path
            field = GGUFReader(directory / gguf_file).fields.get("general.architecture")
            return bytes(field.parts[field.data[0]]).decode() if field is not None else None
        except (OSError, ValueError, KeyError, IndexError):
            return None
    config = _config(spec)
    return config.get("model_type") if config else None


def layer_count(spec) -> int | None:
    """Decoder layers of a local model directory, from its config (None: unknown)."""
    config = _config(spec) or {}
    config = config.get("text_config") or config
    count = config.get("num_hidden_layers") or config.get("n_layer")
    return count if isinstance(count, int) else None


def layers_problem(spec, chosen: list[int] | None) -> str | None:
    count = layer_count(spec)
    if chosen is None or count is None:
        return None
    bad = [i for i in chosen if not -count <= i < count]
    if bad:
        return f"layers {bad} do not exist: model {spec.name!r} has {count} decoder layers (0 to {count - 1})"
    return None


def architecture_problem(spec, method: str) -> str | None:
    kind = model_type(spec)
    if kind is None or kind in SUPPORTED_MODEL_TYPES:
        return None
    return (
        f"detox method {method!r} hooks into GPT-2 / Llama-family layers; model {spec.name!r} is a {kind!r} "
        f"model (supported: {', '.join(sorted(SUPPORTED_MODEL_TYPES))})"
    )


def encode_texts(generator, texts: list[str], max_tokens: int) -> dict:
    """Plain texts as a right-padded batch (positions start at 0 on every row), truncated."""
    tokenizer = generator.tokenizer
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt", padding_side="right"
    )
    ids, mask = batch["input_ids"], batch["attention_mask"]
    empty = mask.sum(1) == 0
    if empty.any():  # an empty text still needs one token to be read
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        ids[empty, 0], mask[empty, 0] = start, 1
    device = next(generator.model.parameters()).device
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def pool_tokens(values, mask, pool: str, last_tokens: int = 1):
    """[batch, seq, features] -> [batch, features] over the real tokens of each row (right padding).

    pool: "max" (AURA), "mean" (toxic-vector probe), "last" (mean of the last `last_tokens`).
    """
    import torch

    real = mask.bool().unsqueeze(-1)
    if pool == "max":
        return values.masked_fill(~real, float("-inf")).amax(dim=1)
    if pool == "mean":
        return (values * real).sum(dim=1) / real.sum(dim=1).clamp(min=1)
    lengths = mask.sum(dim=1)
    positions = torch.arange(values.shape[1], device=values.device).unsqueeze(0)
    window = (positions < lengths.unsqueeze(1)) & (positions >= (lengths - last_tokens).clamp(min=0).unsqueeze(1))
    window = window.unsqueeze(-1)
    return (values * window).sum(dim=1) / window.sum(dim=1).clamp(min=1)


def capture(generator, texts: list[str], modules: list, *, pool: str, where: str = "input", last_tokens: int = 1,
            max_tokens: int = 128, batch_size: int = 8) -> list:
    """Pooled activations of each module for each text: one float32 CPU tensor
    [len(texts), features] per module. where="input": what the module receives (MLP neurons,
    concatenated heads); "output": what it returns (a decoder layer's residual stream)."""
    import torch

    found: list[list] = [[] for _ in modules]
    current: dict = {}

    def keeper(index):
        def pre_hook(module, args):
            current[index] = args[0]

        def hook(module, args, output):
            current[index] = output[0] if isinstance(output, tuple) else output

        return pre_hook if where == "input" else hook

    handles = [
        module.register_forward_pre_hook(keeper(i)) if where == "input" else module.register_forward_hook(keeper(i))
        for i, module in enumerate(modules)
    ]
    try:
        for start in range(0, len(texts), batch_size):
            batch = encode_texts(generator, texts[start:start + batch_size], max_tokens)
            current.clear()
            with torch.inference_mode():
                generator.model(**batch, use_cache=False)
            for index in range(len(modules)):
                pooled = pool_tokens(current[index].float(), batch["attention_mask"], pool, last_tokens)
                found[index].append(pooled.cpu())
    finally:
        for handle in handles:
            handle.remove()
    return [torch.cat(parts) for parts in found]


def forward_inputs(args, kwargs):
    """(input_ids, attention_mask, prefill) of a causal LM's forward call seen by a pre-hook.

    prefill: the first pass of a generate call (the whole prompt; later passes bring one new
    token each with the cache). generate leaves out attention_mask when nothing is padded.
    """
    import torch

    input_ids = kwargs.get("input_ids", args[0] if args else None)
    if input_ids is None:
        return None, None, False
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    prefill = cache is None or cache.get_seq_length() == 0
    mask = kwargs.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(input_ids)
    return input_ids, mask, prefill


class PromptLanguages:
    """The language of each row of a generate batch, recognised by its prompt tokens.

    A method notes its prompts in transform_prompt (`note`) and, in a pre-hook on the model at
    the prefill pass, looks up the rows (`of_rows`, each row's unpadded tokens): None for a row
    it never saw (generate called without transform_prompt).
    """

    def __init__(self):
        self._pending: dict = {}  # prompts noted, not encoded yet
        self._by_tokens: dict[tuple, str] = {}  # prompt tokens -> language

    def note(self, prompt) -> None:
        self._pending[prompt] = None

    def of_rows(self, generator, rows: list[list[int]]) -> list[str | None]:
        if self._pending:
            prompts = list(self._pending)
            for prompt, ids in zip(prompts, generator.encode(prompts)):
                self._by_tokens.setdefault(tuple(ids), prompt.language)
            self._pending.clear()
        return [self._by_tokens.get(tuple(row)) for row in rows]

    def seen(self) -> list[str]:
        """The languages of every prompt recognised so far, sorted."""
        return sorted(set(self._by_tokens.values()))
