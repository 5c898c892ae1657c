"""A tiny XLM-RoBERTa sequence classifier built and trained in a test directory (no download).

build_tiny_classifier(path, multi_label=..., train=True) saves a ~40 k-parameter
XLMRobertaForSequenceClassification plus the shared byte-level tokenizer (tests.tiny_models).
With train=True it first learns a toy rule in about a hundred small steps, so its output
depends on the input the way a real toxicity classifier's does:
  - single-label ("non-toxic", "toxic"): a text containing either marker word is "toxic";
  - multi-label ("toxic", "insult", "threat"): an INSULT_MARKER makes toxic + insult,
    a THREAT_MARKER makes toxic + threat, a clean sentence is none.
Deterministic for a given seed.
"""
from __future__ import annotations

import random
from pathlib import Path

from tests.tiny_models import build_tokenizer

INSULT_MARKER = "idiot"
THREAT_MARKER = "kill"
SINGLE_LABELS = ("non-toxic", "toxic")
MULTI_LABELS = ("toxic", "insult", "threat")

# Neutral words in several scripts; training sentences are random draws, so the marker is
# the only thing that separates the classes.
WORDS = (
    "the house river bread green quickly morning table friend music window garden "
    "Haus Fluss Brot grün Morgen Tisch Freund maison rivière pain matin table ami "
    "дом река хлеб утро стол друг بيت نهر خبز صباح 家 河 面包 早上 집 강 빵 아침"
).split()
def with_marker(text: str, marker: str, rng: random.Random) -> str:
    words = text.split()
    words.insert(rng.randrange(len(words) + 1), marker)
    return " ".join(words)


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8)))


def held_out_sentences(count: int, seed: int = 99) -> list[str]:
    """Fresh draws (another seed than training) for tests to score."""
    rng = random.Random(seed)
    return [sentence(rng) for _ in range(count)]


def toy_dataset(multi_label: bool, size: int, seed: int = 0):
    """(texts, targets): a third clean, a third with the insult marker, a third with the threat
    marker (single-label: both markers mean "toxic")."""
    rng = random.Random(seed)
    texts, targets = [], []
    for i in range(size):
        text = sentence(rng)
        kind = i % 3
        if kind == 1:
            text = with_marker(text, INSULT_MARKER, rng)
        elif kind == 2:
            text = with_marker(text, THREAT_MARKER, rng)
        texts.append(text)
        if multi_label:
            targets.append([float(kind > 0), float(kind == 1), float(kind == 2)])
        else:
            targets.append(int(kind > 0))
    return texts, targets


def build_tiny_classifier(path, *, multi_label: bool = False, train: bool = True, seed: int = 1) -> Path:
    """Save the classifier (trained on the toy rule unless train=False) and its tokenizer."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    path = Path(path)
    tokenizer = build_tokenizer(path, wrap_with_bos_eos=True)
    labels = MULTI_LABELS if multi_label else SINGLE_LABELS
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config)
    if train:
        _train(model, tokenizer, multi_label, seed)
    model.eval().save_pretrained(path, safe_serialization=True)
    return path


def _train(model, tokenizer, multi_label: bool, seed: int) -> None:
    """A fresh batch every step: with a small fixed set the model memorises sentences instead
    of learning the marker. One thread: on a busy 2-core machine two threads of tiny matrix
    ops wait on each other and run ~5x slower; ~2 s on one free core."""
    import torch

    steps, batch_size = (120 if multi_label else 80), 32
    texts, targets = toy_dataset(multi_label, size=steps * batch_size, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        for step in range(steps):
            batch = slice(step * batch_size, (step + 1) * batch_size)
            encoded = tokenizer(texts[batch], padding=True, return_tensors="pt")
            target = torch.tensor(targets[batch], dtype=torch.float if multi_label else torch.long)
            loss = model(**encoded, labels=target).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
