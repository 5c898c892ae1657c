"""Evaluation jobs: create (validated), plan, enqueue, run chunks, finalize, cancel, resume.

Job state lives in the database, never in the broker. Every step can run twice or die
half-way and the job still ends with exactly k generations per prompt and one score per
(generation, scorer, category):

- a chunk is *claimed* with a conditional UPDATE (only one claim wins); a claim whose
  deadline passed, or whose process is gone from this host, may be taken over;
- generations and scores are bulk-inserted with ignore_conflicts against their unique
  constraints, and a chunk first skips what is already there;
- the last score chunk to finish is found by counting chunk rows (no chords), and
  finalize runs under a row lock on the job, so running it twice is harmless.

The Celery tasks (tasks.py) and the inline runner (`run_job_inline`, used by the CLI and
the demo) call the same functions; only the dispatch of the next step differs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from functools import cache, partial
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Least
from django.utils import timezone

from evaluation import worker_cache
from evaluation.generators.base import GenerationParams, PromptInput
from evaluation.models import Chunk, EvaluationJob, Generation, JobMetric, JobPrompt, ModelSpec, Score, scorer_key
from evaluation.scorers.base import ScoreResult, ScoringInput
from toxplatform import queues
from toxplatform.corpus.models import Dataset, HarmCategory, Language, Prompt
from toxplatform.errors import ApplicationError, TransientError

logger = logging.getLogger(__name__)

Status = EvaluationJob.Status
ACTIVE_JOB_STATUSES = (Status.QUEUED, Status.RUNNING)
THRESHOLD_RULES = (">=", ">")
INT32_MAX = 2**31 - 1  # integer columns
SCORER_KEY = re.compile(r"[\w.:=-]{1,100}")  # fits Score.scorer; readable in URLs and tables
# Generations sent to a scorer at once; scorers batch internally (hf_classifier, perplexity).
SCORE_BATCH = 128
# (done, total, stage) -> None; stage is "generate", "score" or "finalize".
ProgressCallback = Callable[[int, int, str], None]


class ClaimLost(Exception):
    """This process no longer holds the chunk (taken over, or the job was cancelled / failed)."""


def max_chunk_attempts() -> int:
    return getattr(settings, "EVALUATION_CHUNK_MAX_ATTEMPTS", 3)


# --- creating a job ----------------------------------------------------------------------


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


# --- planning ------------------------------------------------------------------------------


def select_prompts(job: EvaluationJob) -> dict[str, list[int]]:
    """Prompt ids per language, in a seeded order.

    The order is a hash of (seed, transcreation group), so with a sample size the same
    groups are picked in every language that has them: languages stay comparable.
    A harm-category filter keeps prompts whose gold label in one of the categories is at
    or above the middle of the category's scale.
    """
    prompts = Prompt.objects.filter(dataset=job.dataset)
    if job.languages:
        prompts = prompts.filter(language__in=job.languages)
    if job.prompt_split == EvaluationJob.PromptSplit.TOXIC:
        prompts = prompts.filter(is_toxic=True)
    elif job.prompt_split == EvaluationJob.PromptSplit.NONTOXIC:
        prompts = prompts.filter(is_toxic=False)
    if job.categories:
        midpoint = (F("labels__scale_min") + F("labels__scale_max")) / 2.0
        prompts = prompts.filter(labels__category__in=job.categories, labels__value__gte=midpoint).distinct()

    by_language: dict[str, list[tuple[bytes, int]]] = {}
    for prompt_id, language, group_id, external_id in prompts.values_list("id", "language", "group_id", "external_id"):
        rank = hashlib.sha256(f"{job.seed}\x1f{group_id or external_id}".encode()).digest()
        by_language.setdefault(language, []).append((rank, prompt_id))
    selected = {}
    for language in sorted(by_language):
        ranked = [prompt_id for _, prompt_id in sorted(by_language[language])]
        selected[language] = ranked[: job.prompts_per_language] if job.prompts_per_language else ranked
    return selected


def plan_job(job: EvaluationJob) -> None:
    """Write the job's prompts and its chunk rows (one generate and one score chunk per index)."""
    selected = select_prompts(job)
    empty = [code for code in job.languages if not selected.get(code)]
    if empty or not selected:
        where = f" in {', '.join(map(repr, empty))}" if empty else ""
        raise _invalid({"prompts": [f"no prompt{where} matches the split and harm categories chosen"]})

    ordered = [prompt_id for language in sorted(selected) for prompt_id in selected[language]]
    JobPrompt.objects.bulk_create(
        (JobPrompt(job=job, prompt_id=prompt_id, chunk_index=position // job.chunk_size)
         for position, prompt_id in enumerate(ordered)),
        batch_size=5000,
    )
    chunk_count = (len(ordered) + job.chunk_size - 1) // job.chunk_size
    Chunk.objects.bulk_create(
        (Chunk(job=job, stage=stage, index=index) for index in range(chunk_count) for stage in Chunk.Stage.values),
        batch_size=5000,
    )
    job.total_prompts = len(ordered)
    job.save(update_fields=["total_prompts"])


def enqueue_job(job: EvaluationJob) -> None:
    """Mark the job QUEUED and, once the transaction commits, queue its generate chunks."""
    EvaluationJob.objects.filter(pk=job.pk, status=Status.PENDING).update(status=Status.QUEUED)
    job.refresh_from_db(fields=["status"])
    chunk_ids = list(job.chunks.filter(stage=Chunk.Stage.GENERATE).values_list("id", flat=True))
    transaction.on_commit(lambda: _send_generate(chunk_ids))


def _send_generate(chunk_ids: Iterable[int]) -> None:
    from evaluation import tasks

    for chunk_id in chunk_ids:
        tasks.generate_chunk.apply_async((chunk_id,), queue=queues.GENERATE)


def _send_score(chunk_ids: Iterable[int]) -> None:
    from evaluation import tasks

    for chunk_id in chunk_ids:
        tasks.score_chunk.apply_async((chunk_id,), queue=queues.SCORE)


def _send_finalize(job_id: int) -> None:
    from evaluation import tasks

    tasks.finalize_job.apply_async((job_id,), queue=queues.SCORE)


# --- claiming chunks ---------------------------------------------------------------------


def _claim_token() -> str:
    """Who holds a claim: host and pid (to spot a dead holder on this host) plus a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _holder_is_dead(token: str) -> bool:
    """A claim made on this host by a process that no longer exists can be taken over at once."""
    try:
        host, pid, _ = token.rsplit(":", 2)
        pid = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed process nobody has reaped yet still answers kill(pid, 0) (Linux: state Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _claim_lease() -> timedelta:
    # No chunk task outlives its hard time limit, so a claim older than that is dead.
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)


def claim_chunk(chunk_id: int) -> Chunk | None:
    """Take the chunk for this process, or None when it is done, held by a live claim, or its job stopped.

    The conditional UPDATE is the lock: whichever process changes the row owns the chunk.
    A chunk out of attempts fails, and so does its job.
    """
    chunk = Chunk.objects.select_related("job").filter(pk=chunk_id).first()
    if chunk is None or chunk.status in (Chunk.Status.DONE, Chunk.Status.FAILED):
        return None
    if chunk.job.status not in ACTIVE_JOB_STATUSES or chunk.job.cancel_requested:
        return None
    now = timezone.now()
    claimable = Q(status=Chunk.Status.QUEUED) | Q(status=Chunk.Status.RUNNING, deadline__lt=now)
    if chunk.status == Chunk.Status.RUNNING and _holder_is_dead(chunk.worker):
        claimable |= Q(status=Chunk.Status.RUNNING, worker=chunk.worker)
    if chunk.attempts >= max_chunk_attempts() and Chunk.objects.filter(claimable, pk=chunk_id).exists():
        _fail_chunk_and_job(chunk, _out_of_attempts_message(chunk))
        return None
    token = _claim_token()
    won = Chunk.objects.filter(claimable, pk=chunk_id, attempts__lt=max_chunk_attempts()).update(
        status=Chunk.Status.RUNNING, claimed_at=now, deadline=now + _claim_lease(), worker=token,
        attempts=F("attempts") + 1,
    )
    if not won:
        return None
    EvaluationJob.objects.filter(pk=chunk.job_id, status=Status.QUEUED).update(status=Status.RUNNING, started_at=now)
    chunk.refresh_from_db()
    chunk.job.refresh_from_db()
    return chunk


def _out_of_attempts_message(chunk: Chunk) -> str:
    last = f" Last error: {chunk.error}" if chunk.error else " (its worker stopped or ran out of time each time)"
    return f"The {chunk.stage} chunk {chunk.index} was given up after {chunk.attempts} attempts.{last}"


def _still_holding(chunk: Chunk) -> None:
    """Between batches: stop if the claim was taken over or the job was cancelled or failed."""
    row = Chunk.objects.filter(pk=chunk.pk).values("status", "worker", "job__status", "job__cancel_requested").first()
    if (
        row is None
        or row["status"] != Chunk.Status.RUNNING
        or row["worker"] != chunk.worker
        or row["job__cancel_requested"]
        or row["job__status"] not in ACTIVE_JOB_STATUSES
    ):
        raise ClaimLost


def _complete_chunk(chunk: Chunk, **job_counters) -> bool:
    """Mark our claim DONE (and bump job counters in the same transaction); False if it was lost."""
    with transaction.atomic():
        done = Chunk.objects.filter(pk=chunk.pk, status=Chunk.Status.RUNNING, worker=chunk.worker).update(
            status=Chunk.Status.DONE, finished_at=timezone.now(), deadline=None, error=""
        )
        if done and job_counters:
            EvaluationJob.objects.filter(pk=chunk.job_id).update(**job_counters)
    return bool(done)


def _release_chunk(chunk: Chunk, error: str) -> None:
    """Hand the chunk back (QUEUED) so a retry can claim it."""
    Chunk.objects.filter(pk=chunk.pk, status=Chunk.Status.RUNNING, worker=chunk.worker).update(
        status=Chunk.Status.QUEUED, deadline=None, error=error[:2000]
    )


def _fail_chunk_and_job(chunk: Chunk, message: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        Chunk.objects.filter(pk=chunk.pk).exclude(status=Chunk.Status.DONE).update(
            status=Chunk.Status.FAILED, error=message[:2000], finished_at=now, deadline=None
        )
        fail_job(chunk.job_id, message)


def fail_job(job_id: int, message: str) -> bool:
    """End a job FAILED with a message a user can read; a job already finished is left alone."""
    return bool(
        EvaluationJob.objects.filter(pk=job_id)
        .exclude(status__in=EvaluationJob.TERMINAL)
        .update(status=Status.FAILED, error=message[:5000], finished_at=timezone.now())
    )


def _describe_failure(error: BaseException) -> str:
    if isinstance(error, SoftTimeLimitExceeded):
        return (
            "The task ran past its time limit (CELERY_TASK_SOFT_TIME_LIMIT): "
            "use a smaller chunk_size or batch_size, or fewer samples (k)."
        )
    if isinstance(error, ApplicationError):
        return str(error)
    return f"Internal error: {type(error).__name__}: {error}"


def _run_claimed(chunk: Chunk, work: Callable[[], None]) -> bool:
    """Run the work of a claimed chunk; True when it finished. Failures end up in the database.

    A TransientError hands the chunk back and re-raises (the task retries with backoff)
    unless the chunk is out of attempts; any other error fails the chunk and the job with
    a readable message.
    """
    try:
        work()
        return True
    except ClaimLost:
        _release_chunk(chunk, "")  # cancelled: leave it claimable for a resume (no-op if taken over)
        return False
    except TransientError as error:
        if chunk.attempts >= max_chunk_attempts():
            _fail_chunk_and_job(chunk, f"{_describe_failure(error)} (gave up after {chunk.attempts} attempts)")
            return False
        _release_chunk(chunk, _describe_failure(error))
        raise
    except Exception as error:  # noqa: BLE001 - any failure must reach the job page, not just a log
        logger.exception("chunk %s (%s %s) of job %s failed", chunk.pk, chunk.stage, chunk.index, chunk.job_id)
        _fail_chunk_and_job(chunk, _describe_failure(error))
        return False


# --- generate ----------------------------------------------------------------------------


def storable_text(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL, and a model can write one (byte-level
    tokenizers decode any byte): it becomes U+FFFD, the replacement character."""
    return text.replace("\x00", "\ufffd")


def storable_json(value):
    """A scorer's raw output made storable in jsonb: no NUL, no NaN / infinity (None instead)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float):
        return _finite_or_none(value)
    if isinstance(value, dict):
        return {storable_text(str(key)): storable_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_json(item) for item in value]
    return value


def _finite_or_none(value):
    return value if value is None or math.isfinite(value) else None


OnBatch = Callable[[str, int], None]  # (stage, prompts finished in this batch)


def run_generate_chunk(chunk_id: int, *, dispatch: bool = True, on_batch: OnBatch | None = None) -> bool:
    """Claim and generate one chunk, then (dispatch=True) queue its scoring. True when it is DONE."""
    chunk = claim_chunk(chunk_id)
    if chunk is None:
        _redelivered(chunk_id, dispatch)
        return Chunk.objects.filter(pk=chunk_id, status=Chunk.Status.DONE).exists()
    completed = _run_claimed(chunk, lambda: generate_chunk(chunk, on_batch=on_batch)) and _complete_chunk(chunk)
    if completed and dispatch:
        _queue_score_of(chunk)
    return completed


def _queue_score_of(generate_chunk: Chunk) -> None:
    score_id = Chunk.objects.filter(
        job_id=generate_chunk.job_id, stage=Chunk.Stage.SCORE, index=generate_chunk.index
    ).values_list("id", flat=True).first()
    if score_id is not None:
        transaction.on_commit(lambda: _send_score([score_id]))


def _redelivered(chunk_id: int, dispatch: bool) -> None:
    """A message for a chunk we could not claim: if the chunk is already DONE, make sure what
    follows it was queued (the worker may have died between finishing and queueing)."""
    if not dispatch:
        return
    chunk = Chunk.objects.select_related("job").filter(pk=chunk_id, status=Chunk.Status.DONE).first()
    if chunk is None or chunk.job.status not in ACTIVE_JOB_STATUSES:
        return
    if chunk.stage == Chunk.Stage.GENERATE:
        if Chunk.objects.filter(job_id=chunk.job_id, stage=Chunk.Stage.SCORE, index=chunk.index,
                                status=Chunk.Status.QUEUED).exists():
            _queue_score_of(chunk)
    elif _all_scored(chunk.job_id):
        transaction.on_commit(lambda: _send_finalize(chunk.job_id))


def generation_params(job: EvaluationJob) -> GenerationParams:
    return GenerationParams(
        k=job.k, max_new_tokens=job.max_new_tokens, top_p=job.top_p, temperature=job.temperature,
        seed=job.seed, batch_size=job.batch_size,
    )


def generate_chunk(chunk: Chunk, *, on_batch: OnBatch | None = None) -> None:
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
            _still_holding(chunk)
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


# --- score -------------------------------------------------------------------------------


def run_score_chunk(chunk_id: int, *, dispatch: bool = True, on_batch: OnBatch | None = None) -> bool:
    """Claim and score one chunk; the last score chunk to finish queues finalize. True when DONE."""
    row = Chunk.objects.filter(pk=chunk_id, stage=Chunk.Stage.SCORE).values("job_id", "index").first()
    if row is None or not Chunk.objects.filter(
        job_id=row["job_id"], stage=Chunk.Stage.GENERATE, index=row["index"], status=Chunk.Status.DONE
    ).exists():
        return False  # not generated yet: its generate chunk queues it when done
    chunk = claim_chunk(chunk_id)
    if chunk is None:
        _redelivered(chunk_id, dispatch)
        return Chunk.objects.filter(pk=chunk_id, status=Chunk.Status.DONE).exists()
    prompt_count = JobPrompt.objects.filter(job_id=chunk.job_id, chunk_index=chunk.index).count()
    counters = {"scored_prompts": Least(F("scored_prompts") + prompt_count, F("total_prompts"))}
    completed = _run_claimed(chunk, lambda: score_chunk(chunk, on_batch=on_batch)) and _complete_chunk(
        chunk, **counters
    )
    if completed and dispatch and _all_scored(chunk.job_id):
        transaction.on_commit(lambda: _send_finalize(chunk.job_id))
    return completed


def _all_scored(job_id: int) -> bool:
    return not Chunk.objects.filter(job_id=job_id, stage=Chunk.Stage.SCORE).exclude(status=Chunk.Status.DONE).exists()


def score_chunk(chunk: Chunk, *, on_batch: OnBatch | None = None) -> None:
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
            _still_holding(chunk)
            batch = todo[start : start + SCORE_BATCH]
            results = _score_batch(scorer, batch)
            rows = [
                Score(generation=generation, scorer=key, category=category,
                      value=_finite_or_none(result.value), raw=storable_json(result.raw))
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


# --- finalize ----------------------------------------------------------------------------


def finalize_job(job_id: int) -> bool:
    """Compute the job's JobMetric rows and mark it DONE; True if this call finished the job.

    Under a row lock on the job: two finalize calls run one after the other and the
    second finds the job DONE. Metric rows are replaced in the same transaction.
    """
    if not _all_scored(job_id):
        return False
    # Visible on the job page while the metrics are computed.
    EvaluationJob.objects.filter(pk=job_id, status__in=ACTIVE_JOB_STATUSES).update(status=Status.FINALIZING)
    try:
        with transaction.atomic():
            job = EvaluationJob.objects.select_for_update().filter(pk=job_id).first()
            if job is None or job.is_terminal or job.cancel_requested:
                return False
            rows = job_metric_rows(job)
            JobMetric.objects.filter(job=job).delete()
            JobMetric.objects.bulk_create(rows)
            job.status = Status.DONE
            job.finished_at = timezone.now()
            job.generated_prompts = job.scored_prompts = job.total_prompts
            job.save(update_fields=["status", "finished_at", "generated_prompts", "scored_prompts"])
        return True
    except Exception as error:  # noqa: BLE001 - the user must see why the job did not finish
        logger.exception("finalize of job %s failed", job_id)
        fail_job(job_id, f"Computing the metrics failed: {_describe_failure(error)}")
        return False


PERPLEXITY_CATEGORY = "perplexity"


def job_metric_rows(job: EvaluationJob) -> list[JobMetric]:
    """Every JobMetric of a job, named as evaluation.metrics names them: per (language,
    subset) Dist-1/2/3 of the texts (scorer and category empty), and per (scorer, category)
    emt, emt_std, tp, avg, invalid_rate, or for perplexity ppl and invalid_rate. EMT and TP
    come in every variant (k subsamples x threshold rules); pages pick the job's own."""
    from evaluation import metrics

    prompt_info = {
        prompt_id: (language, is_toxic)
        for prompt_id, language, is_toxic in JobPrompt.objects.filter(job=job).values_list(
            "prompt_id", "prompt__language", "prompt__is_toxic"
        )
    }
    texts: dict[int, list[str]] = {pid: [""] * job.k for pid in prompt_info}
    for prompt_id, index, text in Generation.objects.filter(job=job).values_list("prompt_id", "sample_index", "text"):
        if index < job.k:
            texts[prompt_id][index] = text
    values: dict[tuple[str, str], dict[int, list[float | None]]] = {}
    for scorer, category, prompt_id, index, value in Score.objects.filter(generation__job=job).values_list(
        "scorer", "category", "generation__prompt_id", "generation__sample_index", "value"
    ):
        per_prompt = values.setdefault((scorer, category), {})
        samples = per_prompt.setdefault(prompt_id, [None] * job.k)
        if index < job.k:
            samples[index] = value

    ci = metrics.CIOptions(seed=job.seed)
    rows: list[JobMetric] = []

    def add(language: str, scorer: str, category: str, subset: str, computed) -> None:
        for row in computed:
            rows.append(JobMetric(
                job=job, language_id=language, scorer=scorer, category=category, subset=subset,
                metric=row.metric, variant=row.variant,
                value=row.value, n=row.n, ci_low=row.ci_low, ci_high=row.ci_high,
            ))

    subsets = {
        "all": lambda toxic: True, "toxic": lambda toxic: toxic is True, "nontoxic": lambda toxic: toxic is False
    }
    for language in sorted({language for language, _ in prompt_info.values()}):
        for subset, keep in subsets.items():
            ids = sorted(pid for pid, (lang, toxic) in prompt_info.items() if lang == language and keep(toxic))
            if not ids:
                continue
            add(language, "", "", subset, metrics.diversity_metrics(
                [texts[pid] for pid in ids], language=language, k=job.k, ci=ci))
            for (scorer, category), per_prompt in sorted(values.items()):
                by_prompt = [per_prompt.get(pid, [None] * job.k) for pid in ids]
                if category == PERPLEXITY_CATEGORY:
                    computed = metrics.perplexity_metrics(by_prompt, k=job.k, ci=ci)
                else:
                    # Every k (the job's, then 25/10/5/1 below it) and both threshold rules.
                    computed = metrics.harm_metrics(by_prompt, threshold=job.toxic_threshold, ci=ci)
                add(language, scorer, category, subset, computed)
    return rows


# --- control: cancel, resume, inline run ---------------------------------------------


def cancel_job(job: EvaluationJob) -> EvaluationJob:
    """Stop a job: running chunks stop at their next batch, queued ones are skipped."""
    stopped = (
        EvaluationJob.objects.filter(pk=job.pk)
        .exclude(status__in=EvaluationJob.TERMINAL)
        .update(status=Status.CANCELLED, cancel_requested=True, finished_at=timezone.now())
    )
    job.refresh_from_db()
    if not stopped:
        raise ApplicationError(f"Job {job.pk} has already finished", {"status": job.status})
    return job


def resume_job(job: EvaluationJob, *, dispatch: bool = True) -> list[int]:
    """Queue again everything a lost broker message, a dead worker or a failure left undone.

    What a person (or the CLI after a broker restart) asks for. Re-opens a FAILED or
    CANCELLED job with fresh attempts for its unfinished chunks; frees RUNNING claims that
    went stale; re-sends every QUEUED chunk (a duplicate of a message still in the broker
    is harmless: the claim decides). Returns the chunk ids sent.
    """
    with transaction.atomic():
        job = EvaluationJob.objects.select_for_update().get(pk=job.pk)
        if job.status == Status.DONE:
            raise ApplicationError(f"Job {job.pk} is already done")
        if job.status in (Status.FAILED, Status.CANCELLED, Status.PENDING):
            # A holder still running stops at its next batch: its claim is gone.
            Chunk.objects.filter(job=job).exclude(status=Chunk.Status.DONE).update(
                status=Chunk.Status.QUEUED, attempts=0, error="", finished_at=None, deadline=None, worker=""
            )
            job.status, job.cancel_requested, job.error, job.finished_at = Status.QUEUED, False, "", None
            job.save(update_fields=["status", "cancel_requested", "error", "finished_at"])
        _release_stale_claims(job)
        queued = list(job.chunks.filter(status=Chunk.Status.QUEUED))
        finalize = not job.chunks.exclude(status=Chunk.Status.DONE).exists()
    return _resend(job, queued, finalize=finalize, dispatch=dispatch)


def resume_stale_jobs() -> int:
    """For a periodic task (beat): re-send the chunks of unfinished jobs whose claim went
    stale (a dead worker, or past the task time limit), and finalize jobs that are due.

    QUEUED chunks are left alone: their message may still be waiting in the broker. A
    broker that lost its messages (restarted without persistence) needs resume_job.
    Returns how many chunks were re-sent.
    """
    sent = 0
    for job in EvaluationJob.objects.filter(status__in=(*ACTIVE_JOB_STATUSES, Status.FINALIZING)):
        with transaction.atomic():
            freed = _release_stale_claims(job)
            finalize = not job.chunks.exclude(status=Chunk.Status.DONE).exists()
        sent += len(_resend(job, freed, finalize=finalize, dispatch=True))
    return sent


def _release_stale_claims(job: EvaluationJob) -> list[Chunk]:
    """RUNNING chunks whose holder is dead or past its deadline go back to QUEUED."""
    now = timezone.now()
    freed = []
    for chunk in job.chunks.filter(status=Chunk.Status.RUNNING):
        stale = chunk.deadline is None or chunk.deadline < now or _holder_is_dead(chunk.worker)
        if stale and Chunk.objects.filter(pk=chunk.pk, status=Chunk.Status.RUNNING, worker=chunk.worker).update(
            status=Chunk.Status.QUEUED, deadline=None
        ):
            chunk.status = Chunk.Status.QUEUED
            freed.append(chunk)
    return freed


def _resend(job: EvaluationJob, chunks: list[Chunk], *, finalize: bool, dispatch: bool) -> list[int]:
    """Send generate chunks, and score chunks whose generation is done (the others are sent
    by their generate chunk); finalize when every chunk is done."""
    generated = set(
        job.chunks.filter(stage=Chunk.Stage.GENERATE, status=Chunk.Status.DONE).values_list("index", flat=True)
    )
    generate_ids = [c.pk for c in chunks if c.stage == Chunk.Stage.GENERATE]
    score_ids = [c.pk for c in chunks if c.stage == Chunk.Stage.SCORE and c.index in generated]
    if dispatch:
        transaction.on_commit(lambda: _send_generate(generate_ids))
        transaction.on_commit(lambda: _send_score(score_ids))
        if finalize:
            transaction.on_commit(lambda: _send_finalize(job.pk))
    return generate_ids + score_ids


def run_job_inline(job: EvaluationJob, *, progress: ProgressCallback | None = None) -> EvaluationJob:
    """Run a job in this process without a broker (CLI `manage.py evaluate`, the demo).

    The same claims and services as the workers: generate every chunk, score every chunk,
    finalize. progress(done, total, stage) is called after each batch, with counts of
    prompts (stage "generate" / "score") . Transient errors are retried here with backoff.
    Returns the job as it ended: DONE, FAILED (job.error says why), CANCELLED, or still
    RUNNING if another process holds some of its chunks.
    """
    job.refresh_from_db()
    if job.status == Status.PENDING:
        EvaluationJob.objects.filter(pk=job.pk, status=Status.PENDING).update(status=Status.QUEUED)
    total = job.total_prompts
    done = {Chunk.Stage.GENERATE: job.generated_prompts, Chunk.Stage.SCORE: job.scored_prompts}

    def on_batch(stage: str, prompts: int) -> None:
        if stage == Chunk.Stage.SCORE:
            return  # score batches are generations, not prompts: counted per chunk below
        done[stage] = min(total, done[stage] + prompts)
        if progress:
            progress(done[stage], total, stage)

    for stage, runner in ((Chunk.Stage.GENERATE, run_generate_chunk), (Chunk.Stage.SCORE, run_score_chunk)):
        for chunk_id in job.chunks.filter(stage=stage).order_by("index").values_list("id", flat=True):
            if not _run_with_retries(partial(runner, chunk_id, dispatch=False, on_batch=on_batch)):
                job.refresh_from_db()
                if job.is_terminal:
                    return job
                continue
            if stage == Chunk.Stage.SCORE:
                done[stage] = EvaluationJob.objects.values_list("scored_prompts", flat=True).get(pk=job.pk)
                if progress:
                    progress(done[stage], total, stage)
    if finalize_job(job.pk) and progress:
        progress(total, total, "finalize")
    job.refresh_from_db()
    return job


def _run_with_retries(step: Callable[[], bool]) -> bool:
    for attempt in range(max_chunk_attempts()):
        try:
            return step()
        except TransientError:
            time.sleep(min(30, 0.5 * 2**attempt * (1 + random.random())))
    return False
