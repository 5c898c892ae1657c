"""The prompt filters of the corpus API: strict parsing and the queries they run.

A filter value that names nothing (an unknown language, a threshold that is not a number)
is an ApplicationError, which the API answers with a 400: a typo must never look like
"no prompts match". The API filters across datasets and several languages at once, which
selectors.prompt_list (one dataset, one language, for the pages) does not; the label
threshold means the same in both (selectors._label_at_least).
"""
import math
from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet

from toxplatform.corpus.models import Dataset, HarmCategory, Language, Prompt, PromptLabel
from toxplatform.corpus.selectors import _label_at_least
from toxplatform.errors import ApplicationError

# Query parameter -> what it does (also the OpenAPI description of each parameter).
PROMPT_FILTER_PARAMS = {
    "dataset": "Dataset slug.",
    "language": "BCP-47 code, or several separated by commas (e.g. `ar,he`).",
    "category": "Harm category slug: only prompts with a gold label in this category.",
    "min_label": "With `category`: only prompts with a label >= this, on the category's scale "
    "(toxicity 1-5, the other RTP-LX categories 1-3, Perspective attributes 0-1); a label on "
    "another scale (e.g. Perspective toxicity, 0-1) is mapped onto it linearly. A value "
    "outside the category's scale is a 400.",
    "label_source": "With `category`: only labels from this source (e.g. `human`, `perspective`).",
    "toxic": "`true` or `false`: toxic by the source's own score.",
    "culturally_specific": "`true` or `false`.",
    "group": "Group id: the same prompt across languages (RTP-LX transcreation index).",
    "q": "Text search: the prompt contains this (case-insensitive).",
}
# Parameters the list view reads besides the filters (pagination, DRF's format switch).
PROMPT_LIST_PARAMS = {"page", "page_size", "format"}

TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no"}


@dataclass(frozen=True)
class PromptFilters:
    dataset: Dataset | None = None
    languages: tuple[str, ...] = ()
    category: HarmCategory | None = None
    min_label: float | None = None
    label_source: str = ""
    toxic: bool | None = None
    culturally_specific: bool | None = None
    group: str = ""
    text: str = ""


def parse_prompt_filters(params: Mapping) -> PromptFilters:
    """Turn query parameters (a QueryDict or a plain dict) into checked filters."""
    unknown = sorted(set(params) - set(PROMPT_FILTER_PARAMS) - PROMPT_LIST_PARAMS)
    if unknown:
        raise ApplicationError(
            f"Unknown filter parameter: {', '.join(unknown)}",
            {"allowed": ", ".join(sorted(set(PROMPT_FILTER_PARAMS) | PROMPT_LIST_PARAMS))},
        )
    values = {name: _single_value(params, name) for name in PROMPT_FILTER_PARAMS if name != "language"}

    category = _category(values["category"]) if values["category"] else None
    if category is None and (values["min_label"] or values["label_source"]):
        raise ApplicationError("min_label and label_source need a category", {"category": "missing"})
    return PromptFilters(
        dataset=_dataset(values["dataset"]) if values["dataset"] else None,
        languages=_languages(params),
        category=category,
        min_label=_threshold(category, values["min_label"]) if values["min_label"] else None,
        label_source=_label_source(values["label_source"]) if values["label_source"] else "",
        toxic=_boolean("toxic", values["toxic"]),
        culturally_specific=_boolean("culturally_specific", values["culturally_specific"]),
        group=values["group"],
        text=values["q"],
    )


def prompt_queryset() -> QuerySet[Prompt]:
    """Prompts with everything the API prints, in a fixed number of queries."""
    labels = PromptLabel.objects.order_by("category__position", "category_id", "source")
    return Prompt.objects.select_related("dataset").prefetch_related(Prefetch("labels", queryset=labels))


def filter_prompts(filters: PromptFilters) -> QuerySet[Prompt]:
    prompts = prompt_queryset()
    if filters.dataset is not None:
        prompts = prompts.filter(dataset=filters.dataset)
    if filters.languages:
        prompts = prompts.filter(language_id__in=filters.languages)
    if filters.category is not None:
        # One label row must satisfy category, source and threshold together; EXISTS
        # rather than a join so that a prompt with several matching labels is listed once.
        matching = PromptLabel.objects.filter(prompt=OuterRef("pk"), category=filters.category)
        if filters.min_label is not None:
            matching = matching.filter(_label_at_least(filters.category, filters.min_label))
        if filters.label_source:
            matching = matching.filter(source=filters.label_source)
        prompts = prompts.filter(Exists(matching))
    if filters.toxic is not None:
        prompts = prompts.filter(is_toxic=filters.toxic)
    if filters.culturally_specific is not None:
        prompts = prompts.filter(culturally_specific=filters.culturally_specific)
    if filters.group:
        prompts = prompts.filter(group_id=filters.group)
    if filters.text:
        prompts = prompts.filter(text__icontains=filters.text)
    return prompts


def dataset_label_counts(dataset: Dataset) -> list[dict]:
    """Which gold labels the dataset carries: per category and source (label_source), with the scale."""
    rows = (
        PromptLabel.objects.filter(prompt__dataset=dataset)
        .values("category_id", "source", "scale_min", "scale_max")
        .annotate(label_count=Count("id"))
        .order_by("category__position", "category_id", "source")
    )
    return [
        {
            "category": row["category_id"],
            "source": row["source"],
            "scale": {"min": row["scale_min"], "max": row["scale_max"]},
            "label_count": row["label_count"],
        }
        for row in rows
    ]


def _single_value(params: Mapping, name: str) -> str:
    given = params.getlist(name) if hasattr(params, "getlist") else ([params[name]] if name in params else [])
    if len(given) > 1:
        raise ApplicationError(f"Filter {name!r} is given more than once", {name: ", ".join(given)})
    return given[0].strip() if given else ""


def _dataset(slug: str) -> Dataset:
    try:
        return Dataset.objects.get(slug=slug)
    except Dataset.DoesNotExist:
        raise ApplicationError(f"Unknown dataset {slug!r}", {"dataset": slug}) from None


def _category(slug: str) -> HarmCategory:
    try:
        return HarmCategory.objects.get(slug=slug)
    except HarmCategory.DoesNotExist:
        known = ", ".join(HarmCategory.objects.values_list("slug", flat=True))
        raise ApplicationError(f"Unknown harm category {slug!r}", {"known": known}) from None


def _languages(params: Mapping) -> tuple[str, ...]:
    raw = params.getlist("language") if hasattr(params, "getlist") else [params.get("language", "")]
    requested = [code.strip() for value in raw for code in value.split(",") if code.strip()]
    if not requested:
        return ()
    # BCP-47 tags are case-insensitive: zh-hans is zh-Hans.
    by_lower = {code.lower(): code for code in Language.objects.values_list("code", flat=True)}
    unknown = [code for code in requested if code.lower() not in by_lower]
    if unknown:
        raise ApplicationError(f"Unknown language: {', '.join(unknown)}", {"language": ", ".join(unknown)})
    return tuple(dict.fromkeys(by_lower[code.lower()] for code in requested))


def _label_source(source: str) -> str:
    if not PromptLabel.objects.filter(source=source).exists():
        raise ApplicationError(f"No gold labels come from source {source!r}", {"label_source": source})
    return source


def _threshold(category: HarmCategory, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ApplicationError(f"min_label must be a number, not {raw!r}", {"min_label": raw})
    if not category.scale_min <= value <= category.scale_max:
        raise ApplicationError(
            f"min_label {value:g} is outside the {category.slug} scale "
            f"({category.scale_min:g} to {category.scale_max:g})",
            {"min_label": raw, "category": category.slug},
        )
    return value


def _boolean(name: str, raw: str) -> bool | None:
    if not raw:
        return None
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    raise ApplicationError(f"{name} must be true or false, not {raw!r}", {name: raw})
