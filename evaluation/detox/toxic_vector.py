"""Toxic-vector subtraction (Lee et al., ICML 2024, "A Mechanistic Understanding of Alignment Algorithms").

Preparation: a logistic-regression probe on the last decoder layer's output (the residual
stream before the final norm), mean-pooled over each text's tokens, separates toxic (1)
from non-toxic (0) texts; W = its weight vector, unit-normalized.
Application: a forward hook on the chosen decoder layer(s) subtracts alpha * v from the
residual stream, where v is
- "probe": W itself (the paper's main result; ajyl/dpo_toxic ships scale 50 for GPT-2 medium);
- "mlp_value": the MLP value vector (a column of an MLP output projection, any layer) with the
  highest cosine similarity to W, unit-normalized (ajyl/dpo_toxic: scale 20);
- "svd": the top left-singular vector of the `svd_vectors` (512) value vectors most similar to W
  (stacked as columns), its sign turned toward W (ajyl/dpo_toxic: scale 100).
positions="last" (default, as ajyl/dpo_toxic) changes only the last position of each forward
pass: the prompt's last token, then every generated token; "all" changes every position.
"""
from __future__ import annotations

import numpy as np

from evaluation.detox.anatomy import capture, layer_indexes, mlp_neurons
from evaluation.detox.base import DetoxMethod, decoder_layers, registry
from evaluation.detox.learning_data import LearningMethod, data_params
from toxplatform.params import Param, ParamSchema


def train_probe(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """(unit weight vector, training accuracy) of a logistic-regression probe."""
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(max_iter=2000, random_state=seed).fit(features, labels)
    weight = probe.coef_[0]
    return weight / np.linalg.norm(weight), float(probe.score(features, labels))


def value_vectors(layer):
    """The MLP value vectors of a layer as rows [intermediate, hidden] (one per neuron)."""
    module = mlp_neurons(layer)
    weight = module.weight.detach()
    # Linear stores [out=hidden, in=intermediate]; GPT-2's Conv1D stores [in, out].
    return weight if type(module).__name__ == "Conv1D" else weight.T


@registry.register
class ToxicVector(LearningMethod, DetoxMethod):
    name = "toxic_vector"
    summary = "Subtract a linear toxicity probe's direction from the residual stream (Lee et al., ICML 2024)"
    parameters = ParamSchema(
        *data_params(),
        Param("alpha", float, 50.0, minimum=0, maximum=10_000,
              help="How much of the unit vector to subtract (ajyl/dpo_toxic: 50 with the probe on GPT-2 medium)"),
        Param("layers", list, None, optional=True, item_kind=int, max_length=1000,
              help="Decoder layers whose output loses alpha * v (empty: the last layer)"),
        Param("vector", str, "probe", choices=("probe", "mlp_value", "svd"),
              help="The probe direction, the MLP value vector most similar to it, or the top SVD "
                   "direction of the value vectors most similar to it"),
        Param("svd_vectors", int, 512, minimum=1, maximum=1_000_000,
              help="vector=svd: how many of the most similar value vectors (reference: 512)"),
        Param("positions", str, "last", choices=("last", "all"),
              help="Subtract at the last position of each forward pass (reference code) or at every position"),
    )

    def prepare(self, generator, data) -> dict:
        import torch

        layers = decoder_layers(generator.model)
        texts = data["toxic"] + data["nontoxic"]
        labels = np.array([1] * len(data["toxic"]) + [0] * len(data["nontoxic"]))
        [pooled] = capture(generator, texts, [layers[-1]], pool="mean", where="output")
        weight, accuracy = train_probe(pooled.double().numpy(), labels, self.params["data_seed"])
        return {"probe": torch.from_numpy(weight), "probe_accuracy": torch.tensor(accuracy)}

    def direction(self, model):
        """The unit vector v to subtract, and where it came from."""
        import torch

        probe = self.artifact["probe"].double()
        if self.params["vector"] == "probe":
            return probe, {"vector": "probe"}
        if self.params["vector"] == "svd":
            values = torch.cat([value_vectors(layer).double().cpu() for layer in decoder_layers(model)])
            cosine = values @ probe / values.norm(dim=1).clamp(min=1e-12)
            top = torch.argsort(cosine, descending=True, stable=True)[: self.params["svd_vectors"]]
            left, _, _ = torch.linalg.svd(values[top].T, full_matrices=False)
            vector = left[:, 0] if float(left[:, 0] @ probe) >= 0 else -left[:, 0]
            return vector / vector.norm(), {"vector": "svd", "value_vectors": len(top)}
        best = (-2.0, 0, 0)
        for index, layer in enumerate(decoder_layers(model)):
            values = value_vectors(layer).double().cpu()
            cosine = values @ probe / values.norm(dim=1).clamp(min=1e-12)
            row = int(torch.argmax(cosine))
            best = max(best, (float(cosine[row]), index, row))
        cosine, index, row = best
        vector = value_vectors(decoder_layers(model)[index])[row].double().cpu()
        return vector / vector.norm(), {"vector": "mlp_value", "layer": index, "neuron": row, "cosine": cosine}

    def install(self, generator, ctx) -> None:
        model = generator.model
        layers = decoder_layers(model)
        chosen = self.params["layers"] if self.params["layers"] is not None else [-1]
        vector, origin = self.direction(model)
        weight = next(model.parameters())
        shift = (self.params["alpha"] * vector).to(device=weight.device, dtype=weight.dtype)
        last_only = self.params["positions"] == "last"

        def subtract(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output  # GPT-2 blocks return a tuple
            if last_only:
                hidden = hidden.clone()
                hidden[:, -1, :] = hidden[:, -1, :] - shift
            else:
                hidden = hidden - shift
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        for index in layer_indexes(model, chosen):
            ctx.forward_hook(layers[index], subtract)
        self.notes["toxic_vector"] = {**origin, "probe_accuracy": round(float(self.artifact["probe_accuracy"]), 4)}
