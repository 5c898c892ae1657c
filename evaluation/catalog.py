"""What a researcher can choose when queueing a job, and how big it would be: each detox
method's and scorer's declared summary and parameters (the job form and `GET /api/methods/`,
`GET /api/scorers/`), prompt counts per dataset, language and split (the form's live size),
each model's measured speed (its time estimate) and the size limits."""
from __future__ import annotations

from django.db.models import Count

from evaluation.detox import registry as detox_registry
from evaluation.job_parameters import large_job_work, max_job_work
from evaluation.models import EvaluationJob
from evaluation.scorers import registry as scorer_registry
from toxplatform.corpus.models import Prompt

# How many of a model's latest finished jobs its speed is measured on.
SPEED_JOBS = 5


def _describe(name: str, cls) -> dict:
    return {"name": name, "summary": cls.summary, "parameters": cls.parameters.describe()}


def methods() -> list[dict]:
    """Every detox method: name, one-line summary, declared parameters."""
    return [_describe(name, cls) for name, cls in detox_registry.items()]


def scorers() -> list[dict]:
    """Every scorer: name, one-line summary, declared parameters."""
    return [_describe(name, cls) for name, cls in scorer_registry.items()]


def prompt_counts() -> dict[str, dict[str, dict[str, int]]]:
    """{dataset slug: {language: {"all", "toxic", "nontoxic": prompts}}} (one grouped query)."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    rows = Prompt.objects.values_list("dataset__slug", "language", "is_toxic").annotate(n=Count("id")).order_by()
    for slug, language, toxic, n in rows:
        entry = counts.setdefault(slug, {}).setdefault(language, {"all": 0, "toxic": 0, "nontoxic": 0})
        entry["all"] += n
        entry["toxic" if toxic else "nontoxic"] += n
    return counts


def model_speeds() -> dict[int, float]:
    """{ModelSpec id: tokens asked per second of wall time} over each model's latest finished
    jobs (generation, scoring and metrics together: what a researcher waits for)."""
    jobs = (EvaluationJob.objects.filter(status=EvaluationJob.Status.DONE, started_at__isnull=False,
                                         finished_at__isnull=False, total_prompts__gt=0)
            .order_by("model_id", "-finished_at")
            .values("model_id", "total_prompts", "k", "max_new_tokens", "started_at", "finished_at"))
    work: dict[int, list[float]] = {}
    for job in jobs:
        tokens_and_seconds = work.setdefault(job["model_id"], [0.0, 0.0, 0])
        if tokens_and_seconds[2] >= SPEED_JOBS:
            continue
        tokens_and_seconds[0] += job["total_prompts"] * job["k"] * job["max_new_tokens"]
        tokens_and_seconds[1] += max((job["finished_at"] - job["started_at"]).total_seconds(), 0.001)
        tokens_and_seconds[2] += 1
    return {model: round(tokens / seconds, 3) for model, (tokens, seconds, _) in work.items() if seconds > 0}


def limits() -> dict[str, int]:
    """The size limits the job form shows and checks as you type (the service checks them too)."""
    return {"confirm_work": large_job_work(), "max_work": max_job_work()}


def form_data() -> dict:
    """Everything the job form's script needs, as JSON (rendered with json_script: escaped)."""
    return {
        "counts": prompt_counts(),
        "speeds": {str(model): speed for model, speed in model_speeds().items()},
        "limits": limits(),
    }


# Used by the job form's scorer and method help: a dict by name.
def by_name(described: list[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in described}

