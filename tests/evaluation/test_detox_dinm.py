"""DINM and FT-L on tiny GPT-2 and Llama: location, the loss, one edited weight, a derived model, a job."""
import json

import pytest
import torch
import torch.nn.functional as F

from evaluation import services, worker_cache
from evaluation.detox import load_detox_method
from evaluation.detox.anatomy import mlp_neurons
from evaluation.detox.base import decoder_layers
from evaluation.detox.dinm import DEFAULTS, DINM, FTL
from evaluation.models import DetoxArtifact, EvaluationJob
from tests.evaluation.detox_helpers import logits, tiny_generator
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import make_dataset, model_spec_for
from toxplatform.errors import ApplicationError


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def generator(request, tmp_path_factory):
    gen = tiny_generator(tmp_path_factory, request.param)
    yield gen
    gen.close()


def state(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def nll(generator, model, first, second):
    ids, where = DINM().pair_ids(generator, first, second)
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0, where]
    return float(F.cross_entropy(out.float(), torch.tensor(ids)[[p + 1 for p in where]]))


def test_location_is_the_layer_whose_hidden_states_differ_most_minus_the_embeddings(generator):
    batch = generator.tokenizer([DEFAULTS["safe"], DEFAULTS["unsafe"]], padding=True, return_tensors="pt",
                                padding_side="right")
    with torch.no_grad():
        hidden = generator.model(**batch, output_hidden_states=True).hidden_states
    distances = [float(torch.dist(h[0], h[1])) for h in hidden[1:]]
    layer, found = DINM().locate(generator, DEFAULTS)
    assert found == pytest.approx(distances) and layer == distances.index(max(distances))
    assert len(distances) == len(decoder_layers(generator.model))


def test_dinm_tunes_only_the_located_layers_mlp_output_weights_and_leaves_the_base_bit_identical(generator):
    before = state(generator.model)
    before_logits = logits(generator)
    method = DINM(steps=5, lr=1e-2)
    artifact = method.prepare(generator, method.preparation_data(None))
    assert all(torch.equal(p, before[name]) for name, p in generator.model.named_parameters())
    assert torch.equal(logits(generator), before_logits)
    assert all(p.grad is None for p in generator.model.parameters())
    layer = int(artifact["layer"])
    assert layer == method.locate(generator, DEFAULTS)[0]
    # First step, nothing edited yet: KL is 0 and the loss is c_edit * NLL(safe | X) exactly.
    assert float(artifact["losses"][0]) == pytest.approx(
        0.1 * nll(generator, generator.model, DEFAULTS["adversarial"], DEFAULTS["safe"]), rel=1e-5)
    method.artifact = artifact
    derived = method.derive_model(generator)
    edited = mlp_neurons(decoder_layers(derived.model)[layer]).weight
    changed = [name for name, p in derived.model.named_parameters() if not torch.equal(p, before[name])]
    assert len(changed) == 1 and torch.equal(edited, artifact["weight"])
    assert changed[0].endswith(("mlp.down_proj.weight", "mlp.c_proj.weight")) and f".{layer}." in changed[0]
    assert nll(generator, derived.model, DEFAULTS["adversarial"], DEFAULTS["safe"]) < \
        nll(generator, generator.model, DEFAULTS["adversarial"], DEFAULTS["safe"])
    assert derived.fingerprint() != generator.fingerprint()
    assert method.derive_model(generator).fingerprint() == derived.fingerprint()  # same weights, same fingerprint
    assert not torch.equal(logits(derived), before_logits) and torch.equal(logits(generator), before_logits)


def test_ft_l_uses_the_given_layer_and_the_nll_alone(generator):
    method = FTL(layer=0, steps=2, lr=1e-2)
    artifact = method.prepare(generator, method.preparation_data(None))
    assert int(artifact["layer"]) == 0
    assert float(artifact["losses"][0]) == pytest.approx(
        nll(generator, generator.model, DEFAULTS["adversarial"], DEFAULTS["safe"]), rel=1e-5)
    assert int(FTL(steps=1).prepare(generator, FTL().preparation_data(None))["layer"]) == \
        len(decoder_layers(generator.model)) // 2


def test_training_stops_early_when_the_loss_is_tiny(generator, monkeypatch):
    method = FTL(steps=50)
    monkeypatch.setattr(F, "cross_entropy", lambda *a, **k: torch.tensor(1e-5, requires_grad=True))
    artifact = method.prepare(generator, method.preparation_data(None))
    assert artifact["losses"].tolist() == pytest.approx([1e-5])


def test_a_failure_during_training_leaves_the_base_model_as_it_was(generator, monkeypatch):
    before = state(generator.model)
    calls = []

    def boom(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return mlp_neurons(decoder_layers(generator.model)[0]).weight.sum() ** 2 + 1.0  # a step that moves it

    monkeypatch.setattr(F, "cross_entropy", boom)
    with pytest.raises(RuntimeError, match="boom"):
        FTL(layer=0, steps=3, lr=0.5).prepare(generator, FTL().preparation_data(None))
    assert all(torch.equal(p, before[name]) for name, p in generator.model.named_parameters())


def test_instances_from_a_file_and_bad_files(settings, tmp_path):
    settings.DETOX_DATA_ROOTS = [tmp_path]
    (tmp_path / "edits.jsonl").write_text(json.dumps({"adversarial": "x", "safe": "y", "unsafe": "z"}) + "\n")
    data = DINM(data_file="edits.jsonl").preparation_data(None)
    assert data["instances"] == [{"adversarial": "x", "safe": "y", "unsafe": "z",
                                  "general_input": DEFAULTS["general_input"],
                                  "general_answer": DEFAULTS["general_answer"]}]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"adversarial": "x", "safe": ""}) + "\n")
    with pytest.raises(ApplicationError, match="line 1: safe must be non-empty text"):
        DINM(data_file="bad.jsonl")


@pytest.mark.parametrize("name, params, message", [
    ("dinm", {"steps": 0}, "steps must be 1 to 1000 (got 0)"),
    ("dinm", {"lr": 0}, "lr must be in (0, 1] (got 0.0)"),
    ("dinm", {"safe": " "}, "safe must not be empty"),
    ("dinm", {"layer": 1}, "layer is not a known parameter"),
    ("ft_l", {"c_edit": 1}, "c_edit is not a known parameter"),
])
def test_bad_parameters_are_rejected(name, params, message):
    with pytest.raises(ApplicationError) as error:
        load_detox_method(name, params)
    assert message in str(error.value)


@pytest.mark.django_db
def test_a_dinm_job_runs_on_the_derived_model_and_records_it(settings, tmp_path):
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    worker_cache.clear()
    model_dir = build_tiny_causal_lm(tmp_path / "llama", "llama")
    dataset = make_dataset(per_language=2)
    spec = model_spec_for(model_dir)
    args = dict(model=spec, method="dinm", method_params={"steps": 2}, dataset=dataset, languages=["en"], k=2,
                max_new_tokens=3, scorers=["lexicon"], enqueue=False)
    with pytest.raises(ApplicationError, match="layer 9 does not exist"):
        services.create_job(**{**args, "method": "ft_l", "method_params": {"layer": 9}})
    job = services.run_job_inline(services.create_job(**args))
    assert job.status == EvaluationJob.Status.DONE, job.error
    job.refresh_from_db()
    derived = job.detox_notes["derived_model_fingerprint"]
    assert derived != spec.fingerprint and len(derived) == 64
    assert job.detox_notes["artifact"]["path"] == DetoxArtifact.objects.get(method="dinm").path
    worker_cache.clear()
