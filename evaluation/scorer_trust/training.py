"""Training the `trained` scorer from gold labels the platform holds: create a run (everything
checked, nothing written on a bad input), run it (claimed, with progress, cancellable).

    run = create_training_run(dataset="rtp-lx", languages=["en", "de"], name="rtp-lx-e5")
    run_training(run.pk)   # what the Celery task and `manage.py train_scorer` call

A run: gold labels of the chosen languages and categories -> the prompts' sentence
embeddings (cached per encoder) -> a grouped split (learning.heldout_mask: a fraction of the
transcreation groups held out, the same groups in every language) -> a head per category
with kappa-tuned cutpoints fitted on the training groups only -> the held-out groups scored
and compared with the human aggregate (agreement_table) -> the artifact (one .npz, no
pickle) under MODEL_CACHE_DIR/trained-scorers/, with its sha256 on the run.

The artifact is trained on the training groups only, never on the held-out ones: its
held-out results stay true, and a scorer evaluation of it on the same dataset counts only
the held-out groups (TrainedScorer.trained_on).
"""
from __future__ import annotations

import hashlib
import logging
import re
import time

import numpy as np
from django.conf import settings
from django.db import transaction

from evaluation.scorer_trust import agreement_table, learning, runs
from evaluation.scorer_trust.labels import DEFAULT_RULE, check_rule, load_gold_labels, resolve_selection
from evaluation.scorer_trust.models import RunStatus, TrainingRun
from evaluation.scorers import encoders
from evaluation.scorers.trained import key_for
from toxplatform.errors import ApplicationError
from toxplatform.params import INT32_MAX, Param, ParamSchema

logger = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
PARAMETERS = ParamSchema(
    Param("head", str, "ridge", choices=learning.HEADS,
          help="ridge: regression on the raters' mean; logistic: classes (scikit-learn)"),
    Param("alpha", float, 10.0, minimum=0, exclusive_minimum=True, maximum=1e6,
          help="Regularisation: the ridge penalty, or 1/C of the logistic head"),
    Param("balanced", bool, True, help="Weight training items by the inverse frequency of their class"),
    Param("calibration", str, "language", choices=learning.CALIBRATIONS,
          help="Cutpoints tuned for weighted kappa: per language, one global set, or none (rounded score)"),
    Param("heldout_fraction", float, 0.2, minimum=0.05, maximum=0.5,
          help="Share of transcreation groups held out for the report"),
    Param("seed", int, 0, minimum=0, maximum=INT32_MAX, help="Chooses the held-out groups and inner folds"),
    Param("inner_folds", int, 3, minimum=2, maximum=10, help="Grouped folds of the training set for tuning cutpoints"),
    Param("bootstrap", int, 200, minimum=0, maximum=10000, help="Bootstrap resamples for held-out CIs"),
)


def default_name(dataset: str, languages: list[str], all_languages: bool) -> str:
    name = f"{dataset}-e5" if all_languages else f"{dataset}-e5-{'-'.join(sorted(languages))}"
    return name[:80]


def create_training_run(*, dataset: str = "rtp-lx", languages=(), categories=(), name: str = "",
                        encoder: str = encoders.DEFAULT_ENCODER, params: dict | None = None,
                        aggregate_rule: str = DEFAULT_RULE, user=None, enqueue: bool = True) -> TrainingRun:
    """Check everything, then write a QUEUED run (and queue its task when the transaction commits).

    A name in use by a finished or running run is refused; a failed or cancelled run's name
    is taken over (the old row is deleted)."""
    dataset_row, chosen_languages, chosen_categories = resolve_selection(dataset, languages, categories)
    if not all(category.scale_max > category.scale_min for category in chosen_categories):
        raise ApplicationError("Every category needs an ordinal scale (scale max above scale min)")
    values = PARAMETERS.clean(params or {}, title="Invalid training parameters")
    if values["head"] == "logistic":
        import importlib.util

        if importlib.util.find_spec("sklearn") is None:
            raise ApplicationError("The logistic head needs scikit-learn, which is not installed",
                                   {"install": "pip install 'scikit-learn>=1.5,<2'"})
    check_rule(aggregate_rule)
    location = encoders.check_location(encoder)
    name = (name or "").strip() or default_name(dataset_row.slug, chosen_languages, not languages)
    if not NAME.match(name):
        raise ApplicationError(
            "A trained scorer's name is 1-80 letters, digits, '.', '_' or '-', starting with a letter or digit",
            {"name": name[:100]},
        )
    with transaction.atomic():
        existing = TrainingRun.objects.select_for_update().filter(name=name).first()
        if existing is not None:
            if existing.status in (RunStatus.FAILED, RunStatus.CANCELLED):
                existing.delete()
            else:
                raise ApplicationError(
                    f"A trained scorer named {name!r} already exists ({existing.status}); choose another name",
                    {"name": name},
                )
        run = TrainingRun.objects.create(
            name=name,
            scorer_key=key_for(name),
            dataset=dataset_row,
            languages=chosen_languages if languages else [],
            categories=[category.slug for category in chosen_categories],
            aggregate_rule=aggregate_rule,
            encoder=location,
            params=values,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        if enqueue:
            transaction.on_commit(lambda: runs.send_run(run))
    return run


def artifact_directory():
    from pathlib import Path

    return Path(settings.MODEL_CACHE_DIR) / "trained-scorers"


def run_training(run_id: int, progress=None) -> TrainingRun | None:
    """Run a queued training run here; the run as it ended (still RUNNING when another
    process holds it). progress(stage, done, total) is called along the way (the CLI's bar)."""
    return runs.execute(TrainingRun, run_id, _train, progress)


def _train(run: TrainingRun, step) -> None:
    timings = {}
    started = time.time()
    params = PARAMETERS.clean(run.params)
    config = learning.HeadConfig(head=params["head"], alpha=params["alpha"], balanced=params["balanced"],
                                 calibration=params["calibration"], inner_folds=params["inner_folds"],
                                 seed=params["seed"])
    step("reading labels")
    dataset, languages, categories = resolve_selection(run.dataset.slug, run.languages, run.categories)
    gold = load_gold_labels(dataset, languages, categories, run.aggregate_rule, run.label_source)
    labelled = np.all([c.labelled for c in gold.categories.values()], axis=0)
    gold = gold.subset(labelled)
    if len(gold) < 20:
        raise ApplicationError("Too few labelled prompts to train on", {"prompts": len(gold)})
    timings["labels_s"] = round(time.time() - started, 2)

    encoder = encoders.get_encoder(run.encoder)
    TrainingRun.objects.filter(pk=run.pk).update(encoder_fingerprint=encoder.fingerprint)
    run.encoder_fingerprint = encoder.fingerprint
    cache = encoders.EmbeddingCache(encoder)
    mark = time.time()
    step("embedding", 0, len(gold))
    X = cache.embed(gold.texts, progress=lambda done, total: step("embedding", done, total))
    timings["embedding_s"] = round(time.time() - mark, 2)

    heldout = learning.heldout_mask(gold.group_keys, params["heldout_fraction"], params["seed"])
    train = ~heldout
    if not heldout.any() or not train.any():
        raise ApplicationError("The split left one side empty: select more prompts",
                               {"prompts": len(gold), "heldout_fraction": params["heldout_fraction"]})
    targets = {
        slug: learning.Targets(labels.low, labels.high, labels.aggregate.astype(int), np.nanmean(labels.raters, axis=1))
        for slug, labels in gold.categories.items()
    }
    train_index = np.flatnonzero(train)
    mark = time.time()
    step("training", 0, len(targets))
    model = learning.fit(
        X[train_index],
        {slug: learning.Targets(t.low, t.high, t.classes[train_index], t.mean[train_index]) for slug, t in targets.items()},
        gold.languages[train_index].astype(str),
        [gold.group_keys[i] for i in train_index],
        config,
        progress=lambda done, total: step("training", done, total),
    )
    timings["training_s"] = round(time.time() - mark, 2)
    model.encoder_fingerprint = encoder.fingerprint
    model.meta = {"run": run.name, "dataset": dataset.slug, "aggregate_rule": run.aggregate_rule,
                  "heldout_fraction": params["heldout_fraction"], "seed": params["seed"],
                  "languages": sorted(set(gold.languages.tolist()))}

    mark = time.time()
    step("held-out evaluation", 0, len(targets))
    heldout_index = np.flatnonzero(heldout)
    predicted = model.predict(X[heldout_index], gold.languages[heldout_index].astype(str))
    values = {slug: np.full(len(gold), np.nan) for slug in targets}
    for slug, (classes, _) in predicted.items():
        values[slug][heldout_index] = classes
    measures = {slug: _rating(labels.low, labels.high) for slug, labels in gold.categories.items()}
    rows = agreement_table.agreement_rows(
        gold, values, measures, include=heldout, bootstrap=params["bootstrap"], seed=params["seed"],
        progress=lambda done, total: step("held-out evaluation", done, total),
    )
    timings["heldout_evaluation_s"] = round(time.time() - mark, 2)

    step("saving")
    data = model.to_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    directory = artifact_directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run.name}-{run.pk}-{sha256[:12]}.npz"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    timings["total_s"] = round(time.time() - started, 2)
    report = {
        "groups": {"train": len(set(gold.group_keys[i] for i in train_index)),
                   "heldout": len(set(gold.group_keys[i] for i in heldout_index))},
        "prompts": {"train": int(train.sum()), "heldout": int(heldout.sum())},
        "heldout_by_subset": {
            "transcreated": int((heldout & ~gold.culturally_specific).sum()),
            "cultural": int((heldout & gold.culturally_specific).sum()),
        },
        "summary": agreement_table.summary(rows),
        "cutpoints": {slug: {"global": m.cutpoints.round(4).tolist(),
                             "languages": len(m.by_language)} for slug, m in model.categories.items()},
        "timings": timings,
        "aggregate_rule": run.aggregate_rule,
        "mapping_rule": agreement_table.MAPPING_RULE,
    }
    runs.finish(run, results=rows, report=report, artifact_path=str(path), artifact_sha256=sha256)


def _rating(low: int, high: int):
    from evaluation.scorers.measures import rating

    return rating(low, high)


def cancel_training_run(run_id: int) -> TrainingRun:
    return runs.cancel(TrainingRun, run_id)
