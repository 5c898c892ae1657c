"""Scorer evaluation: a scorer (or imported scores) against a dataset's gold labels.

    evaluation = create_scorer_evaluation(scorer={"name": "lexicon"}, dataset="rtp-lx")
    run_scorer_evaluation(evaluation.pk)    # the Celery task and `manage.py evaluate_scorer`

No generation: the prompt text itself is scored (ScoringInput(prompt="", continuation=text)),
batch by batch, each value stored as a ScorerEvaluationScore (unique per prompt and
category: a rerun after a crash scores only what is missing). Then agreement_table turns
values and gold labels into one ScorerEvaluationResult per language x category x subset.

A trained scorer evaluated on the dataset it was trained from counts only its held-out
transcreation groups (`excluded_prompts` says how many were left out), so its kappa is never
measured on its own training data.
"""
from __future__ import annotations

import logging
import time

import numpy as np
from django.db import transaction

from evaluation.scorer_trust import agreement_table, runs
from evaluation.scorer_trust.labels import DEFAULT_RULE, check_rule, load_gold_labels, resolve_selection
from evaluation.scorer_trust.models import (
    ImportedScore,
    ImportedScoreSet,
    ScorerEvaluation,
    ScorerEvaluationResult,
    ScorerEvaluationScore,
)
from evaluation.scorers import ScoringInput, registry
from evaluation.scorers.measures import Measure
from toxplatform.corpus.models import Dataset, Language
from toxplatform.errors import ApplicationError

logger = logging.getLogger(__name__)
BATCH = 64
MAX_BOOTSTRAP = 10_000


def parse_scorer_spec(spec) -> tuple[str, dict]:
    """"name", {"name": ..., "params": {...}} -> (name, params)."""
    if isinstance(spec, str):
        return spec.strip(), {}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        params = spec.get("params") or {}
        if not isinstance(params, dict):
            raise ApplicationError("A scorer's params must be an object", {"params": repr(params)[:100]})
        return spec["name"], params
    raise ApplicationError("Give a scorer as a name or {\"name\": ..., \"params\": {...}}")


def build_scorer(name: str, params: dict):
    if name not in registry:
        raise ApplicationError(f"Unknown scorer {name!r}", {"known": ", ".join(registry.names())})
    return registry.get(name)(**params)


def create_scorer_evaluation(*, scorer=None, imported: str | None = None, dataset: str = "rtp-lx", languages=(),
                             categories=(), aggregate_rule: str = DEFAULT_RULE, bootstrap: int = 1000, seed: int = 0,
                             heldout_of: str | None = None, user=None, enqueue: bool = True) -> ScorerEvaluation:
    """Check everything, then write a QUEUED evaluation (queued as a task on commit).

    heldout_of: the name of a finished training run on this dataset; only its held-out
    groups are scored, so any scorer can be compared with that trained scorer on the same
    prompts."""
    if (scorer is None) == (imported is None):
        raise ApplicationError("Evaluate either a scorer or a set of imported scores (one of them)")
    check_rule(aggregate_rule)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise ApplicationError(f"bootstrap must be a whole number from 0 to {MAX_BOOTSTRAP}", {"bootstrap": bootstrap})
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ApplicationError("seed must be a whole number", {"seed": seed})
    dataset_row = Dataset.objects.filter(slug=dataset).first()
    if dataset_row is None:
        raise ApplicationError(f"Unknown dataset {dataset!r}")
    fields = {}
    if scorer is not None:
        name, params = parse_scorer_spec(scorer)
        instance = build_scorer(name, params)
        try:
            offered = {category: instance.measure(category) for category in instance.categories()}
            fields.update(source=ScorerEvaluation.Source.SCORER, scorer_name=name, scorer_params=params,
                          scorer_key=instance.key())
        finally:
            instance.close()
    else:
        score_set = ImportedScoreSet.objects.filter(dataset=dataset_row, name=imported).first()
        if score_set is None:
            raise ApplicationError(
                f"No imported scores named {imported!r} for dataset {dataset_row.slug!r}",
                {"imported": ", ".join(ImportedScoreSet.objects.filter(dataset=dataset_row)
                                       .values_list("name", flat=True)) or "none"},
            )
        offered = {category: Measure.from_json(measure) for category, measure in score_set.measures.items()}
        fields.update(source=ScorerEvaluation.Source.IMPORTED, imported=score_set, scorer_key=score_set.scorer_key)
    if heldout_of:
        from evaluation.scorer_trust.models import RunStatus, TrainingRun

        run = TrainingRun.objects.filter(name=heldout_of, status=RunStatus.DONE, dataset=dataset_row).first()
        if run is None:
            raise ApplicationError(f"No finished training run named {heldout_of!r} on {dataset_row.slug!r}",
                                   {"heldout_of": heldout_of})
        fields["notes"] = {"heldout_of": run.name, "heldout_fraction": run.params["heldout_fraction"],
                           "heldout_seed": run.params["seed"]}
    dataset_row, chosen_languages, labelled = resolve_selection(dataset_row.slug, languages, categories)
    chosen = [category.slug for category in labelled]
    if categories:
        missing = [slug for slug in chosen if slug not in offered]
        if missing:
            raise ApplicationError(f"{fields['scorer_key']} gives no score in {', '.join(missing)}",
                                   {"categories": ", ".join(offered) or "none"})
    else:
        chosen = [slug for slug in chosen if slug in offered]
        if not chosen:
            raise ApplicationError(
                f"{fields['scorer_key']} scores none of the categories {dataset_row.slug!r} has gold labels in",
                {"scorer categories": ", ".join(offered) or "none"},
            )
    harm = [slug for slug in chosen if not offered[slug].is_harm]
    if harm:
        raise ApplicationError(f"{', '.join(harm)}: not a harm measure, nothing to compare with gold labels")
    with transaction.atomic():
        evaluation = ScorerEvaluation.objects.create(
            **fields,
            measures={slug: offered[slug].as_json() for slug in chosen},
            dataset=dataset_row,
            languages=chosen_languages if languages else [],
            categories=chosen,
            aggregate_rule=aggregate_rule,
            mapping_rule=agreement_table.MAPPING_RULE,
            bootstrap=bootstrap,
            seed=seed,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        if enqueue:
            transaction.on_commit(lambda: runs.send_run(evaluation))
    return evaluation


def run_scorer_evaluation(evaluation_id: int, progress=None) -> ScorerEvaluation | None:
    """Run a queued scorer evaluation here (as run_training does a training run)."""
    return runs.execute(ScorerEvaluation, evaluation_id, _evaluate, progress)


def _evaluate(evaluation: ScorerEvaluation, step) -> None:
    started = time.time()
    step("reading labels")
    dataset, languages, categories = resolve_selection(evaluation.dataset.slug, evaluation.languages,
                                                       evaluation.categories)
    gold = load_gold_labels(dataset, languages, categories, evaluation.aggregate_rule)
    measures = {slug: Measure.from_json(measure) for slug, measure in evaluation.measures.items()}
    include = np.ones(len(gold), dtype=bool)
    notes = dict(evaluation.notes or {})
    if notes.get("heldout_of"):
        from evaluation.scorer_trust import learning

        include &= learning.heldout_mask(gold.group_keys, notes["heldout_fraction"], notes["heldout_seed"])
    if evaluation.source == ScorerEvaluation.Source.SCORER:
        scorer = build_scorer(evaluation.scorer_name, evaluation.scorer_params)
        try:
            if hasattr(scorer, "trained_on"):
                trained = scorer.trained_on(dataset.pk, gold.group_keys)
                include &= ~trained
                notes["excluded"] = "prompts whose transcreation group the scorer was trained on"
            if hasattr(scorer, "cache_embeddings"):
                scorer.cache_embeddings = True
            mark = time.time()
            _score_prompts(evaluation, scorer, gold, include, step)
            notes["scoring_s"] = round(time.time() - mark, 2)
        finally:
            scorer.close()
        stored = ScorerEvaluationScore.objects.filter(evaluation=evaluation)
    else:
        stored = ImportedScore.objects.filter(score_set=evaluation.imported_id)
        # Only prompts the import covers count; the others are not invalid, they were not asked.
        covered = set(stored.values_list("prompt_id", flat=True).distinct())
        include &= np.isin(gold.prompt_ids, list(covered))
        notes["not_in_import"] = int((~np.isin(gold.prompt_ids, list(covered))).sum())
    position = {int(pid): i for i, pid in enumerate(gold.prompt_ids)}
    values = {slug: np.full(len(gold), np.nan) for slug in evaluation.categories}
    for prompt_id, category, value in stored.filter(category__in=evaluation.categories).values_list(
        "prompt_id", "category", "value"
    ).iterator(chunk_size=10_000):
        i = position.get(prompt_id)
        if i is not None and value is not None:
            values[category][i] = value
    mark = time.time()
    step("agreement", 0, 1)
    rows = agreement_table.agreement_rows(
        gold, values, measures, include=include, bootstrap=evaluation.bootstrap, seed=evaluation.seed,
        progress=lambda done, total: step("agreement", done, total),
    )
    notes["agreement_s"] = round(time.time() - mark, 2)
    notes["total_s"] = round(time.time() - started, 2)
    notes["prompts"] = int(include.sum())
    notes["summary"] = agreement_table.summary(rows)
    known_languages = set(Language.objects.values_list("code", flat=True))
    with transaction.atomic():
        ScorerEvaluationResult.objects.filter(evaluation=evaluation).delete()
        ScorerEvaluationResult.objects.bulk_create([
            ScorerEvaluationResult(
                evaluation=evaluation, language_id=row["language"], category=row["category"], subset=row["subset"],
                n=row["n"], invalid=row["invalid"], weighted_kappa=row["weighted_kappa"], ci_low=row["ci_low"],
                ci_high=row["ci_high"], exact_agreement=row["exact_agreement"], spearman=row["spearman"],
                human_ceiling=row["human_ceiling"], human_classes=row["human_classes"],
                scorer_classes=row["scorer_classes"], undefined_reason=row["undefined_reason"][:200],
            )
            for row in rows if row["language"] in known_languages
        ])
        runs.finish(evaluation, excluded_prompts=int((~include).sum()) if "excluded" in notes or notes.get("heldout_of") else 0,
                    notes=notes)


def _score_prompts(evaluation: ScorerEvaluation, scorer, gold, include: np.ndarray, step) -> None:
    wanted = set(evaluation.categories)
    done_ids = set(
        ScorerEvaluationScore.objects.filter(evaluation=evaluation).values_list("prompt_id", flat=True).distinct()
    )
    todo = [i for i in np.flatnonzero(include) if int(gold.prompt_ids[i]) not in done_ids]
    total = int(include.sum())
    done = total - len(todo)
    step("scoring", done, total)
    for start in range(0, len(todo), BATCH):
        batch = todo[start : start + BATCH]
        items = [ScoringInput(prompt="", continuation=gold.texts[i], language=str(gold.languages[i])) for i in batch]
        results = scorer.score(items)
        rows = []
        for i, result in zip(batch, results):
            for category, score in result.items():
                if category in wanted:
                    rows.append(ScorerEvaluationScore(
                        evaluation=evaluation, prompt_id=int(gold.prompt_ids[i]), category=category,
                        value=score.value if score.value is None or np.isfinite(score.value) else None,
                        raw=_storable(score.raw),
                    ))
        ScorerEvaluationScore.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
        done += len(batch)
        step("scoring", done, total)


def _storable(raw: dict) -> dict:
    """JSON-safe (non-finite numbers become None) and bounded: a judge's raw reply can be long."""
    import json
    import math

    def clean(value):
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {str(key): clean(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        if value is None or isinstance(value, (str, int, bool)):
            return value
        return str(value)

    cleaned = clean(raw)
    if len(json.dumps(cleaned)) > 4000:
        return {"truncated": json.dumps(cleaned)[:4000]}
    return cleaned


def cancel_scorer_evaluation(evaluation_id: int) -> ScorerEvaluation:
    return runs.cancel(ScorerEvaluation, evaluation_id)
