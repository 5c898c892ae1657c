"""AURA, Det_zero and DAMP on tiny GPT-2 and Llama models: AUROC, the exact hook, undo, reuse, jobs.
Both units: the paper's MLP neurons and apple/ml-aura's outputs of the MLP's linear modules."""
import contextlib
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from evaluation import services, worker_cache
from evaluation.detox import load_detox_method
from evaluation.detox.anatomy import in_features, mlp_linear_modules, mlp_neurons, out_features
from evaluation.detox.aura import Aura, auroc_per_unit
from evaluation.detox.base import decoder_layers
from evaluation.generators import GenerationParams
from evaluation.models import DetoxArtifact, EvaluationJob
from tests.evaluation.detox_helpers import (
    DATA,
    PROMPTS,
    assert_no_hooks,
    logits,
    prompt_ids,
    tiny_generator,
    watch_input,
    watch_output,
    written_artifacts,
)
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import make_dataset, model_spec_for
from toxplatform.errors import ApplicationError


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def generator(request, tmp_path_factory):
    gen = tiny_generator(tmp_path_factory, request.param)
    yield gen
    gen.close()


def test_auroc_is_sklearns_roc_auc_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(30, 7)).astype(float)  # many ties
    labels = rng.integers(0, 2, size=30)
    expected = [roc_auc_score(labels, scores[:, unit]) for unit in range(7)]
    np.testing.assert_allclose(auroc_per_unit(scores, labels), expected, rtol=0, atol=1e-12)


def test_prepare_scores_each_neuron_by_the_auroc_of_its_max_pooled_activation(generator):
    artifact = Aura(layers=[-1]).prepare(generator, DATA)
    last = len(decoder_layers(generator.model)) - 1
    assert artifact["layers"].tolist() == [last]
    module = mlp_neurons(decoder_layers(generator.model)[last])
    pooled = []
    for text in DATA["toxic"] + DATA["nontoxic"]:  # one text at a time: no padding at all
        ids = generator.tokenizer(text, return_tensors="pt")["input_ids"]
        with watch_input(module) as seen, torch.inference_mode():
            generator.model(ids)
        pooled.append(seen["first"][0][0].amax(dim=0).numpy())
    pooled = np.stack(pooled)
    labels = [1] * len(DATA["toxic"]) + [0] * len(DATA["nontoxic"])
    expected = [roc_auc_score(labels, pooled[:, unit]) for unit in range(pooled.shape[1])]
    np.testing.assert_allclose(artifact["auroc"][0].numpy(), expected, rtol=0, atol=1e-12)
    assert 0 < (artifact["auroc"] > 0.5).sum() < artifact["auroc"].numel()  # a mix to dampen and keep


def crafted_artifact(generator, values):
    """AUROCs chosen by hand for layer 0's first neurons; all others 0.5 (not experts)."""
    width = in_features(mlp_neurons(decoder_layers(generator.model)[0]))
    auroc = torch.full((len(decoder_layers(generator.model)), width), 0.5, dtype=torch.float64)
    auroc[0, : len(values)] = torch.tensor(values, dtype=torch.float64)
    return {"layers": torch.arange(auroc.shape[0]), "auroc": auroc}


def run_and_watch(method, generator, layer=0):
    module = mlp_neurons(decoder_layers(generator.model)[layer])
    with method.applied(generator), watch_input(module) as seen, torch.inference_mode():
        generator.model(prompt_ids(generator))
    return seen["first"][0], seen["last"][0]


@pytest.mark.parametrize("name, params, expected", [
    # alpha_m = 1 - 2 (AUROC - 0.5) above 0.5; untouched at or below it.
    ("aura", {}, [1.0, 1.0, 0.5, 0.0, 1 - 2 * (0.9 - 0.5)]),
    # top 2 over all layers: 1.0 and 0.9 -> zero.
    ("det_zero", {"num_experts": 2}, [1.0, 1.0, 1.0, 0.0, 0.0]),
    ("damp", {"num_experts": 2, "alpha": 0.25}, [1.0, 1.0, 1.0, 0.25, 0.25]),
    ("damp", {}, [1.0, 1.0, 0.5, 0.5, 0.5]),  # no k: every neuron above 0.5, default alpha 0.5
])
def test_hook_multiplies_exactly_the_chosen_neurons_and_nothing_else(generator, name, params, expected):
    method = load_detox_method(name, params)
    method.artifact = crafted_artifact(generator, [0.3, 0.5, 0.75, 1.0, 0.9])
    factors = method.factors()
    assert factors[0][:5].tolist() == expected
    assert bool((factors[0][5:] == 1).all()) and all(bool((f == 1).all()) for f in list(factors.values())[1:])
    before, after = run_and_watch(method, generator)
    scale = torch.tensor(expected, dtype=before.dtype)
    assert torch.equal(after[..., :5], before[..., :5] * scale)
    assert torch.equal(after[..., 5:], before[..., 5:])  # every other activation bit-identical
    # Layers without an expert get no hook at all.
    assert method.notes["neurons_changed"] == sum(1 for f in expected if f != 1)


@pytest.mark.parametrize("units", ["neurons", "linear_outputs"])
def test_model_is_bit_identical_after_the_context_and_after_an_exception(generator, units):
    method = Aura(units=units)
    method.artifact = method.prepare(generator, DATA)
    before = logits(generator)
    with method.applied(generator):
        assert not torch.equal(logits(generator), before)
    assert torch.equal(logits(generator), before)
    with pytest.raises(RuntimeError, match="boom"), method.applied(generator):
        raise RuntimeError("boom")
    assert torch.equal(logits(generator), before)
    assert_no_hooks(generator.model)
    params = GenerationParams(k=2, max_new_tokens=6, seed=1)
    plain = generator.generate(PROMPTS, params)
    with method.applied(generator) as hooks:
        assert generator.generate(PROMPTS, params, hooks) != plain
    assert generator.generate(PROMPTS, params) == plain


@pytest.mark.django_db
def test_second_load_or_prepare_reuses_the_artifact_also_with_another_alpha(generator, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path
    first = load_detox_method("damp", {"alpha": 0.5}).load_or_prepare(generator, DATA)
    written = written_artifacts(tmp_path)
    again = load_detox_method("damp", {"alpha": 0.1, "num_experts": 3})  # strength only: same neurons
    assert torch.equal(again.load_or_prepare(generator, DATA)["auroc"], first["auroc"])
    assert DetoxArtifact.objects.count() == 1 and written_artifacts(tmp_path) == written  # read, not written
    load_detox_method("damp", {"layers": [0]}).load_or_prepare(generator, DATA)  # other layers: prepared anew
    assert DetoxArtifact.objects.count() == 2


# --- units="linear_outputs" (apple/ml-aura) --------------------------------------------------


# The modules apple/ml-aura hooks: its GPT-2 config and its Llama/Mistral evaluation config.
REFERENCE_MODULES = {"gpt2": {"mlp.c_fc", "mlp.c_proj"}, "llama": {"mlp.up_proj", "mlp.gate_proj", "mlp.down_proj"}}


def test_linear_outputs_score_each_output_unit_of_each_mlp_linear_module(generator):
    artifact = Aura(layers=[-1], units="linear_outputs").prepare(generator, DATA)
    last = len(decoder_layers(generator.model)) - 1
    modules = dict(mlp_linear_modules(decoder_layers(generator.model)[last]))
    assert set(artifact["modules"]) == REFERENCE_MODULES[generator.model.config.model_type] == set(modules)
    labels = [1] * len(DATA["toxic"]) + [0] * len(DATA["nontoxic"])
    expected = []
    for name in artifact["modules"]:  # each module's output, one text at a time: no padding at all
        pooled = []
        for text in DATA["toxic"] + DATA["nontoxic"]:
            with watch_output(modules[name]) as seen, torch.inference_mode():
                generator.model(generator.tokenizer(text, return_tensors="pt")["input_ids"])
            pooled.append(seen["first"][0][0].amax(dim=0).numpy())
        pooled = np.stack(pooled)
        expected += [roc_auc_score(labels, pooled[:, unit]) for unit in range(pooled.shape[1])]
    assert artifact["widths"].tolist() == [out_features(modules[name]) for name in artifact["modules"]]
    assert artifact["layers"].tolist() == [last]
    np.testing.assert_allclose(artifact["auroc"][0].numpy(), expected, rtol=0, atol=1e-12)
    assert 0 < (artifact["auroc"] > 0.5).sum() < artifact["auroc"].numel()


def crafted_outputs_artifact(generator, first, last):
    """AUROCs by hand for the first units of layer 0's first and last MLP linear module."""
    layers = decoder_layers(generator.model)
    named = mlp_linear_modules(layers[0])
    widths = [out_features(module) for _, module in named]
    auroc = torch.full((len(layers), sum(widths)), 0.5, dtype=torch.float64)
    auroc[0, : len(first)] = torch.tensor(first, dtype=torch.float64)
    start = sum(widths[:-1])
    auroc[0, start: start + len(last)] = torch.tensor(last, dtype=torch.float64)
    return {"layers": torch.arange(len(layers)), "auroc": auroc, "modules": [name for name, _ in named],
            "widths": torch.tensor(widths)}


@pytest.mark.parametrize("name, params, first, last", [
    ("aura", {}, [1.0, 1 - 2 * (0.75 - 0.5), 0.0], [1 - 2 * (0.9 - 0.5), 1 - 2 * (0.6 - 0.5)]),
    ("det_zero", {"num_experts": 2}, [1.0, 1.0, 0.0], [0.0, 1.0]),  # top 2 over all units: 1.0 and 0.9
    ("damp", {"num_experts": 2, "alpha": 0.25}, [1.0, 1.0, 0.25], [0.25, 1.0]),
])
def test_linear_outputs_hook_multiplies_exactly_the_chosen_module_outputs(generator, name, params, first, last):
    method = load_detox_method(name, {**params, "units": "linear_outputs"})
    method.artifact = crafted_outputs_artifact(generator, [0.3, 0.75, 1.0], [0.9, 0.6])
    layers = decoder_layers(generator.model)
    named = mlp_linear_modules(layers[0])
    expected = {named[0][0]: first, named[-1][0]: last}
    with method.applied(generator), contextlib.ExitStack() as stack, torch.inference_mode():
        seen = {module_name: stack.enter_context(watch_output(module)) for module_name, module in named}
        neurons = stack.enter_context(watch_input(mlp_neurons(layers[0])))
        generator.model(prompt_ids(generator))
    for module_name, _ in named:
        before, after = seen[module_name]["first"][0], seen[module_name]["last"][0]
        factors = expected.get(module_name, [])  # a module in between (Llama's up_proj): none
        scale = torch.ones(before.shape[-1])
        scale[: len(factors)] = torch.tensor(factors)
        assert torch.equal(after, before * scale)
        assert torch.equal(after[..., len(factors):], before[..., len(factors):])  # every other unit bit-identical
    # No pre-hook on the neurons (the paper's point); no hook on a module or layer without an expert.
    assert torch.equal(neurons["first"][0], neurons["last"][0])
    assert all(not module._forward_hooks for layer in layers[1:] for _, module in mlp_linear_modules(layer))
    assert method.notes["neurons_changed"] == sum(1 for f in first + last if f != 1)


def test_linear_outputs_hooks_only_modules_with_an_expert(generator):
    method = Aura(units="linear_outputs")
    method.artifact = crafted_outputs_artifact(generator, [0.8], [])
    named = mlp_linear_modules(decoder_layers(generator.model)[0])
    with method.applied(generator):
        assert [bool(module._forward_hooks) for _, module in named] == [True] + [False] * (len(named) - 1)
    assert_no_hooks(generator.model)


@pytest.mark.django_db
def test_each_units_choice_prepares_its_own_artifact(generator, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path
    neurons = Aura().load_or_prepare(generator, DATA)
    outputs = Aura(units="linear_outputs").load_or_prepare(generator, DATA)
    assert DetoxArtifact.objects.count() == 2
    assert "modules" not in neurons and outputs["auroc"].shape[1] == int(outputs["widths"].sum())
    again = load_detox_method("damp", {"units": "linear_outputs"}).load_or_prepare(generator, DATA)
    assert DetoxArtifact.objects.count() == 3  # another method: its own artifact
    written = written_artifacts(tmp_path)
    reloaded = Aura(units="linear_outputs").load_or_prepare(generator, DATA)
    assert DetoxArtifact.objects.count() == 3 and written_artifacts(tmp_path) == written  # reused
    assert torch.equal(reloaded["auroc"], outputs["auroc"]) and torch.equal(again["auroc"], outputs["auroc"])
    assert reloaded["modules"] == outputs["modules"]


@pytest.mark.parametrize("name, params, message", [
    ("damp", {"alpha": 2}, "alpha must be in [0, 1]"),
    ("det_zero", {"num_experts": 0}, "num_experts must be 1 to 10,000,000 (got 0)"),
    ("aura", {"layers": ["a"]}, "layers must be a list of a whole number"),
    ("aura", {"max_texts": 1}, "max_texts must be 2 to 100,000 (got 1)"),
    ("aura", {"alpha": 0.5}, "alpha is not a known parameter"),
    ("aura", {"units": "heads"}, "units must be one of neurons, linear_outputs (got 'heads')"),
    ("det_zero", {"units": "Neurons"}, "units must be one of neurons, linear_outputs (got 'Neurons')"),
    ("damp", {"units": None}, "units must not be empty"),
    ("aura", {"data_file": "/etc/passwd"}, "outside the detox data folders"),
])
def test_parameters_out_of_range_are_rejected(name, params, message):
    with pytest.raises(ApplicationError) as error:
        load_detox_method(name, params)
    assert message in str(error.value)


def test_a_layer_that_does_not_exist_is_an_error_and_changes_nothing(generator):
    with pytest.raises(ApplicationError, match=r"layers \[7\] do not exist"):
        Aura(layers=[7]).prepare(generator, DATA)
    assert_no_hooks(generator.model)


# --- jobs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("job") / "llama", arch="llama")


def job_args(spec, dataset, **overrides):
    return dict(model=spec, method="aura", method_params={}, dataset=dataset, languages=["en", "de"], k=2,
                max_new_tokens=4, seed=0, scorers=["lexicon"], batch_size=2, chunk_size=4) | overrides


@pytest.mark.django_db
def test_a_job_with_aura_runs_end_to_end_and_a_second_job_reuses_the_artifact(tiny_llama, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path
    worker_cache.clear()
    dataset = make_dataset(per_language=4)  # 2 toxic and 2 non-toxic prompts per language
    spec = model_spec_for(tiny_llama)
    first = services.run_job_inline(services.create_job(**job_args(spec, dataset), enqueue=False))
    assert first.status == EvaluationJob.Status.DONE, first.error
    [artifact] = DetoxArtifact.objects.all()
    assert first.detox_notes["artifact"]["path"] == artifact.path
    # The job page says what it learned from: the job's dataset and languages, balanced.
    assert first.detox_notes["artifact"]["data"] == {"dataset": dataset.slug, "languages": ["de", "en"],
                                                     "toxic_texts": 4, "nontoxic_texts": 4, "pairs": 0}
    assert first.generations.count() == 8 * 2
    worker_cache.clear()  # a fresh worker process: loads the saved files
    second = services.run_job_inline(services.create_job(**job_args(spec, dataset), enqueue=False))
    assert second.status == EvaluationJob.Status.DONE, second.error
    assert DetoxArtifact.objects.count() == 1 and second.detox_notes["artifact"] == first.detox_notes["artifact"]
    worker_cache.clear()
    outputs = services.run_job_inline(services.create_job(
        **job_args(spec, dataset, method_params={"units": "linear_outputs"}), enqueue=False))
    assert outputs.status == EvaluationJob.Status.DONE, outputs.error
    assert DetoxArtifact.objects.count() == 2 and outputs.detox_notes["artifact"]["path"] != artifact.path
    assert outputs.detox_notes["neurons_changed"] > 0
    worker_cache.clear()


@pytest.mark.django_db
def test_submit_refuses_missing_data_bad_layers_and_other_architectures(tiny_llama, tmp_path):
    dataset = make_dataset(per_language=4)
    spec = model_spec_for(tiny_llama)
    with pytest.raises(ApplicationError) as error:
        services.create_job(**job_args(spec, dataset, method_params={"data_language": "fr"}), enqueue=False)
    assert "has 0 toxic and 0 non-toxic prompts in fr" in error.value.extra["method"]
    with pytest.raises(ApplicationError) as error:
        services.create_job(**job_args(spec, dataset, method_params={"layers": [0, 5]}), enqueue=False)
    assert "layers [5] do not exist: model 'tiny-llama' has 2 decoder layers" in error.value.extra["method"]
    with pytest.raises(ApplicationError) as error:  # the form, the API and the CLI go through here
        services.create_job(**job_args(spec, dataset, method_params={"units": "heads"}), enqueue=False)
    assert "units must be one of neurons, linear_outputs (got 'heads')" in error.value.extra["method_params"]
    other = tmp_path / "bert"
    build_tiny_causal_lm(other, "llama")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ApplicationError) as error:
        services.create_job(**job_args(model_spec_for(other, "bert-like"), dataset), enqueue=False)
    assert "model 'bert-like' is a 'bert' model" in error.value.extra["method"]
    assert not EvaluationJob.objects.exists()
