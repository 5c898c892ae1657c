"""The hf generator on tiny Llama and GPT-2 models built in a temp dir (no download)."""
import json
import shutil

import pytest
import torch
from transformers import LogitsProcessor, TopPLogitsWarper

from evaluation import model_loading
from evaluation.generators import GenerationHooks, GenerationParams, PromptInput, fingerprint_for, load_generator
from evaluation.generators.hf import SeededNucleusSampler
from tests.tiny_models import build_tiny_causal_lm, build_tiny_gguf
from toxplatform.errors import ApplicationError

PROMPTS = [
    PromptInput("The quick brown fox jumps over the lazy dog and then", "en"),
    PromptInput("Привет", "ru"),
    PromptInput("الثعلب البني السريع يقفز", "ar"),
    PromptInput("敏捷的棕色狐狸", "zh-Hans"),
]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("gpt2"), "gpt2")


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def generator(request, llama_dir, gpt2_dir):
    directory = llama_dir if request.param == "llama" else gpt2_dir
    gen = load_generator({"name": request.param, "location": str(directory), "dtype": "float32", "device": "cpu"})
    yield gen
    gen.close()


def texts(results):
    return [[sample.text for sample in samples] for samples in results]


def test_k_samples_per_prompt_in_prompt_order(generator):
    results = generator.generate(PROMPTS, GenerationParams(k=5, max_new_tokens=6, seed=1, batch_size=2))
    assert len(results) == len(PROMPTS)
    assert all(len(samples) == 5 for samples in results)
    assert all(isinstance(s.text, str) and 1 <= s.token_count <= 6 for samples in results for s in samples)
    # Sampling: a prompt's 5 samples are not all the same text.
    assert all(len(set(t)) > 1 for t in texts(results))


def test_same_seed_same_text_and_other_seed_other_text(generator):
    params = GenerationParams(k=4, max_new_tokens=8, seed=7, batch_size=2)
    first = texts(generator.generate(PROMPTS, params))
    again = texts(generator.generate(PROMPTS, params))
    other = texts(generator.generate(PROMPTS, GenerationParams(k=4, max_new_tokens=8, seed=8, batch_size=2)))
    assert first == again
    assert first != other


def test_samples_do_not_depend_on_batch_size_or_neighbours(generator):
    """Each (prompt, sample) row has its own random stream: batching cannot change it."""
    together = texts(generator.generate(PROMPTS, GenerationParams(k=3, max_new_tokens=8, seed=3, batch_size=4)))
    one_by_one = texts(generator.generate(PROMPTS, GenerationParams(k=3, max_new_tokens=8, seed=3, batch_size=1)))
    alone = texts(generator.generate(PROMPTS[1:2], GenerationParams(k=3, max_new_tokens=8, seed=3)))
    assert together == one_by_one
    assert alone[0] == together[1]


def test_left_padding_greedy_output_is_the_same_alone_and_in_a_batch(generator):
    params = GenerationParams(k=2, max_new_tokens=10, temperature=0, batch_size=8)
    batched = generator.generate(PROMPTS, params)
    # Prompts of different lengths share the batch, so all but the longest are padded.
    lengths = [len(ids) for ids in generator.encode(PROMPTS)]
    assert len(set(lengths)) > 1
    for index, prompt in enumerate(PROMPTS):
        alone = generator.generate([prompt], params)[0]
        assert [s.text for s in alone] == [s.text for s in batched[index]]
        assert [s.token_count for s in alone] == [s.token_count for s in batched[index]]
    # Greedy: the k samples are one decoding, copied.
    assert batched[0][0].text == batched[0][1].text


def test_max_new_tokens_respected_and_min_new_tokens_forces_full_length(generator):
    results = generator.generate(PROMPTS, GenerationParams(k=3, max_new_tokens=5, min_new_tokens=5, seed=2))
    assert {s.token_count for samples in results for s in samples} == {5}
    # The text is the new tokens only, never the prompt.
    assert not any(s.text.startswith(PROMPTS[0].text) for s in results[0])


class ForceEosAfter(LogitsProcessor):
    """Test-only: from the nth new token on, only EOS is allowed."""

    def __init__(self, prompt_width, n, eos_id):
        self.prompt_width, self.n, self.eos_id = prompt_width, n, eos_id

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] - self.prompt_width >= self.n:
            scores = torch.full_like(scores, float("-inf"))
            scores[:, self.eos_id] = 0.0
        return scores


def test_token_count_stops_at_eos_and_hooks_logits_processors_run(generator):
    prompt = [PromptInput("Hello there", "en")]
    width = len(generator.encode(prompt)[0])
    hooks = GenerationHooks(logits_processors=[ForceEosAfter(width, 3, generator.tokenizer.eos_token_id)])
    result = generator.generate(prompt, GenerationParams(k=4, max_new_tokens=10, seed=5), hooks)[0]
    assert [s.token_count for s in result] == [3, 3, 3, 3]
    plain = generator.generate(prompt, GenerationParams(k=4, max_new_tokens=10, seed=5))[0]
    assert max(s.token_count for s in plain) > 3


def test_invalid_generation_params_are_refused(generator):
    with pytest.raises(ApplicationError) as error:
        generator.generate(PROMPTS, GenerationParams(k=0, top_p=1.5))
    assert "k must be at least 1" in str(error.value)
    assert "top_p" in str(error.value)


def test_chat_template_wraps_the_prompt_and_the_system_message(llama_dir):
    gen = load_generator(
        {"name": "chat", "location": str(llama_dir), "use_chat_template": True, "dtype": "float32", "device": "cpu"}
    )
    prompt = PromptInput("Tell me a story", "en", system="Be kind.")
    rendered = gen.tokenizer.decode(gen.encode([prompt])[0])
    assert rendered == (
        "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\n"
    )
    results = gen.generate([prompt], GenerationParams(k=3, max_new_tokens=4, seed=0))
    assert len(results[0]) == 3
    # A base model gets the system text before the prompt instead.
    base = load_generator({"name": "base", "location": str(llama_dir), "dtype": "float32", "device": "cpu"})
    assert base.tokenizer.decode(base.encode([prompt])[0]) == "Be kind.\n\nTell me a story"


def test_chat_template_requested_on_a_model_without_one(gpt2_dir):
    with pytest.raises(ApplicationError, match="has none"):
        load_generator({"name": "g", "location": str(gpt2_dir), "use_chat_template": True, "device": "cpu"})


@pytest.mark.parametrize("scale", [1.3, 1.0, 0.3], ids=["peaked-3", "medium-9", "flat-33"])
def test_sampler_draws_from_the_same_nucleus_as_transformers(scale):
    """Peaked rows are drawn from 4 candidates, medium ones from 16, flat ones after a full sort."""
    torch.manual_seed(0)
    logits = torch.randn(1, 50) * scale
    rows = 4000
    sampler = SeededNucleusSampler(
        list(range(rows)), prompt_length=0, steps=1, top_p=0.8, temperature=0.7, device="cpu", candidates=(4, 16)
    )
    out = sampler(torch.zeros(rows, 0, dtype=torch.long), logits.repeat(rows, 1))
    chosen = out.argmax(dim=-1)
    assert torch.isfinite(out).sum(dim=-1).eq(1).all()  # exactly one token left per row
    reference = TopPLogitsWarper(top_p=0.8)(None, logits / 0.7)
    allowed = torch.isfinite(reference[0])
    assert allowed[chosen].all()  # never outside transformers' nucleus
    expected = reference[0].softmax(-1)
    observed = torch.bincount(chosen, minlength=50).float() / rows
    # 4000 draws: each frequency within ~4 standard errors of its probability.
    tolerance = 4 * torch.sqrt(expected * (1 - expected) / rows) + 1e-3
    assert ((observed - expected).abs() <= tolerance).all()


# --- loading and errors -------------------------------------------------------------------


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(ApplicationError, match="does not exist"):
        load_generator({"name": "x", "location": str(tmp_path / "nope")})


def test_directory_without_config_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ApplicationError, match="no config.json"):
        load_generator({"name": "x", "location": str(tmp_path)})


def test_directory_without_weights_is_refused(tmp_path, llama_dir):
    shutil.copy(llama_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ApplicationError, match="no weight files"):
        load_generator({"name": "x", "location": str(tmp_path)})


def test_missing_or_fake_gguf_file_is_refused(tmp_path):
    with pytest.raises(ApplicationError, match="GGUF file .* does not exist"):
        load_generator({"name": "x", "location": str(tmp_path), "gguf_file": "model.gguf"})
    (tmp_path / "fake.gguf").write_bytes(b"PK\x03\x04 not gguf")
    with pytest.raises(ApplicationError, match="not a GGUF file"):
        load_generator({"name": "x", "location": str(tmp_path / "fake.gguf")})


def test_unknown_dtype_and_broken_config_are_application_errors(tmp_path, llama_dir):
    with pytest.raises(ApplicationError, match="unknown dtype"):
        load_generator({"name": "x", "location": str(llama_dir), "dtype": "int3"})
    broken = tmp_path / "broken"
    shutil.copytree(llama_dir, broken)
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(ApplicationError, match="cannot load model"):
        load_generator({"name": "x", "location": str(broken), "device": "cpu"})


def test_gguf_file_loads_to_the_same_model(tmp_path, llama_dir):
    gguf_path = build_tiny_gguf(tmp_path / "tiny-llama.gguf")
    from_gguf = load_generator({"name": "g", "location": str(gguf_path), "dtype": "float32", "device": "cpu"})
    from_dir = load_generator({"name": "d", "location": str(llama_dir), "dtype": "float32", "device": "cpu"})
    assert from_gguf.gguf_file == "tiny-llama.gguf"
    ids = from_dir.encode(PROMPTS)
    assert from_gguf.encode(PROMPTS) == ids
    batch = torch.tensor([ids[0]])
    with torch.inference_mode():
        assert torch.equal(from_gguf.model(batch).logits, from_dir.model(batch).logits)
    params = GenerationParams(k=3, max_new_tokens=6, seed=11)
    assert texts(from_gguf.generate(PROMPTS, params)) == texts(from_dir.generate(PROMPTS, params))
    # A GGUF's fingerprint is its file's sha256 (it holds config and tokenizer too).
    assert from_gguf.fingerprint() == fingerprint_for({"name": "g", "location": str(gguf_path)})


def test_fingerprint_follows_the_weights_and_is_cached(tmp_path, llama_dir):
    copy = tmp_path / "copy"
    shutil.copytree(llama_dir, copy)
    spec = {"name": "c", "location": str(copy)}
    # Not hashed yet: what a web request records is the quick fingerprint (tests/evaluation/test_fingerprints.py).
    assert model_loading.is_quick(fingerprint_for(spec))
    first = model_loading.fingerprint_model(copy)
    assert first == model_loading.fingerprint_model(llama_dir)
    store = json.loads((model_loading.Path(model_loading.settings.MODEL_CACHE_DIR) / "sha256-cache.json").read_text())
    assert str((copy / "model.safetensors").resolve()) in store
    assert fingerprint_for(spec) == first  # hashed once on this machine: the full one, from the cache
    other = build_tiny_causal_lm(tmp_path / "other", "llama", seed=1)
    shutil.copy(other / "model.safetensors", copy / "model.safetensors")
    assert model_loading.fingerprint_model(copy) != first
    assert fingerprint_for(spec) != first
