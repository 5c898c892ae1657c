"""Finalize: the job's metrics (evaluation.metrics) stored as JobMetric rows; the job ends DONE."""
from __future__ import annotations

import logging

from django.db import transaction

from evaluation.models import EvaluationJob, Generation, JobMetric, JobPrompt, Score
from evaluation.services import state
from evaluation.services.claims import describe_failure
from evaluation.services.dispatch import all_scored
from toxplatform.errors import is_infrastructure_outage

logger = logging.getLogger(__name__)


def finalize_job(job_id: int) -> bool:
    """Compute the job's JobMetric rows and mark it DONE; True if this call finished the job.

    Under a row lock on the job: two finalize calls run one after the other and the
    second finds the job DONE. Metric rows are replaced in the same transaction.
    """
    if not all_scored(job_id):
        return False
    # Visible on the job page while the metrics are computed.
    state.begin_finalizing(job_id)
    try:
        with transaction.atomic():
            job = EvaluationJob.objects.select_for_update().filter(pk=job_id).first()
            if job is None or job.is_terminal or job.cancel_requested:
                return False
            rows = job_metric_rows(job)
            JobMetric.objects.filter(job=job).delete()
            JobMetric.objects.bulk_create(rows)
            return state.finish_job(job)
    except Exception as error:  # noqa: BLE001 - the user must see why the job did not finish
        if is_infrastructure_outage(error):
            raise  # not the job's fault: the task retries, the sweeper sends finalize again
        logger.exception("finalize of job %s failed", job_id)
        state.fail_job(job_id, f"Computing the metrics failed: {describe_failure(error)}")
        return False


def job_metric_rows(job: EvaluationJob) -> list[JobMetric]:
    """Every JobMetric of a job, named as evaluation.metrics names them: per (language,
    subset) Dist-1/2/3 of the texts (scorer and category empty), and per (scorer, category)
    what the scorer's declared measure calls for (harm: emt, emt_std, tp, avg, invalid_rate;
    quality, e.g. perplexity: its mean and invalid_rate). EMT and TP come in every variant (k
    subsamples x threshold rules); pages pick the job's own by the rows' k and rule."""
    from evaluation import metrics
    from evaluation.scorers.measures import measure_of

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

    def add(language: str, scorer: str, category: str, subset: str, computed, measure: str = "") -> None:
        for row in computed:
            rows.append(JobMetric(
                job=job, language_id=language, scorer=scorer, category=category, subset=subset,
                metric=row.metric, variant=row.variant, k=row.k, rule=row.rule, threshold=row.threshold,
                measure=measure, value=row.value, n=row.n, ci_low=row.ci_low, ci_high=row.ci_high,
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
                measure = measure_of(job, scorer, category)
                # Harm: every k (the job's, then 25/10/5/1 below it) and both threshold rules.
                computed = metrics.slice_metrics(measure, by_prompt, k=job.k, threshold=job.toxic_threshold, ci=ci)
                add(language, scorer, category, subset, computed, measure.kind)
    return rows
