"""Generators by backend name. A new backend is one file plus one import line in
`_register_backends` below; it declares what it can do (evaluation/generators/base.py).

    generator = load_generator(model_spec)          # ModelSpec row, ModelConfig or dict
    samples = generator.generate(prompts, GenerationParams(k=25), hooks)
"""
from __future__ import annotations

from evaluation.generators.base import (  # noqa: F401  (the public names of this package)
    GenerationHooks,
    GenerationParams,
    Generator,
    ModelConfig,
    PromptInput,
    Sample,
    registry,
)


def _register_backends() -> None:
    # Imported lazily: the hf backend pulls in torch and transformers, which a web process
    # that only lists backends should not pay for.
    from evaluation.generators import hf, openai  # noqa: F401


def backend(name: str) -> type[Generator]:
    """The generator class registered under a backend name (ApplicationError if none)."""
    if name not in registry:
        _register_backends()
    return registry.get(name)


def load_generator(spec) -> Generator:
    """Load the model a ModelSpec (or ModelConfig / mapping with its fields) describes.

    Bad locations raise ApplicationError before any weights are read.
    """
    config = ModelConfig.from_spec(spec)
    return backend(config.backend)(config)


def fingerprint_for(spec) -> str:
    """The model's fingerprint without loading it (hashes are cached by path, size, mtime)."""
    config = ModelConfig.from_spec(spec)
    return backend(config.backend).fingerprint_of(config)
