"""Annotation data: campaigns, their items, who holds or finished which item, and judgments.

Concurrency rules live in services/assignment.py; the constraints here are the last line:
one Assignment per (item, annotator), one Judgment per (assignment, version).
"""
from django.conf import settings
from django.db import models

from evaluation.models import EvaluationJob, Generation
from toxplatform.corpus.models import HarmCategory, Language, Prompt


class Campaign(models.Model):
    class Kind(models.TextChoices):
        PAIRWISE = "pairwise", "pairwise comparison"
        RATING = "rating", "harm rating"

    class Status(models.TextChoices):
        ACTIVE = "active"
        CLOSED = "closed"

    class Selection(models.TextChoices):
        RANDOM = "random", "random"
        DISAGREEMENT = "disagreement", "where scorers disagree most"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    jobs = models.ManyToManyField(EvaluationJob, related_name="campaigns")
    languages = models.ManyToManyField(Language, related_name="+")
    # Rating: the categories rated. Pairwise: the harm the question is about (the first one).
    categories = models.ManyToManyField(HarmCategory, related_name="+")
    ask_fluency = models.BooleanField(default=False, help_text="pairwise: also ask which output is more fluent")
    items_per_language = models.PositiveIntegerField(default=20)
    overlap = models.PositiveSmallIntegerField(default=3, help_text="finished judgments per item")
    selection = models.CharField(max_length=15, choices=Selection.choices, default=Selection.RANDOM)
    seed = models.IntegerField(default=0)
    instructions = models.TextField(blank=True)
    instructions_by_language = models.JSONField(default=dict, blank=True, help_text='{"ar": "...", ...}')
    blur_text = models.BooleanField(default=False, help_text="outputs stay blurred until the annotator reveals them")
    break_after_minutes = models.PositiveIntegerField(default=45, help_text="0 = no break reminder")
    daily_cap = models.PositiveIntegerField(default=200, help_text="most items one annotator gets per day")
    reservation_minutes = models.PositiveIntegerField(default=20, help_text="an unfinished item returns to the pool after this")
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="annotation_campaigns")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def instructions_for(self, language_code: str) -> str:
        return self.instructions_by_language.get(language_code) or self.instructions


class Item(models.Model):
    """One thing to judge: a prompt with one output (rating) or two outputs of different jobs
    (pairwise; `generation_a` / `generation_b` in a fixed order — what side each is shown on is
    drawn per assignment)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="+")
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    generation_a = models.ForeignKey(Generation, on_delete=models.PROTECT, related_name="+")
    generation_b = models.ForeignKey(Generation, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Harm categories the item is about (prompt's gold labels or automatic scores above the
    # scale's minimum); an annotator who opted out of one of them never gets the item.
    harm_categories = models.ManyToManyField(HarmCategory, blank=True, related_name="+")
    # Higher first; random selection stores a random draw, "disagreement" the scorers' spread.
    priority = models.FloatField(default=0.0)
    is_gold = models.BooleanField(default=False)
    gold_answer = models.JSONField(null=True, blank=True)
    # Finished judgments (first versions); changed only under this row's lock (services.assignment).
    done_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["campaign_id", "-priority", "id"]
        indexes = [models.Index(fields=["campaign", "language", "done_count"])]

    def __str__(self) -> str:
        return f"item {self.pk} of campaign {self.campaign_id}"


class Assignment(models.Model):
    """An item handed to one annotator: reserved until `expires_at`, then done or skipped.
    An expired reservation no longer counts against the overlap (the item is back in the
    pool); its owner may still submit while the item has room."""

    class State(models.TextChoices):
        RESERVED = "reserved"
        DONE = "done"
        SKIPPED = "skipped"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotation_assignments")
    state = models.CharField(max_length=10, choices=State.choices, default=State.RESERVED)
    # Pairwise: True = generation_b was shown on the left. Drawn per assignment and recorded.
    swapped = models.BooleanField(default=False)
    claimed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=30, blank=True)
    skip_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["claimed_at", "id"]
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="unique_item_annotator")]
        indexes = [
            models.Index(fields=["item", "state", "expires_at"]),
            models.Index(fields=["annotator", "claimed_at"]),
        ]


class Judgment(models.Model):
    """One version of an annotator's answer; an edit adds a version, nothing is overwritten."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="judgments")
    version = models.PositiveIntegerField(default=1)
    # Pairwise: {"toxicity": "a"|"b"|"tie"|"unusable", "fluency": ...} in the items' a/b terms.
    # Rating: {"toxicity": 3, "insult": 1, ...} on each category's scale.
    answer = models.JSONField()
    # What was on screen: pairwise [left generation id, right generation id]; rating [id].
    order_shown = models.JSONField(default=list)
    time_ms = models.PositiveIntegerField(default=0, help_text="time on item, measured in the browser")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["assignment_id", "version"]
        constraints = [models.UniqueConstraint(fields=["assignment", "version"], name="unique_judgment_version")]
