"""DeStein (Li et al., 2024): steer every attention head away from toxicity, weighted by a probe.

Preparation, per layer and attention head h: the head's output (the input of the attention
output projection, viewed per head) at the last token of each text — or the mean over the
last `last_tokens` tokens (LizLizLi/DeStein uses 8).
- detox vector v_h = mean over steering pairs of (non-toxic − toxic) when the data file gives
  pairs; otherwise (a dataset split by gold label) mean(non-toxic) − mean(toxic), which is the
  same number for balanced pairs;
- a logistic-regression probe per head on those activations, trained on 80% of the texts and
  scored on the held-out 20% (stratified, seeded): its accuracy acc_h is the head's weight.
Application: a forward pre-hook on the attention output projection adds alpha * acc_h * v_h to
head h's output at every position (the paper's formula; alpha 0.4 for GPT2-large).
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
    summary = "Add alpha * probe accuracy * (non-toxic − toxic) mean head output to every attention head (Li et al., 2024)"
    parameters = ParamSchema(
        *data_params(),
        Param("alpha", float, 0.4, minimum=0, maximum=100, help="Steering strength (the paper: 0.4 for GPT2-large)"),
        Param("layers", list, None, optional=True, item_kind=int, max_length=1000,
              help="Decoder layers whose heads are steered (empty: all)"),
        Param("last_tokens", int, 1, minimum=1, maximum=64,
              help="Head outputs averaged over each text's last tokens (paper: 1, reference code: 8)"),
    )
    preparation_params = (*DATA_PARAM_NAMES, "layers", "last_tokens")

    def prepare(self, generator, data) -> dict:
        import torch

        model = generator.model
        layers = decoder_layers(model)
        indexes = layer_indexes(model, self.params["layers"])
        heads, head_dim = head_layout(model)
        pairs = data.get("pairs") or []
        toxic = [p[0] for p in pairs] if pairs else data["toxic"]
        nontoxic = [p[1] for p in pairs] if pairs else data["nontoxic"]
        labels = np.array([1] * len(toxic) + [0] * len(nontoxic))
        pooled = capture(generator, toxic + nontoxic, [attention_output(layers[i]) for i in indexes],
                         pool="last", last_tokens=self.params["last_tokens"])
        vectors, accuracy = [], []
        for values in pooled:
            per_head = values.double().numpy().reshape(len(labels), heads, head_dim)
            bad, good = per_head[: len(toxic)], per_head[len(toxic):]
            # Paired: mean of differences; unpaired: difference of means (equal when balanced).
            vectors.append((good - bad).mean(axis=0) if pairs else good.mean(axis=0) - bad.mean(axis=0))
            accuracy.append([probe_accuracy(per_head[:, h], labels, self.params["data_seed"]) for h in range(heads)])
        return {"layers": torch.tensor(indexes), "vectors": torch.from_numpy(np.stack(vectors)),
                "accuracy": torch.tensor(accuracy, dtype=torch.float64), "paired": torch.tensor(bool(pairs))}

    def shifts(self) -> dict:
        """Per steered layer, the flat [heads * head_dim] float64 vector added to the heads."""
        shifts = {}
        for row, layer in enumerate(self.artifact["layers"].tolist()):
            per_head = self.params["alpha"] * self.artifact["accuracy"][row].unsqueeze(-1) * self.artifact["vectors"][row]
            shifts[layer] = per_head.reshape(-1)
        return shifts

    def install(self, generator, ctx) -> None:
        layers = decoder_layers(generator.model)
        weight = next(generator.model.parameters())
        for layer, shift in self.shifts().items():
            shift = shift.to(device=weight.device, dtype=weight.dtype)

            def steer(module, args, shift=shift):
                # [batch, seq, heads * head_dim]: head h is the slice h * head_dim ... (h + 1) * head_dim.
                return (args[0] + shift, *args[1:])

            ctx.forward_pre_hook(attention_output(layers[layer]), steer)
        self.notes["destein"] = {"paired": bool(self.artifact["paired"]),
                                 "mean_probe_accuracy": round(float(self.artifact["accuracy"].mean()), 4)}
