"""Creating campaigns and enrolling annotators. Everything is checked before anything is
written; a campaign and all its items are written in one transaction."""
from __future__ import annotations

import random
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F

from annotations import kinds
from annotations.models import Campaign, Item
from annotations.services import selection
from evaluation.models import EvaluationJob, Generation
from toxplatform.accounts.models import Role
from toxplatform.accounts.permissions import has_any_role
from toxplatform.corpus.models import HarmCategory, Language, PromptLabel
from toxplatform.errors import ApplicationError

MAX_ITEMS_PER_LANGUAGE = 10_000
MAX_OVERLAP = 50


def _jobs(job_ids: Iterable) -> list[EvaluationJob]:
    ids = []
    for value in job_ids:
        try:
            ids.append(int(getattr(value, "pk", value)))
        except (TypeError, ValueError):
            raise ApplicationError("A job id must be a number.", {"job": str(value)[:50]}) from None
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise ApplicationError("A campaign is built from at least one finished job.")
    jobs = list(EvaluationJob.objects.filter(pk__in=ids).select_related("model"))
    missing = sorted(set(ids) - {job.pk for job in jobs})
    if missing:
        raise ApplicationError("Unknown jobs.", {"jobs": ", ".join(map(str, missing))})
    unfinished = [job.pk for job in jobs if job.status != EvaluationJob.Status.DONE]
    if unfinished:
        raise ApplicationError("Campaigns are built from finished jobs only.", {"jobs": ", ".join(map(str, unfinished))})
    return sorted(jobs, key=lambda job: job.pk)


def _known(model, field: str, values: Iterable[str], what: str) -> list:
    values = list(dict.fromkeys(str(v) for v in values))
    found = {getattr(row, field): row for row in model.objects.filter(**{f"{field}__in": values})}
    unknown = [v for v in values if v not in found]
    if unknown:
        raise ApplicationError(f"Unknown {what}.", {what: ", ".join(unknown)})
    return [found[v] for v in values]


def _annotators(usernames: Iterable) -> list:
    users = []
    for value in usernames:
        user = value if hasattr(value, "pk") else get_user_model().objects.filter(username=value).first()
        if user is None:
            raise ApplicationError("Unknown user.", {"username": str(value)[:150]})
        if not has_any_role(user, (Role.ANNOTATOR,)):
            raise ApplicationError("Only annotators can be enrolled.", {"username": user.username})
        users.append(user)
    return users


def _gold_items(kind, campaign, questions, gold: list[dict], jobs, languages) -> list[Item]:
    """Gold: {"generations": [a, b], "answer": {...}} (pairwise) or {"generation": id, "answer":
    {...}} (rating), answers in stored terms ("a"/"b"/"tie"/"unusable", or scale values)."""
    by_name = {question.name: question for question in questions}
    items = []
    for index, entry in enumerate(gold):
        if not isinstance(entry, dict):
            raise ApplicationError("A gold item is an object with its outputs and answer.", {"gold": index})
        ids = entry.get("generations") or ([entry["generation"]] if "generation" in entry else [])
        answer = entry.get("answer")
        if len(ids) != kind.outputs or not isinstance(answer, dict) or not answer:
            raise ApplicationError(f"A gold item of a {kind.name} campaign names {kind.outputs} output(s) and an answer.",
                                   {"gold": index})
        try:
            generations = [Generation.objects.select_related("prompt").get(pk=int(i), job__in=jobs) for i in ids]
        except (Generation.DoesNotExist, TypeError, ValueError):
            raise ApplicationError("A gold item's output is not one of the campaign's jobs' outputs.", {"gold": index}) from None
        prompt = generations[0].prompt
        if any(g.prompt_id != prompt.pk for g in generations) or prompt.language_id not in languages:
            raise ApplicationError("A gold item's outputs answer one prompt in one of the campaign's languages.",
                                   {"gold": index})
        for name, value in answer.items():
            question = by_name.get(name)
            if question is None or kind.shown_value(value, swapped=False) not in {c.value for c in question.choices}:
                raise ApplicationError("A gold answer is not one of the question's choices.",
                                       {"gold": index, "question": str(name)[:50], "value": str(value)[:50]})
        items.append(Item(campaign=campaign, prompt=prompt, language_id=prompt.language_id,
                          generation_a=generations[0], generation_b=generations[1] if len(generations) > 1 else None,
                          is_gold=True, gold_answer=answer, priority=0.0))
    return items


def create_campaign(
    *,
    name: str,
    kind: str,
    jobs: Iterable,
    languages: Iterable[str],
    categories: Iterable[str],
    items_per_language: int = 20,
    overlap: int = 3,
    selection_mode: str = Campaign.Selection.RANDOM,
    seed: int = 0,
    ask_fluency: bool = False,
    instructions: str = "",
    instructions_by_language: dict | None = None,
    blur_text: bool = False,
    break_after_minutes: int = 45,
    daily_cap: int = 200,
    reservation_minutes: int = 20,
    annotators: Iterable = (),
    gold: list[dict] | None = None,
    created_by=None,
) -> Campaign:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A campaign needs a name.")
    campaign_kind = kinds.get(kind)
    job_rows = _jobs(jobs)
    language_rows = _known(Language, "code", languages, "languages")
    category_rows = _known(HarmCategory, "slug", categories, "categories")
    if not language_rows:
        raise ApplicationError("Choose at least one language.")
    campaign_kind.validate_campaign(jobs=job_rows, categories=category_rows, ask_fluency=ask_fluency)
    if selection_mode not in Campaign.Selection.values:
        raise ApplicationError("Unknown item selection.", {"selection": selection_mode, "known": ", ".join(Campaign.Selection.values)})
    for label, value, low, high in [("items per language", items_per_language, 1, MAX_ITEMS_PER_LANGUAGE),
                                    ("overlap", overlap, 1, MAX_OVERLAP), ("daily cap", daily_cap, 1, 100_000),
                                    ("reservation minutes", reservation_minutes, 1, 24 * 60),
                                    ("break reminder minutes", break_after_minutes, 0, 24 * 60)]:
        if not isinstance(value, int) or not low <= value <= high:
            raise ApplicationError(f"The {label} must be a whole number from {low} to {high}.", {label: str(value)[:20]})
    instructions_by_language = dict(instructions_by_language or {})
    codes = {language.code for language in language_rows}
    stray = sorted(set(instructions_by_language) - codes)
    if stray:
        raise ApplicationError("Instructions for languages the campaign does not have.", {"languages": ", ".join(stray)})
    enrolled = _annotators(annotators)

    rng = random.Random(seed)
    found = {
        language.code: selection.candidates(
            kind=campaign_kind.name, jobs=job_rows, language=language.code, count=items_per_language,
            disagreement=selection_mode == Campaign.Selection.DISAGREEMENT, rng=rng,
        )
        for language in language_rows
    }
    empty = [code for code, rows in found.items() if not rows]
    if empty:
        what = "two of the jobs" if campaign_kind.outputs == 2 else "the jobs"
        raise ApplicationError(f"No prompt in these languages has outputs from {what}.", {"languages": ", ".join(empty)})

    with transaction.atomic():
        campaign = Campaign.objects.create(
            name=name, kind=campaign_kind.name, items_per_language=items_per_language, overlap=overlap,
            selection=selection_mode, seed=seed, ask_fluency=ask_fluency, instructions=instructions,
            instructions_by_language=instructions_by_language, blur_text=blur_text,
            break_after_minutes=break_after_minutes, daily_cap=daily_cap, reservation_minutes=reservation_minutes,
            created_by=created_by,
        )
        campaign.jobs.set(job_rows)
        campaign.languages.set(language_rows)
        campaign.categories.set(category_rows)
        campaign.annotators.set(enrolled)
        questions = campaign_kind.questions(campaign, category_rows)
        gold_items = _gold_items(campaign_kind, campaign, questions, gold or [], job_rows, codes)
        items = [
            Item(campaign=campaign, prompt_id=c.prompt_id, language_id=c.language, generation_a_id=c.generation_a,
                 generation_b_id=c.generation_b, priority=c.priority)
            for rows in found.values() for c in rows
        ]
        created = Item.objects.bulk_create(items + gold_items)
        tags = [c.harm_categories for rows in found.values() for c in rows]
        gold_labels = PromptLabel.objects.filter(prompt_id__in=[item.prompt_id for item in gold_items],
                                                 value__gt=F("scale_min")).values_list("prompt_id", "category_id")
        tags += [{slug for prompt_id, slug in gold_labels if prompt_id == item.prompt_id} for item in gold_items]
        through = Item.harm_categories.through
        through.objects.bulk_create([
            through(item_id=item.pk, harmcategory_id=slug)
            for item, slugs in zip(created, tags) for slug in sorted(slugs)
        ])
    return campaign


def enroll(*, campaign: Campaign, usernames: Iterable) -> list:
    users = _annotators(usernames)
    campaign.annotators.add(*users)
    return users


def unenroll(*, campaign: Campaign, usernames: Iterable) -> None:
    campaign.annotators.remove(*_annotators(usernames))


def set_status(*, campaign: Campaign, status: str) -> Campaign:
    if status not in Campaign.Status.values:
        raise ApplicationError("Unknown campaign status.", {"status": status})
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    campaign.status = status
    return campaign
