"""{% scorer_trust scorer_key language as marker %} and {% include "scorer_trust/includes/trust_marker.html" %}:
how far the scorer behind a number can be trusted in a language. For a whole table, build the
markers once with selectors.trust_markers(...) in the view and pass them in instead."""
from django import template

from evaluation.scorer_trust import selectors

register = template.Library()


@register.simple_tag
def scorer_trust(scorer_key, language, category=selectors.HEADLINE_CATEGORY):
    code = getattr(language, "code", language)
    return selectors.scorer_trust(str(scorer_key), str(code), category)


@register.filter
def get_item(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None
