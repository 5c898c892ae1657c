"""Tiny, deterministic models built in a directory with no download (shared test helper).

- build_tokenizer(path): a byte-level BPE tokenizer trained on a small multilingual corpus,
  so text in every script round-trips; saved as a transformers PreTrainedTokenizerFast.
- build_tiny_causal_lm(path, arch="llama"|"gpt2"): ~0.1 M-parameter causal LM + tokenizer,
  saved with save_pretrained (safetensors). The llama one carries a ChatML chat template.

Both take well under a second and give the same files for the same seed.
"""
from __future__ import annotations

from pathlib import Path

# Short sentences in the scripts RTP-LX covers (Latin, Cyrillic, Arabic, Hebrew, Devanagari,
# CJK, Hangul, Thai) plus some markup, so BPE learns merges in each of them.
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "You are a kind and respectful person, thank you!",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "Szybki brązowy lis przeskakuje nad leniwym psem. Žluťoučký kůň úpěl ďábelské ódy.",
    "Árvíztűrő tükörfúrógép. Hyvää päivää, kiitos paljon. Tack så mycket, hej då.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "Швидка руда лисиця стрибає через ледачого собаку.",
    "الثعلب البني السريع يقفز فوق الكلب الكسول.",
    "השועל החום המהיר קופץ מעל הכלב העצלן.",
    "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।",
    "敏捷的棕色狐狸跳过了懒狗。敏捷的棕色狐狸跳過了懶狗。",
    "素早い茶色の狐が怠け者の犬を飛び越える。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘는다.",
    "สุนัขจิ้งจอกสีน้ำตาลกระโดดข้ามสุนัขขี้เกียจ",
    "Mbweha mwepesi wa kahawia anaruka juu ya mbwa mvivu. Hızlı kahverengi tilki.",
    "<b>bold</b> & 'quotes' \"double\" 123 4567 890 !?.,;:()[]{}",
]

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]

# ChatML, as SmolLM2-Instruct uses it; the prompt ends with an open assistant turn.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(path, *, vocab_size: int = 512, wrap_with_bos_eos: bool = False, chat_template: bool = False):
    """Train and save a byte-level BPE tokenizer in `path`; return the PreTrainedTokenizerFast.

    wrap_with_bos_eos=True makes encode() add `<s> ... </s>` (RoBERTa / XLM-R style, for
    sequence classifiers); causal LMs leave it off.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = [PAD, BOS, EOS, UNK, MASK, *CHAT_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    if wrap_with_bos_eos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}",
            pair=f"{BOS} $A {EOS} {EOS} $B {EOS}",
            special_tokens=[(BOS, tok.token_to_id(BOS)), (EOS, tok.token_to_id(EOS))],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        mask_token=MASK,
        additional_special_tokens=CHAT_TOKENS,
    )
    if chat_template:
        fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(path)
    return fast


def build_tiny_causal_lm(path, arch: str = "llama", seed: int = 0, *, chat_template: bool | None = None):
    """Save a randomly initialised ~0.1 M-parameter causal LM and its tokenizer in `path`.

    arch: "llama" (LlamaForCausalLM, with a ChatML template by default) or "gpt2".
    Returns `path` as a Path.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    if chat_template is None:
        chat_template = arch == "llama"
    tokenizer = build_tokenizer(path, chat_template=chat_template)
    ids = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if arch == "llama":
        config = LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
            **ids,
        )
        model_cls = LlamaForCausalLM
    elif arch == "gpt2":
        config = GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=512, **ids)
        model_cls = GPT2LMHeadModel
    else:
        raise ValueError(f"unknown tiny architecture {arch!r} (llama or gpt2)")
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    return path


def build_tiny_gguf(path, seed: int = 0) -> Path:
    """Write the tiny llama (weights F32, byte-level BPE tokenizer, ChatML template) as a GGUF file.

    Laid out as llama.cpp's converter writes it (tensor names, Q/K rotary permutation,
    tokenizer metadata), so transformers' GGUF loader reads back the same model.
    Returns the path of the .gguf file (`path` is the file to write).
    """
    import json
    import tempfile

    import gguf
    import numpy as np
    from safetensors.numpy import load_file
    from transformers import AutoConfig

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as source:
        build_tiny_causal_lm(source, "llama", seed=seed)
        config = AutoConfig.from_pretrained(source)
        tensors = load_file(str(Path(source) / "model.safetensors"))
        tokenizer_json = json.loads((Path(source) / "tokenizer.json").read_text())
        chat_template = (Path(source) / "chat_template.jinja").read_text()

    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)

    vocab = tokenizer_json["model"]["vocab"]
    added = {t["content"]: t["id"] for t in tokenizer_json["added_tokens"]}
    tokens = [None] * config.vocab_size
    for token, index in {**vocab, **added}.items():
        tokens[index] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer_json["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if token in added else gguf.TokenType.NORMAL for token in tokens]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(added[BOS])
    writer.add_eos_token_id(added[EOS])
    writer.add_pad_token_id(added[PAD])
    writer.add_unk_token_id(added[UNK])
    writer.add_add_bos_token(False)
    writer.add_chat_template(chat_template)

    def rotary_permute(weights, n_head):
        # llama.cpp stores Q and K with the two rotary halves interleaved.
        return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
            weights.shape
        )

    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    writer.add_tensor("token_embd.weight", tensors["model.embed_tokens.weight"])
    for layer in range(config.num_hidden_layers):
        for hf_name, gguf_name in names.items():
            weights = tensors[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                weights = rotary_permute(weights, heads)
            elif gguf_name == "attn_k":
                weights = rotary_permute(weights, kv_heads)
            writer.add_tensor(f"blk.{layer}.{gguf_name}.weight", np.ascontiguousarray(weights))
    writer.add_tensor("output_norm.weight", tensors["model.norm.weight"])
    # No output.weight: the loader then ties the head to the embeddings, as in the source.
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
