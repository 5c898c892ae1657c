"""The job form. Its fields come from the job parameter schema (evaluation/job_parameters.py:
label, help, default, bounds shown); it checks what only a form can (text to numbers, JSON,
a model chosen one way), and services.create_job checks every value, whose ApplicationError
the view puts back on the fields it names — the same messages as the API and the CLI."""
import json

from django import forms

from evaluation import catalog
from evaluation.detox import registry as detox_registry
from evaluation.job_parameters import JOB_PARAMETERS, job_values
from evaluation.model_loading import PACKAGED_MODELS
from evaluation.models import EvaluationJob, ModelSpec
from evaluation.scorers import registry as scorer_registry
from toxplatform.corpus.models import Dataset, HarmCategory, Language, Prompt
from toxplatform.errors import ApplicationError
from toxplatform.forms import ServiceForm
from toxplatform.param_fields import form_field

# Schema parameters the form shows as plain fields (the others need choices from the database).
SCALAR_FIELDS = ("name", "prompt_split", "prompts_per_language", "k", "max_new_tokens", "top_p", "temperature",
                 "seed", "toxic_threshold", "threshold_rule", "batch_size", "chunk_size")


class JSONObjectField(forms.CharField):
    """A JSON object typed into a textarea; empty means {}."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})

    def to_python(self, value):
        value = super().to_python(value).strip()
        if not value:
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                "Not valid JSON: %(reason)s (line %(line)s, column %(column)s).",
                params={"reason": error.msg, "line": error.lineno, "column": error.colno},
            ) from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError('Parameters must be a JSON object, e.g. {"alpha": 0.5}.')
        return parsed

    def prepare_value(self, value):
        return json.dumps(value, indent=1) if isinstance(value, dict) else value


# A new job starts small and explicit: a few prompts in two languages, not every prompt of
# every language (the form shows the size as you change it; a large job needs confirming).
PRESET_PROMPTS_PER_LANGUAGE = 20
PRESET_LANGUAGES = ("en", "de")
# ISO 15924 codes of RTP-LX's scripts, named for the language checkbox groups.
SCRIPT_NAMES = {"Latn": "Latin", "Arab": "Arabic", "Cyrl": "Cyrillic", "Deva": "Devanagari", "Hebr": "Hebrew",
                "Hani": "Chinese", "Hans": "Chinese", "Hant": "Chinese", "Jpan": "Japanese", "Kore": "Korean", "Thai": "Thai",
                "Grek": "Greek", "Beng": "Bengali", "Taml": "Tamil", "Telu": "Telugu"}


class LanguageSelect(forms.CheckboxSelectMultiple):
    """Checkboxes that carry the datasets that have prompts in their language, so a small
    script can show only the chosen dataset's languages (the server checks it on submit)."""

    def __init__(self, *args, datasets_by_language: dict[str, list[str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.datasets_by_language = datasets_by_language or {}

    def create_option(self, name, value, *args, **kwargs):
        option = super().create_option(name, value, *args, **kwargs)
        option["attrs"]["data-datasets"] = " ".join(self.datasets_by_language.get(str(value), []))
        return option


class ModelSpecChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, spec: ModelSpec) -> str:
        return f"{spec.name} ({spec.backend})"


def _default_key(spec: dict) -> str | None:
    """The key a scorer gets when the job names none (None if it cannot be built any more)."""
    try:
        return scorer_registry.get(spec["name"])(**(spec.get("params") or {})).key()
    except ApplicationError:
        return None


class JobForm(ServiceForm):
    model = ModelSpecChoiceField(
        queryset=ModelSpec.objects.all(), required=False, empty_label="— choose a registered model —"
    )
    model_path = forms.CharField(
        label="…or a model path or name",
        required=False,
        help_text=f"A local model directory, a .gguf file, or a packaged model ({', '.join(PACKAGED_MODELS)}).",
    )
    method = forms.ChoiceField(label=JOB_PARAMETERS["method"].title, initial=JOB_PARAMETERS["method"].default)
    method_params = JSONObjectField(label="Method parameters (JSON)", required=False)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all(), to_field_name="slug", empty_label=None)
    languages = forms.MultipleChoiceField(
        required=False, help_text="None ticked = every language of the dataset.", widget=LanguageSelect
    )
    categories = forms.ModelMultipleChoiceField(
        label=JOB_PARAMETERS["categories"].title,
        queryset=HarmCategory.objects.all(),
        to_field_name="slug",
        required=False,
        help_text=JOB_PARAMETERS["categories"].help_text(),
        widget=forms.CheckboxSelectMultiple,
    )
    confirm_large = forms.BooleanField(
        label="Queue this large job", required=False,
        help_text="A job above the large-job size is queued only when you tick this.",
    )
    scorers = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    scorer_params = JSONObjectField(
        label="Scorer parameters (JSON)",
        required=False,
        help_text='By scorer name, e.g. {"hf_classifier": {"path": "/models/xlmr-toxicity"}}.',
    )
    # Fields of services.create_job's ApplicationError.extra -> fields of this form.
    SERVICE_FIELDS = {**{name: name for name in JOB_PARAMETERS.names()}, "model": "model_path",
                      "scorers": "scorer_params", "confirm_large": "confirm_large"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["method"].choices = [(name, name) for name in detox_registry.names()]
        scorers = scorer_registry.names()
        self.fields["scorers"].choices = [(name, name) for name in scorers]
        self.fields["scorers"].initial = [name for name in JOB_PARAMETERS["scorers"].default if name in scorers]
        datasets_by_language: dict[str, list[str]] = {}
        pairs = Prompt.objects.values_list("language", "dataset__slug").distinct().order_by()
        for code, slug in pairs:
            datasets_by_language.setdefault(code, []).append(slug)
        languages = Language.objects.filter(code__in=datasets_by_language).order_by("english_name")
        self.fields["languages"].choices = [(lang.code, f"{lang.english_name} ({lang.code})") for lang in languages]
        self.fields["languages"].widget.datasets_by_language = datasets_by_language
        self._datasets_by_language = datasets_by_language
        self._language_scripts = {lang.code: lang.script for lang in languages}
        if self.fields["dataset"].queryset.count() == 1:
            self.fields["dataset"].initial = self.fields["dataset"].queryset.first()
        # Only categories some prompt has a gold label in (the filter keeps labelled prompts).
        self.fields["categories"].queryset = HarmCategory.objects.filter(labels__isnull=False).distinct()
        self.fields["prompts_per_language"].initial = PRESET_PROMPTS_PER_LANGUAGE
        offered = [code for code, _ in self.fields["languages"].choices]
        preset = [code for code in PRESET_LANGUAGES if code in offered]
        self.fields["languages"].initial = preset or offered[:2]

    def clean(self):
        cleaned = super().clean()
        # The schema's checks of the plain fields, so that their problems show beside any other
        # field's (create_job makes the same checks, with the same messages, on every interface).
        given = {name: cleaned[name] for name in SCALAR_FIELDS if cleaned.get(name) not in (None, "")}
        for field, message in JOB_PARAMETERS.problems(given, only=tuple(given))[1].items():
            self.add_error(field, message)
        model, path = cleaned.get("model"), (cleaned.get("model_path") or "").strip()
        if model is None and not path and "model" not in self.errors:
            self.add_error("model_path", "Choose a registered model or give a model path or name.")
        elif model is not None and path:
            self.add_error("model_path", "Give either a registered model or a path, not both.")
        dataset, languages = cleaned.get("dataset"), cleaned.get("languages") or []
        if dataset is not None:
            missing = [code for code in languages if dataset.slug not in self._datasets_by_language.get(code, [])]
            if missing:
                self.add_error("languages", f"{dataset.name} has no prompts in: {', '.join(missing)}.")
        scorer_params, scorers = cleaned.get("scorer_params") or {}, cleaned.get("scorers") or []
        for name, params in scorer_params.items():
            if name not in scorers:
                self.add_error("scorer_params", f"Parameters given for {name!r}, which is not a selected scorer.")
            elif not isinstance(params, dict):
                self.add_error("scorer_params", f"The parameters of {name!r} must be a JSON object.")
        return cleaned

    # --- what the template shows beside the fields ------------------------------------------
    def language_groups(self) -> list[tuple[str, list]]:
        """The language checkboxes grouped by script (Latin, Arabic, Cyrillic...), largest first."""
        groups: dict[str, list] = {}
        for box in self["languages"]:
            script = self._language_scripts.get(box.data["value"]) or ""
            groups.setdefault(SCRIPT_NAMES.get(script, script or "Other"), []).append(box)
        # A script with one language joins the others in one group (no one-line groups).
        merged: dict[str, list] = {}
        for name, boxes in groups.items():
            merged.setdefault(f"{name} script" if len(boxes) > 1 else "Other scripts", []).extend(boxes)
        return sorted(merged.items(), key=lambda item: (item[0] == "Other scripts", -len(item[1]), item[0]))

    def scorer_entries(self) -> list[tuple]:
        """(checkbox, declared summary and parameters) for each scorer."""
        described = catalog.by_name(catalog.scorers())
        return [(box, described.get(box.data["value"], {})) for box in self["scorers"]]

    def method_entries(self) -> list[tuple[dict, bool]]:
        """(declared summary and parameters, chosen?) for each detox method."""
        chosen = self["method"].value()
        return [(item, item["name"] == chosen) for item in catalog.methods()]

    @staticmethod
    def initial_from(job: EvaluationJob) -> tuple[dict, list[str]]:
        """The form's initial values to run `job` again (with changes), and what of the job the
        form cannot hold (the API can): scorer keys of the job's own, a scorer listed twice."""
        names = [spec["name"] for spec in job.scorers]
        left_out = []
        if len(set(names)) < len(names):
            left_out.append("the job lists a scorer twice (the form holds one of each): the first is kept")
        scorer_params: dict[str, dict] = {}
        for spec in job.scorers:
            if spec.get("params") and spec["name"] not in scorer_params:
                scorer_params[spec["name"]] = spec["params"]
        custom_keys = [spec["key"] for spec in job.scorers if spec.get("key") and spec["key"] != _default_key(spec)]
        if custom_keys:
            left_out.append(f"scorer keys given by the job ({', '.join(custom_keys)}) are not kept")
        initial = {
            **job_values(job), "model": job.model, "dataset": job.dataset,
            "scorers": list(dict.fromkeys(names)), "scorer_params": scorer_params,
        }
        return initial, left_out

    def service_arguments(self) -> dict:
        """Keyword arguments for services.create_job."""
        data = self.cleaned_data
        scorer_params = data["scorer_params"]
        # A field left empty is not sent: the schema's default applies (prompts_per_language: all).
        scalars = {name: data[name] for name in SCALAR_FIELDS if data[name] not in (None, "")}
        return {
            **scalars,
            "confirm_large": data["confirm_large"],
            "model": data["model"] or data["model_path"].strip(),
            "method": data["method"],
            "method_params": data["method_params"],
            "dataset": data["dataset"],
            "languages": data["languages"],
            "categories": [category.slug for category in data["categories"]],
            "scorers": [{"name": name, "params": scorer_params.get(name, {})} for name in data["scorers"]],
        }

    def field_for(self, key: str) -> str | None:
        # A model error belongs on the registered-model choice when one was chosen.
        if key == "model" and self.cleaned_data.get("model") is not None:
            return "model"
        return super().field_for(key)


# The schema's plain parameters, as declared (the template places each field by name).
JobForm.base_fields.update({name: form_field(JOB_PARAMETERS[name]) for name in SCALAR_FIELDS})
