"""DeStein (Li et al., 2024): steer every attention head away from toxicity, weighted by a probe.

Two variants (`variant`); both average each text's activations over its last `last_tokens`
tokens (the paper: the last token; LizLizLi/DeStein: 8) and train a logistic-regression probe
per head on 80% of the texts, scored on the held-out 20% (stratified, seeded): acc_h.
- "paper" (default): per layer and head h, the head's output (the input of the attention
  output projection, viewed per head). Detox vector v_h = mean over steering pairs of
  (non-toxic − toxic) when the data file gives pairs, otherwise (a dataset split by gold
  label) mean(non-toxic) − mean(toxic), the same number for balanced pairs. A forward
  pre-hook on the projection adds alpha * acc_h * v_h to head h's output at every position
  (alpha 0.4 for GPT2-large).
- "code" (LizLizLi/DeStein): the attention output *after* the projection, cut into as many
  equal slices as heads. Direction d per layer = mean over pairs of (toxic − non-toxic) (or
  the difference of means), slice h weighted by (1 + acc_h). A forward hook on the projection
  replaces its output x, at every position, by ‖x‖ · normalize(x/‖x‖ − alpha · d/‖d‖)
  (alpha 0.4; 0.45 for GPT-2 in the reference code).
"""
from __future__ import annotations

import numpy as np

from evaluation.detox.anatomy import attention_output, capture, head_layout, layer_indexes
from evaluation.detox.base import DetoxMethod, decoder_layers, registry
from evaluation.detox.learning_data import DATA_PARAM_NAMES, LearningMethod, data_params
from toxplatform.params import Param, ParamSchema


def probe_accuracy(features: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Held-out accuracy of a logistic probe (80/20 stratified split; at least one text of
    each label on both sides, so 2 + 2 texts still give a probe and a score)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    held_out = max(2, round(0.2 * len(labels)))
    train_x, test_x, train_y, test_y = train_test_split(
        features, labels, test_size=held_out, stratify=labels, random_state=seed
    )
    return float(LogisticRegression(max_iter=2000, random_state=seed).fit(train_x, train_y).score(test_x, test_y))


@registry.register
class DeStein(LearningMethod, DetoxMethod):
    name = "destein"
    summary = ("Steer every attention head away from toxicity, each weighted by its probe's accuracy "
               "(Li et al., 2024; variant: the paper's additive shift or the reference code's fusion)")
    parameters = ParamSchema(
        *data_params(),
        Param("variant", str, "paper", choices=("paper", "code"),
              help="paper: add alpha * acc_h * v_h to each head's output; code (LizLizLi/DeStein): read after the "
                   "attention output projection, weight by 1 + acc_h, fuse x' = |x| normalize(x/|x| - alpha d/|d|)"),
        Param("alpha", float, 0.4, minimum=0, maximum=100,
              help="Steering strength (the paper: 0.4 for GPT2-large; the reference code: 0.4, 0.45 for GPT-2)"),
        Param("layers", list, None, optional=True, item_kind=int, max_length=1000,
              help="Decoder layers whose heads are steered (empty: all)"),
        Param("last_tokens", int, 1, minimum=1, maximum=64,
              help="Head outputs averaged over each text's last tokens (paper: 1, reference code: 8)"),
    )
    preparation_params = (*DATA_PARAM_NAMES, "layers", "last_tokens", "variant")

    def prepare(self, generator, data) -> dict:
        """{"layers": [L], "vectors": [L, heads, width], "accuracy": [L, heads], "paired"}: for
        "paper" v_h = non-toxic − toxic per head; for "code" the direction toxic − non-toxic
        of the projection's output, cut into heads slices (unweighted)."""
        import torch

        model = generator.model
        layers = decoder_layers(model)
        indexes = layer_indexes(model, self.params["layers"])
        paper = self.params["variant"] == "paper"
        heads, width = head_layout(model, "input" if paper else "output")
        pairs = data.get("pairs") or []
        toxic = [p[0] for p in pairs] if pairs else data["toxic"]
        nontoxic = [p[1] for p in pairs] if pairs else data["nontoxic"]
        labels = np.array([1] * len(toxic) + [0] * len(nontoxic))
        pooled = capture(generator, toxic + nontoxic, [attention_output(layers[i]) for i in indexes],
                         where="input" if paper else "output", pool="last", last_tokens=self.params["last_tokens"])
        vectors, accuracy = [], []
        for values in pooled:
            per_head = values.double().numpy().reshape(len(labels), heads, width)
            bad, good = per_head[: len(toxic)], per_head[len(toxic):]
            # Paired: mean of differences; unpaired: difference of means (equal when balanced).
            away = (good - bad).mean(axis=0) if pairs else good.mean(axis=0) - bad.mean(axis=0)
            vectors.append(away if paper else -away)  # the code's direction points toward toxicity
            accuracy.append([probe_accuracy(per_head[:, h], labels, self.params["data_seed"]) for h in range(heads)])
        return {"layers": torch.tensor(indexes), "vectors": torch.from_numpy(np.stack(vectors)),
                "accuracy": torch.tensor(accuracy, dtype=torch.float64), "paired": torch.tensor(bool(pairs))}

    def shifts(self) -> dict:
        """Per steered layer, a flat float64 vector: for "paper" the [heads * head_dim] shift
        added to the heads, alpha * acc_h * v_h; for "code" the step alpha * d/‖d‖ taken away
        from the normalized output, d's slice h = (1 + acc_h) * (toxic − non-toxic)."""
        from torch.nn.functional import normalize

        alpha, shifts = self.params["alpha"], {}
        for row, layer in enumerate(self.artifact["layers"].tolist()):
            accuracy, vectors = self.artifact["accuracy"][row].unsqueeze(-1), self.artifact["vectors"][row]
            if self.params["variant"] == "paper":
                shifts[layer] = (alpha * accuracy * vectors).reshape(-1)
            else:
                direction = ((1 + accuracy) * vectors).reshape(-1)
                shifts[layer] = alpha * normalize(direction, dim=0)  # d/‖d‖ (0 stays 0, as the reference)
        return shifts

    def install(self, generator, ctx) -> None:
        import torch
        from torch.nn.functional import normalize

        layers = decoder_layers(generator.model)
        for layer, shift in self.shifts().items():
            module = attention_output(layers[layer])
            weight = next(module.parameters())
            if self.params["variant"] == "paper":
                shift = shift.to(device=weight.device, dtype=weight.dtype)

                def steer(module, args, shift=shift):
                    # [batch, seq, heads * head_dim]: head h is the slice h * head_dim ... (h + 1) * head_dim.
                    return (args[0] + shift, *args[1:])

                ctx.forward_pre_hook(module, steer)
            else:
                # In float32 as the reference code, whatever the model's dtype.
                step = shift.to(device=weight.device, dtype=torch.float32)

                def fuse(module, args, output, step=step):
                    x = output.float()
                    norm = x.norm(dim=-1, keepdim=True)
                    return (norm * normalize(normalize(x, dim=-1) - step, dim=-1)).to(output.dtype)

                ctx.forward_hook(module, fuse)
        self.notes["destein"] = {"variant": self.params["variant"], "paired": bool(self.artifact["paired"]),
                                 "mean_probe_accuracy": round(float(self.artifact["accuracy"].mean()), 4)}
