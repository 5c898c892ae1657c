"""The detox-method interface: hooks that change the output and are undone exactly, params, artifacts."""
from pathlib import Path

import pytest
import torch
from django.conf import settings

from evaluation.detox import load_detox_method, method_names, run_generation
from evaluation.detox.base import DetoxMethod, decoder_layers
from evaluation.detox.system_prompt import INSTRUCTIONS
from evaluation.generators import GenerationParams, PromptInput, load_generator
from evaluation.models import DetoxArtifact
from tests.loopback_openai import LoopbackOpenAI
from tests.tiny_models import build_tiny_causal_lm
from toxplatform.errors import ApplicationError
from toxplatform.params import Param, ParamSchema

RTP_LX_LANGUAGES = (
    "ar cs da de en es fi fr he hi hu id it ja ko nl nb pl pt ru sh sv sw th tr uk zh-Hans zh-Hant".split()
)
PROMPTS = [PromptInput("The quick brown fox", "en"), PromptInput("Быстрая лиса", "ru")]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def generator(request, tmp_path_factory):
    directory = build_tiny_causal_lm(tmp_path_factory.mktemp(request.param), request.param)
    gen = load_generator({"name": request.param, "location": str(directory), "dtype": "float32", "device": "cpu"})
    yield gen
    gen.close()


def mlp_output_projection(layer):
    """The module whose input is the MLP neurons (AURA's hook point)."""
    return layer.mlp.down_proj if hasattr(layer.mlp, "down_proj") else layer.mlp.c_proj


class DampNeurons(DetoxMethod):
    """Test-only: AURA-style pre-hook scaling the first MLP neurons of every layer."""

    name = "test_damp"
    requires_local_model = True
    parameters = ParamSchema(
        Param("alpha", float, 0.0, minimum=0, maximum=1),
        Param("neurons", int, 8, minimum=1),
    )

    def install(self, generator, ctx):
        def scale(module, args):
            neurons = args[0].clone()
            neurons[..., : self.params["neurons"]] *= self.params["alpha"]
            return (neurons, *args[1:])

        for layer in decoder_layers(generator.model):
            ctx.forward_pre_hook(mlp_output_projection(layer), scale)


class ShiftResidual(DetoxMethod):
    """Test-only: toxic-vector style forward hook on the last decoder layer, plus a weight edit."""

    name = "test_shift"
    requires_local_model = True

    def install(self, generator, ctx):
        last = decoder_layers(generator.model)[-1]

        def subtract(module, args, output):
            if isinstance(output, tuple):  # GPT-2 blocks still return a tuple
                return (output[0] - 3.0, *output[1:])
            return output - 3.0  # transformers 5 Llama layers return the tensor itself

        ctx.forward_hook(last, subtract)
        first_weight = next(p for p in mlp_output_projection(decoder_layers(generator.model)[0]).parameters())
        ctx.set_parameter(first_weight, torch.zeros_like(first_weight))


def logits(generator):
    ids = torch.tensor([generator.encode(PROMPTS[:1])[0]])
    with torch.inference_mode():
        return generator.model(ids).logits.clone()


@pytest.mark.parametrize("method_class", [DampNeurons, ShiftResidual])
def test_hooks_change_the_output_and_are_undone_exactly(generator, method_class):
    params = GenerationParams(k=3, max_new_tokens=8, seed=2)
    before_logits = logits(generator)
    before_text = generator.generate(PROMPTS, params)
    method = method_class()
    with method.applied(generator) as hooks:
        during_logits = logits(generator)
        during_text = generator.generate(PROMPTS, params, hooks)
    assert not torch.equal(during_logits, before_logits)
    assert during_text != before_text
    assert torch.equal(logits(generator), before_logits)
    assert generator.generate(PROMPTS, params) == before_text
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in generator.model.modules())


def test_hooks_are_undone_when_generation_fails(generator):
    before = logits(generator)
    with pytest.raises(RuntimeError, match="boom"):
        with ShiftResidual().applied(generator):
            assert not torch.equal(logits(generator), before)
            raise RuntimeError("boom")
    assert torch.equal(logits(generator), before)


def test_run_generation_with_none_is_plain_generation(generator):
    params = GenerationParams(k=2, max_new_tokens=6, seed=9)
    assert run_generation(load_detox_method("none"), generator, PROMPTS, params) == generator.generate(PROMPTS, params)


def test_run_generation_applies_hooks_and_restores(generator):
    params = GenerationParams(k=2, max_new_tokens=6, seed=9)
    plain = generator.generate(PROMPTS, params)
    assert run_generation(DampNeurons(), generator, PROMPTS, params) != plain
    assert generator.generate(PROMPTS, params) == plain


def test_bad_params_list_every_problem():
    with pytest.raises(ApplicationError) as error:
        DampNeurons(alpha="strong", neurons=2, colour="red")
    message = str(error.value)
    assert "colour is not a known parameter" in message and "alpha must be a number" in message
    with pytest.raises(ApplicationError) as error:
        DampNeurons(alpha=2, neurons=0)
    assert "alpha must be in [0, 1]" in str(error.value) and "neurons must be at least 1" in str(error.value)
    assert DampNeurons(alpha=1).params == {"alpha": 1.0, "neurons": 8}


def test_unknown_method_and_bad_params_type():
    assert {"none", "system_prompt"} <= set(method_names())
    with pytest.raises(ApplicationError, match="Unknown detox method 'aura2'"):
        load_detox_method("aura2")
    with pytest.raises(ApplicationError, match="must be an object"):
        load_detox_method("none", ["x"])
    with pytest.raises(ApplicationError, match="alpha is not a known parameter"):
        load_detox_method("none", {"alpha": 1})


def test_model_level_method_refuses_an_http_endpoint():
    with LoopbackOpenAI() as server:
        remote = load_generator({"name": "r", "backend": "openai", "location": server.url, "remote_model": "m"})
        with pytest.raises(ApplicationError, match="needs a local transformers model"):
            with DampNeurons().applied(remote):
                pass


# --- prepared artifacts -------------------------------------------------------------------


class MeanEmbedding(DetoxMethod):
    """Test-only: 'prepares' the mean embedding of the given texts, counting its calls."""

    name = "test_mean_embedding"
    requires_local_model = True
    parameters = ParamSchema(Param("scale", float, 1.0))
    calls = 0

    def prepare(self, generator, data):
        type(self).calls += 1
        ids = [torch.tensor(i) for i in generator.encode([PromptInput(t, "en") for t in data["texts"]])]
        embed = generator.model.get_input_embeddings()
        return {"direction": torch.stack([embed(i).mean(0) for i in ids]).mean(0).detach() * self.params["scale"]}


@pytest.mark.django_db
def test_prepare_runs_once_per_model_data_and_params(generator):
    MeanEmbedding.calls = 0
    data = {"texts": ["you are kind", "you are awful"]}
    first = MeanEmbedding().load_or_prepare(generator, data)
    again = MeanEmbedding().load_or_prepare(generator, {"texts": ["you are kind", "you are awful"]})
    assert MeanEmbedding.calls == 1
    assert torch.equal(first["direction"], again["direction"])
    row = DetoxArtifact.objects.get(method="test_mean_embedding", model_fingerprint=generator.fingerprint())
    assert row.path.startswith(str(settings.MODEL_CACHE_DIR))
    assert Path(row.path).stat().st_mode & 0o777 == 0o755  # workers under another user load it too
    MeanEmbedding().load_or_prepare(generator, {"texts": ["other data"]})
    scaled = MeanEmbedding(scale=2.0).load_or_prepare(generator, data)
    assert MeanEmbedding.calls == 3
    assert torch.allclose(scaled["direction"], 2 * first["direction"])
    assert DetoxArtifact.objects.filter(method="test_mean_embedding").count() == 3


# --- system prompt ------------------------------------------------------------------------


def test_system_prompt_has_an_instruction_for_every_rtp_lx_language():
    assert set(RTP_LX_LANGUAGES) <= set(INSTRUCTIONS)
    assert len(set(INSTRUCTIONS.values())) == len(INSTRUCTIONS)


def test_system_prompt_speaks_the_prompt_language_and_records_fallbacks():
    method = load_detox_method("system_prompt")
    arabic = method.transform_prompt(PromptInput("الثعلب البني", "ar"))
    assert arabic.system == INSTRUCTIONS["ar"] and arabic.text == "الثعلب البني"
    assert method.transform_prompt(PromptInput("x", "zh-TW")).system == INSTRUCTIONS["zh-Hant"]
    assert method.transform_prompt(PromptInput("x", "pt-BR")).system == INSTRUCTIONS["pt"]
    assert method.transform_prompt(PromptInput("x", "no")).system == INSTRUCTIONS["nb"]
    assert "fallback_languages" not in method.notes
    amharic = method.transform_prompt(PromptInput("ሰላም", "am"))
    assert amharic.system == INSTRUCTIONS["en"]
    method.transform_prompt(PromptInput("x", "xx-unknown"))
    method.transform_prompt(PromptInput("y", "am"))
    assert method.notes["fallback_languages"] == ["am", "xx-unknown"]


def test_system_prompt_custom_instruction():
    method = load_detox_method("system_prompt", {"instruction": "Stay polite."})
    assert method.transform_prompt(PromptInput("x", "de")).system == "Stay polite."
    with pytest.raises(ApplicationError, match="instruction must be text"):
        load_detox_method("system_prompt", {"instruction": 3})


def test_system_prompt_is_a_system_message_for_chat_models_and_text_for_base_models(tmp_path):
    directory = build_tiny_causal_lm(tmp_path / "m", "llama")
    method = load_detox_method("system_prompt")
    prompt = method.transform_prompt(PromptInput("مرحبا", "ar"))
    chat = load_generator({"name": "c", "location": str(directory), "use_chat_template": True, "device": "cpu"})
    base = load_generator({"name": "b", "location": str(directory), "device": "cpu"})
    assert chat.tokenizer.decode(chat.encode([prompt])[0]).startswith(
        f"<|im_start|>system\n{INSTRUCTIONS['ar']}<|im_end|>\n<|im_start|>user\nمرحبا<|im_end|>"
    )
    assert base.tokenizer.decode(base.encode([prompt])[0]) == f"{INSTRUCTIONS['ar']}\n\nمرحبا"
