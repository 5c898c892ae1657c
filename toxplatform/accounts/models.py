from django.conf import settings
from django.db import models

from toxplatform.corpus.models import HarmCategory, Language


class Role(models.TextChoices):
    """Roles are Django groups of these names (created by migration)."""

    RESEARCHER = "Researcher"
    ANNOTATOR = "Annotator"


class AnnotatorProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotator_profile")
    languages = models.ManyToManyField(Language, blank=True, help_text="languages this person reads")
    # An annotator never gets items of these categories (e.g. self-harm), in any campaign.
    opted_out_categories = models.ManyToManyField(
        HarmCategory, blank=True, related_name="+", help_text="harm categories this person never gets items of"
    )
    daily_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="most items handed out per day (empty = the campaign's cap only)"
    )

    def __str__(self) -> str:
        return f"profile of {self.user}"
