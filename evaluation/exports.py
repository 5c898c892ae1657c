"""A job's results as files a researcher analyses elsewhere (pandas, R, a spreadsheet).

- `sample_records(job)`: every generation with its prompt and every score, one dict each —
  what lm-evaluation-harness writes with --log_samples and HELM keeps per instance. Written as
  JSON Lines, streamed, so a job of 100k samples never sits in memory.
- `metric_rows(job)`: every JobMetric row (all variants, subsets and CIs) for CSV.
- `leaderboard_rows(board)`: a language leaderboard as it is shown (same selection, same order).

Both read in batches of EXPORT_BATCH rows: one query for the generations and one for their
scores per batch.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from evaluation import selectors
from evaluation.metric_columns import EMT_STD
from evaluation.models import EvaluationJob, Generation, JobMetric

EXPORT_BATCH = 2000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
METRIC_COLUMNS = ["language", "scorer", "category", "subset", "metric", "variant", "value", "ci_low", "ci_high", "n"]


def sample_generations(job: EvaluationJob, *, language: str | None = None):
    """The job's generations in a stable order (language, prompt, sample), with prompt and scores."""
    return selectors.job_generations(job, language=language)


def sample_record(generation: Generation) -> dict:
    """One sample: where it came from, what the model wrote, each scorer's value per category
    (None = the scorer could not give one) and its raw output under `score_details`."""
    prompt = generation.prompt
    scores: dict[str, dict[str, float | None]] = {}
    details: dict[str, dict[str, object]] = {}
    for score in generation.scores.all():
        scores.setdefault(score.scorer, {})[score.category] = score.value
        if score.raw:
            details.setdefault(score.scorer, {})[score.category] = score.raw
    return {
        "job": generation.job_id,
        "language": prompt.language_id,
        "prompt_id": prompt.pk,
        "external_id": prompt.external_id,
        "group_id": prompt.group_id,
        "prompt_is_toxic": prompt.is_toxic,
        "prompt": prompt.text,
        "sample_index": generation.sample_index,
        "continuation": generation.text,
        "token_count": generation.token_count,
        "scores": scores,
        "score_details": details,
    }


def sample_records(job: EvaluationJob, *, language: str | None = None) -> Iterator[dict]:
    for generation in sample_generations(job, language=language).iterator(chunk_size=EXPORT_BATCH):
        yield sample_record(generation)


def samples_jsonl(job: EvaluationJob, *, language: str | None = None) -> Iterator[str]:
    """JSON Lines, UTF-8 text kept as it is (ensure_ascii=False: Arabic stays readable)."""
    for record in sample_records(job, language=language):
        yield json.dumps(record, ensure_ascii=False) + "\n"


def metric_rows(job: EvaluationJob) -> Iterator[list]:
    """The header, then one row per JobMetric."""
    yield METRIC_COLUMNS
    rows = JobMetric.objects.filter(job=job).order_by("language_id", "scorer", "category", "subset", "metric", "variant")
    for row in rows.values_list("language_id", *METRIC_COLUMNS[1:]).iterator(chunk_size=EXPORT_BATCH):
        yield list(row)


def leaderboard_rows(board) -> Iterator[list]:
    """A leaderboards.LanguageLeaderboard: one row per model x method, each column's value, CI
    and the variant it was computed with, and what the table was selected by."""
    selection = board.selection
    header = ["rank", "model", "method", "job", "language", "dataset", "scorer", "category", "subset"]
    for column in board.columns:
        header += [column.metric, f"{column.metric}_ci_low", f"{column.metric}_ci_high", f"{column.metric}_variant"]
    yield [*header, EMT_STD, "perplexity_scorer", "n"]
    for rank, entry in enumerate(board.entries, start=1):
        job = entry.job
        row = [rank, job.model.name, job.detox_method, job.pk, board.language.code, job.dataset.slug,
               selection.scorer, selection.category, selection.subset]
        for column in board.columns:
            cell = entry.cells.get(column.metric)
            row += [cell.value, cell.ci_low, cell.ci_high, cell.variant] if cell else [None, None, None, ""]
        emt = entry.cells.get("emt")
        yield [*row, emt.std if emt else None, selection.fluency, entry.toxicity_n]


def to_csv(rows) -> Iterator[str]:
    """Rows as CSV text, one line at a time (for a streamed response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([spreadsheet_safe(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def spreadsheet_safe(value):
    """A text cell a spreadsheet would run as a formula (=, +, -, @) gets a leading quote
    (OWASP's advice for CSV injection); numbers are left as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def metrics_csv(job: EvaluationJob) -> Iterator[str]:
    return to_csv(metric_rows(job))
