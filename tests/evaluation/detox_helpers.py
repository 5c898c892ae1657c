"""Shared by the detox-method tests: tiny models, labelled texts, capturing module inputs."""
from __future__ import annotations

import contextlib

import torch

from evaluation.generators import PromptInput, load_generator
from tests.tiny_models import build_tiny_causal_lm

TOXIC = ["you are an idiot", "shut up you stupid fool", "I hate you all", "what a disgusting loser",
         "go away you worthless creep", "Ты идиот и дурак"]
NONTOXIC = ["you are very kind", "thank you for the help", "the weather is nice", "what a lovely garden",
            "have a wonderful day", "Спасибо за помощь"]
DATA = {"source": {"test": True}, "toxic": TOXIC, "nontoxic": NONTOXIC, "pairs": []}
PROMPTS = [PromptInput("The quick brown fox", "en"), PromptInput("Быстрая лиса", "ru")]


def tiny_generator(tmp_path_factory, arch: str, seed: int = 0):
    directory = build_tiny_causal_lm(tmp_path_factory.mktemp(f"{arch}{seed}"), arch, seed=seed)
    return load_generator({"name": f"{arch}{seed}", "location": str(directory), "dtype": "float32", "device": "cpu"})


def prompt_ids(generator, text: str = "The quick brown fox"):
    return torch.tensor([generator.encode([PromptInput(text, "en")])[0]])


def logits(generator, text: str = "The quick brown fox"):
    with torch.inference_mode():
        return generator.model(prompt_ids(generator, text)).logits.clone()


@contextlib.contextmanager
def watch_input(module):
    """Records a module's input as it arrives (before later hooks) and as its forward sees it
    (after every hook registered before this one). Register it after the method's hooks."""
    seen: dict[str, list] = {"first": [], "last": []}
    first = module.register_forward_pre_hook(lambda m, args: seen["first"].append(args[0].detach().clone()),
                                             prepend=True)
    last = module.register_forward_pre_hook(lambda m, args: seen["last"].append(args[0].detach().clone()))
    try:
        yield seen
    finally:
        first.remove()
        last.remove()


@contextlib.contextmanager
def watch_output(module):
    """Records a module's output as its forward returns it ("first", before any forward hook)
    and as the model receives it ("last", after every hook registered before this one)."""
    seen: dict[str, list] = {"first": [], "last": []}
    first = module.register_forward_hook(lambda m, args, out: seen["first"].append(out.detach().clone()),
                                         prepend=True)
    last = module.register_forward_hook(lambda m, args, out: seen["last"].append(out.detach().clone()))
    try:
        yield seen
    finally:
        first.remove()
        last.remove()


def assert_no_hooks(model):
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def written_artifacts(cache_dir) -> dict:
    """Every prepared artifact file under a model cache -> (inode, mtime): a preparation writes
    its directory anew, a reuse only reads, so an unchanged dict means nothing was prepared."""
    from pathlib import Path

    return {str(path): (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in sorted(Path(cache_dir, "artifacts").rglob("*")) if path.is_file()}
