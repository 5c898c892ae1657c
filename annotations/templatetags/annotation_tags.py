"""Formatting for agreement numbers on the dashboard."""
from django import template

register = template.Library()


@register.inclusion_tag("annotations/includes/agreement_cell.html")
def agreement_cell(result):
    """A value with its 95% CI, or a dash with the reason it is undefined as a tooltip."""
    return {"result": result}


@register.filter
def number(value, decimals=3):
    if value is None:
        return "–"
    return f"{value:.{int(decimals)}f}"
