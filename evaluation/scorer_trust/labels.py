"""Gold labels as arrays: what training and scorer evaluation read from the corpus.

One `GoldLabels` holds, for the selected prompts of a dataset (in a stable order: language,
prompt id), every rater's value per category, the human aggregate by the chosen rule, and
what splits need (group keys, transcreated vs culturally specific).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evaluation.scorer_trust.learning import group_key
from toxplatform import agreement
from toxplatform.corpus.models import Dataset, HarmCategory, Language, Prompt, PromptLabel
from toxplatform.errors import ApplicationError

DEFAULT_RULE = agreement.MAJORITY_THEN_ROUNDED_MEAN
RULE_NAMES = {
    agreement.MAJORITY_THEN_ROUNDED_MEAN: "majority of raters (rounded mean where no majority)",
    agreement.ROUNDED_MEAN: "rounded mean of raters",
}


def rule_description(rule: str) -> str:
    return agreement.AGGREGATION_RULES.get(rule, "")


def check_rule(rule: str) -> str:
    if rule not in agreement.AGGREGATION_RULES:
        raise ApplicationError(f"Unknown aggregate rule {rule!r}", {"known": ", ".join(agreement.AGGREGATION_RULES)})
    return rule


@dataclass
class CategoryLabels:
    slug: str
    low: int
    high: int
    raters: np.ndarray  # float (prompts x raters), NaN where a prompt has fewer raters or no label
    aggregate: np.ndarray  # float, NaN where the prompt has no label in this category

    @property
    def scale(self) -> list[int]:
        return list(range(self.low, self.high + 1))

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.aggregate)


@dataclass
class GoldLabels:
    dataset: Dataset
    rule: str
    prompt_ids: np.ndarray
    languages: np.ndarray  # str
    external_ids: list[str]
    texts: list[str]
    group_keys: list[str]
    culturally_specific: np.ndarray  # bool
    categories: dict[str, CategoryLabels] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def subset(self, mask: np.ndarray) -> GoldLabels:
        index = np.flatnonzero(mask)
        return GoldLabels(
            self.dataset, self.rule, self.prompt_ids[index], self.languages[index],
            [self.external_ids[i] for i in index], [self.texts[i] for i in index],
            [self.group_keys[i] for i in index], self.culturally_specific[index],
            {slug: CategoryLabels(c.slug, c.low, c.high, c.raters[index], c.aggregate[index])
             for slug, c in self.categories.items()},
        )


def resolve_selection(dataset_slug: str, languages, categories) -> tuple[Dataset, list[str], list[HarmCategory]]:
    """The dataset, its languages (checked; empty = every language it has) and categories
    (checked; empty = every category it has gold labels in), or ApplicationError."""
    dataset = Dataset.objects.filter(slug=dataset_slug).first()
    if dataset is None:
        raise ApplicationError(f"Unknown dataset {dataset_slug!r}",
                               {"known": ", ".join(Dataset.objects.values_list("slug", flat=True)) or "none imported"})
    present = sorted(set(Prompt.objects.filter(dataset=dataset).values_list("language_id", flat=True).distinct()))
    languages = list(dict.fromkeys(languages or []))
    unknown = [code for code in languages if not Language.objects.filter(code=code).exists()]
    if unknown:
        raise ApplicationError(f"Unknown language(s): {', '.join(unknown)}")
    missing = [code for code in languages if code not in present]
    if missing:
        raise ApplicationError(f"Dataset {dataset.slug!r} has no prompts in {', '.join(missing)}",
                               {"languages": ", ".join(present)})
    labelled = set(PromptLabel.objects.filter(prompt__dataset=dataset).values_list("category_id", flat=True).distinct())
    categories = list(dict.fromkeys(categories or []))
    if categories:
        known = {c.slug: c for c in HarmCategory.objects.filter(slug__in=categories)}
        unknown = [slug for slug in categories if slug not in known]
        if unknown:
            raise ApplicationError(f"Unknown harm category(ies): {', '.join(unknown)}")
        without = [slug for slug in categories if slug not in labelled]
        if without:
            raise ApplicationError(f"Dataset {dataset.slug!r} has no gold labels in {', '.join(without)}")
        chosen = [known[slug] for slug in categories]
    else:
        chosen = list(HarmCategory.objects.filter(slug__in=labelled))
        if not chosen:
            raise ApplicationError(f"Dataset {dataset.slug!r} has no gold labels")
    return dataset, languages or present, chosen


def load_gold_labels(dataset: Dataset, languages: list[str], categories: list[HarmCategory],
                     rule: str = DEFAULT_RULE, source: str = "human") -> GoldLabels:
    check_rule(rule)
    rows = list(
        Prompt.objects.filter(dataset=dataset, language_id__in=languages)
        .order_by("language_id", "id")
        .values_list("id", "language_id", "external_id", "group_id", "text", "culturally_specific")
    )
    position = {row[0]: i for i, row in enumerate(rows)}
    n = len(rows)
    gold = GoldLabels(
        dataset=dataset,
        rule=rule,
        prompt_ids=np.array([row[0] for row in rows], dtype=np.int64),
        languages=np.array([row[1] for row in rows], dtype=object),
        external_ids=[row[2] for row in rows],
        texts=[row[4] for row in rows],
        group_keys=[group_key(row[1], row[2], row[3]) for row in rows],
        culturally_specific=np.array([row[5] for row in rows], dtype=bool),
    )
    for category in categories:
        labels = PromptLabel.objects.filter(
            prompt__dataset=dataset, prompt__language_id__in=languages, category=category, source=source
        ).values_list("prompt_id", "value", "rater_values", "scale_min", "scale_max")
        width = 1
        entries = []
        for prompt_id, value, raters, low, high in labels.iterator(chunk_size=5000):
            values = [float(v) for v in (raters or []) if v is not None] or [float(round(value))]
            width = max(width, len(values))
            entries.append((position[prompt_id], values))
        matrix = np.full((n, width), np.nan)
        for i, values in entries:
            matrix[i, : len(values)] = values
        aggregate = np.full(n, np.nan)
        labelled = [i for i, _ in entries]
        if labelled:
            aggregate[labelled] = [
                np.nan if value is None else value
                for value in agreement.aggregate_labels([matrix[i] for i in labelled], rule)
            ]
        low, high = int(round(category.scale_min)), int(round(category.scale_max))
        gold.categories[category.slug] = CategoryLabels(category.slug, low, high, matrix, aggregate)
    return gold
