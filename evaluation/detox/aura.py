"""AURA (Suau et al., ICML 2024, "Whispering Experts") and its ablations Det_zero and DAMP.

Preparation: every MLP neuron m (the input of the MLP's output projection) gets an expertise
xi_m = AUROC of its max-over-tokens activation as a score that separates toxic (label 1)
from non-toxic texts (padding masked). Application: a forward pre-hook on the output
projection multiplies each neuron by its factor; every other activation passes unchanged.
- aura:     neurons with xi_m > 0.5 get alpha_m = 1 - 2 (xi_m - 0.5) (= 1 - Gini); no hyperparameters.
- det_zero: the top `num_experts` neurons by xi (over all hooked layers) are set to 0.
- damp:     the top `num_experts` neurons are multiplied by a fixed `alpha` (0.5).
With num_experts empty, the ablations take every neuron with xi > 0.5 (as apple/ml-aura).

`units` chooses what a "neuron" is:
- "neurons" (default, the paper): the MLP's intermediate activations, the input of its output
  projection; a forward pre-hook on that projection scales them.
- "linear_outputs" (apple/ml-aura's code): every output unit of each of the MLP's linear
  modules (GPT-2 `c_fc` and `c_proj`; Llama family `gate_proj`, `up_proj`, `down_proj`),
  scored the same way; a forward hook multiplies each module's output by its factors.
"""
from __future__ import annotations

import numpy as np

from evaluation.detox.anatomy import capture, layer_indexes, mlp_linear_modules, mlp_neurons, out_features
from evaluation.detox.base import DetoxMethod, decoder_layers, registry
from evaluation.detox.learning_data import DATA_PARAM_NAMES, LearningMethod, data_params
from toxplatform.params import Param, ParamSchema

LAYERS = Param("layers", list, None, optional=True, item_kind=int, max_length=1000,
               help="Decoder layers whose MLP neurons are scored and dampened (empty: all)")
UNITS = Param("units", str, "neurons", choices=("neurons", "linear_outputs"),
              help="neurons: the MLP's intermediate activations (the paper); linear_outputs: the outputs "
                   "of the MLP's linear modules, e.g. c_fc and c_proj (apple/ml-aura's code)")


def auroc_per_unit(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each column of scores [n, units] for binary labels [n] (Mann-Whitney U with
    average ranks for ties: the same number as sklearn.metrics.roc_auc_score)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=bool)
    positives, negatives = labels.sum(), (~labels).sum()
    ranks = rankdata(np.asarray(scores, dtype=np.float64), axis=0)
    return (ranks[labels].sum(axis=0) - positives * (positives + 1) / 2) / (positives * negatives)


class _NeuronExperts(LearningMethod, DetoxMethod):
    """Shared by aura, det_zero and damp: prepare the expertise, then scale chosen units."""

    preparation_params = (*DATA_PARAM_NAMES, "layers", "units")

    def prepare(self, generator, data) -> dict:
        """{"layers": [L], "auroc": [L, units]} and, for linear_outputs, "modules" (names) and
        "widths": each layer's row is its modules' output units one after the other."""
        import torch

        layers = decoder_layers(generator.model)
        indexes = layer_indexes(generator.model, self.params["layers"])
        texts = data["toxic"] + data["nontoxic"]
        labels = np.array([1] * len(data["toxic"]) + [0] * len(data["nontoxic"]))
        if self.params["units"] == "neurons":
            pooled = capture(generator, texts, [mlp_neurons(layers[i]) for i in indexes], pool="max")
            expertise = np.stack([auroc_per_unit(values.numpy(), labels) for values in pooled])
            return {"layers": torch.tensor(indexes), "auroc": torch.from_numpy(expertise)}
        found = [mlp_linear_modules(layers[i]) for i in indexes]  # the same names and widths in every layer
        modules = [module for named in found for _, module in named]
        pooled = capture(generator, texts, modules, pool="max", where="output")
        expertise = np.concatenate([auroc_per_unit(values.numpy(), labels) for values in pooled])
        return {"layers": torch.tensor(indexes), "auroc": torch.from_numpy(expertise.reshape(len(indexes), -1)),
                "modules": [name for name, _ in found[0]],
                "widths": torch.tensor([out_features(module) for _, module in found[0]])}

    def factors(self) -> dict:
        """Per hooked layer, one float64 factor per unit (1.0 where nothing changes)."""
        raise NotImplementedError

    def _top_experts(self):
        """Mask [layers, units] of the top num_experts units by AUROC (or all above 0.5)."""
        import torch

        auroc = self.artifact["auroc"]
        chosen = auroc > 0.5
        if self.params["num_experts"] is not None:
            order = torch.argsort(auroc.flatten(), descending=True, stable=True)[: self.params["num_experts"]]
            chosen = torch.zeros(auroc.numel(), dtype=torch.bool)
            chosen[order] = True
            chosen = chosen.view_as(auroc)
        return chosen

    def _hook_points(self, layer, factor) -> list:
        """[(module, its factors)] of one layer: where its units are scaled."""
        if self.params["units"] == "neurons":
            return [(mlp_neurons(layer), factor)]
        modules = dict(mlp_linear_modules(layer))
        parts = factor.split(self.artifact["widths"].tolist())
        return [(modules[name], part) for name, part in zip(self.artifact["modules"], parts)]

    def install(self, generator, ctx) -> None:
        layers = decoder_layers(generator.model)
        changed = 0
        for layer_index, factor in self.factors().items():
            for module, part in self._hook_points(layers[layer_index], factor):
                if bool((part == 1).all()):
                    continue  # no unit of this module changes: no hook, no cost
                changed += int((part != 1).sum())
                weight = next(module.parameters())
                part = part.to(device=weight.device, dtype=weight.dtype)
                # x * 1.0 is x exactly, so units that are not experts stay bit-identical.
                if self.params["units"] == "neurons":
                    ctx.forward_pre_hook(module, lambda module, args, part=part: (args[0] * part, *args[1:]))
                else:  # as apple/ml-aura's hook: the module's output, per unit
                    ctx.forward_hook(module, lambda module, args, output, part=part: output * part)
        self.notes["neurons_changed"] = changed


@registry.register
class Aura(_NeuronExperts):
    name = "aura"
    summary = ("Dampen toxicity-expert MLP neurons by 1 - 2(AUROC - 0.5) (Suau et al., ICML 2024; "
               "units: the paper's neurons or apple/ml-aura's linear-module outputs)")
    parameters = ParamSchema(*data_params(), LAYERS, UNITS)

    def factors(self) -> dict:
        import torch

        auroc = self.artifact["auroc"].double()
        factor = torch.where(auroc > 0.5, 1 - 2 * (auroc - 0.5), torch.ones_like(auroc))
        return {int(layer): factor[row] for row, layer in enumerate(self.artifact["layers"])}


NUM_EXPERTS = Param("num_experts", int, None, optional=True, minimum=1, maximum=10_000_000,
                    help="How many units (top by AUROC over all hooked layers; empty: every one above 0.5)")


@registry.register
class DetZero(_NeuronExperts):
    name = "det_zero"
    summary = ("AURA ablation: set the top-k toxicity-expert MLP neurons (or linear-module outputs) to zero "
               "(Suau et al., ICML 2024)")
    parameters = ParamSchema(*data_params(), LAYERS, UNITS, NUM_EXPERTS)

    def factors(self) -> dict:
        import torch

        factor = torch.where(self._top_experts(), 0.0, 1.0).double()
        return {int(layer): factor[row] for row, layer in enumerate(self.artifact["layers"])}


@registry.register
class Damp(_NeuronExperts):
    name = "damp"
    summary = ("AURA ablation: multiply the top-k toxicity-expert MLP neurons (or linear-module outputs) "
               "by a fixed alpha (Suau et al., ICML 2024)")
    parameters = ParamSchema(
        *data_params(), LAYERS, UNITS, NUM_EXPERTS,
        Param("alpha", float, 0.5, minimum=0, maximum=1, help="Factor for every expert unit"),
    )

    def factors(self) -> dict:
        import torch

        factor = torch.where(self._top_experts(), self.params["alpha"], 1.0).double()
        return {int(layer): factor[row] for row, layer in enumerate(self.artifact["layers"])}
