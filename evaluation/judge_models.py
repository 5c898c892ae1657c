"""Judge prompts as versioned data (imported by evaluation/models.py).

A JudgePrompt row is one immutable version of a named prompt: editing a prompt writes a new
row with the next version (evaluation.judge_prompts.save_version), so every score an
llm_judge gave can be traced to the exact text it was asked with (its raw output records
`prompt` and `prompt_version`). Rows are never changed or deleted.
"""
from django.conf import settings
from django.db import models


class JudgePrompt(models.Model):
    name = models.SlugField(max_length=100, help_text="What jobs name it by, e.g. rtp-lx-rubric")
    version = models.PositiveIntegerField()
    # The whole instruction; {language} and {text} are filled in per item (nothing else is).
    template = models.TextField()
    # [{"language": "en", "text": "...", "reply": "Toxic: 1\n..."}]: earlier chat turns.
    few_shot = models.JSONField(default=list, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="What changed in this version")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "evaluation"
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_judge_prompt_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"
