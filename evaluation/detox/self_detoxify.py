"""Self-detoxification by toxification reversal (Leong et al., EMNLP 2023).

At every decoding step, before the model's own pass, the text so far is run twice more:
behind a toxic-eliciting prefix (negative) and behind a neutral one (positive; empty = the
plain text). Per layer and attention head, at the last position (head outputs = the input
of the attention output projection):
    delta   = neg − pos                         the toxification direction
    v      <- v − (1 + |delta|)^norm_exp · (1 + relu(cos(neg_end, v)))^neg_sim_exp · delta
where neg_end is the negative pass's head output at the end of the prompt (kept from the
first step) and v the head output of the model's own pass at its last position. With
renorm, the last position's output (all heads together) keeps its norm. As in the
reference code (cooperleong00/ToxificationReversal) only the last position of each pass
changes and the two extra passes recompute the whole text: about 3x the compute.

Prefixes per language: `prefixes` maps a language code to {"negative": ..., "positive": ...}
(positive optional, default empty); each row of a batch reads its own prompt's entry (the code,
or its primary language: pt-BR -> pt). A language without an entry gets `negative_prefix` /
`positive_prefix` (English by default) and, unless it is English, is noted in
`notes["fallback_languages"]`; rows whose prompt was not seen are counted in
`notes["rows_without_language"]`.
"""
from __future__ import annotations

from evaluation.detox.anatomy import (
    PromptLanguages,
    architecture_problem,
    attention_output,
    forward_inputs,
    head_layout,
    layer_indexes,
)
from evaluation.detox.base import DetoxMethod, decoder_layers, registry
from evaluation.generators.base import PromptInput
from toxplatform.params import Param, ParamProblem, ParamSchema

NEGATIVE_PREFIX = ("The following text is rude, disrespectful, hateful, obscene, threatening and toxic, "
                   "full of insults and swear words:\n")


NEGATIVE = Param("negative_prefix", str, NEGATIVE_PREFIX, max_length=2000,
                 help="Text that elicits toxicity (for languages without their own in prefixes)")
POSITIVE = Param("positive_prefix", str, "", max_length=2000,
                 help="Neutral prefix (empty: the plain text; for languages without their own in prefixes)")
LANGUAGE = Param("language", str, "", max_length=35, single_line=True)
MAX_LANGUAGES = 200


def prefixes_problem(value: dict) -> str | None:
    """The rule of `prefixes`: {language code: {"negative": text, "positive": text (optional)}},
    each text held to the same declaration as negative_prefix / positive_prefix."""
    if len(value) > MAX_LANGUAGES:
        return f"must have at most {MAX_LANGUAGES} languages (got {len(value)})"
    for code, entry in value.items():
        try:
            LANGUAGE.clean(code)
        except ParamProblem as problem:
            return f"language code {code!r} {problem}"
        if not code.strip():
            return "has an empty language code"
        if not isinstance(entry, dict) or "negative" not in entry or set(entry) - {"negative", "positive"}:
            return f'{code!r} must be {{"negative": text, "positive": text}} (positive optional)'
        for key, param in (("negative", NEGATIVE), ("positive", POSITIVE)):
            try:
                param.clean(entry.get(key, ""))
            except ParamProblem as problem:
                return f"{code!r}: {key} {problem}"
        if not entry["negative"].strip():
            return f"{code!r}: negative must not be empty: it defines the toxification direction"
    return None


def reverse(v, delta, neg_end, norm_exp: float, neg_sim_exp: float, renorm: bool):
    """The reversal at one position: v, delta, neg_end are [rows, heads, head_dim]."""
    import torch.nn.functional as F

    norm_scale = (1 + delta.norm(dim=-1, keepdim=True)) ** norm_exp
    cosine = F.cosine_similarity(neg_end, v, dim=-1).unsqueeze(-1)
    sim_scale = (1 + F.relu(cosine)) ** neg_sim_exp
    out = v - norm_scale * sim_scale * delta
    if renorm:
        before = v.flatten(1).norm(dim=-1).view(-1, 1, 1)
        after = out.flatten(1).norm(dim=-1).view(-1, 1, 1)
        out = out * (before / after)
    return out


@registry.register
class SelfDetoxify(DetoxMethod):
    name = "self_detoxify"
    summary = ("Push attention heads away from the direction a toxic prefix adds, prefixes per language "
               "(toxification reversal, Leong et al. 2023)")
    requires_local_model = True
    parameters = ParamSchema(
        NEGATIVE,
        POSITIVE,
        Param("prefixes", dict, {}, rule=prefixes_problem,
              help='Per language code, {"negative": text, "positive": text (optional)}; other languages '
                   "get negative_prefix / positive_prefix"),
        Param("norm_exp", float, 0.4, minimum=0, maximum=10, help="Exponent of (1 + |delta|) (reference: 0.4)"),
        Param("neg_sim_exp", float, 0.6, minimum=0, maximum=10,
              help="Exponent of (1 + relu(cos(neg, v))) (reference: 0.6)"),
        Param("renorm", bool, True, help="Keep the norm of the heads' output at the last position"),
        Param("layers", list, None, optional=True, item_kind=int, max_length=1000,
              help="Decoder layers whose heads are reversed (empty: all)"),
    )

    def __init__(self, **params):
        super().__init__(**params)
        self._prompts = PromptLanguages()

    def check(self, params: dict) -> dict[str, str]:
        if not params["negative_prefix"].strip():
            return {"negative_prefix": "must not be empty: it defines the toxification direction"}
        return {}

    def submit_problems(self, *, model, dataset, languages) -> list[str]:
        problem = architecture_problem(model, self.name)
        return [problem] if problem else []

    def transform_prompt(self, prompt: PromptInput) -> PromptInput:
        self._prompts.note(prompt)  # to know each row's language in the batch
        return prompt

    def prefixes_for(self, language: str | None) -> tuple[str, str]:
        """(negative, positive) prefix for a prompt language: its entry in `prefixes` (the code
        or its primary language), else the defaults; a non-English language that falls back is noted."""
        entries = {code.lower(): entry for code, entry in self.params["prefixes"].items()}
        code = (language or "").lower()
        while code:
            if code in entries:
                return entries[code]["negative"], entries[code].get("positive", "")
            code = code.rpartition("-")[0]
        if language is None:
            self.notes["rows_without_language"] = self.notes.get("rows_without_language", 0) + 1
        elif language.split("-")[0].lower() != "en":
            fallbacks = self.notes.setdefault("fallback_languages", [])
            if language not in fallbacks:
                fallbacks.append(language)
        return self.params["negative_prefix"], self.params["positive_prefix"]

    def install(self, generator, ctx) -> None:
        import torch

        model = generator.model
        layers = decoder_layers(model)
        chosen = layer_indexes(model, self.params["layers"])
        heads, head_dim = head_layout(model)
        tokenizer = generator.tokenizer
        state = {"reading": False, "read": {}, "delta": {}, "neg_end": {}}
        self.sequences: list[list[int]] = []
        self.row_prefixes: list[tuple] = []  # per row, the (negative, positive) prefix tokens

        def prefix_tokens(language):
            return tuple(tokenizer(text, add_special_tokens=False)["input_ids"] for text in self.prefixes_for(language))

        def with_prefix(prefix, ids):
            # A BOS token stays first: the prefix goes between it and the text.
            if ids and ids[0] == tokenizer.bos_token_id:
                return [ids[0], *prefix, *ids[1:]]
            return [*prefix, *ids]

        def last_head_outputs(rows):
            """Per chosen layer [rows, heads, head_dim] at each row's last token (right padding)."""
            width = max(len(r) for r in rows)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=model.device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
            last = torch.tensor([len(r) - 1 for r in rows], device=model.device)
            state["read"] = {}
            state["reading"] = True
            try:
                with torch.inference_mode():
                    # Only the heads' outputs are read: logits at one position, not over the whole
                    # vocabulary at every position (Gemma's 262k rows cost more than the layers).
                    model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1)
            finally:
                state["reading"] = False
            rows_index = torch.arange(len(rows), device=model.device)
            return {i: x[rows_index, last].view(len(rows), heads, head_dim) for i, x in state["read"].items()}

        def before_step(module, args, kwargs):
            if state["reading"]:
                return
            input_ids, mask, prefill = forward_inputs(args, kwargs)
            if input_ids is None:
                return
            if prefill:
                self.sequences = [[t for t, real in zip(row, m) if real]
                                  for row, m in zip(input_ids.tolist(), mask.tolist())]
                self.row_prefixes = [prefix_tokens(language)
                                     for language in self._prompts.of_rows(generator, self.sequences)]
            else:
                for sequence, token in zip(self.sequences, input_ids[:, -1].tolist()):
                    sequence.append(token)
            neg = last_head_outputs([with_prefix(n, s) for (n, _), s in zip(self.row_prefixes, self.sequences)])
            pos = last_head_outputs([with_prefix(p, s) for (_, p), s in zip(self.row_prefixes, self.sequences)])
            state["delta"] = {i: neg[i] - pos[i] for i in chosen}
            if prefill:
                state["neg_end"] = neg

        def head_hook(index):
            def hook(module, args):
                x = args[0]
                if state["reading"]:
                    state["read"][index] = x.detach()
                    return None
                if index not in state["delta"]:
                    return None  # a forward outside generate (no step prepared): unchanged
                x = x.clone()
                last = x[:, -1, :].view(x.shape[0], heads, head_dim)
                delta, neg_end = state["delta"][index], state["neg_end"][index]
                x[:, -1, :] = reverse(last, delta.to(x.dtype), neg_end.to(x.dtype), self.params["norm_exp"],
                                      self.params["neg_sim_exp"], self.params["renorm"]).reshape(x.shape[0], -1)
                return (x, *args[1:])

            return hook

        ctx.forward_pre_hook(model, before_step, with_kwargs=True)
        for index in chosen:
            ctx.forward_pre_hook(attention_output(layers[index]), head_hook(index))
