"""Read-side queries for the annotator workspace and the researcher pages.

Blindness: what an annotator's pages get from here (Workspace, AnnotatorCampaign) holds texts,
languages and questions only — never a job, model or method name."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median

from django.db.models import Count, Q, Sum
from django.utils import timezone

from annotations import kinds
from annotations.kinds.base import ACTION_KEYS, SKIP_REASONS, Question
from annotations.models import Assignment, Campaign, Item, Judgment
from annotations.services.assignment import day_caps, items_today
from evaluation.models import Generation
from toxplatform.accounts.models import AnnotatorProfile


@dataclass(frozen=True)
class Output:
    side: str  # "A" (left) or "B" (right); "" for a rating item
    text: str


@dataclass(frozen=True)
class Progress:
    mine_done: int
    mine_skipped: int
    campaign_done: int
    campaign_needed: int
    today: int
    today_cap: int

    @property
    def campaign_percent(self) -> int:
        return int(100 * self.campaign_done / self.campaign_needed) if self.campaign_needed else 100


@dataclass
class Workspace:
    campaign: Campaign
    assignment: Assignment
    item: Item
    language: object
    prompt_text: str
    outputs: list[Output]
    questions: list[Question]
    # {question name: shown value} of the latest version when the item is reopened for an edit.
    current: dict = field(default_factory=dict)
    version: int = 0
    instructions: str = ""
    progress: Progress | None = None
    skip_reasons: list = field(default_factory=lambda: SKIP_REASONS)
    keys: dict = field(default_factory=lambda: ACTION_KEYS)


def campaign_questions(campaign: Campaign) -> list[Question]:
    return kinds.get(campaign.kind).questions(campaign, list(campaign.categories.all()))


def progress(campaign: Campaign, annotator, now=None) -> Progress:
    now = now or timezone.now()
    mine = Assignment.objects.filter(item__campaign=campaign, annotator=annotator).aggregate(
        done=Count("id", filter=Q(state=Assignment.State.DONE)), skipped=Count("id", filter=Q(state=Assignment.State.SKIPPED))
    )
    totals = Item.objects.filter(campaign=campaign).aggregate(done=Sum("done_count"), items=Count("id"))
    profile = AnnotatorProfile.objects.filter(user=annotator).first()
    caps = [(cap, items_today(annotator, now, where)) for cap, where in day_caps(campaign, profile)]
    cap, used = min(caps, key=lambda pair: pair[0] - pair[1])
    return Progress(mine_done=mine["done"], mine_skipped=mine["skipped"], campaign_done=totals["done"] or 0,
                    campaign_needed=(totals["items"] or 0) * campaign.overlap, today=used, today_cap=cap)


def workspace(assignment: Assignment) -> Workspace:
    item = Item.objects.select_related("campaign", "prompt__language", "generation_a", "generation_b").get(pk=assignment.item_id)
    campaign = item.campaign
    kind = kinds.get(campaign.kind)
    shown_ids = [item.generation_a_id] if item.generation_b_id is None else (
        [item.generation_b_id, item.generation_a_id] if assignment.swapped else [item.generation_a_id, item.generation_b_id]
    )
    texts = dict(Generation.objects.filter(pk__in=shown_ids).values_list("pk", "text"))
    sides = ["A", "B"] if len(shown_ids) == 2 else [""]
    latest = assignment.judgments.order_by("-version").first()
    current = {}
    if latest is not None:
        current = {name: kind.shown_value(value, swapped=assignment.swapped) for name, value in latest.answer.items()}
    return Workspace(
        campaign=campaign, assignment=assignment, item=item, language=item.prompt.language,
        prompt_text=item.prompt.text, outputs=[Output(side, texts[gid]) for side, gid in zip(sides, shown_ids)],
        questions=campaign_questions(campaign), current=current, version=latest.version if latest else 0,
        instructions=campaign.instructions_for(item.language_id), progress=progress(campaign, assignment.annotator),
    )


@dataclass(frozen=True)
class AnnotatorCampaign:
    campaign: Campaign
    kind_label: str
    progress: Progress
    languages: list[str]


def annotator_campaigns(user) -> list[AnnotatorCampaign]:
    """Active campaigns the user is enrolled in and can work on (a language in common)."""
    profile = AnnotatorProfile.objects.filter(user=user).first()
    mine = set(profile.languages.values_list("code", flat=True)) if profile else set()
    rows = []
    for campaign in Campaign.objects.filter(annotators=user, status=Campaign.Status.ACTIVE).prefetch_related("languages"):
        shared = sorted(mine & {language.code for language in campaign.languages.all()})
        if shared:
            rows.append(AnnotatorCampaign(campaign, kinds.get(campaign.kind).label, progress(campaign, user), shared))
    return rows


# --- researchers ---------------------------------------------------------------------------------


def campaign_list():
    return Campaign.objects.annotate(
        n_items=Count("items", distinct=True), n_annotators=Count("annotators", distinct=True)
    ).prefetch_related("languages", "jobs__model").order_by("-created_at")


@dataclass(frozen=True)
class LanguageProgress:
    language: str
    items: int
    complete: int
    judgments: int
    needed: int

    @property
    def percent(self) -> int:
        return int(100 * self.judgments / self.needed) if self.needed else 100


@dataclass(frozen=True)
class AnnotatorProgress:
    annotator_id: int
    username: str
    done: int
    skipped: int
    reserved: int
    median_seconds: float | None
    edits: int


def language_progress(campaign: Campaign) -> list[LanguageProgress]:
    rows = (
        Item.objects.filter(campaign=campaign).values("language_id").order_by("language_id")
        .annotate(items=Count("id"), complete=Count("id", filter=Q(done_count__gte=campaign.overlap)), judgments=Sum("done_count"))
    )
    return [LanguageProgress(row["language_id"], row["items"], row["complete"], row["judgments"] or 0,
                             row["items"] * campaign.overlap) for row in rows]


def annotator_progress(campaign: Campaign, now=None) -> list[AnnotatorProgress]:
    now = now or timezone.now()
    counts = (
        Assignment.objects.filter(item__campaign=campaign).values("annotator_id", "annotator__username")
        .order_by("annotator__username")
        .annotate(done=Count("id", filter=Q(state=Assignment.State.DONE)),
                  skipped=Count("id", filter=Q(state=Assignment.State.SKIPPED)),
                  reserved=Count("id", filter=Q(state=Assignment.State.RESERVED, expires_at__gt=now)))
    )
    times: dict[int, list[int]] = defaultdict(list)
    edits: dict[int, int] = defaultdict(int)
    for annotator_id, version, time_ms in Judgment.objects.filter(assignment__item__campaign=campaign).values_list(
        "assignment__annotator_id", "version", "time_ms"
    ):
        if version == 1:
            times[annotator_id].append(time_ms)
        else:
            edits[annotator_id] += 1
    return [
        AnnotatorProgress(row["annotator_id"], row["annotator__username"], row["done"], row["skipped"], row["reserved"],
                          round(median(times[row["annotator_id"]]) / 1000, 1) if times[row["annotator_id"]] else None,
                          edits[row["annotator_id"]])
        for row in counts
    ]


def current_judgments(campaign: Campaign):
    """The latest version of every finished assignment's judgment, with its item."""
    latest = {}
    for judgment in (
        Judgment.objects.filter(assignment__item__campaign=campaign)
        .select_related("assignment__item").order_by("assignment_id", "version")
    ):
        latest[judgment.assignment_id] = judgment
    return list(latest.values())
