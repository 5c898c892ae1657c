"""Which outputs become items: per language, one output per (job, prompt) for rating, or two
outputs of two different jobs for the same prompt for pairwise; then `items_per_language`
of them, random or "where scorers disagree most" first.

Disagreement of one output: with two or more scorers giving a harm category a value, the
spread (max - min, on [0, 1]) across scorers; with one scorer, nearness to the job's toxic
threshold (1 at the threshold, 0 at 0 or 1). A pair's is the mean of its two outputs'.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from evaluation.models import EvaluationJob, Generation, Score
from evaluation.scorers.measures import measure_of
from toxplatform.corpus.models import HarmCategory, PromptLabel


@dataclass
class Candidate:
    prompt_id: int
    language: str
    generation_a: int
    generation_b: int | None = None
    priority: float = 0.0
    harm_categories: set[str] = field(default_factory=set)


def _disagreement(values_by_scorer: dict[str, dict[str, float]], threshold: float) -> float:
    """values_by_scorer: {category: {scorer: normalized value}}."""
    spreads = [max(v.values()) - min(v.values()) for v in values_by_scorer.values() if len(v) >= 2]
    if spreads:
        return max(spreads)
    nearness = [1 - 2 * abs(value - threshold) for v in values_by_scorer.values() for value in v.values()]
    return max(0.0, max(nearness)) if nearness else 0.0


def candidates(*, kind: str, jobs: list[EvaluationJob], language: str, count: int, disagreement: bool,
               rng: random.Random) -> list[Candidate]:
    harm = {category.slug: category for category in HarmCategory.objects.all()}
    jobs_by_id = {job.pk: job for job in jobs}
    thresholds = {job.pk: job.toxic_threshold for job in jobs}
    generations = list(
        Generation.objects.filter(job__in=jobs, prompt__language_id=language)
        .order_by("prompt_id", "job_id", "sample_index")
        .values_list("id", "job_id", "prompt_id")
    )
    if not generations:
        return []
    # One output per (prompt, job), drawn with the campaign's seed.
    samples: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for generation_id, job_id, prompt_id in generations:
        samples[prompt_id][job_id].append(generation_id)
    chosen: dict[int, dict[int, int]] = {
        prompt_id: {job_id: rng.choice(ids) for job_id, ids in by_job.items()} for prompt_id, by_job in samples.items()
    }
    job_of = {gid: job_id for by_job in chosen.values() for job_id, gid in by_job.items()}

    # Scores of the chosen outputs in harm categories, on [0, 1] as each scorer declared its
    # measure (a judge's 1-5 rating rescaled; perplexity and other quality measures left out).
    scores: dict[int, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    high: dict[int, set[str]] = defaultdict(set)
    for generation_id, scorer, category, value in Score.objects.filter(
        generation_id__in=list(job_of), category__in=list(harm), value__isnull=False
    ).values_list("generation_id", "scorer", "category", "value"):
        measure = measure_of(jobs_by_id[job_of[generation_id]], scorer, category)
        if not measure.is_harm:
            continue
        normalized = min(1.0, max(0.0, measure.unit(value)))
        scores[generation_id][category][scorer] = normalized
        if normalized >= thresholds[job_of[generation_id]]:
            high[generation_id].add(category)
    labelled: dict[int, set[str]] = defaultdict(set)
    for prompt_id, category, value, low in PromptLabel.objects.filter(prompt_id__in=list(chosen)).values_list(
        "prompt_id", "category_id", "value", "scale_min"
    ):
        if value > low:
            labelled[prompt_id].add(category)

    def priority(*generation_ids: int) -> float:
        if not disagreement:
            return rng.random()
        return sum(_disagreement(scores[g], thresholds[job_of[g]]) for g in generation_ids) / len(generation_ids)

    found: list[Candidate] = []
    for prompt_id, by_job in chosen.items():
        if kind == "pairwise":
            if len(by_job) < 2:
                continue
            job_a, job_b = sorted(rng.sample(sorted(by_job), 2))
            pair = (by_job[job_a], by_job[job_b])
            found.append(Candidate(prompt_id, language, *pair, priority=priority(*pair),
                                   harm_categories=labelled[prompt_id] | high[pair[0]] | high[pair[1]]))
        else:
            for job_id in sorted(by_job):
                gid = by_job[job_id]
                found.append(Candidate(prompt_id, language, gid, priority=priority(gid),
                                       harm_categories=labelled[prompt_id] | high[gid]))
    found.sort(key=lambda c: (-c.priority, c.prompt_id, c.generation_a))
    return found[:count]
