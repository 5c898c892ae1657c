"""The generate stage: k continuations per prompt of a chunk, with the job's detox method."""
from __future__ import annotations

import json
import math

from django.db import transaction
from django.db.models import Count, F
from django.db.models.functions import Least

from evaluation import worker_cache
from evaluation.generators.base import GenerationParams, PromptInput
from evaluation.models import Chunk, EvaluationJob, Generation, JobPrompt
from evaluation.services.claims import still_holding
from evaluation.services.stages import OnBatch, Stage, register
from toxplatform.errors import ApplicationError


def storable_text(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL, and a model can write one (byte-level
    tokenizers decode any byte): it becomes U+FFFD, the replacement character."""
    return text.replace("\x00", "\ufffd")


def storable_json(value):
    """A scorer's raw output made storable in jsonb: no NUL, no NaN / infinity (None instead)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {storable_text(str(key)): storable_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_json(item) for item in value]
    return value


def finite_or_none(value):
    return value if value is None or math.isfinite(value) else None


@register
class GenerateStage(Stage):
    name = Chunk.Stage.GENERATE

    def work(self, chunk: Chunk, on_batch: OnBatch | None) -> None:
        generate_samples(chunk, on_batch=on_batch)


def generation_params(job: EvaluationJob) -> GenerationParams:
    return GenerationParams(
        k=job.k, max_new_tokens=job.max_new_tokens, top_p=job.top_p, temperature=job.temperature,
        seed=job.seed, batch_size=job.batch_size,
    )


def generate_samples(chunk: Chunk, *, on_batch: OnBatch | None = None) -> None:
    """Generate the missing samples of a claimed chunk, one batch of prompts at a time.

    Each batch is inserted (ignore_conflicts) together with the progress counter in one
    transaction, so a chunk killed half-way resumes at the first unfinished batch.
    """
    job = chunk.job
    job_prompts = list(
        JobPrompt.objects.filter(job=job, chunk_index=chunk.index).select_related("prompt").order_by("id")
    )
    have = dict(
        Generation.objects.filter(job=job, prompt_id__in=[jp.prompt_id for jp in job_prompts])
        .values_list("prompt_id")
        .annotate(n=Count("id"))
    )
    todo = [jp.prompt for jp in job_prompts if have.get(jp.prompt_id, 0) < job.k]
    if not todo:
        return
    loaded = worker_cache.generator_for(job)
    params = generation_params(job)
    with loaded.applied() as hooks:
        for start in range(0, len(todo), job.batch_size):
            still_holding(chunk)
            batch = todo[start : start + job.batch_size]
            inputs = [loaded.transform_prompt(PromptInput(text=p.text, language=p.language_id)) for p in batch]
            samples = loaded.model.generate(inputs, params, hooks)
            if len(samples) != len(batch) or any(len(per_prompt) != job.k for per_prompt in samples):
                raise ApplicationError(
                    "The generator returned the wrong number of samples",
                    {"expected": f"{len(batch)} x {job.k}", "got": [len(s) for s in samples]},
                )
            rows = [
                Generation(job=job, prompt=prompt, sample_index=i, text=storable_text(sample.text),
                           token_count=sample.token_count)
                for prompt, per_prompt in zip(batch, samples, strict=True)
                for i, sample in enumerate(per_prompt)
            ]
            with transaction.atomic():
                Generation.objects.bulk_create(rows, ignore_conflicts=True)
                # Least: a taken-over chunk finishing twice must not push progress past the total.
                EvaluationJob.objects.filter(pk=job.pk).update(
                    generated_prompts=Least(F("generated_prompts") + len(batch), F("total_prompts"))
                )
            if on_batch:
                on_batch(Chunk.Stage.GENERATE, len(batch))
    record_method_notes(job, loaded.take_notes())


def record_method_notes(job: EvaluationJob, notes: dict) -> None:
    """Merge what the detox method noted into job.detox_notes (lists as sorted unions, so
    chunks on several workers add up in any order)."""
    if not notes:
        return
    with transaction.atomic():
        current = EvaluationJob.objects.select_for_update().values_list("detox_notes", flat=True).get(pk=job.pk)
        merged = _merge_notes(current or {}, storable_json(notes))
        if merged != current:
            EvaluationJob.objects.filter(pk=job.pk).update(detox_notes=merged)
    job.detox_notes = merged


def _merge_notes(old: dict, new: dict) -> dict:
    merged = dict(old)
    for key, value in new.items():
        before = merged.get(key)
        if isinstance(value, list) and isinstance(before, list):
            merged[key] = sorted({json.dumps(v, sort_keys=True): v for v in before + value}.values(), key=str)
        elif isinstance(value, dict) and isinstance(before, dict):
            merged[key] = _merge_notes(before, value)
        else:
            merged[key] = value
    return merged
