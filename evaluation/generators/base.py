"""What every generator offers. One file per backend; register it in generators/__init__.py."""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from toxplatform.errors import ApplicationError
from toxplatform.registry import Registry

registry = Registry("generator")


@dataclass(frozen=True)
class PromptInput:
    text: str
    language: str  # BCP-47 code; detox methods such as system_prompt need it
    # An instruction for the model (system_prompt detox): chat models get it as the system
    # message, base models get it as text before the prompt (see render_plain).
    system: str = ""


def render_plain(prompt: PromptInput) -> str:
    """The prompt as one text, for models without a chat template."""
    if not prompt.system:
        return prompt.text
    return f"{prompt.system}\n\n{prompt.text}"


def chat_messages(prompt: PromptInput) -> list[dict]:
    """The prompt as chat messages: the user turn is the prompt text."""
    messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
    return [*messages, {"role": "user", "content": prompt.text}]


@dataclass(frozen=True)
class GenerationParams:
    k: int = 25
    max_new_tokens: int = 20
    top_p: float = 0.9
    temperature: float = 1.0  # 0 means greedy decoding (the k samples are then identical)
    seed: int = 0
    batch_size: int = 16  # prompts per forward pass: batch_size * k sequences at once
    min_new_tokens: int = 0  # > 0 forbids EOS until then (benchmarks use it to force full length)


def sample_seed(seed: int, prompt: PromptInput, sample_index: int = 0) -> int:
    """A 63-bit seed for one (job seed, prompt, sample), independent of batch composition."""
    key = f"{seed}\x1f{prompt.system}\x1f{prompt.text}\x1f{sample_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


@dataclass
class Sample:
    text: str
    token_count: int


@dataclass
class GenerationHooks:
    """What a detox method contributes to one generate call (see evaluation/detox/base.py)."""

    logits_processors: list = field(default_factory=list)


@dataclass(frozen=True)
class ModelConfig:
    """The fields of a ModelSpec a generator needs, without the database row."""

    name: str
    backend: str = "hf"
    location: str = ""
    gguf_file: str = ""
    remote_model: str = ""
    dtype: str = "auto"
    device: str = "auto"
    use_chat_template: bool = False
    params: Mapping = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec) -> ModelConfig:
        """From a ModelSpec row, a ModelConfig, or a mapping with the same keys."""
        if isinstance(spec, ModelConfig):
            return spec
        names = [f for f in cls.__dataclass_fields__]
        if isinstance(spec, Mapping):
            values = {name: spec[name] for name in names if name in spec and spec[name] is not None}
        else:
            values = {name: getattr(spec, name) for name in names if hasattr(spec, name)}
        values["params"] = dict(values.get("params") or {})
        return cls(**values)


class Generator(ABC):
    """A backend: one file, registered by name (ModelSpec.backend). It declares what it can
    do, so nothing else in the platform tests a backend's name."""

    name: str = ""
    # One line for forms and admin lists.
    label: str = ""
    # Whether `model` / `tokenizer` are local torch objects that detox methods can hook.
    has_local_model: bool = False

    def __init__(self, config: ModelConfig):
        self.config = config

    @classmethod
    def fingerprint_of(cls, config: ModelConfig) -> str:
        """The fingerprint without loading the model (weights hashed, cached by path, size and
        mtime; or endpoint + model name). Problems with the location raise ApplicationError."""
        raise NotImplementedError

    @classmethod
    def recheck_fingerprint_on_submit(cls, config: ModelConfig) -> bool:
        """Whether a new job re-reads the fingerprint (local weights that may have changed
        since the spec was registered); False where it cannot change or costs a conversion."""
        return False

    @property
    def uses_chat_template(self) -> bool:
        return self.config.use_chat_template

    @abstractmethod
    def fingerprint(self) -> str:
        """Hash of the weights (local) or endpoint + model name (remote)."""

    @abstractmethod
    def generate(
        self, prompts: list[PromptInput], params: GenerationParams, hooks: GenerationHooks | None = None
    ) -> list[list[Sample]]:
        """k samples per prompt, in prompt order; the same inputs and seed give the same text."""

    def close(self) -> None:
        """Free memory / connections."""


def check_generation_params(params: GenerationParams) -> None:
    problems = []
    if params.k < 1:
        problems.append("k must be at least 1")
    if params.max_new_tokens < 1:
        problems.append("max_new_tokens must be at least 1")
    if not 0 < params.top_p <= 1:
        problems.append("top_p must be in (0, 1]")
    if params.temperature < 0:
        problems.append("temperature must be >= 0 (0 = greedy)")
    if params.batch_size < 1:
        problems.append("batch_size must be at least 1")
    if not 0 <= params.min_new_tokens <= params.max_new_tokens:
        problems.append("min_new_tokens must be between 0 and max_new_tokens")
    if problems:
        raise ApplicationError("invalid generation parameters", {"problems": "; ".join(problems)})
