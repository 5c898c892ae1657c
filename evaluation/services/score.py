"""The score stage: one Score per (generation, scorer, category) of a chunk."""
from __future__ import annotations

from django.db.models import Count, F
from django.db.models.functions import Least

from evaluation import worker_cache
from evaluation.models import Chunk, Generation, JobPrompt, Score, scorer_key
from evaluation.scorers.base import ScoreResult, ScoringInput
from evaluation.services.claims import still_holding
from evaluation.services.generate import finite_or_none, storable_json
from evaluation.services.stages import OnBatch, Stage, register
from toxplatform.errors import ApplicationError

# Generations sent to a scorer at once; scorers batch internally (hf_classifier, perplexity).
SCORE_BATCH = 128


@register
class ScoreStage(Stage):
    name = Chunk.Stage.SCORE

    def ready(self, chunk_id: int) -> bool:
        # Not generated yet: its generate chunk queues it when done.
        row = Chunk.objects.filter(pk=chunk_id).values("job_id", "index").first()
        return row is not None and Chunk.objects.filter(
            job_id=row["job_id"], stage=Chunk.Stage.GENERATE, index=row["index"], status=Chunk.Status.DONE
        ).exists()

    def work(self, chunk: Chunk, on_batch: OnBatch | None) -> None:
        score_generations(chunk, on_batch=on_batch)

    def counters(self, chunk: Chunk) -> dict:
        prompt_count = JobPrompt.objects.filter(job_id=chunk.job_id, chunk_index=chunk.index).count()
        # Least: a taken-over chunk finishing twice must not push progress past the total.
        return {"scored_prompts": Least(F("scored_prompts") + prompt_count, F("total_prompts"))}


def score_generations(chunk: Chunk, *, on_batch: OnBatch | None = None) -> None:
    """Score the chunk's generations that lack a Score for some (scorer, category)."""
    job = chunk.job
    generations = list(
        Generation.objects.filter(
            job=job, prompt__in=JobPrompt.objects.filter(job=job, chunk_index=chunk.index).values("prompt")
        )
        .select_related("prompt")
        .order_by("id")
    )
    for spec in job.scorers:
        scorer = worker_cache.scorer_for(spec["name"], spec.get("params") or {})
        key = scorer_key(spec)
        categories = scorer.categories()
        complete = set(
            Score.objects.filter(generation__in=[g.pk for g in generations], scorer=key,
                                 category__in=categories)
            .values("generation_id")
            .annotate(n=Count("id"))
            .filter(n__gte=len(categories))
            .values_list("generation_id", flat=True)
        )
        todo = [g for g in generations if g.pk not in complete]
        for start in range(0, len(todo), SCORE_BATCH):
            still_holding(chunk)
            batch = todo[start : start + SCORE_BATCH]
            results = _score_batch(scorer, batch)
            rows = [
                Score(generation=generation, scorer=key, category=category,
                      value=finite_or_none(result.value), raw=storable_json(result.raw))
                for generation, per_category in zip(batch, results, strict=True)
                for category, result in per_category.items()
            ]
            Score.objects.bulk_create(rows, ignore_conflicts=True)
            if on_batch:
                on_batch(Chunk.Stage.SCORE, len(batch))


def _score_batch(scorer, generations: list[Generation]) -> list[dict[str, ScoreResult]]:
    """Scores for every category of the scorer; an unsupported language or a missing category
    is stored as an invalid score (value None) so each (generation, category) has one row."""
    categories = scorer.categories()
    supported = [g for g in generations if scorer.supports_language(g.prompt.language_id)]
    results = scorer.score(
        [ScoringInput(prompt=g.prompt.text, continuation=g.text, language=g.prompt.language_id) for g in supported]
    ) if supported else []
    if len(results) != len(supported):
        raise ApplicationError(
            f"Scorer {scorer.name!r} returned {len(results)} results for {len(supported)} texts"
        )
    by_generation = dict(zip((g.pk for g in supported), results, strict=True))
    out = []
    for generation in generations:
        found = by_generation.get(generation.pk)
        if found is None:
            reason = f"language {generation.prompt.language_id!r} not supported by {scorer.name}"
            out.append({c: ScoreResult(value=None, raw={"reason": reason}) for c in categories})
        else:
            out.append({c: found.get(c) or ScoreResult(value=None, raw={"reason": "no value returned"})
                        for c in categories})
    return out
