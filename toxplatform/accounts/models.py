from django.conf import settings
from django.db import models

from toxplatform.corpus.models import Language


class Role(models.TextChoices):
    """Roles are Django groups of these names (created by migration)."""

    RESEARCHER = "Researcher"
    ANNOTATOR = "Annotator"


class AnnotatorProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotator_profile")
    languages = models.ManyToManyField(Language, blank=True, help_text="languages this person reads")

    def __str__(self) -> str:
        return f"profile of {self.user}"
