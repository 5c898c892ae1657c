"""Models kept loaded in a worker process between chunks.

Loading a generator costs seconds to minutes; a job has many chunks. Each worker process
keeps the generator (with its detox method) of the last job it served, and the last few
scorers, keyed by everything that changes their output. Bounded: a process that moves on
to another model closes the old one (frees GPU memory) before loading the next.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from evaluation import model_loading
from evaluation.detox.base import DetoxMethod
from evaluation.generators.base import GenerationHooks, Generator, PromptInput
from toxplatform.errors import ApplicationError

logger = logging.getLogger(__name__)

GENERATORS_KEPT = 1  # a model is the biggest thing a worker holds: one at a time
SCORERS_KEPT = 4  # a job usually asks for 1-3 scorers; all of them stay warm across chunks


class BoundedCache:
    """A small LRU that calls close() on what it evicts."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, key: Hashable, load: Callable[[], object]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            # Evict first: loading the next model next to the old one could run out of memory.
            while len(self._items) >= self.size:
                _, old = self._items.popitem(last=False)
                _close(old)
            value = load()
            self._items[key] = value
            return value

    def discard(self, key: Hashable) -> None:
        with self._lock:
            if key in self._items:
                _close(self._items.pop(key))

    def clear(self) -> None:
        with self._lock:
            while self._items:
                _close(self._items.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._items)


def _close(value) -> None:
    close = getattr(value, "close", None)
    if close is not None:
        close()


@dataclass
class LoadedGenerator:
    """A job's generator with its detox method: `model` is what generates (an editing method's
    derived model, else the base generator), `applied()` installs the method's hooks."""

    base: Generator
    method: DetoxMethod
    model: Generator
    # Facts fixed when it loaded (artifact, derived model), kept in each job's detox_notes.
    load_notes: dict
    # The quick fingerprint of the files it loaded (model_loading's fingerprints).
    quick_fingerprint: str = ""

    def take_notes(self) -> dict:
        """The load notes plus what the method noted since the last call (then forgotten:
        a cached method serves later jobs, which must not inherit this job's notes)."""
        notes = {**self.load_notes, **self.method.notes}
        self.method.notes = {}
        return notes

    def transform_prompt(self, prompt: PromptInput) -> PromptInput:
        return self.method.transform_prompt(prompt)

    def applied(self) -> AbstractContextManager[GenerationHooks]:
        return self.method.applied(self.model)

    def close(self) -> None:
        if self.model is not self.base:
            self.model.close()
        self.base.close()


_generators = BoundedCache(GENERATORS_KEPT)
_scorers = BoundedCache(SCORERS_KEPT)


def _params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def generator_for(job) -> LoadedGenerator:
    """The job's model with its detox method, loaded once per process per (model, method, params).

    The job's results must come from the weights it was queued with. A model this process
    loaded earlier is reused only if it matches the job's fingerprint; else it is loaded
    again (the files changed since), and _load_generator refuses it if it still differs.
    """
    from evaluation.generators import ModelConfig

    config = _params_key(dataclasses.asdict(ModelConfig.from_spec(job.model)))
    key = (job.model.pk, config, job.detox_method, _params_key(job.detox_params))
    loaded = _generators.get_or_load(key, lambda: _load_generator(job))
    if not _matches(loaded, job.model_fingerprint):
        _generators.discard(key)
        loaded = _generators.get_or_load(key, lambda: _load_generator(job))
    _record_fingerprint(job, loaded.base.fingerprint())
    return loaded


def _matches(loaded: LoadedGenerator, queued: str) -> bool:
    if not queued:  # a packaged model not yet converted when the job was queued
        return True
    if model_loading.is_quick(queued):
        return loaded.quick_fingerprint == queued
    return loaded.base.fingerprint() == queued


def _record_fingerprint(job, fingerprint: str) -> None:
    """The first worker to load a model for a job records the full fingerprint the web
    request could not afford; every later load then has to match it."""
    from evaluation.models import EvaluationJob, ModelSpec

    queued = job.model_fingerprint
    if queued == fingerprint or not (queued == "" or model_loading.is_quick(queued)):
        return
    EvaluationJob.objects.filter(pk=job.pk, model_fingerprint=queued).update(model_fingerprint=fingerprint)
    ModelSpec.objects.filter(pk=job.model.pk, fingerprint=queued).update(fingerprint=fingerprint)
    job.model_fingerprint = EvaluationJob.objects.values_list("model_fingerprint", flat=True).get(pk=job.pk)
    if job.model_fingerprint != fingerprint:  # another worker recorded other weights first
        raise _changed(job, job.model_fingerprint, fingerprint)


def _changed(job, queued: str, found: str) -> ApplicationError:
    return ApplicationError(
        f"The files of model {job.model.name!r} changed after the job was queued; "
        "queue a new job to evaluate the new weights",
        {"queued with": queued[:16], "found": found[:16]},
    )


def _load_generator(job) -> LoadedGenerator:
    from evaluation.detox import registry as detox_registry
    from evaluation.generators import load_generator

    logger.info("loading model %s with detox method %s for this process", job.model.name, job.detox_method)
    method = detox_registry.get(job.detox_method)(**job.detox_params)
    base = load_generator(job.model)
    try:
        # Both taken now, from the files just loaded (fingerprint() hashes them once).
        quick, full = base.quick_fingerprint(), base.fingerprint()
        queued = job.model_fingerprint
        found = quick if model_loading.is_quick(queued) else full
        if queued and found != queued:
            raise _changed(job, queued, found)
        load_notes = {}
        if method.needs_preparation:
            method.load_or_prepare(base, method.preparation_data(job))
            load_notes["artifact"] = method.artifact_key
        model = method.model_for(base)
        if model is not base:
            load_notes["derived_model_fingerprint"] = model.fingerprint()
        return LoadedGenerator(base=base, method=method, model=model, load_notes=load_notes, quick_fingerprint=quick)
    except BaseException:
        base.close()
        raise


def scorer_for(name: str, params: dict):
    from evaluation.scorers import registry

    def load():
        logger.info("loading scorer %s for this process", name)
        return registry.get(name)(**params)

    return _scorers.get_or_load((name, _params_key(params)), load)


def clear() -> None:
    """Close everything (worker shutdown, tests)."""
    _generators.clear()
    _scorers.clear()
