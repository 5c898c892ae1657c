"""Detoxification methods by name. A new method is one file plus one import line below.

    method = load_detox_method("system_prompt", {})
    samples = run_generation(method, generator, prompts, GenerationParams(k=25))
"""
from evaluation.detox import none, system_prompt  # noqa: F401  (fills the registry)
from evaluation.detox import aura  # noqa: F401  (aura, det_zero, damp)
from evaluation.detox import toxic_vector  # noqa: F401
from evaluation.detox import word_ban  # noqa: F401
from evaluation.detox import destein  # noqa: F401
from evaluation.detox import self_detoxify  # noqa: F401
from evaluation.detox import dexperts  # noqa: F401
from evaluation.detox import dinm  # noqa: F401  (dinm, ft_l)
from evaluation.detox.base import DetoxMethod, HookContext, registry, run_generation  # noqa: F401
from toxplatform.errors import ApplicationError


def load_detox_method(name: str, params: dict | None = None) -> DetoxMethod:
    """Build a method by name; unknown names and bad params raise ApplicationError."""
    if params is not None and not isinstance(params, dict):
        raise ApplicationError(f"detox parameters must be an object, got {type(params).__name__}")
    return registry.get(name)(**(params or {}))


def method_names() -> list[str]:
    return registry.names()
