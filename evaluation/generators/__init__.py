"""Generators by backend name. A new backend is one file plus one import line below.

    generator = load_generator(model_spec)          # ModelSpec row, ModelConfig or dict
    samples = generator.generate(prompts, GenerationParams(k=25), hooks)
"""
from __future__ import annotations

from evaluation import model_loading
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


def load_generator(spec) -> Generator:
    """Load the model a ModelSpec (or ModelConfig / mapping with its fields) describes.

    Bad locations raise ApplicationError before any weights are read.
    """
    config = ModelConfig.from_spec(spec)
    if config.backend not in registry:
        _register_backends()
    return registry.get(config.backend)(config)


def fingerprint_for(spec) -> str:
    """The model's fingerprint as a web request can afford it: without loading, hashing or
    converting weights (a quick or empty one that the first worker replaces; see
    model_loading's fingerprints)."""
    config = ModelConfig.from_spec(spec)
    if config.backend == "openai":
        from evaluation.generators.openai import check_endpoint

        return model_loading.fingerprint_endpoint(check_endpoint(config), config.remote_model)
    if config.location.startswith(model_loading.PACKAGE_PREFIX):
        name = config.location[len(model_loading.PACKAGE_PREFIX) :]
        if name not in model_loading.PACKAGED_MODELS:
            model_loading.packaged_model_dir(name)  # raises: unknown packaged model
        model_loading._package_dir(model_loading.PACKAGED_MODELS[name])  # raises: not installed
        return model_loading.packaged_fingerprint(name)
    directory, gguf_file = model_loading.local_model_files(config.location, config.gguf_file)
    with model_loading.readable(directory):
        return model_loading.request_fingerprint(directory, gguf_file)


def backend_names() -> list[str]:
    _register_backends()
    return registry.names()
