"""Creating a job: every parameter checked before anything is written or queued."""
from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import transaction

from evaluation.generators import ModelConfig, backend
from evaluation.job_parameters import ATTRIBUTES, JOB_PARAMETERS, max_active_jobs
from evaluation.models import EvaluationJob, ModelSpec
from evaluation.services.planning import enqueue_job, plan_job
from toxplatform.corpus.models import Dataset, HarmCategory, Language
from toxplatform.errors import ApplicationError

SCORER_KEY = re.compile(r"[\w.:=-]{1,100}")  # fits Score.scorer; readable in URLs and tables
# Parameters stored as what they resolve to (a ModelSpec, a Dataset, checked codes, scorer specs).
RESOLVED = frozenset({"model", "dataset", "languages", "categories", "scorers"})


def create_job(*, user=None, enqueue: bool = True, confirm_large: bool = True, **params) -> EvaluationJob:
    """Validate every parameter, then write the job, its prompts and chunks, and queue it.

    `params` are evaluation.job_parameters.JOB_PARAMETERS (defaults there). `model` is a
    ModelSpec, the name of one, a local model path or a packaged model name; `dataset` a
    Dataset or its slug. `scorers` items are {"name": ..., "params": {...}} or bare scorer
    names. Any problem raises one ApplicationError whose `extra` maps each bad field to what
    is wrong; nothing is written and nothing is queued then. enqueue=False leaves the job
    PENDING (the inline runner and tests use it); the broker is only touched after the
    transaction commits. confirm_large=False (the job form, the API) refuses a job above
    JOB_CONFIRM_WORK that its author has not confirmed.
    """
    model, dataset = params.get("model"), params.get("dataset")
    named = {**params}
    if isinstance(model, ModelSpec):
        named["model"] = model.name
    if isinstance(dataset, Dataset):
        named["dataset"] = dataset.slug
    values, found = JOB_PARAMETERS.problems(named)
    problems: dict[str, list[str]] = {field: [message] for field, message in found.items()}

    def problem(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    _check_active_jobs(problem, user)
    scorer_specs, measures, built = _check_scorers(problem, values["scorers"]) if "scorers" in values else ([], {}, {})
    detox = _check_method(problem, values["method"], values["method_params"]) if "method" in values else None
    dataset_row = dataset if isinstance(dataset, Dataset) else (
        _check_dataset(problem, values["dataset"]) if "dataset" in values else None)
    language_codes = _check_languages(problem, values.get("languages", []), dataset_row)
    category_slugs = _check_categories(problem, values.get("categories", []))

    # resolve_model may register a ModelSpec for a path: inside the transaction, so a job
    # rejected for another reason leaves no row behind.
    with transaction.atomic():
        spec = None
        if isinstance(model, ModelSpec) or "model" in values:
            spec = _resolve_model(problem, model if isinstance(model, ModelSpec) else values["model"])
        if spec is not None and detox is not None and detox.requires_local_model and not backend(spec.backend).has_local_model:
            problem("method", f"detox method {values['method']!r} needs a local transformers model, not an HTTP endpoint")
        elif spec is not None and detox is not None:
            for message in detox.submit_problems(model=spec, dataset=dataset_row, languages=language_codes):
                problem("method", message)
        if problems:
            raise _invalid(problems)
        job = EvaluationJob.objects.create(
            **{ATTRIBUTES.get(name, name): value for name, value in values.items() if name not in RESOLVED},
            model=spec,
            model_fingerprint=spec.fingerprint,
            dataset=dataset_row,
            languages=language_codes,
            categories=category_slugs,
            scorers=scorer_specs,
            scorer_measures=measures,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            code_version=code_version(),
        )
        plan_job(job, confirm_large=confirm_large)
        job.scorer_coverage = scorer_coverage(job, built)
        job.save(update_fields=["scorer_coverage"])
        if enqueue:
            enqueue_job(job)
    return job


def _invalid(problems: dict[str, list[str]]) -> ApplicationError:
    return ApplicationError(
        "Invalid evaluation job", {field: "; ".join(messages) for field, messages in problems.items()}
    )


def _check_active_jobs(problem, user) -> None:
    if not getattr(user, "is_authenticated", False):
        return
    active = EvaluationJob.objects.filter(created_by=user, status__in=EvaluationJob.UNFINISHED).count()
    limit = max_active_jobs()
    if active >= limit:
        problem("jobs", f"you have {active} jobs queued or running, the most one user may have at once is {limit}: "
                        "wait for one to finish or cancel one")


def scorer_coverage(job: EvaluationJob, scorers: dict) -> dict[str, dict[str, bool | None]]:
    """{scorer key: {language: covers?}} over the languages of the job's planned prompts."""
    languages = sorted(set(job.job_prompts.values_list("prompt__language", flat=True).distinct().order_by()))
    return {key: {code: scorer.covers(code) for code in languages} for key, scorer in scorers.items()}


def _check_scorers(problem, scorers) -> tuple[list[dict], dict, dict]:
    """Normalize to [{"name", "params", "key"}] and check each scorer's parameters without
    loading weights. `key` is what scores and metrics are stored under (Scorer.key(), or the
    job's own); the same scorer may appear twice with different keys (two classifiers).
    Also returns what each scorer measures, {key: {category: measure}}, and the scorers
    built, {key: scorer} (their declared coverage is recorded once prompts are planned)."""
    from evaluation.scorers import registry as scorer_registry

    specs: list[dict] = []
    measures: dict[str, dict] = {}
    built: dict = {}
    if isinstance(scorers, (str, dict)) or not scorers:
        problem("scorers", "give a list of at least one scorer")
        return specs, measures, built
    for item in scorers:
        if isinstance(item, str):
            item = {"name": item, "params": {}}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            problem("scorers", f"each scorer is a name or {{'name': ..., 'params': {{...}}}} (got {item!r})")
            continue
        name, params, key = item["name"], item.get("params") or {}, item.get("key")
        if not isinstance(params, dict):
            problem("scorers", f"parameters of scorer {name!r} must be an object (got {params!r})")
            continue
        if name not in scorer_registry:
            problem("scorers", f"unknown scorer {name!r} (known: {', '.join(scorer_registry.names())})")
            continue
        if key is not None and not (isinstance(key, str) and SCORER_KEY.fullmatch(key)):
            problem("scorers", f"key of scorer {name!r} must be 1-100 letters, digits or ._:=- (got {key!r})")
            continue
        try:
            # Building a scorer checks its parameters (paths, labels...); weights load on first use.
            scorer = scorer_registry.get(name)(**params)
        except ApplicationError as error:
            problem("scorers", str(error))
            continue
        key = key or scorer.key()
        if not SCORER_KEY.fullmatch(key):
            problem("scorers", f"the key of scorer {name!r} ({key[:40]!r}...) does not fit: give it a shorter 'key'")
            continue
        if any(spec["key"] == key for spec in specs):
            problem("scorers", f"scorer {key!r} is listed twice (give one of them its own 'key')")
            continue
        # Pinned: a "newest" choice (a judge prompt's version) is fixed for every worker.
        specs.append({"name": name, "params": scorer.pinned_params(), "key": key})
        measures[key] = scorer.measures()
        built[key] = scorer
    return specs, measures, built


def _check_method(problem, method: str, params: dict):
    """The detox method class, built once to check its parameters (no model is touched)."""
    from evaluation.detox import registry as detox_registry

    if not isinstance(method, str) or method not in detox_registry:
        problem("method", f"unknown detox method {method!r} (known: {', '.join(detox_registry.names())})")
        return None
    try:
        return detox_registry.get(method)(**params)
    except ApplicationError as error:
        problem("method_params", str(error))
        return None


def _check_dataset(problem, dataset) -> Dataset | None:
    if isinstance(dataset, Dataset):
        return dataset
    found = Dataset.objects.filter(slug=dataset).first() if isinstance(dataset, str) else None
    if found is None:
        problem("dataset", f"no dataset {dataset!r}")
    return found


def _check_languages(problem, languages, dataset: Dataset | None) -> list[str]:
    codes = list(dict.fromkeys(languages or ()))
    known = set(Language.objects.filter(code__in=codes).values_list("code", flat=True))
    for code in codes:
        if code not in known:
            problem("languages", f"unknown language code {code!r}")
    if dataset is not None:
        present = set(dataset.prompts.filter(language__in=codes).values_list("language", flat=True).distinct())
        for code in codes:
            if code in known and code not in present:
                problem("languages", f"dataset {dataset.slug!r} has no prompts in {code!r}")
    return codes


def _check_categories(problem, categories) -> list[str]:
    slugs = list(dict.fromkeys(categories or ()))
    known = set(HarmCategory.objects.filter(slug__in=slugs).values_list("slug", flat=True))
    for slug in slugs:
        if slug not in known:
            problem("categories", f"unknown harm category {slug!r}")
    return slugs


def _resolve_model(problem, model) -> ModelSpec | None:
    from evaluation.model_loading import resolve_model

    if isinstance(model, ModelSpec):
        spec = model
    else:
        try:
            spec = ModelSpec.objects.filter(name=model).first() or resolve_model(model)
        except ApplicationError as error:
            problem("model", str(error))
            return None
    # Local weights are checked and hashed again (hashes are cached by size and mtime), so a
    # job records the weights it really ran; what the backend says cannot change is not.
    try:
        generator_class = backend(spec.backend)
        config = ModelConfig.from_spec(spec)
        if generator_class.recheck_fingerprint_on_submit(config) or not spec.fingerprint:
            fingerprint = generator_class.fingerprint_of(config)
            if fingerprint != spec.fingerprint:
                spec.fingerprint = fingerprint
                spec.save(update_fields=["fingerprint"])
    except ApplicationError as error:
        problem("model", f"{spec.name}: {error}")
        return None
    return spec


@cache
def code_version() -> str:
    """`git describe` of the checkout when there is one, else the installed package version."""
    root = Path(settings.BASE_DIR)
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        )
        return out.stdout.strip()[:64]
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("toxplatform")
    except PackageNotFoundError:
        return settings.SPECTACULAR_SETTINGS.get("VERSION", "unknown")
