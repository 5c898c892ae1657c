from django import forms

from toxplatform.corpus import selectors
from toxplatform.corpus.models import HarmCategory, Language

ANY = ""
TOXIC_CHOICES = [(ANY, "Any"), ("toxic", "Toxic only"), ("non-toxic", "Non-toxic only")]
CULTURAL_CHOICES = [(ANY, "Any"), ("yes", "Culturally specific"), ("no", "Not culturally specific")]


class LanguageChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, language: Language) -> str:
        return f"{language.english_name} ({language.code})"


class PromptFilterForm(forms.Form):
    """The filters of the prompt list, read from the query string (GET)."""

    q = forms.CharField(label="Text contains", required=False, max_length=200)
    language = LanguageChoiceField(
        queryset=Language.objects.none(),
        to_field_name="code",
        required=False,
        empty_label="All languages",
        error_messages={"invalid_choice": "“%(value)s” is not a language of this dataset."},
    )
    category = forms.ModelChoiceField(
        queryset=HarmCategory.objects.all(),
        to_field_name="slug",
        required=False,
        label="Harm category",
        empty_label="Any category",
        error_messages={"invalid_choice": "“%(value)s” is not a harm category."},
    )
    min_value = forms.FloatField(
        label="Label at least",
        required=False,
        error_messages={"invalid": "The minimum label must be a number."},
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )
    toxic = forms.ChoiceField(label="Toxic (by source)", choices=TOXIC_CHOICES, required=False)
    cultural = forms.ChoiceField(label="Culturally specific", choices=CULTURAL_CHOICES, required=False)
    group = forms.CharField(label="Group id", required=False, max_length=100)

    def __init__(self, *args, dataset, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"].queryset = selectors.dataset_languages(dataset).order_by("english_name")

    def clean(self):
        cleaned = super().clean()
        category, min_value = cleaned.get("category"), cleaned.get("min_value")
        if min_value is not None and "category" not in self.errors:
            if category is None:
                self.add_error("category", "Choose a harm category for the minimum label.")
            elif not category.scale_min <= min_value <= category.scale_max:
                self.add_error(
                    "min_value",
                    f"{category.name} labels go from {category.scale_min:g} to {category.scale_max:g}; "
                    f"{min_value:g} is outside that scale.",
                )
        return cleaned

    def selector_filters(self) -> dict:
        """The cleaned filters as keyword arguments of selectors.prompt_list."""
        data = self.cleaned_data
        return {
            "language": data["language"],
            "category": data["category"],
            "min_value": data["min_value"],
            "toxic": {"toxic": True, "non-toxic": False}.get(data["toxic"]),
            "culturally_specific": {"yes": True, "no": False}.get(data["cultural"]),
            "search": data["q"],
            "group_id": data["group"],
        }
