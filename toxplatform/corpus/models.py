"""The prompt corpus: languages, harm categories, datasets, prompts and their gold labels."""
from django.db import models


class Language(models.Model):
    class Direction(models.TextChoices):
        LTR = "ltr", "left to right"
        RTL = "rtl", "right to left"

    code = models.CharField(max_length=35, primary_key=True, help_text="BCP-47 tag, e.g. pt, zh-Hans")
    english_name = models.CharField(max_length=100)
    native_name = models.CharField(max_length=100, blank=True)
    script = models.CharField(max_length=4, blank=True, help_text="ISO 15924 code, e.g. Latn, Arab")
    direction = models.CharField(max_length=3, choices=Direction.choices, default=Direction.LTR)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.english_name} ({self.code})"

    @property
    def is_rtl(self) -> bool:
        return self.direction == self.Direction.RTL


class HarmCategory(models.Model):
    slug = models.SlugField(max_length=50, primary_key=True)
    name = models.CharField(max_length=100)
    scale_min = models.FloatField(default=0.0)
    scale_max = models.FloatField(default=1.0)
    description = models.TextField(blank=True)
    # Order on pages; RTP-LX's own eight come first.
    position = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["position", "slug"]
        verbose_name_plural = "harm categories"

    def __str__(self) -> str:
        return self.name


class Dataset(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    format = models.CharField(max_length=20, help_text="importer that read it: rtp-lx, rtp, ptp, jsonl, csv")
    version = models.CharField(max_length=50, blank=True)
    license = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=500, blank=True, help_text="where the files came from")
    imported_at = models.DateTimeField(null=True, blank=True)
    checksum = models.CharField(max_length=64, blank=True, help_text="sha256 over the imported files")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="prompts")
    language = models.ForeignKey(Language, on_delete=models.PROTECT, related_name="prompts")
    external_id = models.CharField(max_length=100)
    # The same prompt across languages (RTP-LX: the transcreation Index).
    group_id = models.CharField(max_length=100, blank=True, db_index=True)
    text = models.TextField()
    culturally_specific = models.BooleanField(default=False)
    # Toxic by the source's own score (RTP-LX: mean toxicity >= 3 of 5; RTP/PTP: >= 0.5).
    is_toxic = models.BooleanField(null=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["dataset_id", "language_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "language", "external_id"], name="unique_prompt_per_dataset_language"
            )
        ]
        indexes = [models.Index(fields=["dataset", "language"])]

    def __str__(self) -> str:
        return f"{self.dataset.slug}/{self.language_id}/{self.external_id}"


class PromptLabel(models.Model):
    """A gold label shipped with the data: the aggregate and, when known, every rater's value."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    category = models.ForeignKey(HarmCategory, on_delete=models.PROTECT, related_name="labels")
    value = models.FloatField(help_text="aggregate (mean of raters, or the source's score)")
    rater_values = models.JSONField(default=list, blank=True)
    num_raters = models.PositiveSmallIntegerField(default=0)
    source = models.CharField(max_length=50, help_text="e.g. human, perspective")
    scale_min = models.FloatField(default=0.0)
    scale_max = models.FloatField(default=1.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prompt", "category", "source"], name="unique_label_per_source")
        ]
        indexes = [models.Index(fields=["category", "value"])]

    def __str__(self) -> str:
        return f"{self.prompt_id} {self.category_id}={self.value:g}"

    @property
    def normalized(self) -> float:
        """The value on [0, 1], whatever scale the source used."""
        span = self.scale_max - self.scale_min
        return (self.value - self.scale_min) / span if span else 0.0
