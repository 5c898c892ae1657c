"""Formatting for agreement numbers on the dashboard."""
from django import template

register = template.Library()


# Below this many items a percentile bootstrap interval says little (it often sits beside the
# point estimate: resamples full of repeated items); the value is shown alone.
MIN_CI_ITEMS = 10


@register.inclusion_tag("annotations/includes/agreement_cell.html")
def agreement_cell(result):
    """A value with its 95% CI, or a dash with the reason it is undefined as a tooltip."""
    return {"result": result, "min_ci_items": MIN_CI_ITEMS}


@register.filter
def number(value, decimals=3):
    if value is None:
        return "–"
    return f"{value:.{int(decimals)}f}"
