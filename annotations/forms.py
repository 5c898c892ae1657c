"""The campaign form (researchers) and the annotator's preferences. Forms only parse; the
rules are checked once, in services.create_campaign and accounts.services."""
import json

from django import forms
from django.contrib.auth import get_user_model

from annotations.models import Campaign
from evaluation.models import EvaluationJob
from toxplatform.accounts.models import Role
from toxplatform.corpus.models import HarmCategory, Language
from toxplatform.forms import ServiceForm


class JobChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, job):
        return f"#{job.pk} {job.model.name} · {job.detox_method}{f' ({job.name})' if job.name else ''}"


def _json(value: str, what: str, expected: type):
    if not value.strip():
        return expected()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    if not isinstance(parsed, expected):
        raise forms.ValidationError(f"{what} must be a JSON {'object' if expected is dict else 'list'}.")
    return parsed


class CampaignForm(ServiceForm):
    name = forms.CharField(max_length=200, help_text="Shown to annotators: do not name models or methods.")
    kind = forms.ChoiceField(choices=Campaign.Kind.choices)
    jobs = JobChoiceField(queryset=EvaluationJob.objects.none(), help_text="finished jobs whose outputs are judged")
    languages = forms.ModelMultipleChoiceField(queryset=Language.objects.all())
    categories = forms.ModelMultipleChoiceField(
        queryset=HarmCategory.objects.all(), help_text="pairwise: one category; rating: every category rated"
    )
    ask_fluency = forms.BooleanField(required=False, label="Also ask which is more fluent (pairwise)")
    items_per_language = forms.IntegerField(min_value=1, initial=20)
    overlap = forms.IntegerField(min_value=1, initial=3, help_text="finished judgments per item")
    selection = forms.ChoiceField(choices=Campaign.Selection.choices, label="Item selection")
    seed = forms.IntegerField(initial=0)
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    instructions_by_language = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Instructions per language (JSON)",
        help_text='{"ar": "...", "de": "..."}; languages not named get the instructions above',
    )
    blur_text = forms.BooleanField(required=False, label="Blur outputs until revealed")
    break_after_minutes = forms.IntegerField(min_value=0, initial=45, label="Break reminder after (minutes, 0 = none)")
    daily_cap = forms.IntegerField(min_value=1, initial=200, label="Items per annotator per day")
    reservation_minutes = forms.IntegerField(min_value=1, initial=20, help_text="an unfinished item returns to the pool after this")
    annotators = forms.ModelMultipleChoiceField(queryset=get_user_model().objects.none(), required=False)
    gold = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Gold items (JSON)",
        help_text='[{"generations": [a, b], "answer": {"toxicity": "a"}}] or [{"generation": id, "answer": {"toxicity": 4}}]',
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["jobs"].queryset = EvaluationJob.objects.filter(status=EvaluationJob.Status.DONE).select_related("model")
        self.fields["annotators"].queryset = get_user_model().objects.filter(groups__name=Role.ANNOTATOR).order_by("username")
        self.fields["categories"].initial = ["toxicity"]

    def clean_instructions_by_language(self):
        return _json(self.cleaned_data["instructions_by_language"], "Instructions per language", dict)

    def clean_gold(self):
        return _json(self.cleaned_data["gold"], "Gold items", list)

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"], "kind": data["kind"], "jobs": list(data["jobs"]),
            "languages": [language.code for language in data["languages"]],
            "categories": [category.slug for category in data["categories"]],
            "ask_fluency": data["ask_fluency"], "items_per_language": data["items_per_language"],
            "overlap": data["overlap"], "selection_mode": data["selection"], "seed": data["seed"],
            "instructions": data["instructions"], "instructions_by_language": data["instructions_by_language"],
            "blur_text": data["blur_text"], "break_after_minutes": data["break_after_minutes"],
            "daily_cap": data["daily_cap"], "reservation_minutes": data["reservation_minutes"],
            "annotators": list(data["annotators"]), "gold": data["gold"],
        }


class PreferencesForm(forms.Form):
    opted_out = forms.ModelMultipleChoiceField(
        queryset=HarmCategory.objects.all(), required=False, widget=forms.CheckboxSelectMultiple,
        label="Never give me items about", help_text="applies to every campaign",
    )
    daily_cap = forms.IntegerField(min_value=1, required=False, label="At most this many items a day",
                                   help_text="empty: the campaign's own cap")


class EnrollForm(forms.Form):
    usernames = forms.CharField(help_text="annotator usernames, separated by spaces or commas")

    def clean_usernames(self):
        return [name for name in self.cleaned_data["usernames"].replace(",", " ").split() if name]
