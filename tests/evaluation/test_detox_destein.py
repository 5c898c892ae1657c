"""DeStein on tiny GPT-2 and Llama: per-head vectors and probe weights, the exact per-head shift, undo;
and the reference code's variant: read after the projection, (1 + acc) weights, the norm-keeping fusion."""
import json

import numpy as np
import pytest
import torch

from evaluation.detox import load_detox_method
from evaluation.detox.anatomy import attention_output, head_layout
from evaluation.detox.base import decoder_layers
from evaluation.detox.destein import DeStein, probe_accuracy
from evaluation.generators import GenerationParams
from evaluation.models import DetoxArtifact
from tests.evaluation.detox_helpers import (
    DATA,
    NONTOXIC,
    PROMPTS,
    TOXIC,
    assert_no_hooks,
    logits,
    prompt_ids,
    tiny_generator,
    watch_input,
    watch_output,
    written_artifacts,
)
from toxplatform.errors import ApplicationError


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def generator(request, tmp_path_factory):
    gen = tiny_generator(tmp_path_factory, request.param)
    yield gen
    gen.close()


def head_outputs(generator, texts, layer, last_tokens=1, where="input"):
    """[texts, heads, head_dim]: each head's output averaged over a text's last tokens, one text at a time
    (where="output": the attention output projection's output, cut into as many slices as heads)."""
    heads, head_dim = head_layout(generator.model, where)
    module = attention_output(decoder_layers(generator.model)[layer])
    found = []
    for text in texts:
        with (watch_input if where == "input" else watch_output)(module) as seen, torch.inference_mode():
            generator.model(generator.tokenizer(text, return_tensors="pt")["input_ids"])
        found.append(seen["first"][0][0, -last_tokens:].double().mean(dim=0).numpy().reshape(heads, head_dim))
    return np.stack(found)


@pytest.mark.parametrize("last_tokens", [1, 3])
def test_vectors_are_mean_differences_and_weights_are_held_out_probe_accuracies(generator, last_tokens):
    artifact = DeStein(layers=[1], last_tokens=last_tokens).prepare(generator, DATA)
    bad = head_outputs(generator, TOXIC, 1, last_tokens)
    good = head_outputs(generator, NONTOXIC, 1, last_tokens)
    np.testing.assert_allclose(artifact["vectors"][0].numpy(), good.mean(0) - bad.mean(0), atol=1e-5)
    labels = np.array([1] * len(TOXIC) + [0] * len(NONTOXIC))
    both = np.concatenate([bad, good])
    expected = [probe_accuracy(both[:, h], labels, 0) for h in range(both.shape[1])]
    assert artifact["accuracy"][0].tolist() == pytest.approx(expected)
    assert artifact["layers"].tolist() == [1] and not bool(artifact["paired"])


def test_two_texts_per_label_are_enough(generator):
    artifact = DeStein(layers=[0]).prepare(generator, {"toxic": TOXIC[:2], "nontoxic": NONTOXIC[:2], "pairs": []})
    assert set(artifact["accuracy"][0].tolist()) <= {0.0, 0.5, 1.0}  # two held-out texts, one of each label


def test_steering_pairs_give_the_mean_of_pair_differences(generator, settings, tmp_path):
    pairs = [["you are an idiot", "you are kind"], ["shut up, fool", "please be quiet"],
             ["I hate you", "I like you"], ["what a loser", "what a winner"], ["go away creep", "welcome friend"]]
    data = {"toxic": [p[0] for p in pairs], "nontoxic": [p[1] for p in pairs], "pairs": pairs}
    artifact = DeStein(layers=[0]).prepare(generator, data)
    bad = head_outputs(generator, [p[0] for p in pairs], 0)
    good = head_outputs(generator, [p[1] for p in pairs], 0)
    np.testing.assert_allclose(artifact["vectors"][0].numpy(), (good - bad).mean(0), atol=1e-5)
    assert bool(artifact["paired"])


def test_hook_adds_alpha_times_accuracy_times_vector_to_each_head_exactly(generator):
    heads, head_dim = head_layout(generator.model)
    count = len(decoder_layers(generator.model))
    torch.manual_seed(0)
    vectors = torch.randn(count, heads, head_dim, dtype=torch.float64)
    accuracy = torch.rand(count, heads, dtype=torch.float64)
    accuracy[0, 1] = 0.0  # a head whose probe is useless is left exactly as it is
    method = DeStein(alpha=0.7)
    method.artifact = {"layers": torch.arange(count), "vectors": vectors, "accuracy": accuracy,
                       "paired": torch.tensor(False)}
    for layer in range(count):
        module = attention_output(decoder_layers(generator.model)[layer])
        with method.applied(generator), watch_input(module) as seen, torch.inference_mode():
            generator.model(prompt_ids(generator))
        before, after = seen["first"][0], seen["last"][0]
        shift = (0.7 * accuracy[layer].unsqueeze(-1) * vectors[layer]).reshape(-1).float()
        assert torch.equal(after, before + shift)
        per_head = (after - before).view(*after.shape[:-1], heads, head_dim)
        for head in range(heads):
            expected = (0.7 * accuracy[layer, head] * vectors[layer, head]).float()
            assert torch.allclose(per_head[..., head, :], expected.expand_as(per_head[..., head, :]), atol=1e-5)
        if layer == 0:
            assert torch.equal(after.view(*after.shape[:-1], heads, head_dim)[..., 1, :],
                               before.view(*before.shape[:-1], heads, head_dim)[..., 1, :])


def test_only_the_chosen_layers_are_steered(generator):
    method = DeStein(layers=[-1])
    method.artifact = method.prepare(generator, DATA)
    first = attention_output(decoder_layers(generator.model)[0])
    with method.applied(generator), watch_input(first) as seen, torch.inference_mode():
        generator.model(prompt_ids(generator))
    assert torch.equal(seen["first"][0], seen["last"][0])
    assert list(method.shifts()) == [len(decoder_layers(generator.model)) - 1]


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_bit_identical_after_the_context_and_after_an_exception(generator, variant):
    method = DeStein(alpha=4.0 if variant == "paper" else 0.45, variant=variant)
    method.artifact = method.prepare(generator, DATA)
    before = logits(generator)
    params = GenerationParams(k=2, max_new_tokens=6, seed=5)
    plain = generator.generate(PROMPTS, params)
    with method.applied(generator) as hooks:
        assert not torch.equal(logits(generator), before)
        assert generator.generate(PROMPTS, params, hooks) != plain
    with pytest.raises(RuntimeError, match="boom"), method.applied(generator):
        raise RuntimeError("boom")
    assert torch.equal(logits(generator), before) and generator.generate(PROMPTS, params) == plain
    assert_no_hooks(generator.model)


@pytest.mark.django_db
def test_second_load_or_prepare_reuses_the_artifact(generator, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path
    first = DeStein(alpha=0.4).load_or_prepare(generator, DATA)
    written = written_artifacts(tmp_path)
    second = DeStein(alpha=1.0).load_or_prepare(generator, DATA)
    assert torch.equal(first["vectors"], second["vectors"]) and written_artifacts(tmp_path) == written
    DeStein(last_tokens=8).load_or_prepare(generator, DATA)
    assert DetoxArtifact.objects.count() == 2


# --- variant="code" (LizLizLi/DeStein) ------------------------------------------------------


@pytest.mark.parametrize("paired", [False, True])
def test_code_variant_reads_after_the_projection_with_toxic_minus_nontoxic_and_slice_probes(generator, paired):
    pairs = [list(pair) for pair in zip(TOXIC, NONTOXIC)] if paired else []
    artifact = DeStein(layers=[1], last_tokens=3, variant="code").prepare(generator, {**DATA, "pairs": pairs})
    bad = head_outputs(generator, TOXIC, 1, 3, where="output")
    good = head_outputs(generator, NONTOXIC, 1, 3, where="output")
    expected = (bad - good).mean(0) if paired else bad.mean(0) - good.mean(0)
    np.testing.assert_allclose(artifact["vectors"][0].numpy(), expected, atol=1e-5)
    labels = np.array([1] * len(TOXIC) + [0] * len(NONTOXIC))
    both = np.concatenate([bad, good])
    probes = [probe_accuracy(both[:, h], labels, 0) for h in range(both.shape[1])]
    assert artifact["accuracy"][0].tolist() == pytest.approx(probes)
    assert bool(artifact["paired"]) == paired


def fused(x, direction, alpha):
    """x' = ‖x‖ · normalize(x/‖x‖ − alpha · d/‖d‖) per position, in float64."""
    x = x.double()
    unit = x / x.norm(dim=-1, keepdim=True) - alpha * direction / direction.norm()
    return x.norm(dim=-1, keepdim=True) * unit / unit.norm(dim=-1, keepdim=True)


def test_code_variant_fuses_every_position_of_the_attention_output(generator):
    heads, width = head_layout(generator.model, "output")
    count = len(decoder_layers(generator.model))
    torch.manual_seed(1)
    vectors = torch.randn(count, heads, width, dtype=torch.float64)
    accuracy = torch.rand(count, heads, dtype=torch.float64)
    method = DeStein(alpha=0.45, variant="code")
    method.artifact = {"layers": torch.arange(count), "vectors": vectors, "accuracy": accuracy,
                       "paired": torch.tensor(True)}
    for layer in range(count):
        module = attention_output(decoder_layers(generator.model)[layer])
        with method.applied(generator), watch_input(module) as heads_in, watch_output(module) as seen, \
                torch.inference_mode():
            generator.model(prompt_ids(generator))
        before, after = seen["first"][0], seen["last"][0]
        direction = ((1 + accuracy[layer]).unsqueeze(-1) * vectors[layer]).reshape(-1)  # slice h × (1 + acc_h)
        expected = fused(before, direction, 0.45)
        assert torch.allclose(after.double(), expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(after, before, atol=1e-3)  # it did move
        assert torch.allclose(after.norm(dim=-1), before.norm(dim=-1), rtol=1e-5)  # norm kept at every position
        assert torch.equal(heads_in["first"][0], heads_in["last"][0])  # nothing added before the projection


def test_code_variant_steers_only_the_chosen_layers(generator):
    method = DeStein(layers=[-1], variant="code")
    method.artifact = method.prepare(generator, DATA)
    layers = decoder_layers(generator.model)
    with method.applied(generator), watch_output(attention_output(layers[0])) as first, \
            watch_output(attention_output(layers[-1])) as last, torch.inference_mode():
        generator.model(prompt_ids(generator))
    assert torch.equal(first["first"][0], first["last"][0])
    assert not torch.equal(last["first"][0], last["last"][0])
    assert method.notes["destein"]["variant"] == "code"


@pytest.mark.django_db
def test_each_variant_prepares_its_own_artifact(generator, settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path
    paper = DeStein().load_or_prepare(generator, DATA)
    code = DeStein(variant="code").load_or_prepare(generator, DATA)
    assert DetoxArtifact.objects.count() == 2
    assert not torch.allclose(paper["vectors"].abs(), code["vectors"].abs(), atol=1e-3)
    written = written_artifacts(tmp_path)
    again = DeStein(variant="code", alpha=0.45).load_or_prepare(generator, DATA)  # strength only: reused
    assert written_artifacts(tmp_path) == written and torch.equal(again["vectors"], code["vectors"])


def test_a_pairs_file_is_read_and_a_malformed_one_is_rejected(settings, tmp_path):
    settings.DETOX_DATA_ROOTS = [tmp_path]
    lines = [json.dumps({"toxic": f"bad {i}", "nontoxic": f"good {i}"}) for i in range(3)]
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    assert DeStein(data_file="pairs.jsonl").params["data_file"] == "pairs.jsonl"
    (tmp_path / "broken.jsonl").write_text(lines[0] + "\n{not json\n")
    with pytest.raises(ApplicationError, match="line 2: not JSON"):
        DeStein(data_file="broken.jsonl")
    (tmp_path / "odd.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(ApplicationError, match='line 1: a text needs "toxic": true or false'):
        DeStein(data_file="odd.jsonl")


@pytest.mark.parametrize("params, message", [
    ({"alpha": -0.1}, "alpha must be in [0, 100] (got -0.1)"),
    ({"last_tokens": 0}, "last_tokens must be 1 to 64 (got 0)"),
    ({"layers": [0.5]}, "layers must be a list of a whole number"),
    ({"variant": "reference"}, "variant must be one of paper, code (got 'reference')"),
    ({"variant": ""}, "variant must be one of paper, code (got '')"),
])
def test_bad_parameters_are_rejected(params, message):
    with pytest.raises(ApplicationError) as error:
        load_detox_method("destein", params)
    assert message in str(error.value)
