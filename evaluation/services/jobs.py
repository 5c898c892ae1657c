"""Creating a job: every parameter checked before anything is written or queued."""
from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import transaction

from evaluation.models import EvaluationJob, ModelSpec
from evaluation.services.planning import enqueue_job, plan_job
from toxplatform.corpus.models import Dataset, HarmCategory, Language
from toxplatform.errors import ApplicationError

THRESHOLD_RULES = (">=", ">")
INT32_MAX = 2**31 - 1  # integer columns
SCORER_KEY = re.compile(r"[\w.:=-]{1,100}")  # fits Score.scorer; readable in URLs and tables


def create_job(
    *,
    user=None,
    model: ModelSpec | str,
    method: str = "none",
    method_params: dict | None = None,
    dataset: Dataset | str,
    languages: Sequence[str] = (),
    categories: Sequence[str] = (),
    prompt_split: str = EvaluationJob.PromptSplit.ALL,
    prompts_per_language: int | None = None,
    k: int = 25,
    max_new_tokens: int = 20,
    top_p: float = 0.9,
    temperature: float = 1.0,
    seed: int = 0,
    scorers: Sequence[dict | str] = (),
    batch_size: int = 16,
    chunk_size: int = 32,
    toxic_threshold: float = 0.5,
    threshold_rule: str = ">=",
    name: str = "",
    enqueue: bool = True,
) -> EvaluationJob:
    """Validate every parameter, then write the job, its prompts and chunks, and queue it.

    `model` is a ModelSpec, the name of one, a local model path or a packaged model name.
    `scorers` items are {"name": ..., "params": {...}} or bare scorer names. Any problem
    raises one ApplicationError whose `extra` maps each bad field to what is wrong; nothing
    is written and nothing is queued then. enqueue=False leaves the job PENDING (the inline
    runner and tests use it); the broker is only touched after the transaction commits.
    """
    problems: dict[str, list[str]] = {}

    def problem(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    _check_generation_params(problem, k=k, max_new_tokens=max_new_tokens, top_p=top_p, temperature=temperature,
                             seed=seed, batch_size=batch_size, chunk_size=chunk_size)
    _check_selection_params(problem, prompt_split=prompt_split, prompts_per_language=prompts_per_language,
                            toxic_threshold=toxic_threshold, threshold_rule=threshold_rule, name=name)
    scorer_specs = _check_scorers(problem, scorers)
    method_params = dict(method_params or {})
    detox = _check_method(problem, method, method_params)
    dataset_row = _check_dataset(problem, dataset)
    language_codes = _check_languages(problem, languages, dataset_row)
    category_slugs = _check_categories(problem, categories)

    # resolve_model may register a ModelSpec for a path: inside the transaction, so a job
    # rejected for another reason leaves no row behind.
    with transaction.atomic():
        spec = _resolve_model(problem, model)
        remote = spec is not None and spec.backend != ModelSpec.Backend.HF
        if remote and detox is not None and detox.requires_local_model:
            problem("method", f"detox method {method!r} needs a local transformers model, not an HTTP endpoint")
        elif spec is not None and detox is not None:
            for message in detox.submit_problems(model=spec, dataset=dataset_row, languages=language_codes):
                problem("method", message)
        if problems:
            raise _invalid(problems)
        job = EvaluationJob.objects.create(
            name=name,
            model=spec,
            model_fingerprint=spec.fingerprint,
            detox_method=method,
            detox_params=method_params,
            dataset=dataset_row,
            languages=language_codes,
            categories=category_slugs,
            prompt_split=prompt_split,
            prompts_per_language=prompts_per_language,
            seed=seed,
            k=k,
            max_new_tokens=max_new_tokens,
            top_p=top_p,
            temperature=temperature,
            batch_size=batch_size,
            chunk_size=chunk_size,
            scorers=scorer_specs,
            toxic_threshold=toxic_threshold,
            threshold_rule=threshold_rule,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            code_version=code_version(),
        )
        plan_job(job)
        if enqueue:
            enqueue_job(job)
    return job


def _invalid(problems: dict[str, list[str]]) -> ApplicationError:
    return ApplicationError(
        "Invalid evaluation job", {field: "; ".join(messages) for field, messages in problems.items()}
    )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_generation_params(problem, *, k, max_new_tokens, top_p, temperature, seed, batch_size, chunk_size):
    for field, value in (("k", k), ("max_new_tokens", max_new_tokens), ("batch_size", batch_size),
                         ("chunk_size", chunk_size)):
        if not _is_int(value) or not 1 <= value <= INT32_MAX:
            problem(field, f"must be a whole number of at least 1 (got {value!r})")
    if not _is_number(top_p) or not 0 < top_p <= 1:
        problem("top_p", f"must be in (0, 1] (got {top_p!r})")
    if not _is_number(temperature) or temperature < 0:
        problem("temperature", f"must be greater than 0, or 0 for greedy decoding (got {temperature!r})")
    elif temperature == 0 and _is_int(k) and k > 1:
        problem("temperature", "0 (greedy decoding) gives k identical samples: use k=1 or a temperature above 0")
    if not _is_int(seed) or not -INT32_MAX - 1 <= seed <= INT32_MAX:
        problem("seed", f"must be a whole number that fits in 32 bits (got {seed!r})")


def _check_selection_params(problem, *, prompt_split, prompts_per_language, toxic_threshold, threshold_rule, name):
    if prompt_split not in EvaluationJob.PromptSplit.values:
        problem("prompt_split", f"unknown split {prompt_split!r} (all, toxic, nontoxic)")
    if prompts_per_language is not None and (
        not _is_int(prompts_per_language) or not 1 <= prompts_per_language <= INT32_MAX
    ):
        problem("prompts_per_language", f"must be empty (all) or at least 1 (got {prompts_per_language!r})")
    if not _is_number(toxic_threshold) or not 0 <= toxic_threshold <= 1:
        problem("toxic_threshold", f"must be in [0, 1] (got {toxic_threshold!r})")
    if threshold_rule not in THRESHOLD_RULES:
        problem("threshold_rule", f"must be one of {', '.join(THRESHOLD_RULES)} (got {threshold_rule!r})")
    if not isinstance(name, str) or len(name) > EvaluationJob._meta.get_field("name").max_length:
        problem("name", "is too long")


def _check_scorers(problem, scorers) -> list[dict]:
    """Normalize to [{"name", "params", "key"}] and check each scorer's parameters without
    loading weights. `key` is what scores and metrics are stored under (Scorer.key(), or the
    job's own); the same scorer may appear twice with different keys (two classifiers)."""
    from evaluation.scorers import registry as scorer_registry

    specs: list[dict] = []
    if isinstance(scorers, (str, dict)) or not scorers:
        problem("scorers", "give a list of at least one scorer")
        return specs
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
            key = key or scorer_registry.get(name)(**params).key()
        except ApplicationError as error:
            problem("scorers", str(error))
            continue
        if any(spec["key"] == key for spec in specs):
            problem("scorers", f"scorer {key!r} is listed twice (give one of them its own 'key')")
            continue
        specs.append({"name": name, "params": params, "key": key})
    return specs


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
    from evaluation.generators import fingerprint_for
    from evaluation.model_loading import PACKAGE_PREFIX, resolve_model

    if isinstance(model, ModelSpec):
        spec = model
    else:
        try:
            spec = ModelSpec.objects.filter(name=model).first() or resolve_model(model)
        except ApplicationError as error:
            problem("model", str(error))
            return None
    # Local weights are checked and hashed again (hashes are cached by size and mtime), so a
    # job records the weights it really ran; a packaged model is converted only on first load.
    local = spec.backend == ModelSpec.Backend.HF and not spec.location.startswith(PACKAGE_PREFIX)
    if local or not spec.fingerprint:
        try:
            fingerprint = fingerprint_for(spec)
        except ApplicationError as error:
            problem("model", f"{spec.name}: {error}")
            return None
        if fingerprint != spec.fingerprint:
            spec.fingerprint = fingerprint
            spec.save(update_fields=["fingerprint"])
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
