"""Read-side queries for the corpus pages (and anything else that lists prompts).

Every function returns in a fixed number of queries whatever the size of the dataset:
counts are aggregated in the database, related rows come with select_related /
prefetch_related.
"""
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Sum
from django.db.models.lookups import GreaterThanOrEqual
from django.shortcuts import get_object_or_404

from toxplatform.corpus.models import Dataset, HarmCategory, Language, Prompt, PromptLabel

# A label is "high" when it sits at or above the middle of its scale: 2 * value >= min + max
# (RTP-LX: toxicity >= 3 of 1-5, the other categories >= 2 of 1-3). Written without a
# division so that a degenerate scale cannot divide by zero.
LABEL_AT_OR_ABOVE_MIDPOINT = GreaterThanOrEqual(F("value") * 2, F("scale_min") + F("scale_max"))


def known_language_codes(codes: Iterable[str]) -> list[str]:
    """The codes, in the given order, that name a Language row."""
    codes = list(codes)
    known = set(Language.objects.filter(code__in=codes).values_list("code", flat=True))
    return [code for code in codes if code in known]


def dataset_list() -> QuerySet[Dataset]:
    return Dataset.objects.annotate(
        num_prompts=Count("prompts"),
        num_languages=Count("prompts__language", distinct=True),
    ).order_by("name", "version")


def dataset_get(slug: str) -> Dataset:
    return get_object_or_404(Dataset, slug=slug)


@dataclass
class LanguageRow:
    language: Language | None  # None on the totals row
    prompts: int
    toxic: int
    non_toxic: int
    culturally_specific: int
    # category slug -> prompts with a label at or above the midpoint
    high_by_category: dict[str, int] = field(default_factory=dict)
    # (CategoryRow, count) in the order of the table's columns
    category_cells: list[tuple["CategoryRow", int]] = field(default_factory=list)


@dataclass
class CategoryRow:
    category: HarmCategory
    labelled_prompts: int = 0
    high_prompts: int = 0
    label_count: int = 0
    normalized_sum: float = 0.0

    @property
    def midpoint(self) -> float:
        return (self.category.scale_min + self.category.scale_max) / 2

    @property
    def mean_label(self) -> float | None:
        """Mean gold label on the category's own scale (labels from other scales mapped linearly)."""
        if not self.label_count:
            return None
        span = self.category.scale_max - self.category.scale_min
        return self.category.scale_min + span * self.normalized_sum / self.label_count


@dataclass
class DatasetStats:
    languages: list[LanguageRow]
    categories: list[CategoryRow]
    totals: LanguageRow | None


def dataset_stats(dataset: Dataset) -> DatasetStats:
    """Per-language counts and per-category label summaries: two aggregate queries (+2 lookups)."""
    languages = {language.code: language for language in dataset_languages(dataset)}
    prompt_counts = (
        Prompt.objects.filter(dataset=dataset)
        .values("language")
        .annotate(
            prompts=Count("id"),
            toxic=Count("id", filter=Q(is_toxic=True)),
            non_toxic=Count("id", filter=Q(is_toxic=False)),
            culturally_specific=Count("id", filter=Q(culturally_specific=True)),
        )
        .order_by("language")
    )
    rows = {
        entry["language"]: LanguageRow(
            language=languages[entry["language"]],
            prompts=entry["prompts"],
            toxic=entry["toxic"],
            non_toxic=entry["non_toxic"],
            culturally_specific=entry["culturally_specific"],
        )
        for entry in prompt_counts
    }

    span = F("scale_max") - F("scale_min")
    label_counts = (
        PromptLabel.objects.filter(prompt__dataset=dataset)
        .values("prompt__language", "category")
        .annotate(
            labelled=Count("prompt", distinct=True),
            high=Count("prompt", distinct=True, filter=LABEL_AT_OR_ABOVE_MIDPOINT),
            label_count=Count("id", filter=Q(scale_max__gt=F("scale_min"))),
            # Position on [0, 1] of each label, so sources with different scales can be averaged.
            normalized_sum=Sum(
                (F("value") - F("scale_min")) / span,
                filter=Q(scale_max__gt=F("scale_min")),
            ),
        )
        .order_by()
    )
    categories = {category.slug: CategoryRow(category=category) for category in HarmCategory.objects.all()}
    for entry in label_counts:
        category_row = categories[entry["category"]]
        # A prompt has one language, so distinct prompt counts add up across languages.
        category_row.labelled_prompts += entry["labelled"]
        category_row.high_prompts += entry["high"]
        category_row.label_count += entry["label_count"]
        category_row.normalized_sum += entry["normalized_sum"] or 0.0
        rows[entry["prompt__language"]].high_by_category[entry["category"]] = entry["high"]

    used_categories = [row for row in categories.values() if row.labelled_prompts]
    language_rows = sorted(rows.values(), key=lambda row: row.language.english_name)
    for row in language_rows:
        row.category_cells = [
            (column, row.high_by_category.get(column.category.slug, 0)) for column in used_categories
        ]
    totals = None
    if language_rows:
        totals = LanguageRow(
            language=None,
            prompts=sum(row.prompts for row in language_rows),
            toxic=sum(row.toxic for row in language_rows),
            non_toxic=sum(row.non_toxic for row in language_rows),
            culturally_specific=sum(row.culturally_specific for row in language_rows),
            high_by_category={row.category.slug: row.high_prompts for row in used_categories},
        )
    return DatasetStats(languages=language_rows, categories=used_categories, totals=totals)


def dataset_languages(dataset: Dataset) -> QuerySet[Language]:
    return Language.objects.filter(Exists(Prompt.objects.filter(dataset=dataset, language=OuterRef("pk"))))


def _labels_prefetch() -> Prefetch:
    return Prefetch(
        "labels",
        queryset=PromptLabel.objects.select_related("category").order_by(
            "category__position", "category__slug", "source"
        ),
    )


def prompt_list(
    *,
    dataset: Dataset,
    language: Language | None = None,
    category: HarmCategory | None = None,
    min_value: float | None = None,
    toxic: bool | None = None,
    culturally_specific: bool | None = None,
    search: str = "",
    group_id: str = "",
) -> QuerySet[Prompt]:
    """Prompts of a dataset, filtered; every filter left at None/"" is not applied.

    `category` alone keeps prompts that have a label in it; with `min_value` (on the
    category's scale) it keeps prompts with a label at or above that value.
    """
    prompts = Prompt.objects.filter(dataset=dataset)
    if language is not None:
        prompts = prompts.filter(language=language)
    if category is not None:
        labels = PromptLabel.objects.filter(prompt=OuterRef("pk"), category=category)
        if min_value is not None:
            labels = labels.filter(_label_at_least(category, min_value))
        prompts = prompts.filter(Exists(labels))
    if toxic is not None:
        prompts = prompts.filter(is_toxic=toxic)
    if culturally_specific is not None:
        prompts = prompts.filter(culturally_specific=culturally_specific)
    if search:
        prompts = prompts.filter(text__icontains=search)
    if group_id:
        prompts = prompts.filter(group_id=group_id)
    return prompts.select_related("language").prefetch_related(_labels_prefetch()).order_by("language_id", "id")


def _label_at_least(category: HarmCategory, min_value: float):
    """value >= min_value, with min_value read on the category's scale and mapped onto the
    label's own scale (they are the same for most sources). Cross-multiplied, so labels on
    the category's scale compare exactly: (v - lmin)(cmax - cmin) >= (t - cmin)(lmax - lmin).
    """
    category_span = category.scale_max - category.scale_min
    return GreaterThanOrEqual(
        (F("value") - F("scale_min")) * category_span,
        (min_value - category.scale_min) * (F("scale_max") - F("scale_min")),
    )


def prompt_get(*, dataset: Dataset, prompt_id: int) -> Prompt:
    prompts = Prompt.objects.select_related("language", "dataset").prefetch_related(_labels_prefetch())
    return get_object_or_404(prompts, dataset=dataset, pk=prompt_id)


def prompt_translations(prompt: Prompt) -> QuerySet[Prompt]:
    """The same prompt in the dataset's other languages (same group id)."""
    if not prompt.group_id:
        return Prompt.objects.none()
    return (
        Prompt.objects.filter(dataset_id=prompt.dataset_id, group_id=prompt.group_id)
        .exclude(pk=prompt.pk)
        .select_related("language")
        .prefetch_related(_labels_prefetch())
        .order_by("language__english_name", "id")
    )
