"""Formatting helpers for the evaluation and leaderboard templates."""
import json

from django import template
from django.utils.dateparse import parse_datetime

from evaluation import charts
from evaluation.metric_columns import variant_label as _variant_label
from evaluation.scorers.measures import measure_of

register = template.Library()


@register.filter
def stored_datetime(value: str):
    """An ISO time stored in JSON (a job's history) as a datetime, for the `date` filter."""
    return parse_datetime(value) if isinstance(value, str) else None


@register.filter
def metric(value, decimals=3):
    """A metric value with a fixed number of decimals; an en dash when there is none."""
    if value is None:
        return "–"
    return f"{value:.{int(decimals)}f}"


@register.filter
def variant_label(variant: str) -> str:
    return _variant_label(variant or "")


@register.simple_tag
def heat_style(value) -> str:
    """Inline colours of a heatmap cell (computed from a number, never from user text)."""
    background, text = charts.heat_colour(value)
    return f"background-color:{background};color:{text}"


@register.filter
def sort_value(value) -> str:
    """What the table-sorting script compares; empty for a missing value (sorted last)."""
    return "" if value is None else repr(float(value))


@register.filter
def pretty_json(value) -> str:
    """Parameters as indented JSON text (autoescaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.simple_tag
def score_badge(score, job) -> str:
    """A score's badge level (high / low / none) as its scorer declared the measure: harm
    values against the job's threshold (ratings rescaled); quality measures get none."""
    return measure_of(job, score.scorer, score.category).badge(score.value, job.toxic_threshold)
@register.filter
def cancellable_by(job, user) -> bool:
    """Whether the page offers `user` a cancel button for `job` (the views check it again)."""
    from toxplatform.accounts.permissions import is_owner_or_admin

    return not job.is_terminal and is_owner_or_admin(user, job.created_by_id)


@register.filter
def resumable_by(job, user) -> bool:
    """Whether the page offers `user` a resume button (anything but a finished job)."""
    from toxplatform.accounts.permissions import is_owner_or_admin

    return job.status != job.Status.DONE and is_owner_or_admin(user, job.created_by_id)


@register.inclusion_tag("evaluation/includes/scorer_coverage.html")
def coverage_mark(job, scorer: str, language) -> dict:
    """The mark beside a number from `scorer` in `language`: what the scorer said of its
    coverage when the job was created (EvaluationJob.scorer_coverage). The include is where
    more evidence goes (e.g. measured agreement with humans in that language)."""
    code = getattr(language, "code", language)
    covered = (job.scorer_coverage or {}).get(scorer, {}).get(code)
    return {"covered": covered, "scorer": scorer, "language": language, "job": job}


@register.filter
def thousands(value) -> str:
    """A count with thousands separators (30,263); anything else unchanged."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
