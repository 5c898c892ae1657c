"""What every detoxification method offers. One file per method; register it in detox/__init__.py.

A method acts at one or more of four points, each optional:
- `transform_prompt(prompt)`: prompt-level methods (system prompt / self-reminder, CMD).
- `install(generator, ctx)`, run by `applied(generator)`: forward hooks on torch modules
  (AURA/DAMP/Det_zero: a pre-hook on `mlp.down_proj`, or hooks on the MLP's linear modules'
  outputs; DeStein: a pre-hook on `self_attn.o_proj`, or a hook on its output; toxic-vector
  subtraction: a hook on a decoder layer), logits
  processors (DExperts, word ban) or temporary weight edits. `applied` undoes all of it
  when it exits, even on an exception, so the model is bit-identical afterwards.
- `derive_model(generator)`: editing methods (DINM, FT-L) return a new generator.
- `prepare(generator, data)`: work done once per (method, model fingerprint, data
  fingerprint, params fingerprint) — neuron expertise, steering vectors, probes — cached
  as files under MODEL_CACHE_DIR/artifacts and a DetoxArtifact row (`load_or_prepare`).
  A method that sets `needs_preparation` says what to prepare from in
  `preparation_data(job)` (e.g. toxic and non-toxic prompts of a dataset); the worker
  prepares (or loads) it when it loads the model, before `derive_model`, and records the
  artifact in the job's `detox_notes`.

Parameters are declared once in `parameters` (a toxplatform.params.ParamSchema: type,
default, bounds, help) and checked when the method is built; `check(params)` adds rules
across parameters. A bad value raises one ApplicationError that lists every problem. The
job form, the API schema and `manage.py evaluate --method-param` read the same declaration.

The pipeline runs a method with `run_generation(method, generator, prompts, params)`
(called by the generate stage through evaluation.worker_cache).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import weakref
from pathlib import Path
from typing import Any

from django.conf import settings

from evaluation.generators.base import (
    GenerationHooks,
    GenerationParams,
    Generator,
    PromptInput,
    Sample,
)
from evaluation.model_loading import staged_directory
from toxplatform.errors import ApplicationError
from toxplatform.params import ParamSchema, parameters_error
from toxplatform.registry import Registry

registry = Registry("detox method")

ARTIFACT_FILE = "artifact.pt"


def fingerprint_json(value: Any) -> str:
    """sha256 of a JSON-able value, independent of dict key order."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class HookContext:
    """Records everything a method installs on a model so `applied` can undo it exactly."""

    def __init__(self, generator: Generator):
        self.generator = generator
        self.hooks = GenerationHooks()
        self._handles: list = []
        self._saved_parameters: list[tuple[Any, Any]] = []

    @property
    def model(self):
        return self.generator.model

    def forward_pre_hook(self, module, hook, *, with_kwargs: bool = False) -> None:
        """hook(module, args) -> new args or None: sees a module's inputs (e.g. MLP neurons).
        with_kwargs: hook(module, args, kwargs) -> None or (args, kwargs) (e.g. the whole
        model's attention_mask at each decoding step)."""
        self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=with_kwargs))

    def forward_hook(self, module, hook) -> None:
        """hook(module, args, output) -> new output or None (a decoder layer's output is a tensor)."""
        self._handles.append(module.register_forward_hook(hook))

    def logits_processor(self, processor) -> None:
        """A transformers LogitsProcessor; it runs on raw logits, before sampling."""
        self.hooks.logits_processors.append(processor)

    def set_parameter(self, parameter, value) -> None:
        """Overwrite a weight in place for the duration of `applied`; the original comes back after."""
        import torch

        with torch.no_grad():
            self._saved_parameters.append((parameter, parameter.detach().clone()))
            parameter.copy_(value)

    def restore(self) -> None:
        import torch

        for handle in reversed(self._handles):
            handle.remove()
        self._handles.clear()
        with torch.no_grad():
            for parameter, original in reversed(self._saved_parameters):
                parameter.copy_(original)
        self._saved_parameters.clear()


class DetoxMethod:
    name: str = ""
    # One line for the job form and the API: what the method does and where it comes from.
    summary: str = ""
    # True for methods that touch modules or logits: an HTTP endpoint cannot run them.
    requires_local_model: bool = False
    parameters: ParamSchema = ParamSchema()
    # True: the worker calls load_or_prepare(generator, preparation_data(job)) before use.
    needs_preparation: bool = False

    def __init__(self, **params):
        self.params = self.validate_params(params)
        self.artifact: Any = None
        # Which prepared artifact is in use: the DetoxArtifact key and its folder.
        self.artifact_key: dict[str, str] | None = None
        # Facts about how the method ran, kept with the job (e.g. languages that fell back).
        self.notes: dict[str, Any] = {}
        self._derived: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # --- parameters --------------------------------------------------------------------
    def validate_params(self, params: dict) -> dict:
        values, problems = self.parameters.problems(params)
        if not problems:
            problems = self.check(values)
        if problems:
            raise parameters_error(f"Invalid parameters for detox method {self.name!r}", problems)
        return values

    def check(self, params: dict) -> dict[str, str]:
        """Rules across parameters (bounds are declared in `parameters`): {name: problem}."""
        return {}

    def submit_problems(self, *, model, dataset, languages) -> list[str]:
        """What makes this method unusable for a job, found before it is queued (create_job
        asks): an architecture without the hook point, expert models with another tokenizer,
        too little data to learn from. `model` is the job's ModelSpec, `dataset` its Dataset
        (or None), `languages` its language codes. Cheap: reads configs, never loads weights."""
        return []

    def params_fingerprint(self) -> str:
        return fingerprint_json({"method": self.name, "params": self.params})

    # --- preparation -------------------------------------------------------------------
    def preparation_data(self, job) -> Any:
        """What `prepare` learns from, as a JSON-able value (read from the database here,
        so that every worker derives the same data and the same fingerprint)."""
        return None

    def prepare(self, generator: Generator, data: Any) -> Any:
        """Compute what the method needs from the model and data (tensors, vectors...)."""
        return None

    def data_summary(self, data: Any) -> dict | None:
        """What the artifact was learned from, in a few words for the job page (source, counts)."""
        return None

    def save_artifact(self, artifact: Any, directory: Path) -> None:
        import torch

        torch.save(artifact, directory / ARTIFACT_FILE)

    def load_artifact(self, directory: Path) -> Any:
        import torch

        return torch.load(directory / ARTIFACT_FILE, weights_only=True)

    def load_or_prepare(self, generator: Generator, data: Any = None) -> Any:
        """`prepare` once per (method, model, data, params); later calls load the saved files.

        `data` is any JSON-able value (texts, pairs, instances); its fingerprint is the
        sha256 of its canonical JSON.
        """
        from evaluation.models import DetoxArtifact

        key = {
            "method": self.name,
            "model_fingerprint": generator.fingerprint(),
            "data_fingerprint": fingerprint_json(data),
            "params_fingerprint": self.params_fingerprint(),
        }
        summary = {"data": self.data_summary(data)} if self.data_summary(data) else {}
        row = DetoxArtifact.objects.filter(**key).first()
        if row is not None and (Path(row.path) / ARTIFACT_FILE).exists():
            self.artifact = self.load_artifact(Path(row.path))
            self.artifact_key = {**key, "path": row.path, **summary}
            return self.artifact
        artifact = self.prepare(generator, data)
        directory = Path(settings.MODEL_CACHE_DIR) / "artifacts" / self.name / fingerprint_json(key)[:32]
        with staged_directory(directory) as staging:
            self.save_artifact(artifact, staging)
            (staging / "key.json").write_text(json.dumps(key, indent=2))
        DetoxArtifact.objects.update_or_create(**key, defaults={"path": str(directory)})
        self.artifact = artifact
        self.artifact_key = {**key, "path": str(directory), **summary}
        return artifact

    # --- application -------------------------------------------------------------------
    def transform_prompt(self, prompt: PromptInput) -> PromptInput:
        return prompt

    def derive_model(self, generator: Generator) -> Generator:
        """Editing methods return a new generator (its own fingerprint); others the same one."""
        return generator

    def model_for(self, generator: Generator) -> Generator:
        """derive_model once per base generator (a worker reuses the edited model)."""
        if generator not in self._derived:
            self._derived[generator] = self.derive_model(generator)
        return self._derived[generator]

    def install(self, generator: Generator, ctx: HookContext) -> None:
        """Register hooks / logits processors / weight edits through ctx (undone by `applied`)."""

    @contextlib.contextmanager
    def applied(self, generator: Generator):
        """Install the method on the generator's model; yields the GenerationHooks to pass on."""
        if self.requires_local_model and not generator.has_local_model:
            raise ApplicationError(
                f"detox method {self.name!r} needs a local transformers model (backend hf)",
                {"model backend": generator.name},
            )
        ctx = HookContext(generator)
        try:
            self.install(generator, ctx)
            yield ctx.hooks
        finally:
            ctx.restore()


def run_generation(
    method: DetoxMethod, generator: Generator, prompts: list[PromptInput], params: GenerationParams
) -> list[list[Sample]]:
    """Generate k samples per prompt with the method in place (the pipeline's one entry point)."""
    model = method.model_for(generator)
    transformed = [method.transform_prompt(prompt) for prompt in prompts]
    with method.applied(model) as hooks:
        return model.generate(transformed, params, hooks)


def decoder_layers(model) -> list:
    """The decoder blocks of common causal LMs (Llama, Gemma, Mistral, Qwen: model.layers; GPT-2: transformer.h)."""
    for path in ("model.layers", "transformer.h", "model.language_model.layers", "model.decoder.layers",
                 "gpt_neox.layers"):
        node = model
        try:
            for attr in path.split("."):
                node = getattr(node, attr)
        except AttributeError:
            continue
        return list(node)
    raise ApplicationError(f"cannot find the decoder layers of {type(model).__name__}")

