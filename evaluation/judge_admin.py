"""Admin for judge prompts (imported by evaluation/admin.py). Saving an edited prompt writes
a new version through judge_prompts.save_version; the version that was open stays as it was,
and no version can be deleted (scores name the version they were asked with)."""
from django import forms
from django.contrib import admin

from evaluation import judge_prompts
from evaluation.judge_models import JudgePrompt


class JudgePromptForm(forms.ModelForm):
    class Meta:
        model = JudgePrompt
        fields = ["name", "template", "few_shot", "note"]

    def clean(self):
        cleaned = super().clean()
        # On a change the name is read-only (not in the form): the edited prompt's own.
        name = cleaned.get("name") if "name" in self.fields else self.instance.name
        problems = judge_prompts.check_prompt(name or "", cleaned.get("template") or "",
                                              cleaned.get("few_shot") if cleaned.get("few_shot") is not None else [])
        for field, problem in problems.items():
            self.add_error(field if field in self.fields else None, problem)
        return cleaned


@admin.register(JudgePrompt)
class JudgePromptAdmin(admin.ModelAdmin):
    form = JudgePromptForm
    list_display = ["name", "version", "note", "created_by", "created_at"]
    list_filter = ["name"]
    search_fields = ["name", "note", "template"]
    readonly_fields = ["version", "created_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # A new version keeps its name; a new prompt gets one.
        return [*self.readonly_fields, "name"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        saved = judge_prompts.save_version(
            obj.name, obj.template, obj.few_shot, user=request.user, note=obj.note
        )
        # The admin redirects and logs with obj: point it at the version just written.
        obj.pk, obj.version = saved.pk, saved.version

    def has_delete_permission(self, request, obj=None):
        return False
