"""Toxic-vector subtraction on tiny GPT-2 and Llama: the probe, the exact shift at the right layer, undo."""
import numpy as np
import pytest
import torch

from evaluation.detox import load_detox_method
from evaluation.detox.base import decoder_layers
from evaluation.detox.toxic_vector import ToxicVector, train_probe, value_vectors
from evaluation.generators import GenerationParams
from evaluation.models import DetoxArtifact
from tests.evaluation.detox_helpers import (
    DATA,
    PROMPTS,
    assert_no_hooks,
    logits,
    prompt_ids,
    tiny_generator,
    written_artifacts,
)
from toxplatform.errors import ApplicationError


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def generator(request, tmp_path_factory):
    gen = tiny_generator(tmp_path_factory, request.param)
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def prepared(generator):
    return ToxicVector().prepare(generator, DATA)


def layer_outputs(generator, method=None):
    """Each decoder layer's output (the residual stream) for one prompt, with the method applied
    (the recording hooks are registered after the method's, so they see what it returned)."""
    found = {}

    def run():
        handles = [
            layer.register_forward_hook(
                lambda m, a, out, i=i: found.__setitem__(i, (out[0] if isinstance(out, tuple) else out).clone()))
            for i, layer in enumerate(decoder_layers(generator.model))
        ]
        try:
            with torch.inference_mode():
                generator.model(prompt_ids(generator))
        finally:
            for handle in handles:
                handle.remove()

    if method is None:
        run()
    else:
        with method.applied(generator):
            run()
    return found


def test_probe_is_a_unit_logistic_regression_on_mean_pooled_last_layer_outputs(generator, prepared):
    last = decoder_layers(generator.model)[-1]
    pooled = []
    for text in DATA["toxic"] + DATA["nontoxic"]:  # one text at a time, no padding
        seen = []
        handle = last.register_forward_hook(
            lambda m, a, out, seen=seen: seen.append(out[0] if isinstance(out, tuple) else out))
        with torch.inference_mode():
            generator.model(generator.tokenizer(text, return_tensors="pt")["input_ids"])
        handle.remove()
        pooled.append(seen[0][0].double().mean(dim=0).numpy())
    labels = np.array([1] * len(DATA["toxic"]) + [0] * len(DATA["nontoxic"]))
    expected, accuracy = train_probe(np.stack(pooled), labels)
    assert prepared["probe"].norm().item() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(prepared["probe"].numpy(), expected, atol=1e-4)
    assert float(prepared["probe_accuracy"]) == pytest.approx(accuracy)


@pytest.mark.parametrize("positions", ["last", "all"])
def test_subtracts_alpha_times_the_vector_exactly_at_the_chosen_layer(generator, prepared, positions):
    method = ToxicVector(alpha=3.0, layers=[0], positions=positions)
    method.artifact = prepared
    plain, steered = layer_outputs(generator), layer_outputs(generator, method)
    shift = (3.0 * prepared["probe"]).float()
    expected = plain[0].clone()
    if positions == "last":
        expected[:, -1, :] -= shift
    else:
        expected -= shift
    assert torch.equal(steered[0], expected)
    # The layer after it sees a different residual stream, so its output changes too.
    assert not torch.equal(steered[1], plain[1])
    assert method.notes["toxic_vector"]["vector"] == "probe"


def test_default_is_the_last_layer_only(generator, prepared):
    method = ToxicVector(alpha=2.0)
    method.artifact = prepared
    plain, steered = layer_outputs(generator), layer_outputs(generator, method)
    last = len(plain) - 1
    assert all(torch.equal(steered[i], plain[i]) for i in range(last))
    assert torch.equal(steered[last][:, :-1], plain[last][:, :-1])
    assert torch.equal(steered[last][:, -1], plain[last][:, -1] - (2.0 * prepared["probe"]).float())


def test_mlp_value_vector_is_the_most_similar_one(generator, prepared):
    method = ToxicVector(vector="mlp_value")
    method.artifact = prepared
    vector, origin = method.direction(generator.model)
    every = [(float(torch.nn.functional.cosine_similarity(row.double(), prepared["probe"], dim=0)), i, j)
             for i, layer in enumerate(decoder_layers(generator.model)) for j, row in enumerate(value_vectors(layer))]
    cosine, layer, neuron = max(every)
    assert (origin["layer"], origin["neuron"]) == (layer, neuron) and origin["cosine"] == pytest.approx(cosine)
    expected = value_vectors(decoder_layers(generator.model)[layer])[neuron].double()
    assert torch.allclose(vector, expected / expected.norm())


def test_svd_vector_is_the_top_singular_direction_of_the_most_similar_value_vectors(generator, prepared):
    method = ToxicVector(vector="svd", svd_vectors=20)
    method.artifact = prepared
    vector, origin = method.direction(generator.model)
    rows = torch.cat([value_vectors(layer).double() for layer in decoder_layers(generator.model)])
    cosine = torch.nn.functional.cosine_similarity(rows, prepared["probe"].unsqueeze(0), dim=1)
    top = rows[torch.topk(cosine, 20).indices]
    # The top singular direction maximizes the summed squared projections of those vectors.
    projections = (top @ vector).pow(2).sum()
    assert projections == pytest.approx(torch.linalg.matrix_norm(top, ord=2).item() ** 2, rel=1e-9)
    assert float(vector @ prepared["probe"]) > 0 and vector.norm().item() == pytest.approx(1.0)
    assert origin == {"vector": "svd", "value_vectors": 20}


def test_bit_identical_after_the_context_and_after_an_exception(generator, prepared):
    method = ToxicVector(positions="all")
    method.artifact = prepared
    before = logits(generator)
    params = GenerationParams(k=2, max_new_tokens=6, seed=3)
    plain = generator.generate(PROMPTS, params)
    with method.applied(generator) as hooks:
        assert not torch.equal(logits(generator), before)
        assert generator.generate(PROMPTS, params, hooks) != plain
    with pytest.raises(RuntimeError, match="boom"), method.applied(generator):
        raise RuntimeError("boom")
    assert torch.equal(logits(generator), before) and generator.generate(PROMPTS, params) == plain
    assert_no_hooks(generator.model)


@pytest.mark.django_db
def test_second_load_or_prepare_reuses_the_probe(generator, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path
    first = ToxicVector(alpha=10).load_or_prepare(generator, DATA)
    written = written_artifacts(tmp_path)
    second = ToxicVector(alpha=20, layers=[0], vector="mlp_value").load_or_prepare(generator, DATA)
    assert torch.equal(first["probe"], second["probe"]) and written_artifacts(tmp_path) == written
    assert DetoxArtifact.objects.count() == 1


@pytest.mark.parametrize("params, message", [
    ({"alpha": -1}, "alpha must be in [0, 10,000] (got -1.0)"),
    ({"vector": "pca"}, "vector must be one of probe, mlp_value, svd"),
    ({"svd_vectors": 0}, "svd_vectors must be 1 to 1,000,000 (got 0)"),
    ({"positions": "first"}, "positions must be one of last, all"),
    ({"layers": 3}, "layers must be a list"),
])
def test_bad_parameters_are_rejected(params, message):
    with pytest.raises(ApplicationError) as error:
        load_detox_method("toxic_vector", params)
    assert message in str(error.value)


def test_a_layer_that_does_not_exist_fails_before_anything_is_installed(generator, prepared):
    method = ToxicVector(layers=[9])
    method.artifact = prepared
    with pytest.raises(ApplicationError, match=r"layers \[9\] do not exist"), method.applied(generator):
        pass
    assert_no_hooks(generator.model)
